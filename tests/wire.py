"""Raw client connections whose responses are parsed by h11, the reference HTTP/1.1 parser:
anything the server writes that is not well-formed HTTP/1.1 fails the test, and no check
matches substrings of the wire."""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import h11

from monoceros.protocols.http import HttpProtocol
from tests.utils import RunningServer

TIMEOUT = 5.0


@dataclass
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    informational: list[int] = field(default_factory=list)
    chunks: int = 0  # chunked-encoding chunks that ended

    def values(self, name: bytes) -> list[bytes]:
        return [value for key, value in self.headers if key == name]

    def header(self, name: bytes) -> bytes | None:
        values = self.values(name)
        assert len(values) <= 1, f"repeated {name!r} header: {self.headers}"
        return values[0] if values else None


class Wire:
    """A raw client connection: send bytes, read responses one at a time (parsed by h11)."""

    def __init__(self, server: RunningServer, *, receive_buffer: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if receive_buffer is not None:  # before connect(), so the window stays small
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect((server.host, server.port))
        self.h11 = h11.Connection(h11.CLIENT)
        self.raw = bytearray()  # every byte received
        self.eof = False

    @property
    def port(self) -> int:
        port: int = self.sock.getsockname()[1]
        return port

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def next_event(self) -> Any:
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            assert not self.eof, f"connection closed inside a response; got {self.raw!r}"
            data = self.sock.recv(1 << 20)
            self.raw += data
            self.eof = not data
            self.h11.receive_data(data)

    def expect_response(self, method: str = "GET") -> None:
        """Tell h11 a request made with `method` is out (a HEAD response has no body); the
        request itself went out as raw bytes."""
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
        self.h11.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
        self.h11.send(h11.EndOfMessage())

    def response(self, method: str = "GET") -> Response:
        """The next complete response, to a request made with `method`."""
        self.expect_response(method)
        return self.finish_response()

    def finish_response(self, informational: list[int] | None = None) -> Response:
        """The rest of a response whose request `expect_response` announced."""
        informational = informational or []
        event = self.next_event()
        while isinstance(event, h11.InformationalResponse):
            informational.append(event.status_code)
            event = self.next_event()
        assert isinstance(event, h11.Response), event
        response = Response(event.status_code, list(event.headers.raw_items()))
        response.informational = informational
        body = []
        while not isinstance(event := self.next_event(), h11.EndOfMessage):
            assert isinstance(event, h11.Data), event
            body.append(event.data)
            response.chunks += event.chunk_end
        response.body = b"".join(body)
        return response

    def closed_by_server(self) -> bool:
        """True once the server closes the connection with nothing more sent; False if it is
        still open after TIMEOUT."""
        unparsed = self.h11.trailing_data[0]
        assert not unparsed, f"unexpected bytes after the response: {unparsed!r}"
        if self.eof:
            return True
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        assert not data, f"unexpected bytes after the response: {data!r}"
        return True

    def silent_for(self, seconds: float) -> bool:
        """Nothing arrives (and no close) within `seconds`."""
        readable, _, _ = select.select([self.sock], [], [], seconds)
        return not readable

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def wire(server: RunningServer, **options: Any) -> Iterator[Wire]:
    connection = Wire(server, **options)
    try:
        yield connection
    finally:
        connection.close()


def request(
    target: str,
    *headers: str,
    method: str = "GET",
    body: bytes = b"",
    version: str = "1.1",
    host: bool = True,
) -> bytes:
    lines = [f"{method} {target} HTTP/{version}", *(["Host: x"] if host else []), *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def protocol_for(server: RunningServer, client_port: int) -> HttpProtocol:
    """The server-side connection object of the client at `client_port`."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        for connection in list(server.server.state.connections):
            if connection.peer is not None and connection.peer[1] == client_port:
                return connection
        time.sleep(0.005)
    raise AssertionError(f"no server connection for client port {client_port}")
