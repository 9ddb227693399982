"""What a finished request or session hands to `observe/`: one small record, built once and
changed by nobody after (its attributes are Final)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Final, Protocol, final

from monoceros.types import ServerScope

# A request's W3C trace context: (trace id, span id), 32 and 16 lowercase hex digits. The span
# is the caller's (traceparent's parent-id), or one the server made up (--trace-id-generate).
TraceContext = tuple[str, str]
# The Host, User-Agent and Referer a request arrived with (None: not sent), for the access log.
# The HTTP/1 reader notes them as it parses, so the log does not search the scope's headers.
NamedFields = tuple[bytes | None, bytes | None, bytes | None]


class Finished:
    """What every finished exchange carries, a request's (RequestFinished) or a WebSocket
    session's (SessionFinished). Plain classes: compiled, they are built and read natively (a
    NamedTuple is built by `tuple.__new__`, ~1,000 instructions, and read by index)."""

    __slots__ = (
        "bytes_received",
        "bytes_sent",
        "duration",
        "peer",
        "request_id",
        "scope",
        "status",
        "trace",
    )

    def __init__(
        self,
        scope: ServerScope,
        status: int,
        duration: float,  # seconds
        bytes_received: int,
        bytes_sent: int,
        peer: tuple[str, int] | None,  # the direct TCP peer
        request_id: str | None,
        trace: TraceContext | None,  # from the request's traceparent header, or generated
    ) -> None:
        self.scope: Final = scope
        self.status: Final = status
        self.duration: Final = duration
        self.bytes_received: Final = bytes_received
        self.bytes_sent: Final = bytes_sent
        self.peer: Final = peer
        self.request_id: Final = request_id
        self.trace: Final = trace

    def __repr__(self) -> str:  # for test failures and debugging: what a log line leads with
        path = self.scope.get("path")
        return f"<{type(self).__name__} {path!r} {self.status} {self._summary()}>"

    def _summary(self) -> str:
        return f"{self.duration:.6f}s id={self.request_id}"


@final
class RequestFinished(Finished):
    """One HTTP request/response exchange, written when the response is complete or the client
    has gone. Built once per request on the hot path and changed by nobody afterwards (its
    scope is the app's, and read when the request is observed: observe/__init__.py)."""

    __slots__ = ("error_type", "method", "named_fields", "outcome", "scheme")

    def __init__(
        self,
        scope: ServerScope,
        # The method and scheme the request started with (the scheme after proxy resolution):
        # the app may rewrite its scope (uvicorn's ProxyHeadersMiddleware sets the scheme), and
        # the metrics pair a finished request with the start they counted.
        method: str,
        scheme: str,
        status: int,  # what was sent, or would have been; 0 if the app never started a response
        # "complete", "disconnected" (client went away first), "error" (the app failed),
        # "rejected" (bad input the server answered itself: 400, 408, 413, 414, 431, 501) or
        # "aborted" (the request body broke after the response began: the connection was cut).
        outcome: str,
        duration: float,  # from the complete request head to the last byte handed over
        bytes_received: int,  # request body bytes
        bytes_sent: int,  # response body bytes
        peer: tuple[str, int] | None,
        request_id: str | None,
        trace: TraceContext | None,
        error_type: str | None,  # the class of the exception the app raised, if it raised
        named_fields: NamedFields | None = None,  # None: the log finds them in the scope
    ) -> None:
        super().__init__(
            scope, status, duration, bytes_received, bytes_sent, peer, request_id, trace
        )
        self.method: Final = method
        self.scheme: Final = scheme
        self.outcome: Final = outcome
        self.error_type: Final = error_type
        self.named_fields: Final = named_fields

    def _summary(self) -> str:
        failure = f" {self.error_type}" if self.error_type else ""
        return f"{self.method} {self.outcome}{failure} {super()._summary()}"


@final
class SessionFinished(Finished):
    """One WebSocket session, written once its connection is closed."""

    __slots__ = ("close_code", "messages_received", "messages_sent")

    def __init__(
        self,
        scope: ServerScope,
        status: int,  # 101 once accepted; else the HTTP status sent instead (400, 403, a denial)
        close_code: int,  # received (or sent, if the peer never answered); 1006: none
        duration: float,  # from the upgrade request to the connection's end
        messages_received: int,
        messages_sent: int,
        bytes_received: int,  # message payload bytes
        bytes_sent: int,
        peer: tuple[str, int] | None,
        request_id: str | None,
        trace: TraceContext | None,
    ) -> None:
        super().__init__(
            scope, status, duration, bytes_received, bytes_sent, peer, request_id, trace
        )
        self.close_code: Final = close_code
        self.messages_received: Final = messages_received
        self.messages_sent: Final = messages_sent

    def _summary(self) -> str:
        return f"close={self.close_code} {super()._summary()}"


# A response the client did not wait for, as nginx records it.
CLIENT_CLOSED_REQUEST = 499


def reported_status(record: RequestFinished) -> int:
    """The status the access log and the metrics report: 499 when the client left before any
    response started, else the status sent."""
    if record.status == 0 and record.outcome == "disconnected":
        return CLIENT_CLOSED_REQUEST
    return record.status


def rejected_record(
    scope: ServerScope, status: int, size: int, peer: tuple[str, int] | None
) -> RequestFinished:
    """The record of a request the server answered itself with `status` (`size` body bytes):
    no app saw it (`scope` is protocols.scope.rejected_scope's)."""
    method, scheme = scope["method"], scope["scheme"]
    return RequestFinished(
        scope, method, scheme, status, "rejected", 0.0, 0, size, peer, None, None, None
    )


def header_fields(scope: ServerScope) -> list[Any]:
    """The scope's header fields, for what reads them after the app has run (the access line,
    the log's secrets): whatever iterable an app put in their place, as a list, or none at
    all. Each may still be anything: the readers skip what is not a (name, value) pair."""
    fields: Any = scope.get("headers")
    if type(fields) is list:
        return fields
    if isinstance(fields, (str, bytes, bytearray, memoryview, dict)):
        return []  # iterable, but not of fields
    try:
        return list(fields)
    except Exception:  # None, a number, an iterator that fails...
        return []


class Exchange(Protocol):
    """A request (RequestCycle) or a WebSocket session, as the log output sees it."""

    request_id: str | None
    trace: TraceContext | None

    def secret_fields(self) -> list[Any]:
        """The header fields (request's, and response's once started) that may hold
        credentials: observe/logging.py keeps their values out of every log line."""


# The exchange being served, set once in its own context (one ContextVar.set per request: each
# costs ~1,000 instructions): log records emitted while it runs, the app's included, carry its
# request id and trace context, and none of its credentials.
current_exchange: ContextVar[Exchange | None] = ContextVar("monoceros_exchange", default=None)


def current_request_id() -> str | None:
    """The id of the request (or WebSocket session) being served, if any."""
    exchange = current_exchange.get()
    return None if exchange is None else exchange.request_id
