"""A raw HTTP/2 client on a socket, on the h2 library: for what httpx will not do (resets,
floods, windows kept shut, extended CONNECT, frames written by hand). Every frame the server
sends is parsed by h2, so anything malformed fails the test."""

from __future__ import annotations

import socket
import ssl
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import hpack

TIMEOUT = 5.0
POLL = 0.05
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# Frame types and flags (RFC 9113 section 6), for frames written by hand.
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0x0,
    0x1,
    0x3,
    0x4,
    0x6,
    0x7,
    0x8,
    0x9,
)
END_STREAM, END_HEADERS = 0x1, 0x4
NO_ERROR, PROTOCOL_ERROR, REFUSED_STREAM, CANCEL, ENHANCE_YOUR_CALM = 0x0, 0x1, 0x7, 0x8, 0xB


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes((kind, flags))
        + struct.pack(">I", stream_id)
        + payload
    )


@dataclass
class Response:
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    informational: list[tuple[int, list[tuple[bytes, bytes]]]] = field(default_factory=list)
    ended: bool = False
    reset: int | None = None  # the RST_STREAM error code, if the server reset the stream

    def header(self, name: bytes) -> bytes | None:
        values = [value for key, value in self.headers if key == name]
        assert len(values) <= 1, f"repeated {name!r}: {self.headers}"
        return values[0] if values else None


