"""A blocked event loop, made visible (`--loop-block-threshold`).

A loop that is blocked (an app calling `time.sleep`, a synchronous database driver, a CPU-bound
loop) can tell nobody: none of its own code runs. So a thread watches it: the server's
housekeeping tick, every 0.25 s on the loop, records a heartbeat; when no heartbeat has come
for longer than the threshold, the thread logs a warning with where the loop is stuck (the
loop thread's stack, taken as it is blocked), counts `monoceros_event_loop_blocked_total`, and
once the loop runs again logs how long it was blocked.

What the thread cannot do is answer for the loop: `/healthz` is served by the loop (with
`--workers`, by the supervisor, see docs/observability/admin.md), so while the loop is blocked
a liveness probe gets no answer and fails, which is what restarts a stuck server.

A watchdog is a timer by nature: the thread waits on an Event with a timeout (a quarter of the
threshold, at most 1 s), and stops when told to. A loop blocked in C code that holds the GIL
keeps the thread from running too: that block is reported when it ends.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from typing import Protocol

logger = logging.getLogger("monoceros.error")


class BlockCounter(Protocol):
    def loop_blocked(self) -> None: ...


class LoopWatchdog:
    def __init__(self, threshold: float, counter: BlockCounter | None) -> None:
        self.threshold = threshold
        self.counter = counter
        self._beat = time.monotonic()
        self._blocked_since: float | None = None  # the last beat before a reported block
        self._stop = threading.Event()
        self._loop_thread = threading.get_ident()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Called on the loop's thread: that is the thread watched."""
        self._loop_thread = threading.get_ident()
        self._beat = time.monotonic()
        self._thread = threading.Thread(
            target=self._watch, name="monoceros-loop-watchdog", daemon=True
        )
        self._thread.start()

    def beat(self) -> None:
        """The loop ran (called from the server's housekeeping tick)."""
        self._beat = time.monotonic()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def _watch(self) -> None:
        interval = min(self.threshold / 4, 1.0)
        while not self._stop.wait(interval):
            self.check(time.monotonic())

    def check(self, now: float) -> None:
        """One look at the heartbeat (the thread's, or a test's with its own `now`)."""
        beat = self._beat
        if self._blocked_since is None:
            if now - beat > self.threshold:
                self._blocked_since = beat
                if self.counter is not None:
                    self.counter.loop_blocked()
                logger.warning(
                    "Event loop blocked for more than %.1f seconds (--loop-block-threshold); "
                    "it is at:\n%s",
                    self.threshold,
                    self._loop_stack(),
                )
        elif beat > self._blocked_since:
            logger.warning(
                "Event loop ran again after being blocked for %.1f seconds",
                beat - self._blocked_since,
            )
            self._blocked_since = None

    def _loop_stack(self) -> str:
        frame = sys._current_frames().get(self._loop_thread)
        if frame is None:
            return "(the loop's thread has no Python frame)"
        return "".join(traceback.format_stack(frame)).rstrip()
