"""Observability: logs, metrics and the admin listener, fed from one place.

Connections report through the observer port (protocols/observer.py); `Observers` is this
server's implementation of it: each event goes to the metric tallies and, for finished
requests and sessions, to the access log. Nothing else logs requests.

Finished requests are observed together, once per turn of the event loop: the tallies of all
of them, then all their lines, in one write. Observing one request between two others'
parsing and answering ran the same code colder; in a batch, it ran about 14% more requests a
second with the log and metrics on (bench/README.md, "Observing in batches"). A batch waits
for the next turn at most, and runs in an empty context, not the first request's; what is
logged at once (a request the server answered itself, a WebSocket session) has the batch
observed first, so access lines keep the order their requests ended in; and the server
observes what is left before it exits (`observe_finished`). The scope a record carries is
read then: what the app changes in it after its last send(), before it next waits, is seen.
With the access log going through logging's handlers (--log-config), each request is
observed as it finishes, in its own context, as those handlers expect.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextvars import Context
from typing import Final

from monoceros.observe.access import AccessLog
from monoceros.observe.metrics import HttpMetrics
from monoceros.protocols.events import RequestFinished, SessionFinished
from monoceros.protocols.observer import Observer
from monoceros.types import ServerScope

logger = logging.getLogger("monoceros.error")

# Statics under mypyc, not globals looked up per request.
_time_ns: Final = time.time_ns
_running_loop: Final = asyncio.get_running_loop


class Observers:
    """The metric tallies and the access log of one server, each optional (--no-metrics,
    --no-access-log), and an observer of the embedder's own (`Server(observer=...)`).
    Compiled with the first two, so those calls are native ones."""

    __slots__ = (
        "_empty_context",
        "_ended",
        "_finished",
        "_observe_batch",
        "access_log",
        "also",
        "batched",
        "metrics",
    )

    def __init__(
        self,
        metrics: HttpMetrics | None,
        access_log: AccessLog | None,
        also: Observer | None = None,
    ) -> None:
        self.metrics = metrics
        self.access_log = access_log
        self.also = also
        # The requests finished this turn, and when each finished (time.time_ns(): a line's
        # timestamp is its request's end, not its batch's).
        self._finished: list[RequestFinished] = []
        self._ended: list[int] = []
        # Bound once: made at each call_soon, it cost a lookup through the class each turn.
        self._observe_batch: Callable[[], None] = self.observe_finished
        # Not when the access log goes through logging's filters and handlers (--log-config):
        # those may read the request's context variables (a correlation id) and stamp the
        # record with the time it is logged, so each request is observed as it finishes.
        self.batched = access_log is None or not access_log.through_logging
        # Where a batch is scheduled from, so that it runs in a copy of this empty context.
        self._empty_context = Context()

    def connection_opened(self) -> None:
        if self.metrics is not None:
            self.metrics.connection_opened()
        if self.also is not None:
            self.also.connection_opened()

    def connection_closed(self) -> None:
        if self.metrics is not None:
            self.metrics.connection_closed()
        if self.also is not None:
            self.also.connection_closed()

    def connection_rejected(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.connection_rejected(reason)
        if self.also is not None:
            self.also.connection_rejected(reason)

    def request_started(self, scope: ServerScope, reused: bool) -> None:
        if self.metrics is not None:
            self.metrics.request_started(scope, reused)
        if self.also is not None:
            self.also.request_started(scope, reused)

    # The records carry the scope the app had, and may have changed in any way: what reads it
    # must cope, and if it still fails, the failure is logged here, never raised into the app
    # (whose send() is where a request finishes), and the other observers still hear of it.

    def request_finished(self, record: RequestFinished) -> None:
        ended = _time_ns()  # before the embedder's observer, however long it takes
        if self.also is not None:  # told at once: what it does with the record is its own
            try:
                self.also.request_finished(record)
            except Exception:
                _failed("The embedder's observer", record)
        if self.metrics is None and self.access_log is None:
            return
        finished = self._finished
        finished.append(record)
        self._ended.append(ended)
        if len(finished) > 1:
            return
        if not self.batched:
            self.observe_finished()
            return
        # The turn's first: its batch is observed in the next, in a context of its own (this
        # one is the request's: its id would be on every line the batch logs).
        try:
            loop = _running_loop()
        except RuntimeError:  # called from outside a loop: nothing to wait for
            self.observe_finished()
        else:
            self._empty_context.run(loop.call_soon, self._observe_batch)

    def observe_finished(self) -> None:
        """Tally, then log, the requests finished since the last call (the server calls it
        once more before it exits)."""
        finished, ended = self._finished, self._ended
        try:
            self._observe(finished, ended)
        finally:
            # Emptied, not replaced (no new lists each turn): nothing observing a request
            # finishes another, so nothing is added to them meanwhile.
            finished.clear()
            ended.clear()

    def _observe(self, finished: list[RequestFinished], ended: list[int]) -> None:
        metrics = self.metrics
        if metrics is not None:
            for record in finished:
                try:
                    metrics.request_finished(record)
                except Exception:
                    _failed("The metrics", record)
        access_log = self.access_log
        if access_log is not None:
            access_log.hold()
            try:
                for index, record in enumerate(finished):
                    try:
                        access_log.request(record, ended[index])
                    except Exception:
                        _failed("The access log", record)
            finally:
                access_log.release()  # all the batch's lines in one write, now

    def request_rejected(self, record: RequestFinished | None, reason: str) -> None:
        if self._finished:  # those that finished before it are logged before it
            self.observe_finished()
        if self.metrics is not None:
            self.metrics.request_rejected(record, reason)
        if self.access_log is not None and record is not None:
            self.access_log.request(record, _time_ns())  # a scope no app saw
        if self.also is not None:
            self.also.request_rejected(record, reason)

    def session_started(self) -> None:
        if self.metrics is not None:
            self.metrics.session_started()
        if self.also is not None:
            self.also.session_started()

    def session_finished(self, record: SessionFinished) -> None:
        if self._finished:
            self.observe_finished()
        if self.metrics is not None:
            self.metrics.session_finished(record)  # reads no scope
        if self.access_log is not None:
            try:
                self.access_log.session(record, _time_ns())
            except Exception:
                _failed("The access log", record)
        if self.also is not None:
            try:
                self.also.session_finished(record)
            except Exception:
                _failed("The embedder's observer", record)


def _failed(what: str, record: RequestFinished | SessionFinished) -> None:
    logger.exception("%s failed on %r (the response was not affected)", what, record)
