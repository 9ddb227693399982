"""Hostile clients and misbehaving apps against a real server over real sockets.

One module-scoped server with small limits serves every case. Each case sends raw bytes, parses
what comes back (status line, headers, body; no substring matching), checks that the server
closed the connection, and then checks that the server still answers an ordinary request.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from types import MappingProxyType
from typing import Any, NamedTuple

import pytest

from monoceros.errors import ClientDisconnected
from monoceros.types import Message, Receive, Scope, Send
from tests.utils import RunningServer, run_server

LIMITS: dict[str, Any] = {
    "limit_request_line": 1024,
    "limit_request_fields": 20,
    "limit_request_header_size": 4096,
    "limit_request_body": 1024,
    "timeout_request_header": 0.5,
    "timeout_keep_alive": 0.5,
}
# What the server reads of one request head before it answers 431 (HttpProtocol._head_budget).
HEAD_BUDGET = LIMITS["limit_request_line"] + LIMITS["limit_request_header_size"] + 4096
# Long enough for every deadline above (plus the server's 0.25 s housekeeping tick).
READ_TIMEOUT = 5.0


def status_line(code: int) -> str:
    """The exact status line, with Python's reason phrase (3.13 renamed 413 and 414's)."""
    return f"HTTP/1.1 {code} {HTTPStatus(code).phrase}"


BAD_REQUEST = status_line(400)
OK = status_line(200)
INTERNAL_ERROR = status_line(500)


# -- the app ---------------------------------------------------------------------------------------

# What the app saw, by request path: message types received, exceptions `send` raised. The app
# runs in the server's thread; tests read this with `wait_for_record`.
RECORDS: dict[str, list[Any]] = {}


def start(status: Any = 200, headers: Any = ()) -> Message:
    return {"type": "http.response.start", "status": status, "headers": list(headers)}


def body(content: bytes, *, more: bool = False) -> Message:
    return {"type": "http.response.body", "body": content, "more_body": more}


async def _misbehave(path: str, send: Send) -> None:
    """The response-side cases: each path is one way for an app to get its response wrong."""
    if path == "/split-value":
        await send(start(headers=[(b"x-ok", b"1\r\nx-injected: yes")]))
    elif path == "/split-name":
        await send(start(headers=[(b"x-injected: yes\r\nx-ok", b"1")]))
    elif path == "/nul-value":
        await send(start(headers=[(b"x-ok", b"1\x00x-injected: yes")]))
    elif path == "/str-value":
        await send(start(headers=[(b"x-ok", "text")]))
    elif path == "/str-name":
        await send(start(headers=[("x-ok", b"1")]))
    elif path == "/bad-name":
        await send(start(headers=[(b"bad name", b"1")]))
    elif path == "/status-str":
        await send(start(status="200"))
    elif path == "/status-none":
        await send(start(status=None))
    elif path == "/raise":
        raise ValueError("secret-detail")
    elif path == "/raise-after-start":
        await send(start())
        raise ValueError("secret-detail")
    elif path == "/raise-after-body":
        await send(start())
        await send(body(b"partial", more=True))
        raise ValueError("secret-detail")
    elif path == "/no-response":
        return
    elif path == "/longer-than-content-length":
        await send(start(headers=[(b"content-length", b"5")]))
        await send(body(b"01234HTTP/1.1 204 No Content\r\n\r\n"))
    elif path == "/longer-than-content-length-later":
        await send(start(headers=[(b"content-length", b"5")]))
        await send(body(b"01234", more=True))
        await send(body(b"HTTP/1.1 204 No Content\r\n\r\n"))
    elif path == "/send-after-complete":
        await send(start())
        await send(body(b"done"))
        await send(body(b"HTTP/1.1 204 No Content\r\n\r\n"))
    elif path == "/read-only-messages":  # mappings, not dicts: as good as dicts
        await send(MappingProxyType(start(headers=[(b"content-type", b"text/plain")])))
        await send(MappingProxyType(body(b"read-only")))
        return
    elif path == "/message-none":
        await send(None)  # type: ignore[arg-type]
    elif path == "/message-list":
        await send([("type", "http.response.start"), ("status", 200)])  # type: ignore[arg-type]
    await send(body(b"must not be reached"))


async def _read_body(receive: Receive, seen: list[Any]) -> bytes | None:
    """The whole request body, or None if the client left first; message types go to `seen`."""
    received = b""
    while True:
        message = await receive()
        seen.append(message["type"])
        if message["type"] == "http.disconnect":
            return None
        received += message["body"]
        if not message.get("more_body"):
            return received


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http"
    path: str = scope["path"]
    seen = RECORDS.setdefault(path, [])

    async def recording_send(message: Message) -> None:
        try:
            await send(message)
        except Exception as exc:
            seen.append(exc)
            raise

    if path == "/hello":
        await send(start(headers=[(b"content-type", b"text/plain")]))
        await send(body(b"hello"))
    elif path.startswith("/path/"):
        await send(start())
        await send(body(path.removeprefix("/path/").encode()))
    elif path.startswith("/record/"):
        received = await _read_body(receive, seen)
        if received is not None:
            await send(start())
            await send(body(received))
    elif path == "/send-after-disconnect":
        if await _read_body(receive, seen) is not None:
            while (await receive())["type"] != "http.disconnect":
                pass
            seen.append("http.disconnect")
        with contextlib.suppress(ClientDisconnected):
            await recording_send(start())
    else:
        await _misbehave(path, recording_send)


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with run_server(app, lifespan="off", **LIMITS) as running:
        yield running


# -- a small HTTP/1.1 response parser --------------------------------------------------------------


@dataclass
class Response:
    status_line: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    complete: bool  # False when the connection ended inside the body

    def header(self, name: bytes) -> bytes | None:
        values = [value for key, value in self.headers if key == name]
        assert len(values) <= 1, f"repeated {name!r} header: {self.headers}"
        return values[0] if values else None


def parse_responses(data: bytes) -> list[Response]:
    """Split what the server sent into responses; fail on anything that is not HTTP/1.1."""
    responses = []
    while data:
        head, separator, data = data.partition(b"\r\n\r\n")
        assert separator, f"incomplete response head: {head!r}"
        status_line, *lines = head.split(b"\r\n")
        version, status, _reason = status_line.split(b" ", 2)
        assert version == b"HTTP/1.1" and status.isdigit() and len(status) == 3, status_line
        headers = []
        for line in lines:
            name, colon, value = line.partition(b":")
            assert colon and name and name == name.strip(), f"malformed header line {line!r}"
            assert not any(c in line for c in b"\r\n\0"), f"CR, LF or NUL in {line!r}"
            headers.append((name.lower(), value.strip(b" \t")))
        response = Response(status_line.decode("ascii"), headers, b"", True)
        if int(status) < 200 or int(status) in (204, 304):
            pass  # no body
        elif response.header(b"transfer-encoding") == b"chunked":
            response.body, data, response.complete = _parse_chunked(data)
        elif (length := response.header(b"content-length")) is not None:
            size = int(length)
            response.body, data = data[:size], data[size:]
            response.complete = len(response.body) == size
        else:
            response.body, data = data, b""  # delimited by the close
        responses.append(response)
    return responses


def _parse_chunked(data: bytes) -> tuple[bytes, bytes, bool]:
    """(body, what follows the body, whether the last chunk arrived)."""
    content = b""
    while True:
        size_line, separator, rest = data.partition(b"\r\n")
        if not separator:
            return content, b"", False
        size = int(size_line, 16)
        if size == 0:
            assert rest[:2] == b"\r\n", f"unexpected trailer {rest!r}"
            return content, rest[2:], True
        if len(rest) < size + 2:
            return content + rest[:size], b"", False
        assert rest[size : size + 2] == b"\r\n", f"chunk of {size} bytes not followed by CRLF"
        content += rest[:size]
        data = rest[size + 2 :]


# -- talking to the server -------------------------------------------------------------------------


def read_until_closed(sock: socket.socket) -> tuple[bytes, bool]:
    """Everything the server sends, and whether it then closed the connection (False: it was
    still open after READ_TIMEOUT)."""
    sock.settimeout(READ_TIMEOUT)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except TimeoutError:
        return b"".join(chunks), False
    except ConnectionResetError:
        pass
    return b"".join(chunks), True


Sender = Callable[[socket.socket], None]


def exchange(server: RunningServer, send: bytes | Sender) -> tuple[bytes, list[Response]]:
    """Connect, send (bytes, or a function that talks on the socket), read until closed."""
    with socket.create_connection((server.host, server.port), timeout=READ_TIMEOUT) as sock:
        if isinstance(send, bytes):
            sock.sendall(send)
        else:
            send(sock)
        data, closed = read_until_closed(sock)
    assert closed, f"the server kept the connection open; it sent {data!r}"
    return data, parse_responses(data)


def assert_still_serving(server: RunningServer) -> None:
    assert server.thread.is_alive(), "the server thread is gone"
    _, responses = exchange(server, b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert [(r.status_line, r.body) for r in responses] == [(OK, b"hello")]


def wait_for_record(path: str, done: Callable[[list[Any]], bool]) -> list[Any]:
    """What the app recorded for `path`, once `done` holds (the app runs in another thread)."""
    deadline = time.monotonic() + READ_TIMEOUT
    while time.monotonic() < deadline:
        seen = RECORDS.get(path, [])
        if done(seen):
            return list(seen)
        time.sleep(0.01)
    raise AssertionError(f"app record for {path}: {RECORDS.get(path)}")


def request(
    path: str, *headers: bytes, method: bytes = b"GET", content: bytes = b"", close: bool = False
) -> bytes:
    lines = [b"%s %s HTTP/1.1" % (method, path.encode()), b"Host: x", *headers]
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + content


# -- request smuggling and malformed heads: all 400, then close ------------------------------------

# Each carries a second request where a lenient parser would find one, so answering it would
# show up as a second response.
SMUGGLED = b"GET /record/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
POST = b"POST /record/body HTTP/1.1\r\nHost: x\r\n"
# A Content-Length that makes SMUGGLED the body; and one that covers "0\r\n\r\n" + SMUGGLED.
AS_BODY = b"%d" % len(SMUGGLED)
AS_CHUNKED_BODY = b"%d" % len(b"0\r\n\r\n" + SMUGGLED)
CHUNKED = POST + b"Transfer-Encoding: chunked\r\n\r\n"

SMUGGLING = [
    pytest.param(
        POST
        + b"Content-Length: %s\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" % AS_CHUNKED_BODY
        + SMUGGLED,
        id="content-length-then-transfer-encoding",
    ),
    pytest.param(
        POST
        + b"Transfer-Encoding: chunked\r\nContent-Length: %s\r\n\r\n0\r\n\r\n" % AS_CHUNKED_BODY
        + SMUGGLED,
        id="transfer-encoding-then-content-length",
    ),
    pytest.param(
        POST + b"Content-Length: 0\r\nContent-Length: %s\r\n\r\n" % AS_BODY + SMUGGLED,
        id="duplicate-content-length-different",
    ),
    pytest.param(
        POST + b"Content-Length: %s\r\nContent-Length: %s\r\n\r\n" % (AS_BODY, AS_BODY) + SMUGGLED,
        id="duplicate-content-length-same",
    ),
    pytest.param(
        POST + b"Content-Length: %s, %s\r\n\r\n" % (AS_BODY, AS_BODY) + SMUGGLED,
        id="comma-listed-content-length",
    ),
    pytest.param(
        POST + b"Content-Length: 0,%s\r\n\r\n" % AS_BODY + SMUGGLED, id="comma-listed-different"
    ),
    pytest.param(
        POST + b"Content-Length: +%s\r\n\r\n" % AS_BODY + SMUGGLED, id="signed-content-length"
    ),
    pytest.param(
        POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n" + SMUGGLED,
        id="transfer-encoding-chunked-gzip",
    ),
    pytest.param(
        POST + b"Transfer-Encoding: gzip\r\n\r\n0\r\n\r\n" + SMUGGLED,
        id="transfer-encoding-gzip",
    ),
    pytest.param(
        POST + b"Transfer-Encoding: identity\r\n\r\n0\r\n\r\n" + SMUGGLED,
        id="transfer-encoding-identity",
    ),
    pytest.param(
        POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        id="transfer-encoding-chunked-twice",
    ),
    pytest.param(CHUNKED + b"zz\r\nhello\r\n0\r\n\r\n" + SMUGGLED, id="chunk-size-not-hex"),
    pytest.param(CHUNKED + b"-5\r\nhello\r\n0\r\n\r\n" + SMUGGLED, id="chunk-size-negative"),
    pytest.param(CHUNKED + b"0x5\r\nhello\r\n0\r\n\r\n" + SMUGGLED, id="chunk-size-0x-prefix"),
    pytest.param(CHUNKED + b"5 \r\nhello\r\n0\r\n\r\n" + SMUGGLED, id="chunk-size-trailing-space"),
    pytest.param(
        CHUNKED + b"10000000000000005\r\nhello\r\n0\r\n\r\n" + SMUGGLED, id="chunk-size-overflow"
    ),
    pytest.param(
        CHUNKED + b"5\r\nhello" + SMUGGLED + b"\r\n0\r\n\r\n", id="chunk-longer-than-announced"
    ),
    pytest.param(CHUNKED + b"5\r\nhello0\r\n\r\n" + SMUGGLED, id="chunk-missing-crlf"),
    pytest.param(CHUNKED + b"5\nhello\n0\n\n" + SMUGGLED, id="chunk-bare-lf"),
    pytest.param(b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", id="space-before-colon"),
    pytest.param(
        POST + b"Content-Length : %s\r\n\r\n" % AS_BODY + SMUGGLED, id="space-before-colon-cl"
    ),
    pytest.param(b"GET / HTTP/1.1\r\nHost\t: x\r\n\r\n", id="tab-before-colon"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n b\r\n\r\n", id="obs-fold-space"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\tb\r\n\r\n", id="obs-fold-tab"),
    pytest.param(b"GET / HTTP/1.1\r\n Host: x\r\n\r\n", id="first-header-indented"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\x002\r\n\r\n", id="nul-in-header-value"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r2\r\n\r\n", id="cr-in-header-value"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\n2\r\n\r\n", id="lf-in-header-value"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\x7f\r\n\r\n", id="del-in-header-value"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nX@A: 1\r\n\r\n", id="invalid-header-name"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n: 1\r\n\r\n", id="empty-header-name"),
    pytest.param(b"GET / HTTP/1.1\nHost: x\r\n\r\n", id="bare-lf-after-request-line"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\n\r\n", id="bare-lf-after-header"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\n", id="bare-lf-ending-head"),
    pytest.param(b"GET / HTTP/1.1\nHost: x\n\n", id="bare-lf-everywhere"),
    pytest.param(b"GET / HTTP/1.1\r\n\r\n", id="http11-without-host"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", id="repeated-host"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n", id="repeated-host-same"),
    pytest.param(b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", id="http-1.2"),
    pytest.param(b"GET / HTTP/1.10\r\nHost: x\r\n\r\n", id="http-1.10"),
    pytest.param(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", id="http-2.0"),
    pytest.param(b"GET / HTTP/0.9\r\nHost: x\r\n\r\n", id="http-0.9"),
    pytest.param(b"GET / HTTP/3.0\r\nHost: x\r\n\r\n", id="http-3.0"),
    pytest.param(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", id="http2-preface"),
    pytest.param(b"FOO / HTTP/1.1\r\nHost: x\r\n\r\n", id="unknown-method"),
    pytest.param(b"get / HTTP/1.1\r\nHost: x\r\n\r\n", id="lowercase-method"),
    pytest.param(b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n", id="method-not-a-token"),
    pytest.param(b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", id="space-in-target"),
    pytest.param(b"GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n", id="tab-in-target"),
    pytest.param(b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n", id="control-byte-in-target"),
    pytest.param(b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", id="utf8-in-path"),
    pytest.param(b"GET /?q=\xff HTTP/1.1\r\nHost: x\r\n\r\n", id="non-ascii-in-query"),
    pytest.param(b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", id="space-after-version"),
]


@pytest.mark.parametrize("data", SMUGGLING)
def test_malformed_request_gets_400_and_close(server: RunningServer, data: bytes) -> None:
    _, responses = exchange(server, data)

    assert [r.status_line for r in responses] == [BAD_REQUEST]
    assert responses[0].body == b"Bad Request"
    assert responses[0].header(b"connection") == b"close"
    assert_still_serving(server)
    assert "/record/smuggled" not in RECORDS


# -- limits and deadlines --------------------------------------------------------------------------


def send_endless_header_line(sock: socket.socket) -> None:
    """200 KB of one header line, in pieces, never a CRLF: the server must answer once it has
    read about HEAD_BUDGET bytes, not buffer the whole line."""
    sock.sendall(b"GET /record/endless HTTP/1.1\r\nHost: x\r\nX-Endless: ")
    sent, total, piece = 0, 200 * 1024, b"a" * 4096
    while sent < total:
        if select.select([sock], [], [], 0.05)[0]:
            break  # the server answered
        try:
            sock.sendall(piece)
        except OSError:
            break  # ... and closed
        sent += len(piece)
    assert sent < HEAD_BUDGET + 8 * len(piece), f"the server read {sent} bytes of one header"


def send_half_head_then_stop(sock: socket.socket) -> None:
    sock.sendall(b"GET /record/slow HTTP/1.1\r\nHost: x\r\nX-A: 1")


def send_head_a_byte_at_a_time(sock: socket.socket) -> None:
    """Slowloris: bytes keep coming, but the head is never done; the header deadline holds."""
    sock.sendall(b"GET /record/trickle HTTP/1.1\r\nHost: x\r\nX-A: ")
    deadline = time.monotonic() + 3.0  # six header timeouts
    while time.monotonic() < deadline:
        if select.select([sock], [], [], 0.05)[0]:
            return  # the server answered
        try:
            sock.sendall(b"a")
        except OSError:
            return
    raise AssertionError("the server let a head trickle in for longer than its header timeout")


def send_nothing(sock: socket.socket) -> None:
    pass


def chunk(size: int) -> bytes:
    return b"%x\r\n%s\r\n" % (size, b"x" * size)


LINE = LIMITS["limit_request_line"]
FIELDS = LIMITS["limit_request_fields"]
BODY = LIMITS["limit_request_body"]
LIMIT_CASES = [
    # (what the client sends, status lines it gets, request path, what the app saw or None)
    pytest.param(
        request("/record/" + "a" * (LINE - 8), close=True),
        [OK],
        "/record/" + "a" * (LINE - 8),
        ["http.request"],
        id="target-at-limit_request_line",
    ),
    pytest.param(
        request("/record/" + "a" * (LINE - 7)),
        [status_line(414)],
        "/record/" + "a" * (LINE - 7),
        None,
        id="target-over-limit_request_line",
    ),
    pytest.param(
        request(
            "/record/fields-at-limit", *[b"X-%d: 1" % i for i in range(FIELDS - 2)], close=True
        ),
        [OK],
        "/record/fields-at-limit",
        ["http.request"],
        id="fields-at-limit_request_fields",
    ),
    pytest.param(
        request("/record/fields-over", *[b"X-%d: 1" % i for i in range(FIELDS)]),
        [status_line(431)],
        "/record/fields-over",
        None,
        id="fields-over-limit_request_fields",
    ),
    pytest.param(
        request("/record/header-size", *[b"X-%d: %s" % (i, b"v" * 1500) for i in range(3)]),
        [status_line(431)],
        "/record/header-size",
        None,
        id="header-block-over-limit_request_header_size",
    ),
    pytest.param(
        send_endless_header_line,
        [status_line(431)],
        "/record/endless",
        None,
        id="endless-header-line",
    ),
    pytest.param(
        request("/record/cl-at-limit", b"Content-Length: %d" % BODY, method=b"POST", close=True)
        + b"x" * BODY,
        [OK],
        "/record/cl-at-limit",
        ["http.request"],
        id="content-length-at-limit_request_body",
    ),
    pytest.param(
        request("/record/cl-over", b"Content-Length: %d" % (BODY + 1), method=b"POST"),
        [status_line(413)],
        "/record/cl-over",
        None,
        id="content-length-over-limit_request_body",
    ),
    pytest.param(
        request("/record/chunked-over", b"Transfer-Encoding: chunked", method=b"POST")
        + chunk(BODY // 2 + 1)
        + chunk(BODY // 2)
        + b"0\r\n\r\n",
        [status_line(413)],
        "/record/chunked-over",
        None,  # the whole body came with the head: refused before the app was started
        id="chunked-body-over-limit_request_body",
    ),
    pytest.param(
        send_half_head_then_stop,
        [status_line(408)],
        "/record/slow",
        None,
        id="half-a-head-then-silence",
    ),
    pytest.param(
        send_head_a_byte_at_a_time,
        [status_line(408)],
        "/record/trickle",
        None,
        id="head-trickling-in",
    ),
    pytest.param(send_nothing, [], None, None, id="connection-that-sends-nothing"),
    pytest.param(
        request("/record/idle"),
        [OK],
        "/record/idle",
        ["http.request"],
        id="idle-keep-alive-connection",
    ),
]


@pytest.mark.parametrize(("send", "expected", "path", "app_saw"), LIMIT_CASES)
def test_limits(
    server: RunningServer,
    send: bytes | Sender,
    expected: list[str],
    path: str | None,
    app_saw: list[str] | None,
) -> None:
    data, responses = exchange(server, send)

    assert [r.status_line for r in responses] == expected, data
    if not expected:
        assert data == b""
    elif expected != [OK]:
        assert responses[0].header(b"connection") == b"close"
    elif isinstance(send, bytes) and b"Connection: close" not in send:
        # Kept alive: the close came from the idle timeout.
        assert responses[0].header(b"connection") is None
    assert_still_serving(server)
    if path is not None and app_saw is None:
        assert path not in RECORDS, "the app was called"
    elif path is not None:
        assert wait_for_record(path, lambda seen: len(seen) >= len(app_saw)) == app_saw


# -- a misbehaving app -----------------------------------------------------------------------------


class Expect(NamedTuple):
    status_line: str
    body: bytes
    complete: bool = True


INTERNAL_ERROR_RESPONSE = Expect(INTERNAL_ERROR, b"Internal Server Error")
HELLO = Expect(OK, b"hello")

CR_LF_NUL = (RuntimeError, "Invalid response from ASGI application: CR, LF or NUL in a response")
NOT_BYTES = (RuntimeError, "Invalid response from ASGI application: header names and values must")
BAD_STATUS = (RuntimeError, "Invalid response from ASGI application: status")
TOO_LONG = (RuntimeError, "Response content is longer than its Content-Length.")
NOT_A_MESSAGE = (RuntimeError, "Invalid ASGI message: a dict was expected, not")
RESPONSE_CASES = [
    # (path, the responses the client gets, (exception the app's `send` raised, its message))
    pytest.param("/split-value", [INTERNAL_ERROR_RESPONSE], CR_LF_NUL, id="crlf-in-value"),
    pytest.param(
        "/split-name",
        [INTERNAL_ERROR_RESPONSE],
        (RuntimeError, "Invalid response from ASGI application: invalid header name"),
        id="crlf-in-name",
    ),
    pytest.param("/nul-value", [INTERNAL_ERROR_RESPONSE], CR_LF_NUL, id="nul-in-value"),
    pytest.param("/str-value", [INTERNAL_ERROR_RESPONSE], NOT_BYTES, id="str-header-value"),
    pytest.param(
        "/str-name",
        [INTERNAL_ERROR_RESPONSE],
        (RuntimeError, "Invalid response from ASGI application: invalid header name 'x-ok'"),
        id="str-header-name",
    ),
    pytest.param(
        "/bad-name",
        [INTERNAL_ERROR_RESPONSE],
        (RuntimeError, "Invalid response from ASGI application: invalid header name b'bad name'"),
        id="invalid-header-name",
    ),
    pytest.param("/status-str", [INTERNAL_ERROR_RESPONSE], BAD_STATUS, id="status-str"),
    pytest.param("/status-none", [INTERNAL_ERROR_RESPONSE], BAD_STATUS, id="status-none"),
    pytest.param("/raise", [INTERNAL_ERROR_RESPONSE], None, id="raise-before-start"),
    pytest.param("/raise-after-start", [INTERNAL_ERROR_RESPONSE], None, id="raise-after-start"),
    pytest.param(
        "/raise-after-body", [Expect(OK, b"partial", complete=False)], None, id="raise-after-body"
    ),
    pytest.param("/no-response", [INTERNAL_ERROR_RESPONSE], None, id="return-without-response"),
    # The head and the body go out in one write, so neither does: the connection just closes.
    pytest.param("/longer-than-content-length", [], TOO_LONG, id="body-over-content-length"),
    pytest.param(
        "/longer-than-content-length-later",
        [Expect(OK, b"01234")],
        TOO_LONG,
        id="second-body-over-content-length",
    ),
    pytest.param(
        "/send-after-complete",
        [Expect(OK, b"done"), HELLO],
        (RuntimeError, "Unexpected ASGI message 'http.response.body' when complete."),
        id="send-after-complete",
    ),
    pytest.param(
        "/read-only-messages", [Expect(OK, b"read-only"), HELLO], None, id="mapping-messages"
    ),
    pytest.param("/message-none", [INTERNAL_ERROR_RESPONSE], NOT_A_MESSAGE, id="message-none"),
    pytest.param("/message-list", [INTERNAL_ERROR_RESPONSE], NOT_A_MESSAGE, id="message-list"),
]


@pytest.mark.parametrize(("path", "expected", "app_error"), RESPONSE_CASES)
def test_misbehaving_app(
    server: RunningServer,
    path: str,
    expected: list[Expect],
    app_error: tuple[type[Exception], str] | None,
) -> None:
    # A keep-alive request with a second one behind it: the server must not answer the second
    # once the first response is broken, and must not let the app's bytes pose as a response.
    data, responses = exchange(server, request(path) + request("/hello", close=True))

    assert [Expect(r.status_line, r.body, r.complete) for r in responses] == expected
    for response in responses:
        assert response.header(b"x-injected") is None
        assert response.header(b"x-ok") is None
    if expected[:1] == [INTERNAL_ERROR_RESPONSE]:
        assert responses[0].header(b"content-type") == b"text/plain; charset=utf-8"
        assert responses[0].header(b"connection") == b"close"
    assert b"secret-detail" not in data
    assert b"Traceback" not in data
    assert_still_serving(server)
    if app_error is None:
        assert RECORDS[path] == []
    else:
        seen = wait_for_record(path, bool)
        error_type, message = app_error
        assert len(seen) == 1 and isinstance(seen[0], error_type), seen
        assert str(seen[0]).startswith(message)
        if error_type is RuntimeError:
            assert type(seen[0]) is RuntimeError


def test_send_after_client_disconnect_raises_client_disconnected(server: RunningServer) -> None:
    with socket.create_connection((server.host, server.port)) as sock:
        sock.sendall(request("/send-after-disconnect"))
        wait_for_record("/send-after-disconnect", bool)  # the app has the request

    seen = wait_for_record("/send-after-disconnect", lambda seen: len(seen) == 3)
    assert seen[:2] == ["http.request", "http.disconnect"]
    assert isinstance(seen[2], ClientDisconnected) and isinstance(seen[2], OSError)
    assert_still_serving(server)


# -- pipelining ------------------------------------------------------------------------------------

PIPELINING = [
    pytest.param(
        request("/path/a") + request("/path/b") + request("/path/c", close=True),
        [Expect(OK, b"a"), Expect(OK, b"b"), Expect(OK, b"c")],
        id="three-requests-in-one-packet",
    ),
    pytest.param(
        request("/record/pipelined-body", b"Content-Length: 5", method=b"POST", content=b"hello")
        + request("/path/after-body", close=True),
        [Expect(OK, b"hello"), Expect(OK, b"after-body")],
        id="request-with-body-then-another",
    ),
    pytest.param(
        request("/path/first") + b"GARBAGE\r\n\r\n",
        [Expect(OK, b"first"), Expect(BAD_REQUEST, b"Bad Request")],
        id="valid-then-garbage",
    ),
    pytest.param(
        request("/path/first") + b"GET /path/second HTTP/1.1\r\n\r\n",
        [Expect(OK, b"first"), Expect(BAD_REQUEST, b"Bad Request")],
        id="valid-then-missing-host",
    ),
    pytest.param(
        request("/path/first") + request("/path/" + "a" * LINE),
        [Expect(OK, b"first"), Expect(status_line(414), HTTPStatus(414).phrase.encode())],
        id="valid-then-target-too-long",
    ),
]


@pytest.mark.parametrize(("data", "expected"), PIPELINING)
def test_pipelining(server: RunningServer, data: bytes, expected: list[Expect]) -> None:
    _, responses = exchange(server, data)

    assert [Expect(r.status_line, r.body, r.complete) for r in responses] == expected
    assert_still_serving(server)
