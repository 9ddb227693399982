"""WebSockets over HTTP/2 (RFC 8441): a session on one stream of an HTTP/2 connection.

A browser with an HTTP/2 connection to the origin, told SETTINGS_ENABLE_CONNECT_PROTOCOL (zttp
advertises it), opens a WebSocket with an extended CONNECT on a new stream rather than a new
HTTP/1.1 connection. The session is websocket.py's: RFC 6455 frames, carried in DATA frames.
What differs is the handshake (no Sec-WebSocket-Key; a `200` accepts, with no extension
negotiated), the end (END_STREAM is TCP's FIN, RST_STREAM its RST) and the transport:
`StreamTransport` makes the asyncio.Transport calls WebSocketProtocol makes on the stream.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from monoceros.protocols.context import ConnectionContext
from monoceros.protocols.events import TraceContext
from monoceros.protocols.h2_stream import CANCEL, H2Stream, StreamHost, StreamTunnel
from monoceros.protocols.head import InvalidResponseHead, response_fields
from monoceros.protocols.state import ServerState
from monoceros.protocols.websocket import Session, WebSocketProtocol
from monoceros.protocols.ws_engine import Headers, Rejection
from monoceros.types import ASGIApp, Message, ServerScope

_TEXT = (b"content-type", b"text/plain; charset=utf-8")
# RFC 6455 section 4.4: a version we do not speak is answered with the one we do.
UNSUPPORTED_VERSION = Rejection(426, [_TEXT, (b"sec-websocket-version", b"13")], b"")
NO_VERSION = Rejection(400, [_TEXT], b"Bad Request\n")


class StreamTransport(StreamTunnel):
    """The transport calls WebSocketProtocol makes, on one HTTP/2 stream; and the stream's
    DATA and end, for the session."""

    def __init__(self, host: StreamHost, stream: H2Stream, connection: asyncio.Transport) -> None:
        self.host = host
        self.stream = stream
        self.connection = connection  # the HTTP/2 connection's own transport
        self.session: H2WebSocket | None = None
        self.ended = False  # our END_STREAM or RST_STREAM is queued
        self.lost = False  # the session has been told

    def write(self, data: bytes) -> None:
        if not self.ended:
            self.stream.send_data(data)

    def close(self) -> None:
        """END_STREAM: the server's half of the stream is done; the peer's goes with it."""
        if not self.ended:
            self.ended = True
            self.stream.end()
            self.host.stream_ended(self.stream)
        self._lose_soon()

    def abort(self) -> None:
        if not self.ended:
            self.ended = True
            self.host.reset_stream(self.stream, CANCEL)
        self._lose_soon()

    def pause_reading(self) -> None:
        self.stream.pause_reading()

    def resume_reading(self) -> None:
        self.stream.resume_reading()

    def is_closing(self) -> bool:
        return self.ended or self.connection.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.connection.get_extra_info(name, default)

    def data_received(self, data: bytes) -> None:
        if self.session is not None and not self.lost:
            self.session.data_received(data)

    def peer_ended(self) -> None:
        session = self.session
        if session is not None and session.session in (Session.HANDSHAKE, Session.RESPONDING):
            # Before the response's HEADERS, the stream cannot end (its first frame would be
            # DATA): it is reset, as an HTTP/1.1 FIN mid-handshake closes the connection, and
            # the app hears at once, before its accept can send HEADERS on a finished stream.
            self.abort()
            self.stream_gone()
            return
        self.close()

    def stream_gone(self) -> None:
        self.ended = True
        if not self.lost and self.session is not None:
            self.lost = True
            self.session.connection_lost(None)

    def _lose_soon(self) -> None:
        # As asyncio does: connection_lost comes after the call that closed, not inside it.
        asyncio.get_running_loop().call_soon(self.stream_gone)


class H2WebSocket(WebSocketProtocol):
    """A WebSocket session on an HTTP/2 stream: websocket.py's, with HTTP/2's handshake."""

    def __init__(
        self,
        app: ASGIApp,
        context: ConnectionContext,
        state: ServerState,
        scope: ServerScope,
        transport: StreamTransport,
        peer: tuple[str, int] | None,
        request_id: str | None,
        trace: TraceContext | None,
    ) -> None:
        stream = cast(asyncio.Transport, transport)
        super().__init__(app, context, state, scope, stream, peer, request_id, trace)
        self.stream_transport = transport
        transport.session = self
        # The stream's back-pressure is the session's: a closed window pauses its send().
        transport.stream.flow = self.flow

    def connection_lost(self, exc: Exception | None) -> None:
        # The stream's end, not the connection's: the HTTP/2 connection counts itself.
        self._session_ended()

    def _check_handshake(self) -> Rejection | None:
        versions = [v for n, v in self.scope["headers"] if n == b"sec-websocket-version"]
        if not versions:
            return NO_VERSION
        if versions != [b"13"]:
            return UNSUPPORTED_VERSION
        return None

    def _send_acceptance(self, subprotocol: str | None, message: Message) -> int:
        headers = list(message.get("headers", ()))
        if subprotocol is not None:
            headers.append((b"sec-websocket-protocol", subprotocol.encode()))
        fields = self._fields(200, headers)
        self.stream_transport.stream.send_head(200, fields, False)
        self.engine.accept_without_handshake()
        return 200

    def _send_denial(self, status: int, headers: Headers, body: bytes) -> None:
        # InvalidResponseHead from the app's headers comes before anything is sent.
        fields, _ = response_fields(
            status, headers, self.context.default_headers, body_length=len(body)
        )
        stream = self.stream_transport.stream
        stream.send_head(status, fields, False)
        if body:
            stream.send_data(body)
        self.stream_transport.close()  # END_STREAM

    def _fields(self, status: int, headers: Headers) -> Headers:
        rid = self.request_id
        extra = None if rid is None else (self.context.request_id_header, rid.encode())
        try:
            fields, _ = response_fields(
                status, headers, self.context.default_headers, body_length=None, extra=extra
            )
            return fields
        except InvalidResponseHead as exc:
            raise RuntimeError(f"Invalid response header: {exc}") from None
