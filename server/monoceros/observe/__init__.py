"""Observability: logs, metrics and the admin listener, fed from one place.

Connections report through the observer port (protocols/observer.py); `Observers` is this
server's implementation of it: each event goes to the metric tallies and, for finished
requests and sessions, to the access log. Nothing else logs requests.
"""

from __future__ import annotations

import logging

from monoceros.observe.access import AccessLog
from monoceros.observe.metrics import HttpMetrics
from monoceros.protocols.events import RequestFinished, SessionFinished
from monoceros.protocols.observer import Observer
from monoceros.types import ServerScope

logger = logging.getLogger("monoceros.error")


class Observers:
    """The metric tallies and the access log of one server, each optional (--no-metrics,
    --no-access-log), and an observer of the embedder's own (`Server(observer=...)`).
    Compiled with the first two, so those calls are native ones."""

    __slots__ = ("access_log", "also", "metrics")

    def __init__(
        self,
        metrics: HttpMetrics | None,
        access_log: AccessLog | None,
        also: Observer | None = None,
    ) -> None:
        self.metrics = metrics
        self.access_log = access_log
        self.also = also

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
        if self.metrics is not None:
            try:
                self.metrics.request_finished(record)
            except Exception:
                _failed("The metrics", record)
        if self.access_log is not None:
            try:
                self.access_log.request(record)
            except Exception:
                _failed("The access log", record)
        if self.also is not None:
            try:
                self.also.request_finished(record)
            except Exception:
                _failed("The embedder's observer", record)

    def request_rejected(self, record: RequestFinished | None, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.request_rejected(record, reason)
        if self.access_log is not None and record is not None:
            self.access_log.request(record)  # a scope no app saw
        if self.also is not None:
            self.also.request_rejected(record, reason)

    def session_started(self) -> None:
        if self.metrics is not None:
            self.metrics.session_started()
        if self.also is not None:
            self.also.session_started()

    def session_finished(self, record: SessionFinished) -> None:
        if self.metrics is not None:
            self.metrics.session_finished(record)  # reads no scope
        if self.access_log is not None:
            try:
                self.access_log.session(record)
            except Exception:
                _failed("The access log", record)
        if self.also is not None:
            try:
                self.also.session_finished(record)
            except Exception:
                _failed("The embedder's observer", record)


def _failed(what: str, record: RequestFinished | SessionFinished) -> None:
    logger.exception("%s failed on %r (the response was not affected)", what, record)
