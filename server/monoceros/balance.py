"""Sharing one listening socket fairly between `--workers`.

With a shared socket, every worker's loop wakes when a connection arrives, and the first to
run accepts everything queued at that moment. A burst (a load test, a proxy filling its
keep-alive pool) can so land on one worker, and keep-alive connections stay where they land:
measured with wrk's 64 connections against two workers, splits of 64/0 and 1/63 served 88k and
114k requests/s where even ones served 122-126k (bench/README.md, "The servers").

So each worker posts its open connections on a board the supervisor shares with all of them
(`LoadBoard`, a few words of shared memory), and a worker that holds more than its share stops
listening for a moment (`SharedListener`), leaving new connections to the others. It listens
again once it is back within its share, or as soon as connections wait that no other worker
has taken (one that is stopped or blocked): the board delays such a connection by about 10 ms
(while the stopped worker's own loop is free), and never leaves it queued. Accepting stays the
event loop's own (uvloop's, in C); only the decision to stop and start listening is ours, made
once per accepted connection. On asyncio's own loop (--loop asyncio) the kernel alone decides,
as before: see `accepts_at_once`. A TLS connection counts once its handshake is done (its
protocol hears of it then).
"""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import ssl
from collections.abc import Callable
from multiprocessing.context import SpawnContext
from typing import Final

logger = logging.getLogger("monoceros.error")

# A slot no listening worker holds (not started, draining, exited): never the fewest.
ABSENT: Final = 1 << 62
# How long a worker over its share stays away before it looks again; doubled while it stays
# over its share and nothing waits, up to the second figure. A connection that nobody else
# takes waits about that long.
PAUSE_FIRST, PAUSE_MOST = 0.001, 0.010
# After listening again failed (out of file descriptors, say): the others serve meanwhile.
RETRY_AFTER_FAILURE: Final = 1.0
# Connections a worker may hold beyond another's before it stops listening, and an eighth of
# the other's on top: short connections come and go faster than workers could take turns over
# them, and a stop costs a listener closed and made again.
TOLERANCE: Final = 4


def over_share(mine: int, fewest: int) -> bool:
    """Whether a worker with `mine` connections holds more than its share while another
    holds `fewest`."""
    return mine > fewest + TOLERANCE + fewest // 8


def accepts_at_once() -> bool:
    """Whether the running loop makes each connection's protocol and transport as it accepts
    it (uvloop's), so that closing its listener a turn later loses none of them."""
    return type(asyncio.get_running_loop()).__module__.startswith("uvloop")


class LoadBoard:
    """Each worker's open connections, in memory shared by the supervisor and its workers
    (slot `number - 1` for the worker numbered `number`). Made by the supervisor before its
    workers, and handed to each as it is spawned."""

    def __init__(self, context: SpawnContext, slots: int) -> None:
        self._counts = context.RawArray("q", [ABSENT] * slots)

    def slot(self, number: int) -> int | None:
        """The slot of the worker numbered `number`, or None if the board has none for it
        (more workers than it was made for, after SIGTTIN: that worker listens throughout)."""
        index = number - 1
        return index if 0 <= index < len(self._counts) else None

    def post(self, slot: int, count: int) -> int:
        """Post this worker's `count`; returns the fewest any other listening worker posted
        (ABSENT when no other listens)."""
        counts = self._counts
        counts[slot] = count
        return min(min(counts[:slot], default=ABSENT), min(counts[slot + 1 :], default=ABSENT))

    def withdraw(self, slot: int) -> None:
        """This worker no longer listens (draining, exited): the others stop deferring to it."""
        self._counts[slot] = ABSENT

    def withdraw_worker(self, number: int) -> None:
        """The supervisor's `withdraw`, by worker number, for a worker that has exited."""
        slot = self.slot(number)
        if slot is not None:
            self.withdraw(slot)


