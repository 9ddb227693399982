"""`--ws websockets` (and `auto`): the `websockets` package's sans-I/O `ServerProtocol`."""

from __future__ import annotations

import logging

from websockets.extensions.base import ServerExtensionFactory
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from monoceros.config import WebSocketSettings
from monoceros.protocols.ws_engine import Closed, Event, Headers, Part, Pong, Rejection

# The library's own log: its INFO lines ("connection open") repeat what the access log says
# once per session, so only its warnings and errors are shown unless a log config asks.
library_logger = logging.getLogger("monoceros.websocket")
library_logger.setLevel(logging.WARNING)

# Headers of the library's handshake responses that the server writes itself.
_OURS = frozenset({"server", "date", "content-length", "connection"})


class _ServerProtocol(ServerProtocol):
    """websockets answers a close frame that arrives in the middle of a fragmented message
    with 1002 (protocol error). RFC 6455 5.4 lets control frames, close among them, come
    between fragments, and the closing handshake then ends the session: so the unfinished
    message is dropped and the close is echoed as usual (Autobahn case 7.1.5)."""

    # websockets' own, declared again for a type check that cannot see websockets (the
    # compiled build in pip's isolated build environment).
    current_size: int | None  # `cur_size` before websockets 16

    def recv_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.CLOSE and self.current_size is not None:
            self.current_size = None  # websockets' own bookkeeping of the unfinished message
        ServerProtocol.recv_frame(self, frame)


class WebsocketsEngine:
    def __init__(self, settings: WebSocketSettings) -> None:
        extensions: list[ServerExtensionFactory] = []
        if settings.per_message_deflate:
            # uvicorn's settings: 4 KiB windows and memLevel 5 keep a session's zlib state small.
            extensions.append(
                ServerPerMessageDeflateFactory(
                    server_max_window_bits=12,
                    client_max_window_bits=12,
                    compress_settings={"memLevel": 5},
                )
            )
        self.max_size = settings.max_size
        self.conn = _ServerProtocol(
            extensions=extensions, max_size=settings.max_size, logger=library_logger
        )
        self._text = False  # the type of the message being received (CONT frames don't say)
        self._closed = False

    def handshake(self, head: bytes) -> Rejection | None:
        self.conn.receive_data(head)
        requests = [e for e in self.conn.events_received() if isinstance(e, Request)]
        if not requests:  # httptools accepted what the library cannot parse
            return Rejection(400, [], b"")
        self._response = self.conn.accept(requests[0])
        if self._response.status_code == 101:
            return None
        headers = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in self._response.headers.raw_items()
            if name.lower() not in _OURS
        ]
        # websockets types the body `bytes | bytearray` (since 16); the record takes bytes.
        return Rejection(self._response.status_code, headers, bytes(self._response.body))

    def accept(self, subprotocol: str | None, headers: Headers) -> None:
        response_headers = self._response.headers
        for name in ("Server", "Date"):  # ours come in `headers`
            if name in response_headers:
                del response_headers[name]
        if subprotocol:
            response_headers["Sec-WebSocket-Protocol"] = subprotocol
        for raw_name, raw_value in headers:
            response_headers[raw_name.decode("latin-1")] = raw_value.decode("latin-1")
        self.conn.send_response(self._response)

    def extensions_negotiated(self) -> bool:
        """Whether the accepted handshake agreed on an extension (permessage-deflate)."""
        return "Sec-WebSocket-Extensions" in self._response.headers

    def accept_without_handshake(self) -> None:
        # The library's parser reads an HTTP request first unless it starts OPEN.
        self.conn = _ServerProtocol(state=State.OPEN, max_size=self.max_size, logger=library_logger)

    def receive(self, data: bytes) -> list[Event]:
        conn = self.conn
        conn.receive_data(data)
        events: list[Event] = []
        for frame in conn.events_received():
            if not isinstance(frame, Frame):
                continue
            opcode = frame.opcode
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                self._text = opcode is Opcode.TEXT
                events.append(Part(bytes(frame.data), self._text, frame.fin))
            elif opcode is Opcode.CONT:
                events.append(Part(bytes(frame.data), self._text, frame.fin))
            elif opcode is Opcode.PONG:
                events.append(Pong(bytes(frame.data)))
        if not self._closed and (conn.close_rcvd is not None or conn.close_sent is not None):
            closed = self._closing_handshake()
            if closed is not None:
                self._closed = True
                events.append(closed)
        return events

    def _closing_handshake(self) -> Closed | None:
        received = self.conn.close_rcvd
        if received is not None:
            return Closed(received.code, received.reason)
        sent = self.conn.close_sent
        if sent is not None and (self.conn.state is State.CLOSED or self.conn.eof_sent):
            return Closed(sent.code, sent.reason)  # the library failed the connection
        return None

    def send_message(self, data: bytes | str) -> None:
        if isinstance(data, str):
            self.conn.send_text(data.encode())
        else:
            self.conn.send_binary(data)

    def ping(self, payload: bytes) -> None:
        self.conn.send_ping(payload)

    def close(self, code: int, reason: str) -> bool:
        if self.conn.state is not State.OPEN:
            return False
        self.conn.send_close(code, reason)
        return True

    def fail(self, code: int, reason: str) -> None:
        self._closed = True  # the caller reports this closing itself
        self.conn.fail(code, reason)

    def data_to_send(self) -> list[bytes]:
        return self.conn.data_to_send()
