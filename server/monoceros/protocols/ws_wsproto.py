"""`--ws wsproto`: wsproto's handshake (on h11) and frame protocol, an optional dependency."""

from __future__ import annotations

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    TextMessage,
)
from wsproto.events import Pong as PongEvent
from wsproto.events import Request as RequestEvent
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.handshake import H11Handshake
from wsproto.utilities import RemoteProtocolError

from monoceros.config import WebSocketSettings
from monoceros.protocols import ws_engine
from monoceros.protocols.ws_engine import Closed, Event, Headers, Part, Pong, Rejection

_ANSWER_CLOSE_IN = (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING)


class WsprotoEngine:
    def __init__(self, settings: WebSocketSettings) -> None:
        self.per_message_deflate = settings.per_message_deflate
        self.handshaker = H11Handshake(ConnectionType.SERVER)
        self.conn: Connection | None = None  # once accepted
        self._output: list[bytes] = []
        self._closed = False

    def handshake(self, head: bytes) -> Rejection | None:
        try:
            self.handshaker.receive_data(head)
        except RemoteProtocolError as exc:
            # wsproto says what to answer: 400, or 426 with the version it speaks.
            hint = exc.event_hint
            status = getattr(hint, "status_code", 400)
            return Rejection(status, list(getattr(hint, "headers", [])), b"")
        if not any(isinstance(event, RequestEvent) for event in self.handshaker.events()):
            return Rejection(400, [], b"")
        return None

    def accept(self, subprotocol: str | None, headers: Headers) -> None:
        extensions: list[Extension] = [PerMessageDeflate()] if self.per_message_deflate else []
        event = AcceptConnection(
            subprotocol=subprotocol, extensions=extensions, extra_headers=headers
        )
        self._output.append(self.handshaker.send(event))
        self.conn = self.handshaker.connection

    def accept_without_handshake(self) -> None:
        self.conn = Connection(ConnectionType.SERVER)

    def receive(self, data: bytes) -> list[Event]:
        conn = self.conn
        if conn is None or conn.state is ConnectionState.CLOSED:
            return []
        conn.receive_data(data)
        events: list[Event] = []
        for event in conn.events():
            if isinstance(event, TextMessage):
                events.append(Part(event.data, True, event.message_finished))
            elif isinstance(event, BytesMessage):
                events.append(Part(bytes(event.data), False, event.message_finished))
            elif isinstance(event, Ping):
                if conn.state is ConnectionState.OPEN:  # no pong once closing
                    self._output.append(conn.send(event.response()))
            elif isinstance(event, PongEvent):
                events.append(Pong(bytes(event.payload)))
            elif isinstance(event, CloseConnection):
                # The peer's close (REMOTE_CLOSING), the answer to ours (CLOSED), or a framing
                # error wsproto found (still OPEN): answer the first, fail on the last.
                if conn.state in _ANSWER_CLOSE_IN:
                    self._output.append(conn.send(CloseConnection(event.code, event.reason)))
                self._output.append(b"")  # the server closes TCP first (RFC 6455 7.1.1)
                if not self._closed:
                    self._closed = True
                    events.append(Closed(event.code, event.reason or ""))
                break
        return events

    def send_message(self, data: bytes | str) -> None:
        assert self.conn is not None
        message = TextMessage(data) if isinstance(data, str) else BytesMessage(data)
        self._output.append(self.conn.send(message))

    def ping(self, payload: bytes) -> None:
        assert self.conn is not None
        self._output.append(self.conn.send(Ping(payload)))

    def close(self, code: int, reason: str) -> bool:
        if self.conn is None or self.conn.state is not ConnectionState.OPEN:
            return False
        ws_engine.check_close(code, reason)  # wsproto would send any code
        self._output.append(self.conn.send(CloseConnection(code, reason)))
        return True

    def fail(self, code: int, reason: str) -> None:
        self._closed = True  # the caller reports this closing itself
        if self.close(code, reason):
            self._output.append(b"")

    def data_to_send(self) -> list[bytes]:
        output, self._output = self._output, []
        return output
