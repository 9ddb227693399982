"""RFC 6455 over the HTTP/1.1 connection's transport, after an upgrade: one
`WebSocketProtocol` per session.

`HttpProtocol` parses the upgrade request and builds the scope (proxy resolution included),
then hands over the transport and the bytes that followed the request. An engine (the sans-I/O
library chosen by `--ws`, ws_engine.py) checks the handshake and does the framing; this class
runs the ASGI websocket conversation, flow control, keepalive pings and the session's one
observation.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import time
from collections import deque
from typing import Any

from monoceros.config import WebSocketSettings
from monoceros.errors import ClientDisconnected
from monoceros.protocols.context import ConnectionContext
from monoceros.protocols.events import (
    SessionFinished,
    TraceContext,
    current_exchange,
    header_fields,
)
from monoceros.protocols.flow_control import FlowControl
from monoceros.protocols.head import CONTROL_BYTES, DefaultHeaders, InvalidResponseHead, encode_head
from monoceros.protocols.observer import REJECTION_REASONS
from monoceros.protocols.state import ServerState
from monoceros.protocols.ws_engine import (
    Closed,
    Engine,
    Headers,
    MessageAssembler,
    MessageTooBig,
    Part,
    Pong,
    Rejection,
)
from monoceros.types import ASGIApp, Message, ServerScope

logger = logging.getLogger("monoceros.error")

# How long the peer has to answer our close frame before the connection is cut (websockets'
# own default close_timeout is 10 s).
CLOSE_TIMEOUT = 10.0
# Close code when the server goes away (RFC 6455 registry: "Service Restart").
SERVICE_RESTART = 1012
# RFC 6455 section 7.4.1
NORMAL_CLOSURE = 1000
ABNORMAL_CLOSURE = 1006  # no close frame: the connection just ended
INVALID_DATA = 1007
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011


class Session(enum.Enum):
    HANDSHAKE = "upgrade received, waiting for websocket.accept"
    RESPONDING = "sending an HTTP denial response (websocket.http.response)"
    OPEN = "accepted: messages flow both ways"
    CLOSED = "closed, or answered with HTTP"


class WebSocketProtocol(asyncio.Protocol):
    def __init__(
        self,
        app: ASGIApp,
        context: ConnectionContext,
        state: ServerState,
        scope: ServerScope,
        transport: asyncio.Transport,
        peer: tuple[str, int] | None,
        request_id: str | None = None,
        trace: TraceContext | None = None,
    ) -> None:
        self.app = app
        self.context = context
        self.state = state
        assert context.ws is not None  # HttpProtocol hands over only when --ws allows it
        self.settings = settings = context.ws
        self.scope = scope
        self.transport = transport
        self.request_id = request_id
        self.trace = trace
        self.loop = asyncio.get_running_loop()
        self.flow = FlowControl(transport)
        self.peer = peer  # the direct TCP peer (scope["client"] may come from proxy headers)
        self.deadline = math.inf
        self.session = Session.HANDSHAKE
        self.engine = engine_for(settings)
        self._started = time.monotonic()
        self.task: asyncio.Task[None] | None = None  # the app's (ServerState.start_task)
        self._lost = False
        self._queue: deque[Message] = deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._early: list[bytes] = []  # bytes the client sent before we accepted
        # Received beyond --ws-max-queue waiting messages: given to the engine as the app
        # takes messages. The engine is fed a frame at a time: `_frame_left` bytes of the
        # current frame are still to come, and a frame header split by a read waits in `_head`.
        self._unread = b""
        self._frame_left = 0
        self._head = b""
        self._message = MessageAssembler(settings.max_size)
        self._closing = False  # a close frame sent or received: no more messages out
        self._ping: asyncio.TimerHandle | None = None
        self._pong: asyncio.TimerHandle | None = None
        self._ping_payload = b""
        self._status = 0
        self._accepted = False  # 101 (HTTP/1.1) or 200 (HTTP/2) sent: the session opened
        self._close_code = 0
        self._close_reason = ""
        self._denial: list[bytes] = []
        self._denial_head: Message = {}
        self.messages_received = self.messages_sent = 0
        self.bytes_received = self.bytes_sent = 0

    # -- taking over the connection ------------------------------------------------------------

    def start(self, data: bytes) -> None:
        """Called by HttpProtocol right after `transport.set_protocol(self)`."""
        state = self.state
        context = self.context
        state.connections.add(self)
        observer = context.observer
        if observer is not None:
            observer.session_started()
        rejection = self._check_handshake()
        if rejection is not None:
            # A malformed handshake: the engine's 400 (or 426), and the app never hears of it.
            self._respond(rejection.status, rejection.headers, rejection.body)
            return
        limit = context.limit_concurrency
        if limit is not None and state.over_capacity(limit):
            if observer is not None:
                observer.request_rejected(None, REJECTION_REASONS[503])
            self._respond(503, [(b"content-type", b"text/plain; charset=utf-8")], _PHRASE_503)
            return
        offered = [v for n, v in self.scope["headers"] if n == b"sec-websocket-protocol"]
        self.scope["subprotocols"] = [
            p.strip() for value in offered for p in value.decode("latin-1").split(",") if p.strip()
        ]
        self._queue.append({"type": "websocket.connect"})
        if data:
            self.data_received(data)
        self.task = state.start_task(self.loop, self._run())

    def _check_handshake(self) -> Rejection | None:
        """The engine's verdict on the upgrade request, or a 400 for what no engine should be
        shown: the libraries decode header bytes leniently and can fail on what they decoded."""
        headers = self.scope["headers"]
        if not all(value.isascii() for name, value in headers if _is_handshake_field(name)):
            return BAD_HANDSHAKE
        try:
            return self.engine.handshake(_request_head(self.scope))
        except Exception as exc:  # a library's bug must not escape into the event loop
            logger.warning("WebSocket handshake refused (%s: %s)", type(exc).__name__, exc)
            return BAD_HANDSHAKE

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.session is not Session.OPEN:
            self._early.append(data)
            self.flow.pause_reading()
            return
        if self._unread:  # messages wait for the app already: these bytes wait behind them
            self._unread += data
            self.flow.pause_reading()
            return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        """Give `data` to the engine a frame at a time, and stop once --ws-max-queue messages
        wait for the app: the rest waits as the bytes it came as, with reading paused, so a
        read full of tiny frames costs its own size, not a message per frame."""
        if self._head:
            data = self._head + data
            self._head = b""
        start, end = 0, len(data)
        max_queue = self.settings.max_queue
        while start < end:
            if len(self._queue) >= max_queue:
                self._unread = data[start:]
                break
            left = self._frame_left
            if not left:
                left = frame_size(data, start)
                if not left:  # the frame's header is not all here yet
                    self._head = data[start:]
                    break
            stop = min(end, start + left)
            self._frame_left = left - (stop - start)
            self._receive(data if stop - start == end else data[start:stop])
            start = stop
        self._flush()
        if len(self._queue) >= max_queue:
            self.flow.pause_reading()

    def _receive(self, data: bytes) -> None:
        for event in self.engine.receive(data):
            if type(event) is Part:
                self._part(event)
            elif type(event) is Closed:
                self._close_reason = event.reason
                self._disconnected(event.code)
                self._closing = True
            elif type(event) is Pong:
                self._pong_received(event.payload)

    def connection_lost(self, exc: Exception | None) -> None:
        self._session_ended()
        observer = self.context.observer
        if observer is not None:
            observer.connection_closed()

    def _session_ended(self) -> None:
        """The session's end, however it came: the app hears of it, the observer sees it."""
        self._lost = True
        self._unread = b""
        self._closing = True
        self.session = Session.CLOSED
        self.deadline = math.inf
        self.flow.connection_lost()
        self._cancel_timers()
        self._disconnected(ABNORMAL_CLOSURE)
        # A session answered with HTTP instead (a denial, a refusal) has no close code.
        code = self._close_code if self._accepted else 0
        self.state.connection_closed(self)
        observer = self.context.observer
        if observer is None:
            return
        observer.session_finished(
            SessionFinished(
                self.scope,
                self._status,
                code,
                time.monotonic() - self._started,
                self.messages_received,
                self.messages_sent,
                self.bytes_received,
                self.bytes_sent,
                self.peer,
                self.request_id,
                self.trace,
            )
        )

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    # -- messages in ---------------------------------------------------------------------------

    def _part(self, part: Part) -> None:
        if self._closing:
            return  # after a close frame, data is discarded (RFC 6455 section 5.5.1)
        try:
            message = self._message.add(part)
        except MessageTooBig:
            self._fail(MESSAGE_TOO_BIG, "message too big")
        except UnicodeDecodeError:
            self._fail(INVALID_DATA, "invalid UTF-8")
        else:
            if message is not None:
                self.messages_received += 1
                self.bytes_received += self._message.size
                self._deliver(message)

    def _fail(self, code: int, reason: str) -> None:
        self.engine.fail(code, reason)
        self._closing = True
        self._disconnected(code)

    def _deliver(self, message: Message) -> None:
        self._queue.append(message)
        waiter = self._wakeup
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _disconnected(self, code: int) -> None:
        if self._close_code == 0 or self._close_code == ABNORMAL_CLOSURE:
            self._close_code = code
        if not any(m["type"] == "websocket.disconnect" for m in self._queue):
            reason = self._close_reason
            self._deliver({"type": "websocket.disconnect", "code": code, "reason": reason})

    # -- the ASGI side -------------------------------------------------------------------------

    def secret_fields(self) -> list[Any]:
        """The upgrade request's header fields (see `events.current_exchange`)."""
        return header_fields(self.scope)

    async def _run(self) -> None:
        current_exchange.set(self)  # this Task's own context: app logs carry its ids
        try:
            await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except Exception as exc:
            logger.error("Exception in ASGI application", exc_info=exc)
            self._fail_app()
            return
        finally:
            task, self.task = self.task, None  # not a cycle: see RequestCycle.run
            self.state.task_finished(task)
        if self.session is Session.HANDSHAKE or self.session is Session.RESPONDING:
            logger.error("ASGI callable returned without accepting or closing the WebSocket.")
            self._fail_app()
        elif self.session is Session.OPEN:
            self._close(NORMAL_CLOSURE, "")

    def _fail_app(self) -> None:
        if self.session is Session.HANDSHAKE or self.session is Session.RESPONDING:
            self._respond(500, [], b"")
        elif self.session is Session.OPEN:
            self._close(INTERNAL_ERROR, "")

    async def receive(self) -> Message:
        while not self._queue:
            self._wakeup = self.loop.create_future()
            await self._wakeup
        message = self._queue[0]
        if message["type"] != "websocket.disconnect":
            self._queue.popleft()
            max_queue = self.settings.max_queue
            if len(self._queue) < max_queue:
                if self._unread:
                    waiting, self._unread = self._unread, b""
                    self._feed(waiting)
                if not self._unread and len(self._queue) < max_queue:
                    self.flow.resume_reading()
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if self.session is Session.HANDSHAKE:
            if kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":
                self._respond(403, [(b"content-type", b"text/plain; charset=utf-8")], _PHRASE_403)
            elif kind == "websocket.http.response.start":
                self._denial_head = message
                self.session = Session.RESPONDING
            else:
                raise RuntimeError(f"Expected websocket.accept or websocket.close, got {kind!r}")
        elif self.session is Session.RESPONDING:
            if kind != "websocket.http.response.body":
                raise RuntimeError(f"Expected websocket.http.response.body, got {kind!r}")
            self._denial.append(message.get("body", b""))
            if not message.get("more_body", False):
                head = self._denial_head
                body = b"".join(self._denial)
                self._respond(int(head.get("status", 500)), head.get("headers", ()), body)
        elif self.session is Session.OPEN and not self._closing:
            if kind == "websocket.send":
                data = message.get("text")
                if data is None:
                    data = message["bytes"]
                self.engine.send_message(data)
                self.messages_sent += 1
                self.bytes_sent += len(data)
                self._flush()
                if self.flow.writing_paused:  # a slow reader: wait for the buffer to drain
                    await self.flow.drain()
            elif kind == "websocket.close":
                self._close(message.get("code") or NORMAL_CLOSURE, message.get("reason") or "")
            else:
                raise RuntimeError(f"Expected websocket.send or websocket.close, got {kind!r}")
        else:
            raise ClientDisconnected("WebSocket closed")

    def _accept(self, message: Message) -> None:
        subprotocol = message.get("subprotocol")
        if subprotocol is not None and subprotocol not in self.scope["subprotocols"]:
            raise RuntimeError(f"Subprotocol {subprotocol!r} was not offered by the client")
        self._status = self._send_acceptance(subprotocol, message)
        self._accepted = True
        self.session = Session.OPEN
        self._flush()
        self._schedule_ping()
        if self.state.draining:
            # Accepted after shutdown began (shutdown() found it mid-handshake): say goodbye.
            self._close(SERVICE_RESTART, "server shutting down")
        early, self._early = self._early, []
        self.flow.resume_reading()
        for data in early:
            self.data_received(data)

    def _send_acceptance(self, subprotocol: str | None, message: Message) -> int:
        """The engine's 101 response, with the app's headers and ours; the status sent."""
        headers = [*self.context.default_headers.fields(), *_app_headers(message)]
        if self.request_id is not None:
            headers.append((self.context.request_id_header, self.request_id.encode()))
        self.engine.accept(subprotocol, headers)
        return 101

    def _respond(self, status: int, headers: Headers, body: bytes) -> None:
        """Answer the upgrade request with plain HTTP (a rejection or the app's denial) and
        close: the engine is not involved once the session is refused."""
        self.session = Session.CLOSED
        try:
            self._send_denial(status, headers, body)
        except InvalidResponseHead:
            logger.error("Invalid WebSocket denial response from the ASGI application")
            status, body = 500, b""
            self._send_denial(status, [], body)
        self._status = status
        self.bytes_sent += len(body)

    def _send_denial(self, status: int, headers: Headers, body: bytes) -> None:
        """Write the answer and close; InvalidResponseHead, before anything is written, when
        the app's headers are unsafe."""
        head = _encode_denial(status, headers, self.context.default_headers, len(body))
        self.transport.write(head + body)
        self.transport.close()

    def _close(self, code: int, reason: str) -> None:
        if self.engine.close(code, reason):
            self._closing = True
            self._close_code = code
            self._flush()
            self.deadline = self.state.now + CLOSE_TIMEOUT

    def _flush(self) -> None:
        for data in self.engine.data_to_send():
            if data:
                self.transport.write(data)
            else:  # the engine's end of stream: the server closes TCP first (RFC 6455 7.1.1)
                self.transport.close()

    # -- keepalive -----------------------------------------------------------------------------

    def _schedule_ping(self) -> None:
        interval = self.settings.ping_interval
        if interval is not None and self.session is Session.OPEN:
            self._ping = self.loop.call_later(interval, self._send_ping)

    def _send_ping(self) -> None:
        self._ping = None
        if self.session is not Session.OPEN or self._closing:
            return
        self._ping_payload = self.loop.time().hex().encode()
        self.engine.ping(self._ping_payload)
        self._flush()
        timeout = self.settings.ping_timeout
        if timeout is not None:
            self._pong = self.loop.call_later(timeout, self._ping_timed_out)
        else:
            self._schedule_ping()

    def _pong_received(self, payload: bytes) -> None:
        if self._pong is not None and payload == self._ping_payload:
            self._pong.cancel()
            self._pong = None
            self._schedule_ping()

    def _ping_timed_out(self) -> None:
        self._pong = None
        self._close_code = INTERNAL_ERROR
        self._disconnected(INTERNAL_ERROR)
        self.engine.fail(INTERNAL_ERROR, "keepalive ping timeout")
        self._flush()
        self.transport.abort()

    def _cancel_timers(self) -> None:
        for timer in (self._ping, self._pong):
            if timer is not None:
                timer.cancel()
        self._ping = self._pong = None

    # -- used by the server --------------------------------------------------------------------

    def check_deadline(self, now: float) -> None:
        """The peer did not answer our close frame in time."""
        self.abort()

    def shutdown(self) -> None:
        """Graceful shutdown: close an open session with 1012 (service restart); one still in
        its handshake gets the same as soon as the app accepts it (see `_accept`)."""
        if self.session is Session.OPEN:
            self._close(SERVICE_RESTART, "server shutting down")

    def abort(self) -> None:
        if not self._lost:
            self.transport.abort()


