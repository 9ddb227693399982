"""Regression tests for the defects an in-process fuzzer found in the HTTP/1.1 path.

Each case is the fuzzer's input (or its minimal form) sent from a raw socket to a real server;
what comes back is parsed by h11 (tests/wire.py), so a response split by a stray interim
response or a body where none belongs fails the parse, not a substring check. The server's
header deadline is long (30 s) so that a hang shows up as a connection still open after the
read timeout.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import h11
import pytest

from monoceros.types import Receive, Scope, Send
from tests.apps import read_all, send_text
from tests.utils import Recorder, RunningServer, ServerProcess, run_server
from tests.wire import TIMEOUT, protocol_for, request, wire

# (method, path) of every request that reached the app, in order.
REACHED: list[tuple[str, str]] = []
GATE = threading.Event()


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http"
    path = scope["path"]
    REACHED.append((scope["method"], path))
    if path == "/echo":
        body = await read_all(receive)
        if body is not None:
            await send_text(send, body)
    elif path == "/ignore-body":
        await send_text(send, b"ignored")
    elif path in ("/stream-then-read", "/start-then-read"):
        # A response under way (or only started) before the body is read.
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if path == "/stream-then-read":
            await send({"type": "http.response.body", "body": b"first", "more_body": True})
        body = await read_all(receive)
        if body is not None:
            await send({"type": "http.response.body", "body": body})
    elif scope["method"] == "CONNECT":
        await send_text(send, b"no tunnels here", status=405)
    elif path == "/gated":
        await asyncio.get_running_loop().run_in_executor(None, GATE.wait, TIMEOUT)
        await send_text(send, b"gated")
    else:
        await send_text(send, b"ok")


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with run_server(
        app,
        lifespan="off",
        timeout_request_header=30.0,
        limit_request_fields=20,
        limit_request_header_size=4096,
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_records() -> None:
    REACHED.clear()
    GATE.clear()


def wait_reached(count: int) -> None:
    deadline = time.monotonic() + TIMEOUT
    while len(REACHED) < count and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(REACHED) >= count, REACHED


def assert_still_serving(server: RunningServer) -> None:
    with wire(server) as connection:
        connection.send(request("/hello"))
        assert connection.response().body == b"ok"


POST_GZIP = request("/echo", "Transfer-Encoding: gzip", method="POST")
POST_BAD_CHUNK = request("/echo", "Transfer-Encoding: chunked", method="POST") + b"zz\r\n"


# -- 1. a rejected request never reaches the app, and its 400 is never lost ------------------------


@pytest.mark.parametrize("rejected", [POST_GZIP, POST_BAD_CHUNK], ids=["te-gzip", "bad-chunk"])
def test_rejected_request_behind_a_valid_one(server: RunningServer, rejected: bytes) -> None:
    """Earlier pipelined requests are answered in order, then the 400, then the close."""
    with wire(server) as connection:
        connection.send(request("/hello") + rejected)
        assert connection.response().body == b"ok"
        bad = connection.response("POST")
        assert bad.status == 400
        assert bad.header(b"connection") == b"close"
        assert connection.closed_by_server()
    assert REACHED == [("GET", "/hello")]
    assert_still_serving(server)


@pytest.mark.parametrize(
    "rejected",
    [
        POST_GZIP,
        POST_BAD_CHUNK,
        request("/ignore-body", "Transfer-Encoding: chunked", method="POST") + b"zz\r\n",
    ],
    ids=["te-gzip", "bad-chunk", "bad-chunk-app-not-reading"],
)
def test_rejected_request_alone_never_starts_the_app(
    server: RunningServer, rejected: bytes
) -> None:
    with wire(server) as connection:
        connection.send(rejected)
        assert connection.response("POST").status == 400
        assert connection.closed_by_server()
    assert REACHED == []


# -- 2. an upgrade we do not perform is ignored, body and all --------------------------------------


# The same 13-byte JSON body, by Content-Length and chunked.
UPGRADE_BODIES = pytest.mark.parametrize(
    ("framing", "content"),
    [
        ("Content-Length: 13", b'{"amount":10}'),
        ("Transfer-Encoding: chunked", b'd\r\n{"amount":10}\r\n0\r\n\r\n'),
    ],
    ids=["content-length", "chunked"],
)


@UPGRADE_BODIES
def test_h2c_upgrade_request_is_served_with_its_body(
    server: RunningServer, framing: str, content: bytes
) -> None:
    """What `curl --http2 -d ...` sends: `Connection: Upgrade, HTTP2-Settings`, `Upgrade: h2c`.
    RFC 9110 section 7.8: a server may ignore Upgrade; the request is then served as HTTP/1.1
    and the connection goes on as HTTP/1.1."""
    upgrade = request(
        "/echo",
        "Connection: Upgrade, HTTP2-Settings",
        "Upgrade: h2c",
        "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA",
        framing,
        method="POST",
        body=content,
    )
    with wire(server) as connection:
        connection.send(upgrade + request("/hello"))
        echoed = connection.response("POST")
        assert echoed.status == 200
        assert echoed.body == b'{"amount":10}'
        assert connection.response().body == b"ok"
    assert REACHED == [("POST", "/echo"), ("GET", "/hello")]


@UPGRADE_BODIES
def test_http10_upgrade_request_is_served_with_its_body(
    server: RunningServer, framing: str, content: bytes
) -> None:
    """The fuzzer's finding: on HTTP/1.0 (no keep-alive) the parser refused the ignored
    upgrade's body as data after the last message, the exception escaped `data_received`, and
    the client got nothing. The body is the request's; the connection closes after the answer."""
    upgrade = request(
        "/echo",
        "Connection: Upgrade",
        "Upgrade: foo",
        framing,
        method="POST",
        body=content,
        version="1.0",
    )
    with wire(server) as connection:
        connection.send(upgrade)
        echoed = connection.response("POST")
        assert echoed.status == 200
        assert echoed.body == b'{"amount":10}'
        assert connection.closed_by_server()
    assert REACHED == [("POST", "/echo")]


