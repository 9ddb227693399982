"""One request and its response: the ASGI `receive` and `send` the app is handed.

The response side is a small state machine; every legal (state, message type) pair is in
`_TRANSITIONS` (at the end of this file), so what the app may send when is one table, not a
set of flags.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, cast

from monoceros.errors import ClientDisconnected
from monoceros.protocols.channel import ResponseChannel
from monoceros.protocols.context import ConnectionContext
from monoceros.protocols.events import (
    NamedFields,
    RequestFinished,
    TraceContext,
    current_exchange,
    header_fields,
)
from monoceros.protocols.head import (
    InvalidResponseHead,
    encode_early_hints,
    encode_head,
    no_body_allowed,
    trailer_fields,
)
from monoceros.protocols.observer import REJECTION_REASONS
from monoceros.protocols.state import ServerState
from monoceros.types import ASGIApp, Message, Scope, ServerScope

logger = logging.getLogger("monoceros.error")

CONTINUE_RESPONSE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
INTERNAL_ERROR_BODY: Final = b"Internal Server Error"
DISCONNECT: Final[Message] = {"type": "http.disconnect"}
# From this size a response body is written beside its head or chunk framing rather than
# copied in with them: gathering costs a fixed amount, copying grows with the body.
GATHER_FROM: Final = 8 * 1024
# Held as statics under mypyc: a function looked up on a module global costs more per call.
_set_exchange: Final = current_exchange.set
_perf_counter: Final = time.perf_counter
# A message the app sent, as the response handlers take it.
MessageDict = dict[str, Any]


def as_message_dict(message: object) -> MessageDict:
    """An app's message that is not a dict: a copy of a mapping, or refused."""
    if not isinstance(message, Mapping):
        raise RuntimeError(f"Invalid ASGI message: a dict was expected, not {message!r}")
    return dict(message)


class ResponseState(enum.Enum):
    WAITING_START = "waiting for http.response.start"
    HEAD_PENDING = "start received, head not yet written"
    STREAMING = "head written, more body to come"
    TRAILERS_PENDING = "body complete, waiting for http.response.trailers"
    COMPLETE = "complete"

    # Members are singletons: hash by identity (in C) rather than Enum's Python-level
    # hash of the name, since `send()` looks the state up in its transition table per message.
    __hash__ = object.__hash__