def frame_size(data: bytes, start: int) -> int:
    """The length of the frame that begins at `start` in `data`, header included (RFC 6455
    section 5.2), or 0 while its header is not all in `data`."""
    available = len(data) - start
    if available < 2:
        return 0
    second = data[start + 1]
    length = second & 0x7F
    extended = 2 if length == 126 else 8 if length == 127 else 0
    head = 2 + extended + (4 if second & 0x80 else 0)
    if available < head:
        return 0
    if extended:
        length = int.from_bytes(data[start + 2 : start + 2 + extended], "big")
    return head + length


def _request_head(scope: ServerScope) -> bytes:
    """The upgrade request as bytes, for the engine's own handshake checks (httptools has
    already checked its syntax and limits)."""
    target = scope["raw_path"]
    if scope["query_string"]:
        target += b"?" + scope["query_string"]
    head = [b"GET ", target, b" HTTP/1.1\r\n"]
    for name, value in scope["headers"]:
        head += (name, b": ", value, b"\r\n")
    head.append(b"\r\n")
    return b"".join(head)


def engine_for(settings: WebSocketSettings) -> Engine:
    """The sans-I/O library `--ws` chose (imported only when first used)."""
    if settings.mode == "wsproto":
        from monoceros.protocols.ws_wsproto import WsprotoEngine

        return WsprotoEngine(settings)
    if settings.mode == "auto":
        from monoceros.protocols.ws_frames import FramesEngine

        return FramesEngine(settings)
    from monoceros.protocols.ws_websockets import WebsocketsEngine

    return WebsocketsEngine(settings)


def _is_handshake_field(name: bytes) -> bool:
    return name == b"upgrade" or name == b"connection" or name.startswith(b"sec-websocket-")


BAD_HANDSHAKE = Rejection(400, [(b"content-type", b"text/plain; charset=utf-8")], b"Bad Request\n")


def _encode_denial(status: int, headers: Headers, defaults: DefaultHeaders, length: int) -> bytes:
    """The head of an HTTP answer to an upgrade request; the connection closes after it."""
    data, _, _, _ = encode_head(
        status,
        headers,
        defaults,
        http10=False,
        keep_alive=False,
        body_length=length,
        send_body=True,
    )
    return data


def _app_headers(message: Message) -> Headers:
    """The app's headers, refusing CR, LF and NUL (a split response) as HTTP responses do."""
    pairs = list(message.get("headers", ()))
    for name, value in pairs:
        if _UNSAFE.intersection(name) or _UNSAFE.intersection(value):
            raise RuntimeError(f"Invalid response header {name!r}")
    return pairs


_UNSAFE = frozenset(CONTROL_BYTES)
_PHRASE_403 = b"Forbidden\n"
_PHRASE_503 = b"Service Unavailable\n"