def test_http10_upgrade_with_an_oversized_chunk_is_400(server: RunningServer) -> None:
    """The fuzzer's input, reduced: a chunk size that overflows, after an ignored upgrade."""
    with wire(server) as connection:
        connection.send(
            b"GET / HTTP/1.0\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocke x\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n"
        )
        assert connection.response().status == 400
        assert connection.closed_by_server()


def test_refused_body_of_an_ignored_upgrade_is_answered_as_its_request() -> None:
    """The reader feeds the parser a framing head of its own for an ignored upgrade's body;
    that head is not the request. A HEAD whose chunked body breaks gets a head-only 400, and
    the record names the request the client sent (it named the framing head: PUT /)."""
    recorder = Recorder()
    data = request(
        "/orig",
        "Connection: Upgrade",
        "Upgrade: foo",
        "Transfer-Encoding: chunked",
        method="HEAD",
        body=b"zz\r\n",
    )
    with (
        run_server(app, lifespan="off", observer=recorder) as running,
        wire(running) as connection,
    ):
        connection.send(data)
        response = connection.response("HEAD")
        assert response.status == 400
        # h11 read a bodiless response: any body bytes would be left over, here.
        assert connection.closed_by_server()
    [(record, reason)] = recorder.rejected
    assert record is not None
    assert (record.method, record.scope["path"], reason) == ("HEAD", "/orig", "bad_request")
    assert (b"upgrade", b"foo") in record.scope["headers"]
    assert REACHED == []