class RequestCycle:
    __slots__ = (
        "_body_delivered",
        "_chunked",
        "_chunks",
        "_headers",
        "_remaining",
        "_send_body",
        "_send_trailers",
        "_table",
        "_trailer_fields",
        "_trailers",
        "_waiter",
        "buffered",
        "bytes_received",
        "bytes_sent",
        "channel",
        "context",
        "disconnected",
        "error_type",
        "expect_continue",
        "http10",
        "is_head",
        "keep_alive",
        "method",
        "more_body",
        "named_fields",
        "observed",
        "request_id",
        "response",
        "scheme",
        "scope",
        "started",
        "status",
        "task",
        "trace",
    )

    def __init__(
        self,
        scope: ServerScope,
        channel: ResponseChannel,
        context: ConnectionContext,
        keep_alive: bool,
        expect_continue: bool,
    ) -> None:
        self.scope = scope
        self.channel = channel  # the connection it came on, as far as the cycle may see it
        self.context = context
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.http10 = scope["http_version"] == "1.0"
        method: str = scope["method"]
        self.method = method
        self.scheme: str = scope["scheme"]
        self.is_head = method == "HEAD"
        # For the record's duration: nothing to time when nobody observes.
        self.started = 0.0 if context.observer is None else _perf_counter()
        self.response = ResponseState.WAITING_START
        self.status = 0
        self.more_body = True
        self.disconnected = False
        self.buffered = 0  # body bytes received but not yet handed to the app
        self.bytes_received = 0
        self.bytes_sent = 0
        self.observed = False
        self.request_id: str | None = None
        self.trace: TraceContext | None = None
        self.named_fields: NamedFields | None = None  # the reader's, for the access log
        self.error_type: str | None = None  # the class of the exception the app raised
        self.task: asyncio.Task[None] | None = None  # the app's (ServerState.start_task)
        self._chunks: list[bytes] = []
        self._body_delivered = False
        self._waiter: asyncio.Future[None] | None = None
        self._headers: Any = ()
        self._chunked = False
        self._send_body = True
        self._trailers = False  # the app announced trailers (`"trailers": True` at start)
        self._send_trailers = False  # ... and they go on the wire (chunked, client said TE)
        # The app's trailers, as they come (few responses have any: a list is made for the
        # first http.response.trailers message, not for every request).
        self._trailer_fields: list[tuple[bytes, bytes]] | None = None
        self._remaining: int | None = None
        # What the app may send when: the transitions of the response state machine (a
        # protocol whose framing differs brings its own handlers for the same transitions).
        self._table = _TRANSITIONS

    # -- fed by the connection ---------------------------------------------------------------

    def body_received(self, chunk: bytes) -> None:
        self.bytes_received += len(chunk)
        if self.response is ResponseState.COMPLETE:
            return  # the app answered without reading: the rest of the body is discarded
        self._chunks.append(chunk)
        self.buffered += len(chunk)
        self._wake()

    def message_complete(self) -> None:
        self.more_body = False
        self._wake()

    def client_gone(self) -> None:
        self.disconnected = True
        self._wake()

    def secret_fields(self) -> list[Any]:
        """The request's header fields and the response's (once started), for the log output
        to find the secrets among (observe/logging.py)."""
        return [*header_fields(self.scope), *self._headers]

    def response_begun(self) -> bool:
        """Whether any of the response is on the wire (the head goes out with the first body
        message, so `http.response.start` alone writes nothing; with trailers pending, all of
        it but them is)."""
        response = self.response
        return (
            response is ResponseState.STREAMING
            or response is ResponseState.TRAILERS_PENDING
            or response is ResponseState.COMPLETE
        )

    def abandon(self, status: int, outcome: str) -> None:
        """The server ends this exchange itself (its request body turned out malformed): from
        now on the app sees a disconnect, and observers get the record now, with `status`."""
        self.status = status
        self.client_gone()
        self._observe(outcome)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- the app's side ------------------------------------------------------------------------

    async def run(self, app: ASGIApp, state: ServerState) -> None:
        """The app's Task (ServerState.start_task)."""
        _set_exchange(self)  # this runs in the request's own context
        try:
            # Any: an app that returns a value is logged below, not a TypeError (the compiled
            # build checks return types against the annotations).
            result: object = await cast(Any, app)(self.scope, self.receive, self.send)
        except BaseException as exc:
            self._observe(self._app_failed(exc))
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        finally:
            # Nothing below waits. (None: the Task holds this cycle, which must not hold it
            # back, or each request's objects would wait for the garbage collector.)
            task, self.task = self.task, None
            state.task_finished(task)
        if result is not None:
            logger.error("ASGI callable returned a value instead of None: %r", result)
        if self.response is ResponseState.COMPLETE:
            return
        if self.disconnected:
            self._observe("disconnected")
        elif self.response is ResponseState.WAITING_START:
            logger.error("ASGI callable returned without starting a response.")
            self._send_internal_error()
            self._observe("error")
        else:
            logger.error("ASGI callable returned without completing the response.")
            self.channel.abort()
            self._observe("error")

    def _app_failed(self, exc: BaseException) -> str:
        self.error_type = error_type(exc)
        if self.disconnected:
            if not isinstance(exc, ClientDisconnected | asyncio.CancelledError):
                logger.error(
                    "Exception in ASGI application after client disconnected", exc_info=exc
                )
            return "disconnected"
        if isinstance(exc, asyncio.CancelledError):
            # Cancelled by the server at the end of a graceful shutdown.
            self.channel.abort()
            return "error"
        logger.error("Exception in ASGI application", exc_info=exc)
        if self.response in (ResponseState.WAITING_START, ResponseState.HEAD_PENDING):
            # Nothing is on the wire yet (the head goes out with the first body message), so
            # an invalid status or header, or a raise right after `http.response.start`, still
            # gets a clean 500.
            self._send_internal_error()
        elif self.response is not ResponseState.COMPLETE:
            self.channel.abort()  # the head is out: closing is the only honest signal left
        return "error"

    def _observe(self, outcome: str) -> None:
        """Hand the finished exchange to `observe/`, exactly once per request."""
        if self.observed:
            return
        self.observed = True
        observer = self.context.observer
        if observer is None:
            return
        record = RequestFinished(
            self.scope,
            self.method,
            self.scheme,
            self.status,
            outcome,
            _perf_counter() - self.started,
            self.bytes_received,
            self.bytes_sent,
            self.channel.peer,
            self.request_id,
            self.trace,
            self.error_type,
            self.named_fields,
        )
        observer.request_finished(record)

    async def receive(self) -> Message:
        while True:
            if self._chunks or (not self.more_body and not self._body_delivered):
                return self._deliver_body()
            if self.disconnected or self.response is ResponseState.COMPLETE:
                return DISCONNECT
            if self.more_body:
                if self.expect_continue:  # cleared once the final response's head is out
                    self.expect_continue = False
                    self._send_continue()
                # Only for its own body: a request whose body is complete leaves reading to
                # the connection (which may be holding pipelined requests back).
                self.channel.flow.resume_reading()
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    def _send_continue(self) -> None:
        self.channel.write(CONTINUE_RESPONSE)

    def _deliver_body(self) -> Message:
        chunks = self._chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._chunks = []
        self.buffered = 0
        if not self.more_body:
            self._body_delivered = True
        else:
            self.channel.flow.resume_reading()
        return {"type": "http.request", "body": body, "more_body": self.more_body}

    async def send(self, message: Message) -> None:
        flow = self.channel.flow
        if flow.writing_paused:
            await flow.drain()
        if self.disconnected:
            raise ClientDisconnected("client disconnected")
        # The handlers take a dict, so that their lookups are native ones under mypyc.
        sent = message if type(message) is dict else as_message_dict(message)
        kind = sent["type"]
        handler = self._table[self.response].get(kind)
        if handler is None:
            raise RuntimeError(f"Unexpected ASGI message {kind!r} when {self.response.value}.")
        # Handlers are plain functions (no coroutine per message); one that must wait for
        # I/O returns an awaitable.
        pending = handler(self, sent)
        if pending is not None:
            await pending

    def _start(self, message: MessageDict) -> None:
        status = message["status"]
        if type(status) is not int:  # refused here, before the access log and metrics see it
            raise RuntimeError(f"Invalid response from ASGI application: status {status!r}")
        self.status = status
        self._headers = message.get("headers", ())
        self._trailers = bool(message.get("trailers", False))
        self.response = ResponseState.HEAD_PENDING

    def _early_hint(self, message: MessageDict) -> None:
        """103 (Early Hints) before the response, for HTTP/1.1 clients (RFC 8297); an
        HTTP/1.0 client would take it for the response."""
        if not self.http10:
            try:
                hints = encode_early_hints(message.get("links", ()))
            except InvalidResponseHead as exc:
                raise RuntimeError(f"Invalid early hint from ASGI application: {exc}") from None
            if hints:
                self.channel.write(hints)

    def _first_body(self, message: MessageDict) -> None:
        body: bytes = message.get("body", b"")
        more_body: bool = message.get("more_body", False)
        # Trailers the client takes follow a chunked body, whatever its length.
        trailers = self._trailers and _accepts_trailers(self.scope)
        head, send_body = self._encode_head(None if more_body or trailers else len(body))
        self._send_trailers = trailers and self._chunked
        self.response = ResponseState.STREAMING
        if not send_body or not body:
            self.channel.write(head)
        elif self._chunked:
            self.bytes_sent += len(body)
            self._write_body(b"%s%x\r\n" % (head, len(body)), body, b"\r\n", more_body)
        else:
            self._count_body(len(body))
            self._write_body(head, body, b"", more_body)
        if not more_body:
            self._end_of_body()

    def _more_body(self, message: MessageDict) -> None:
        body: bytes = message.get("body", b"")
        more_body: bool = message.get("more_body", False)
        if not self._send_body:
            pass
        elif self._chunked:
            if body:
                self.bytes_sent += len(body)
                self._write_body(b"%x\r\n" % len(body), body, b"\r\n", more_body)
        elif body:
            self._count_body(len(body))
            self.channel.write_body((body,), more_body)
        if not more_body:
            self._end_of_body()

    def _write_body(self, before: bytes, body: bytes, after: bytes, more: bool) -> None:
        """`body` with what goes before it (the head, a chunk's size) and after it (a chunk's
        CRLF): copied into one buffer while small; beyond GATHER_FROM handed over as they
        are, so a large body is not copied (one writev). `more`: the response goes on."""
        if len(body) >= GATHER_FROM:
            self.channel.write_body((before, body, after), more)
            return
        # Without a suffix, one concatenation: the commonest answer (a small body in one go).
        data = b"%s%s%s" % (before, body, after) if after else before + body
        if more:
            self.channel.write_body((data,), more)
        else:
            self.channel.write(data)

    def _end_of_body(self) -> None:
        """The app's last body message: the response ends now, or once its trailers come.
        Trailers the client does not take are dropped (RFC 9110 section 6.5.1)."""
        if self._chunked and not self._send_trailers:
            self.channel.write(b"0\r\n\r\n")
        if self._trailers:
            self.response = ResponseState.TRAILERS_PENDING
        else:
            self._complete()

    def _add_trailers(self, message: MessageDict) -> None:
        try:
            fields = trailer_fields(message.get("headers", ()))
        except InvalidResponseHead as exc:
            raise RuntimeError(f"Invalid trailers from ASGI application: {exc}") from None
        if self._trailer_fields is None:
            self._trailer_fields = fields
        else:
            self._trailer_fields.extend(fields)
        if message.get("more_trailers", False):
            return
        self._send_trailer_section()
        self._complete()

    def _send_trailer_section(self) -> None:
        """The last chunk with the trailer lines, to a client that takes them."""
        if self._send_trailers:
            lines = b"".join(b"%s: %s\r\n" % field for field in self._trailer_fields or ())
            self.channel.write(b"0\r\n" + lines + b"\r\n")

    def _pathsend(self, message: MessageDict) -> Awaitable[None]:
        return self._send_file(message)

    async def _send_file(self, message: MessageDict) -> None:
        path = os.fspath(message["path"])
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            self.response = ResponseState.STREAMING
            if self._send_file_head(size):
                self._count_body(size)
                await self.channel.send_file(file, size)
        self._end_of_body()

    def _send_file_head(self, size: int) -> bool:
        """The head of a file's response; whether its body is sent."""
        head, send_body = self._encode_head(size)
        self.channel.write(head)
        return send_body

    def _encode_head(self, body_length: int | None) -> tuple[bytes, bool]:
        # Reuse needs the request fully read: otherwise its unread body would be parsed
        # as the next request.
        keep_alive = (
            self.keep_alive and self.channel.keep_alive_allowed() and self.more_body is False
        )
        self.expect_continue = False  # no interim response once the final one has begun
        status = self.status
        send_body = self._send_body = not self.is_head and not no_body_allowed(status)
        rid = self.request_id
        try:
            data, content_length, chunked, head_keep_alive = encode_head(
                status,
                self._headers,
                self.context.default_headers,
                http10=self.http10,
                keep_alive=keep_alive,
                body_length=body_length,
                send_body=send_body,
                request_id_header=self.context.request_id_header,
                request_id=b"" if rid is None else rid.encode(),
            )
        except InvalidResponseHead as exc:
            raise RuntimeError(f"Invalid response from ASGI application: {exc}") from None
        self._chunked = chunked
        self._remaining = content_length if send_body else None
        if not head_keep_alive:
            self.keep_alive = False
        return data, send_body

    def _count_body(self, size: int) -> None:
        self.bytes_sent += size
        if self._remaining is not None:
            self._remaining -= size
            if self._remaining < 0:
                raise RuntimeError("Response content is longer than its Content-Length.")

    def _complete(self, outcome: str = "complete") -> None:
        if self._remaining:
            # Fewer bytes than promised: the client would wait for the rest; closing is the
            # only way to end the message.
            logger.error("Response content is shorter than its Content-Length.")
            self.keep_alive = False
        self.response = ResponseState.COMPLETE
        if self._waiter is not None:
            self._wake()
        self._observe(outcome)
        self.channel.response_complete(self.keep_alive)

    def _send_internal_error(self) -> None:
        self.status = 500
        self._headers = (
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"%d" % len(INTERNAL_ERROR_BODY)),
        )
        self.keep_alive = False
        head, send_body = self._encode_head(len(INTERNAL_ERROR_BODY))
        if send_body:
            self._count_body(len(INTERNAL_ERROR_BODY))
        self.channel.write(head + INTERNAL_ERROR_BODY if send_body else head)
        self.response = ResponseState.STREAMING
        self._complete(outcome="error")