class SharedListener:
    """One worker's listener on a socket its siblings share, which stops listening while the
    worker holds more than its share of connections (`LoadBoard`). It has the two methods the
    server's shutdown uses of an `asyncio.Server`: `close()` and `wait_closed()`."""

    def __init__(
        self,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        board: LoadBoard,
        slot: int,
        open_connections: Callable[[], int],
        *,
        ssl_context: ssl.SSLContext | None,
        backlog: int,
    ) -> None:
        self._sock = sock
        self._protocol_factory = protocol_factory
        self._board = board
        self._slot = slot
        self._open_connections = open_connections
        self._ssl_context = ssl_context
        self._backlog = backlog
        self._loop = asyncio.get_running_loop()
        # What listens now (None while away), and the last that did (for wait_closed).
        self._server: asyncio.Server | None = None
        self._last: asyncio.Server | None = None
        # Accepted in this turn of the loop: their connection_made has not run yet, so the
        # server's count of open connections does not have them (a burst is accepted at once).
        self._burst = 0
        self._stopping = False  # from a stop's scheduling until listening again
        self._pause = PAUSE_FIRST
        self._wake: asyncio.TimerHandle | None = None
        # Held here: the loop keeps only a weak reference to a Task.
        self._relisten: asyncio.Task[None] | None = None
        self._failing = False  # listening again failed, and was logged
        self._queued = select.poll()  # a listening socket polls readable while one waits
        self._queued.register(sock.fileno(), select.POLLIN)
        self._closed = False

    async def start(self) -> None:
        await self._listen()

    def close(self) -> None:
        """Stop listening for good (graceful shutdown, step 3). The worker's own socket is
        closed too: once the supervisor and the other workers have closed theirs, clients are
        refused at once rather than queued for nobody."""
        self._closed = True
        self._board.withdraw(self._slot)
        if self._wake is not None:
            self._wake.cancel()
        if self._server is not None:
            self._server.close()
            self._server = None
        self._queued.unregister(self._sock.fileno())
        self._sock.close()

    async def wait_closed(self) -> None:
        if self._last is not None:
            await self._last.wait_closed()

    # -- accepting -----------------------------------------------------------------------------

    async def _listen(self) -> None:
        if self._closed:  # shut down before this began
            return
        # A duplicate each time: closing a listener closes its socket, and the worker keeps
        # the one it was given to listen again.
        sock = self._sock.dup()
        try:
            server = await self._loop.create_server(
                self._accepted, sock=sock, ssl=self._ssl_context, backlog=self._backlog
            )
        except BaseException:
            sock.close()
            raise
        if self._closed:  # shut down while this was under way
            server.close()
            return
        self._server = self._last = server
        self._stopping = False
        self._board.post(self._slot, self._open_connections())

    def _accepted(self) -> asyncio.BaseProtocol:
        """The loop's protocol factory: called as each connection is accepted."""
        if not self._burst:
            self._loop.call_soon(self._end_burst)
        self._burst += 1
        mine = self._open_connections() + self._burst
        fewest = self._board.post(self._slot, mine)
        if not self._stopping and over_share(mine, fewest):
            self._stopping = True
            # Not from here: the loop is still accepting, and closing its listener now would
            # close the connection being handed over.
            self._loop.call_soon(self._stop_listening)
        return self._protocol_factory()

    def _end_burst(self) -> None:
        self._burst = 0

    def _stop_listening(self) -> None:
        if self._server is None or self._closed:
            return
        self._server.close()
        self._server = None
        self._pause = PAUSE_FIRST
        self._wake = self._loop.call_later(self._pause, self._look_again)

    def _look_again(self) -> None:
        """Away: listen again once back within the share, or when connections wait that the
        others have not taken."""
        self._wake = None
        if self._closed:
            return
        mine = self._open_connections()
        if over_share(mine, self._board.post(self._slot, mine)) and not self._waiting():
            self._pause = min(self._pause * 2, PAUSE_MOST)
            self._wake = self._loop.call_later(self._pause, self._look_again)
            return
        self._relisten = self._loop.create_task(self._listen_again())

    async def _listen_again(self) -> None:
        try:
            await self._listen()
        except Exception as exc:
            if not self._failing:  # once, not at every try
                logger.error(
                    "Cannot listen again on the shared socket (trying again every %.0f s): %s",
                    RETRY_AFTER_FAILURE,
                    exc,
                )
                self._failing = True
            self._wake = self._loop.call_later(RETRY_AFTER_FAILURE, self._look_again)
        else:
            if self._failing:
                logger.info("Listening again on the shared socket")
                self._failing = False

    def _waiting(self) -> bool:
        return bool(self._queued.poll(0))