def test_trailers_after_an_ignored_upgrade_count_with_its_head(server: RunningServer) -> None:
    """The head's fields and the trailer's together stay within --limit-request-fields (20),
    as without the upgrade: the framing head must not stand in for the request's head."""
    fields = [f"X-{n}: {n}" for n in range(16)]
    trailers = b"".join(b"T-%d: %d\r\n" % (n, n) for n in range(10))
    data = request(
        "/echo",
        "Connection: Upgrade",
        "Upgrade: foo",
        "Transfer-Encoding: chunked",
        *fields,
        method="POST",
        body=b"2\r\nhi\r\n0\r\n" + trailers + b"\r\n",
    )
    with wire(server) as connection:
        connection.send(data)
        assert connection.response("POST").status == 431
        assert connection.closed_by_server()


def test_bodiless_upgrade_request_keeps_the_connection(server: RunningServer) -> None:
    with wire(server) as connection:
        connection.send(request("/hello", "Connection: Upgrade", "Upgrade: h2c"))
        assert connection.response().status == 200
        connection.send(request("/hello"))
        assert connection.response().body == b"ok"


def test_connect_to_an_authority_is_400(server: RunningServer) -> None:
    """CONNECT asks for a tunnel, which an ASGI server does not make, and its target (a host
    and port) has no place in an ASGI scope."""
    with wire(server) as connection:
        connection.send(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        assert connection.response("CONNECT").status == 400
        assert connection.closed_by_server()
    assert REACHED == []


def test_connect_with_a_path_is_answered_then_the_connection_closes(
    server: RunningServer,
) -> None:
    """What follows a CONNECT is a tunnel's bytes, not HTTP: the connection ends after the
    answer (here the app's, since an absolute-form target gives a path)."""
    with wire(server) as connection:
        connection.send(b"CONNECT http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
        assert connection.response("CONNECT").status == 405
        connection.send(b"\x16\x03\x01 not HTTP")
        assert connection.closed_by_server()
    assert REACHED == [("CONNECT", "/")]


# -- 3 and 4. 100 Continue only where it belongs ---------------------------------------------------


def test_no_100_continue_inside_a_started_response(server: RunningServer) -> None:
    """The app starts a streamed response, then reads the body the client holds back until
    it sees a 100 (or gives up waiting): once the final response has begun, no 100."""
    with wire(server) as connection:
        connection.send(
            request("/stream-then-read", "Expect: 100-continue", "Content-Length: 5", method="POST")
        )
        wait_reached(1)
        time.sleep(0.1)  # the head and the first chunk are out; the app waits for the body
        connection.send(b"hello")
        informational: list[int] = []
        connection.expect_response("POST")
        response = connection.finish_response(informational)
    assert informational == []
    assert response.status == 200
    assert response.body == b"firsthello"


def test_no_100_continue_after_the_head_of_a_head_response(server: RunningServer) -> None:
    with wire(server) as connection:
        connection.send(
            request("/stream-then-read", "Expect: 100-continue", "Content-Length: 5", method="HEAD")
        )
        assert connection.response("HEAD").status == 200
        assert connection.silent_for(0.2), connection.raw  # no 100 after the head
        connection.send(b"hello")  # the app reads it and completes the response
        assert connection.closed_by_server()  # with nothing more on the wire


def test_no_100_continue_for_http_10(server: RunningServer) -> None:
    """RFC 9110 section 10.1.1: a server must not send a 100 to an HTTP/1.0 client."""
    with wire(server) as connection:
        connection.send(
            request(
                "/echo", "Content-Length: 4", "Expect: 100-continue", method="POST", version="1.0"
            )
        )
        assert connection.silent_for(0.3), connection.raw
        connection.send(b"abcd")
        informational: list[int] = []
        connection.expect_response("POST")
        response = connection.finish_response(informational)
    assert informational == []
    assert response.body == b"abcd"


# -- 5. a hostile WebSocket handshake is a 400, and the log stays JSON -----------------------------

HANDSHAKE = (
    "Connection: Upgrade",
    "Upgrade: websocket",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
)
NON_ASCII = [
    pytest.param(
        request("/", "Upgrade: \xb8", "Upgrade: websocket", "Connection: Upgrade"), id="upgrade"
    ),
    pytest.param(request("/", *HANDSHAKE, "Connection: \xb8"), id="connection"),
    pytest.param(
        request("/", *HANDSHAKE[:3], "Sec-WebSocket-Version: \xb8"), id="sec-websocket-version"
    ),
    pytest.param(
        request("/", *HANDSHAKE[:2], "Sec-WebSocket-Key: \xb8", HANDSHAKE[3]),
        id="sec-websocket-key",
    ),
]


@pytest.mark.parametrize("handshake", NON_ASCII)
def test_non_ascii_websocket_handshake_is_400(server: RunningServer, handshake: bytes) -> None:
    with wire(server) as connection:
        connection.send(handshake)
        assert connection.response().status == 400
        assert connection.closed_by_server()
    assert REACHED == []
    assert_still_serving(server)


def test_hostile_handshakes_leave_every_log_line_json() -> None:
    """A real process with JSON logs: no traceback, no `--- Logging error ---`, one JSON
    object per line."""
    with ServerProcess(
        "tests.protocol.test_fuzz_findings:app", "--port", "0", "--log-format", "json"
    ) as process:
        url = process.wait_listening()
        port = int(url.rsplit(":", 1)[1])
        for case in NON_ASCII:
            (handshake,) = case.values
            with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
                sock.sendall(handshake)
                reply = sock.recv(65536)
            assert reply.startswith(b"HTTP/1.1 400 "), reply
        process.signal(signal.SIGTERM)
        assert process.wait() == 0
    lines = [json.loads(line) for line in process.lines]
    assert [line["status"] for line in lines if line.get("event") == "websocket"] == [400] * 4
    assert not [line for line in lines if line["level"] == "error"], lines


# -- 6. error responses to HEAD are only a head ----------------------------------------------------


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (request("/", "Content-Length: 999999999999", method="HEAD"), 413),
        (request("/", "X: \x01", method="HEAD"), 400),
    ],
    ids=["413", "400"],
)
def test_error_response_to_head_has_no_body(
    server: RunningServer, data: bytes, status: int
) -> None:
    with wire(server) as connection:
        connection.send(data)
        response = connection.response("HEAD")
        assert response.status == status
        # h11 read a bodiless response: any body bytes would be left over, here.
        assert connection.closed_by_server()


