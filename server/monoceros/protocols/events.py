"""What a finished request hands to `observe/`: one small immutable record, built once."""

from __future__ import annotations

from contextvars import ContextVar
from typing import NamedTuple, Protocol

from monoceros.types import Scope

# A request's W3C trace context: (trace id, span id), 32 and 16 lowercase hex digits. The span
# is the caller's (traceparent's parent-id), or one the server made up (--trace-id-generate).
TraceContext = tuple[str, str]


class RequestFinished(NamedTuple):
    """One HTTP request/response exchange, written when the response is complete or the client
    has gone. A NamedTuple because it is built once per request on the hot path (cheaper than a
    frozen dataclass) and nobody changes it afterwards."""

    scope: Scope
    # The method and scheme the request started with (the scheme after proxy resolution): the
    # app may rewrite its scope (uvicorn's ProxyHeadersMiddleware sets the scheme), and the
    # metrics pair a finished request with the start they counted.
    method: str
    scheme: str
    status: int  # what was sent, or would have been sent; 0 if the app never started a response
    # "complete", "disconnected" (client went away first), "error" (the app failed),
    # "rejected" (bad input the server answered itself: 400, 408, 413, 414, 431, 501) or
    # "aborted" (the request body broke after the response began: the connection was cut).
    outcome: str
    duration: float  # seconds from the complete request head to the last byte handed to the socket
    bytes_received: int  # request body bytes
    bytes_sent: int  # response body bytes
    peer: tuple[str, int] | None  # the direct TCP peer
    request_id: str | None
    trace: TraceContext | None  # from the request's traceparent header, or generated
    error_type: str | None  # the class of the exception the app raised, if it raised


class SessionFinished(NamedTuple):
    """One WebSocket session, written once its connection is closed."""

    scope: Scope
    status: int  # 101 once accepted; else the HTTP status sent instead (400, 403, a denial)
    close_code: int  # the close code received (or sent, if the peer never answered); 1006: none
    duration: float  # seconds from the upgrade request to the connection's end
    messages_received: int
    messages_sent: int
    bytes_received: int  # message payload bytes
    bytes_sent: int
    peer: tuple[str, int] | None
    request_id: str | None
    trace: TraceContext | None


# A response the client did not wait for, as nginx records it.
CLIENT_CLOSED_REQUEST = 499


def reported_status(record: RequestFinished) -> int:
    """The status the access log and the metrics report: 499 when the client left before any
    response started, else the status sent."""
    if record.status == 0 and record.outcome == "disconnected":
        return CLIENT_CLOSED_REQUEST
    return record.status


def rejected_record(
    scope: Scope, status: int, size: int, peer: tuple[str, int] | None
) -> RequestFinished:
    """The record of a request the server answered itself with `status` (`size` body bytes):
    no app saw it (`scope` is protocols.scope.rejected_scope's)."""
    method, scheme = scope["method"], scope["scheme"]
    return RequestFinished(
        scope, method, scheme, status, "rejected", 0.0, 0, size, peer, None, None, None
    )


class Exchange(Protocol):
    """A request (RequestCycle) or a WebSocket session, as the log output sees it."""

    request_id: str | None
    trace: TraceContext | None

    def secret_fields(self) -> list[tuple[bytes, bytes]]:
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
