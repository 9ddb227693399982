"""RFC 6455 over the HTTP/1.1 connection's transport, after an upgrade: one
`WebSocketProtocol` per session, on the `websockets` package's sans-I/O `ServerProtocol`.

`HttpProtocol` parses the upgrade request and builds the scope (proxy resolution included),
then hands over the transport and the bytes that followed the request. The library does the
handshake checks and framing; this class runs the ASGI websocket conversation, flow control,
keepalive pings and the session's one observation.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import time
from collections import deque
from http import HTTPStatus

from websockets.datastructures import Headers
from websockets.extensions.base import ServerExtensionFactory
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from monoceros.config import WebSocketSettings
from monoceros.errors import ClientDisconnected
from monoceros.protocols.events import SessionFinished
from monoceros.protocols.flow_control import FlowControl
from monoceros.protocols.head import CONTROL_BYTES
from monoceros.protocols.state import ServerState
from monoceros.types import ASGIApp, Message, Scope

logger = logging.getLogger("monoceros.error")
# The library's own log: its INFO lines ("connection open") repeat what the access log says
# once per session, so only its warnings and errors are shown unless a log config asks.
library_logger = logging.getLogger("monoceros.websocket")
library_logger.setLevel(logging.WARNING)

# How long the peer has to answer our close frame before the connection is cut (websockets'
# own default close_timeout is 10 s).
CLOSE_TIMEOUT = 10.0
# Close code when the server goes away (RFC 6455 registry: "Service Restart").
SERVICE_RESTART = 1012
_ABNORMAL = 1006


class Session(enum.Enum):
    HANDSHAKE = "upgrade received, waiting for websocket.accept"
    RESPONDING = "sending an HTTP denial response (websocket.http.response)"
    OPEN = "accepted: messages flow both ways"
    CLOSED = "closed, or answered with HTTP"


def extensions_for(settings: WebSocketSettings) -> list[ServerExtensionFactory]:
    if settings.per_message_deflate:
        # uvicorn's settings: 4 KiB windows and memLevel 5 keep a session's zlib state small.
        return [
            ServerPerMessageDeflateFactory(
                server_max_window_bits=12,
                client_max_window_bits=12,
                compress_settings={"memLevel": 5},
            )
        ]
    return []


class WebSocketProtocol(asyncio.Protocol):
    def __init__(
        self,
        app: ASGIApp,
        state: ServerState,
        settings: WebSocketSettings,
        scope: Scope,
        transport: asyncio.Transport,
    ) -> None:
        self.app = app
        self.state = state
        self.settings = settings
        self.scope = scope
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        self.flow = FlowControl(transport)
        self.peer: tuple[str, int] | None = scope.get("client")
        self.deadline = math.inf
        self.session = Session.HANDSHAKE
        self.conn = ServerProtocol(
            extensions=extensions_for(settings), max_size=settings.max_size, logger=library_logger
        )
        self._started = time.monotonic()
        self._lost = False
        self._queue: deque[Message] = deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._early: list[bytes] = []  # bytes the client sent before we accepted
        self._fragments: list[bytes | bytearray | memoryview] = []
        self._fragment_size = 0
        self._fragment_text = False
        self._ping: asyncio.TimerHandle | None = None
        self._pong: asyncio.TimerHandle | None = None
        self._ping_payload = b""
        self._status = 0
        self._close_code = 0
        self._denial: list[bytes] = []
        self._denial_head: Message | None = None
        self.messages_received = self.messages_sent = 0
        self.bytes_received = self.bytes_sent = 0
        self._response = self.conn.accept(self._handshake_request(scope))

    def _handshake_request(self, scope: Scope) -> Request:
        """The upgrade request, fed to the library as bytes: its parser then moves on to
        frames (httptools has already checked the request's syntax and limits)."""
        target = scope["raw_path"]
        if scope["query_string"]:
            target += b"?" + scope["query_string"]
        head = [b"GET ", target, b" HTTP/1.1\r\n"]
        for name, value in scope["headers"]:
            head += (name, b": ", value, b"\r\n")
        head.append(b"\r\n")
        self.conn.receive_data(b"".join(head))
        for event in self.conn.events_received():
            if isinstance(event, Request):
                return event
        return Request(target.decode("latin-1"), Headers())  # the library says why: 400

    # -- taking over the connection ------------------------------------------------------------

    def start(self, data: bytes) -> None:
        """Called by HttpProtocol right after `transport.set_protocol(self)`."""
        self.state.connections.add(self)
        self.state.websocket_sessions += 1
        if self._response.status_code != 101:
            # Malformed handshake: the library's 400 (or 426), and the app never hears of it.
            self._status = self._response.status_code
            self._send_response(self._response)
            return
        offered = [v for n, v in self.scope["headers"] if n == b"sec-websocket-protocol"]
        self.scope["subprotocols"] = [
            p.strip() for value in offered for p in value.decode("latin-1").split(",") if p.strip()
        ]
        self._queue.append({"type": "websocket.connect"})
        if data:
            self.data_received(data)
        task = self.loop.create_task(self._run())
        self.state.tasks.add(task)
        task.add_done_callback(self.state.tasks.discard)

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.session is not Session.OPEN:
            self._early.append(data)
            self.flow.pause_reading()
            return
        self.conn.receive_data(data)
        self._handle_events()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self.session = Session.CLOSED
        self.deadline = math.inf
        self.flow.connection_lost()
        self._cancel_timers()
        self._disconnected(self._received_code() or _ABNORMAL)
        state = self.state
        state.websocket_sessions -= 1
        code = self._close_code if self._status == 101 else 0
        state.websocket_closes[code] = state.websocket_closes.get(code, 0) + 1
        state.connection_closed(self)
        if state.on_session_finished is not None:
            state.on_session_finished(
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
                )
            )

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    # -- frames in -----------------------------------------------------------------------------

    def _handle_events(self) -> None:
        for event in self.conn.events_received():
            if isinstance(event, Frame):
                self._frame(event)
        self._flush()
        received = self._received_code()
        if received:
            self._disconnected(received)
        if len(self._queue) >= self.settings.max_queue:
            self.flow.pause_reading()

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY or opcode is Opcode.CONT:
            if opcode is not Opcode.CONT:
                self._fragment_text = opcode is Opcode.TEXT
            self._fragment_size += len(frame.data)
            if self._fragment_size > self.settings.max_size:
                self.conn.fail(CloseCode.MESSAGE_TOO_BIG, "message too big")
                self._close_code = CloseCode.MESSAGE_TOO_BIG
                return
            self._fragments.append(frame.data)
            if frame.fin:
                data = b"".join(self._fragments)
                self._fragments.clear()
                self._fragment_size = 0
                self.messages_received += 1
                self.bytes_received += len(data)
                if self._fragment_text:
                    try:
                        text = data.decode()
                    except UnicodeDecodeError:
                        self.conn.fail(CloseCode.INVALID_DATA, "invalid UTF-8")
                        self._close_code = CloseCode.INVALID_DATA
                        return
                    message: Message = {"type": "websocket.receive", "text": text}
                else:
                    message = {"type": "websocket.receive", "bytes": data}
                self._deliver(message)
        elif opcode is Opcode.PONG and self._pong is not None and frame.data == self._ping_payload:
            self._pong.cancel()
            self._pong = None
            self._schedule_ping()

    def _received_code(self) -> int:
        received = self.conn.close_rcvd
        if received is not None:
            return received.code
        sent = self.conn.close_sent
        if sent is not None and (self.conn.state is State.CLOSED or self.conn.eof_sent):
            return sent.code  # we failed the connection (1009, 1007, 1002): no answer comes
        return 0

    def _deliver(self, message: Message) -> None:
        self._queue.append(message)
        waiter = self._wakeup
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _disconnected(self, code: int) -> None:
        if self._close_code == 0 or self._close_code == _ABNORMAL:
            self._close_code = code
        if not any(m["type"] == "websocket.disconnect" for m in self._queue):
            reason = self.conn.close_rcvd.reason if self.conn.close_rcvd is not None else ""
            self._deliver({"type": "websocket.disconnect", "code": code, "reason": reason})

    # -- the ASGI side -------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except Exception as exc:
            logger.error("Exception in ASGI application", exc_info=exc)
            self._fail_app()
            return
        if self.session is Session.HANDSHAKE or self.session is Session.RESPONDING:
            logger.error("ASGI callable returned without accepting or closing the WebSocket.")
            self._fail_app()
        elif self.session is Session.OPEN and self.conn.close_sent is None:
            self._close(CloseCode.NORMAL_CLOSURE, "")

    def _fail_app(self) -> None:
        if self.session is Session.HANDSHAKE or self.session is Session.RESPONDING:
            self._reject(500)
        elif self.session is Session.OPEN:
            self._close(CloseCode.INTERNAL_ERROR, "")

    async def receive(self) -> Message:
        while not self._queue:
            self._wakeup = self.loop.create_future()
            await self._wakeup
        message = self._queue[0]
        if message["type"] != "websocket.disconnect":
            self._queue.popleft()
            if len(self._queue) < self.settings.max_queue:
                self.flow.resume_reading()
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if self.session is Session.HANDSHAKE:
            if kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":
                self._reject(403)
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
                self._send_denial()
        elif self.session is Session.OPEN and self.conn.close_sent is None:
            if kind == "websocket.send":
                text = message.get("text")
                if text is not None:
                    data = text.encode()
                    self.conn.send_text(data)
                else:
                    data = message["bytes"]
                    self.conn.send_binary(data)
                self.messages_sent += 1
                self.bytes_sent += len(data)
                self._flush()
                await self.flow.drain()
            elif kind == "websocket.close":
                code = message.get("code") or CloseCode.NORMAL_CLOSURE
                self._close(code, message.get("reason") or "")
            else:
                raise RuntimeError(f"Expected websocket.send or websocket.close, got {kind!r}")
        else:
            raise ClientDisconnected("WebSocket closed")

    def _accept(self, message: Message) -> None:
        response = self._response
        headers = response.headers
        subprotocol = message.get("subprotocol")
        if subprotocol:
            headers["Sec-WebSocket-Protocol"] = subprotocol
        # Our Server and Date headers (and --header ones), not the library's.
        for name in ("Server", "Date"):
            if name in headers:
                del headers[name]
        for line in self.state.default_headers.block.decode("latin-1").split("\r\n"):
            name, sep, value = line.partition(": ")
            if sep:
                headers[name] = value
        for name, value in _app_headers(message):
            headers[name] = value
        self._status = 101
        self._send_response(response)
        self.session = Session.OPEN
        self._schedule_ping()
        early, self._early = self._early, []
        self.flow.resume_reading()
        for data in early:
            self.data_received(data)

    def _reject(self, status: int) -> None:
        self._status = status
        self.session = Session.CLOSED
        self._send_response(self.conn.reject(status, "Forbidden\n" if status == 403 else ""))

    def _send_denial(self) -> None:
        head = self._denial_head or {}
        body = b"".join(self._denial)
        headers = Headers(_app_headers(head))
        if "Content-Length" not in headers:
            headers["Content-Length"] = str(len(body))
        status = int(head.get("status", 500))
        self._status = status
        self.session = Session.CLOSED
        self.bytes_sent += len(body)
        reason = HTTPStatus(status).phrase if status in _STATUSES else ""
        self._send_response(Response(status, reason, headers, body))

    def _send_response(self, response: Response) -> None:
        self.conn.send_response(response)
        self._flush()

    def _close(self, code: int, reason: str) -> None:
        if self.conn.state is State.OPEN:
            self.conn.send_close(code, reason)
            self._close_code = code
            self._flush()
            self.deadline = self.state.now + CLOSE_TIMEOUT

    def _flush(self) -> None:
        for data in self.conn.data_to_send():
            if data:
                self.transport.write(data)
            else:  # the library's end of stream: the server closes TCP first (RFC 6455 7.1.1)
                self.transport.close()

    # -- keepalive -----------------------------------------------------------------------------

    def _schedule_ping(self) -> None:
        interval = self.settings.ping_interval
        if interval is not None and self.session is Session.OPEN:
            self._ping = self.loop.call_later(interval, self._send_ping)

    def _send_ping(self) -> None:
        self._ping = None
        if self.session is not Session.OPEN or self.conn.state is not State.OPEN:
            return
        self._ping_payload = self.loop.time().hex().encode()
        self.conn.send_ping(self._ping_payload)
        self._flush()
        timeout = self.settings.ping_timeout
        if timeout is not None:
            self._pong = self.loop.call_later(timeout, self._ping_timed_out)
        else:
            self._schedule_ping()

    def _ping_timed_out(self) -> None:
        self._pong = None
        self._close_code = CloseCode.INTERNAL_ERROR
        self._disconnected(CloseCode.INTERNAL_ERROR)
        self.conn.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
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
        """Graceful shutdown: close an open session with 1012 (service restart)."""
        if self.session is Session.OPEN:
            self._close(SERVICE_RESTART, "server shutting down")

    def abort(self) -> None:
        if not self._lost:
            self.transport.abort()


def _app_headers(message: Message) -> list[tuple[str, str]]:
    """The app's headers, refusing CR, LF and NUL (a split response) as HTTP responses do."""
    pairs = []
    for name, value in message.get("headers", ()):
        if _UNSAFE.intersection(name) or _UNSAFE.intersection(value):
            raise RuntimeError(f"Invalid response header {name!r}")
        pairs.append((name.decode("latin-1"), value.decode("latin-1")))
    return pairs


_STATUSES = frozenset(HTTPStatus)
_UNSAFE = frozenset(CONTROL_BYTES)