def test_timed_out_head_gets_a_bodiless_408() -> None:
    with (
        run_server(app, lifespan="off", timeout_request_header=0.3) as running,
        wire(running) as connection,
    ):
        connection.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n")
        response = connection.response("HEAD")
        assert response.status == 408
        assert connection.closed_by_server()


# -- 7. trailers count against the header limits ---------------------------------------------------


def test_endless_trailer_is_431(server: RunningServer) -> None:
    """A trailer field that never ends, sent in 2 KiB pieces: the server answers 431 once it
    has read about as much as a request head may hold, instead of buffering it all."""
    with wire(server) as connection:
        connection.send(
            request("/echo", "Transfer-Encoding: chunked", method="POST")
            + b"5\r\nhello\r\n0\r\nX-Endless: "
        )
        sent, piece = 0, b"a" * 2048
        while sent < 8 * 1024 * 1024 and connection.silent_for(0.01):
            try:
                connection.send(piece)
            except OSError:
                break  # the server answered and closed
            sent += len(piece)
        assert sent < 1024 * 1024, f"the server read {sent} bytes of one trailer field"
        connection.expect_response("POST")
        assert connection.finish_response().status == 431


@pytest.mark.parametrize(
    "trailers",
    [b"".join(b"X-T%d: 1\r\n" % n for n in range(25)), b"X-Big: " + b"b" * 5000 + b"\r\n"],
    ids=["too-many-fields", "too-many-bytes"],
)
def test_trailers_over_the_header_limits_are_431(server: RunningServer, trailers: bytes) -> None:
    with wire(server) as connection:
        connection.send(
            request("/echo", "Transfer-Encoding: chunked", method="POST")
            + b"5\r\nhello\r\n0\r\n"
            + trailers
            + b"\r\n"
        )
        connection.expect_response("POST")
        assert connection.finish_response().status == 431
        assert connection.closed_by_server()