# A transition's handler: a method of the cycle class whose table it is in (Any: each
# protocol's subclass brings its own table of its own methods).
ResponseHandler = Callable[[Any, MessageDict], Awaitable[None] | None]
# A state's handlers by message type: what `send` looks up, per message (a dict of dicts: no
# key tuple to build and hash, as a table keyed by (state, type) would need).
TransitionTable = dict[ResponseState, dict[str, ResponseHandler]]


def transition_table(pairs: dict[tuple[ResponseState, str], ResponseHandler]) -> TransitionTable:
    table: TransitionTable = {state: {} for state in ResponseState}
    for (state, kind), handler in pairs.items():
        table[state][kind] = handler
    return table


# Every protocol's response moves through these; HTTP/2 (h2_stream.py) replaces the handlers
# that write bytes.
RESPONSE_TRANSITIONS: Final[dict[tuple[ResponseState, str], ResponseHandler]] = {
    (ResponseState.WAITING_START, "http.response.early_hint"): RequestCycle._early_hint,
    (ResponseState.WAITING_START, "http.response.start"): RequestCycle._start,
    (ResponseState.HEAD_PENDING, "http.response.body"): RequestCycle._first_body,
    (ResponseState.HEAD_PENDING, "http.response.pathsend"): RequestCycle._pathsend,
    (ResponseState.STREAMING, "http.response.body"): RequestCycle._more_body,
    (ResponseState.TRAILERS_PENDING, "http.response.trailers"): RequestCycle._add_trailers,
}
_TRANSITIONS: Final = transition_table(RESPONSE_TRANSITIONS)