class H2Client:
    def __init__(
        self,
        port: int,
        *,
        host: str = "127.0.0.1",
        ssl_context: ssl.SSLContext | None = None,
        settings: dict[int, int] | None = None,
        auto_window: bool = True,
    ) -> None:
        sock = socket.create_connection((host, port), timeout=TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl_context is not None:
            ssl_context.set_alpn_protocols(["h2"])
            sock = ssl_context.wrap_socket(sock, server_hostname=host)
            assert sock.selected_alpn_protocol() == "h2"
        self.sock = sock
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config)
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.auto_window = auto_window  # acknowledge received DATA with WINDOW_UPDATEs
        self.responses: dict[int, Response] = {}
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.remote_settings: dict[int, int] = {}
        self.closed = False  # the server closed the TCP connection
        self.flush()

    # -- sending -------------------------------------------------------------------------------

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(
        self,
        path: str = "/",
        *,
        method: str = "GET",
        headers: Iterable[tuple[str, str]] = (),
        body: bytes | None = None,
        end: bool = True,
        extra_pseudo: Iterable[tuple[str, str]] = (),
    ) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        fields = [
            (b":method", method.encode()),
            (b":scheme", b"http"),
            (b":authority", b"127.0.0.1"),
            (b":path", path.encode()),
            *[(name.encode(), value.encode()) for name, value in extra_pseudo],
            *[(name.encode(), value.encode()) for name, value in headers],
        ]
        self.conn.send_headers(stream_id, fields, end_stream=end and body is None)
        self.responses[stream_id] = Response()
        if body is not None:
            self.send_body(stream_id, body, end=end)
        self.flush()
        return stream_id

    def send_body(self, stream_id: int, body: bytes, *, end: bool = True) -> None:
        """Body bytes in frames as large as the peer allows, waiting for its window."""
        view = memoryview(body)
        while view:
            allowed = min(
                self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size
            )
            if allowed <= 0:
                self.read(lambda: self.conn.local_flow_control_window(stream_id) > 0)
                continue
            self.conn.send_data(stream_id, bytes(view[:allowed]))
            view = view[allowed:]
            self.flush()
        if end:
            self.conn.end_stream(stream_id)
            self.flush()

    def reset(self, stream_id: int, code: int = CANCEL) -> None:
        self.conn.reset_stream(stream_id, code)
        self.flush()

    # -- receiving -----------------------------------------------------------------------------

    def read(self, done: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        """Read and handle frames until `done()` or the server closes; fail on timeout.
        `done()` is asked again every POLL seconds: it may wait on the server's app (another
        thread) rather than on a frame."""
        deadline = time.monotonic() + timeout
        while not done():
            if self.closed:
                return
            remaining = deadline - time.monotonic()
            assert remaining > 0, "timed out waiting for the server"
            self.sock.settimeout(min(remaining, POLL))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed = True
                return
            self._handle(self.conn.receive_data(data))
            self.flush()

    def response(self, stream_id: int, timeout: float = TIMEOUT) -> Response:
        found = self.responses[stream_id]
        self.read(lambda: found.ended or found.reset is not None, timeout)
        return found

    def wait_closed(self, timeout: float = TIMEOUT) -> None:
        self.read(lambda: self.closed, timeout)

    def _handle(self, events: list[Any]) -> None:
        for event in events:
            stream_id = getattr(event, "stream_id", None)
            response = self.responses.get(stream_id) if stream_id else None
            if isinstance(event, h2.events.ResponseReceived) and response is not None:
                for name, value in event.headers:
                    if name == b":status":
                        response.status = int(value)
                    else:
                        response.headers.append((name, value))
            elif isinstance(event, h2.events.InformationalResponseReceived) and response:
                status = int(dict(event.headers)[b":status"])
                fields = [(n, v) for n, v in event.headers if not n.startswith(b":")]
                response.informational.append((status, fields))
            elif isinstance(event, h2.events.DataReceived) and response is not None:
                response.body += event.data
                if self.auto_window and event.flow_controlled_length:
                    self.conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
            elif isinstance(event, h2.events.TrailersReceived) and response is not None:
                response.trailers = list(event.headers)
            elif isinstance(event, h2.events.StreamEnded) and response is not None:
                response.ended = True
            elif isinstance(event, h2.events.StreamReset) and response is not None:
                response.reset = event.error_code
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.goaway = event
            elif isinstance(event, h2.events.RemoteSettingsChanged):
                for key, changed in event.changed_settings.items():
                    self.remote_settings[int(key)] = changed.new_value

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> H2Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def request_fields(path: str, method: str = "GET") -> list[tuple[str, str]]:
    return [(":method", method), (":scheme", "http"), (":authority", "127.0.0.1"), (":path", path)]


def request_block(
    path: str, *, method: str = "GET", extra: Iterable[tuple[str, str]] = ()
) -> bytes:
    """A request's header block, HPACK-encoded, for a HEADERS frame written by hand."""
    return bytes(hpack.Encoder().encode([*request_fields(path, method), *extra]))


def raw_connection(port: int, *, host: str = "127.0.0.1") -> socket.socket:
    """A socket that has sent the client preface and an empty SETTINGS, for frames by hand."""
    sock = socket.create_connection((host, port), timeout=TIMEOUT)
    sock.sendall(PREFACE + frame(SETTINGS, 0, 0))
    return sock


class FrameReader:
    """Frames from a raw connection as they come: (type, flags, stream id, payload)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.closed = False

    def frames(self, timeout: float = TIMEOUT) -> list[tuple[int, int, int, bytes]]:
        """The frames that arrive in one read (at least one, unless the server closed)."""
        found: list[tuple[int, int, int, bytes]] = []
        self.sock.settimeout(timeout)
        while not found and not self.closed:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = True
            self.buffer += chunk
            while len(self.buffer) >= 9:
                length = int.from_bytes(self.buffer[:3], "big")
                if len(self.buffer) < 9 + length:
                    break
                kind, flags = self.buffer[3], self.buffer[4]
                stream_id = int.from_bytes(self.buffer[5:9], "big") & 0x7FFFFFFF
                found.append((kind, flags, stream_id, self.buffer[9 : 9 + length]))
                self.buffer = self.buffer[9 + length :]
        return found


def frames_until_closed(
    sock: socket.socket, timeout: float = TIMEOUT
) -> list[tuple[int, int, int, bytes]]:
    """Every frame the server sends until it closes: (type, flags, stream id, payload)."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
    found = []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        kind, flags = data[3], data[4]
        stream_id = int.from_bytes(data[5:9], "big") & 0x7FFFFFFF
        found.append((kind, flags, stream_id, data[9 : 9 + length]))
        data = data[9 + length :]
    return found


def goaway_code(frames: list[tuple[int, int, int, bytes]]) -> int | None:
    for kind, _flags, _stream, payload in frames:
        if kind == GOAWAY:
            return int.from_bytes(payload[4:8], "big")
    return None