def test_trailers_within_the_limits_are_accepted(server: RunningServer) -> None:
    with wire(server) as connection:
        connection.send(
            request("/echo", "Transfer-Encoding: chunked", method="POST")
            + b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n"
        )
        assert connection.response("POST").body == b"hello"


# -- 8. pipelining is bounded per connection, not per read -----------------------------------------


def test_pipelined_requests_wait_as_bytes_not_as_requests(server: RunningServer) -> None:
    count = 3000
    tiny = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
    with wire(server) as connection:
        connection.send(request("/gated") + tiny * count)  # ~100 KiB, read in few reads
        wait_reached(1)
        protocol = protocol_for(server, connection.port)
        time.sleep(0.2)  # let the server read all it will
        queued = len(protocol.reader.queue)
        GATE.set()
        assert connection.response().body == b"gated"
        for _ in range(count):
            assert connection.response().body == b"ok"
    assert queued <= 1, f"{queued} parsed requests queued behind the gated one"
    assert len(REACHED) == count + 1


# -- 9. a body that breaks after the app started answering -----------------------------------------


@dataclass
class Listener:
    host: str
    port: int


@pytest.fixture(scope="module")
def logged_server() -> Iterator[tuple[Listener, ServerProcess]]:
    """A real process with the JSON access log on: what it records is what users see."""
    with ServerProcess(
        "tests.protocol.test_fuzz_findings:app", "--port", "0", "--log-format", "json"
    ) as process:
        port = int(process.wait_listening().rsplit(":", 1)[1])
        yield Listener("127.0.0.1", port), process


def access_line(process: ServerProcess, path: str) -> dict[str, Any]:
    match = process.wait_for_line(rf'"event":"request".*"path":"{path}"')
    line: dict[str, Any] = json.loads(match.string)
    return line


@pytest.mark.parametrize(
    ("path", "status", "outcome"),
    [
        # Nothing of the response on the wire yet: the server can still answer 400.
        pytest.param("/start-then-read", 400, "rejected", id="nothing-written-400"),
        # The head and a chunk are out: cutting the connection is the only signal left.
        pytest.param("/stream-then-read", 200, "aborted", id="response-begun-aborted"),
    ],
)
def test_bad_body_after_the_app_started(
    logged_server: tuple[Listener, ServerProcess], path: str, status: int, outcome: str
) -> None:
    listener, process = logged_server
    with wire(listener) as connection:  # type: ignore[arg-type]
        connection.send(
            request(path, "Transfer-Encoding: chunked", method="POST") + b"5\r\nhello\r\n"
        )
        time.sleep(0.3)  # the app has called http.response.start (and sent what it sends)
        connection.send(b"zz\r\n")
        connection.expect_response("POST")
        if outcome == "rejected":
            assert connection.finish_response().status == 400
            assert connection.closed_by_server()
        else:
            with pytest.raises((AssertionError, h11.RemoteProtocolError)):
                connection.finish_response()  # cut off inside the chunked body
    line = access_line(process, path)
    assert (line["status"], line["outcome"]) == (status, outcome)


# -- 10. transfer codings we do not implement ------------------------------------------------------


@pytest.mark.parametrize(
    "codings", ["gzip, chunked", "deflate,chunked", "gzip\r\nTransfer-Encoding: chunked"]
)
def test_unimplemented_transfer_coding_is_501(server: RunningServer, codings: str) -> None:
    """RFC 9112 section 6.1: a server that receives a transfer coding it does not understand
    responds with 501 (chunked must still come last: otherwise it is a 400, test_hostile.py)."""
    data = request("/echo", f"Transfer-Encoding: {codings}", method="POST")
    with wire(server) as connection:
        connection.send(data + b"5\r\nhello\r\n0\r\n\r\n")
        response = connection.response("POST")
        assert response.status == 501
        assert response.header(b"connection") == b"close"
        assert connection.closed_by_server()
    assert REACHED == []