def _accepts_trailers(scope: ServerScope) -> bool:
    """The client said `TE: trailers` (the reader then advertised the extension)."""
    extensions = scope.get("extensions")
    return isinstance(extensions, dict) and "http.response.trailers" in extensions


def admit(
    app: ASGIApp, context: ConnectionContext, state: ServerState, scope: ServerScope, reused: bool
) -> ASGIApp:
    """What answers the request of `scope`, starting now: `app`, or a 503 beyond
    --limit-concurrency. The start is counted for --limit-max-requests and told to the
    observer (`reused`: the connection served a request before)."""
    if context.request_limit is not None:
        context.request_limit.count()
    observer = context.observer
    limit = context.limit_concurrency
    if limit is not None and state.over_capacity(limit):
        app = service_unavailable
        if observer is not None:
            observer.request_rejected(None, REJECTION_REASONS[503])
    if observer is not None:
        observer.request_started(scope, reused)
    return app


def error_type(exc: BaseException) -> str:
    """An exception's class as OpenTelemetry's `error.type` names it: module and qualified
    name, the module left out for builtins (`ValueError`, `sqlalchemy.exc.OperationalError`)."""
    kind = type(exc)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


async def service_unavailable(scope: Scope, receive: Any, send: Any) -> None:
    """Stands in for the app beyond `--limit-concurrency`."""
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": b"Service Unavailable"})
