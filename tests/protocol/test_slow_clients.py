"""The slow-client deadlines, from raw sockets against a real server: a head that never ends
(--timeout-request-header, 10 s by default), a body that stops arriving while the app waits for
it (--timeout-request-body), a response the client stops reading (--timeout-send). Each counts
the client's silence, not the whole transfer: a slow client that keeps going is served, and so
is a client whose app is the slow one.

Responses are parsed by h11 (tests/wire.py); what the server recorded comes from an observer.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator

import h11
import pytest

from monoceros.config import HttpLimits
from monoceros.errors import ClientDisconnected
from monoceros.protocols.events import RequestFinished
from monoceros.types import Receive, Scope, Send
from tests.apps import answer_with_body_size
from tests.utils import Recorder, RunningServer, run_server
from tests.wire import TIMEOUT, request, wire

SHORT = 0.5  # the deadlines under test, in seconds (the server's tick adds up to 0.25)
MiB = 1024 * 1024
# What the app saw of each request body, by path: the bytes, or None for a disconnect.
SEEN: dict[str, bytes | None] = {}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    path = scope["path"]
    if path == "/slow-app":  # reads its body only after a while (longer than the deadlines)
        await asyncio.sleep(3 * SHORT)
    if path == "/download":  # 64 MiB: far more than the socket buffers hold
        await send({"type": "http.response.start", "status": 200, "headers": []})
        with contextlib.suppress(ClientDisconnected):
            for _ in range(64):
                await send({"type": "http.response.body", "body": b"x" * MiB, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            SEEN[path] = b"complete"
            return
        SEEN[path] = None
        return
    if path == "/download-at-once":  # 64 MiB in one message: the app is done at once
        body = b"x" * (64 * MiB)
        headers = [(b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    await answer_with_body_size(path, receive, send, SEEN)


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def server(recorder: Recorder) -> Iterator[RunningServer]:
    with run_server(
        app,
        observer=recorder,
        lifespan="off",
        timeout_request_body=SHORT,
        timeout_send=SHORT,
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh() -> None:
    SEEN.clear()


def record_for(recorder: Recorder, path: str) -> RequestFinished:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        for record in recorder.requests:
            if record.scope["path"] == path:
                return record
        time.sleep(0.01)
    raise AssertionError(f"no record for {path}: {recorder.requests}")


def post(path: str, length: int) -> bytes:
    return request(path, f"Content-Length: {length}", method="POST")


# -- the header deadline ---------------------------------------------------------------------------


def test_header_deadline_defaults_to_10_seconds() -> None:
    assert HttpLimits().header_timeout == 10.0


def test_half_a_head_gets_408_within_the_default_deadline() -> None:
    """With no option given: the 10 s default is in force (a connection that stalls inside
    its head is answered 408 and closed well before the 20 s of old)."""
    with run_server(app, lifespan="off") as running, wire(running) as connection:
        connection.sock.settimeout(15.0)
        started = time.monotonic()
        connection.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1")
        response = connection.response()
        waited = time.monotonic() - started
        assert response.status == 408
        assert connection.closed_by_server()
    assert 9.5 < waited < 15.0, waited


# -- the body deadline -----------------------------------------------------------------------------


def test_body_that_stops_arriving_gets_408(server: RunningServer, recorder: Recorder) -> None:
    with wire(server) as connection:
        connection.send(post("/stalled-body", 100) + b"x" * 40)
        response = connection.response("POST")
        assert response.status == 408
        assert response.header(b"connection") == b"close"
        assert connection.closed_by_server()
    assert SEEN["/stalled-body"] is None  # the app saw a disconnect, not a short body
    record = record_for(recorder, "/stalled-body")
    assert (record.status, record.outcome, record.bytes_received) == (408, "rejected", 40)
    assert (None, "body_timeout") in recorder.rejected


@pytest.mark.parametrize(
    "path",
    [
        "/stream-then-read",
        # The body all sent, the trailers waiting for the upload: still under way (found by
        # the HTTP/2 fuzz target, where a 408 went out after it).
        "/trailers-then-read",
    ],
)
def test_body_that_stops_after_the_response_began_is_cut(
    server: RunningServer, recorder: Recorder, path: str
) -> None:
    """A response under way cannot become a 408: the connection is cut, and the access log
    says so."""
    with wire(server) as connection:
        head = request(path, "Content-Length: 100", "TE: trailers", method="POST")
        connection.send(head + b"x" * 40)
        connection.expect_response("POST")
        with pytest.raises(h11.RemoteProtocolError, match="incomplete chunked read"):
            connection.finish_response()
    assert SEEN[path] is None
    assert record_for(recorder, path).outcome == "aborted"


def test_body_trickling_in_is_not_cut(server: RunningServer) -> None:
    """The deadline counts silence between reads, not the whole body (nginx's
    client_body_timeout does too)."""
    with wire(server) as connection:
        connection.send(post("/trickle", 8))
        for _ in range(8):  # 8 x 0.1 s: longer than the deadline in all, never silent as long
            time.sleep(SHORT * 0.2)
            connection.send(b"x")
        response = connection.response("POST")
        assert (response.status, response.body) == (200, b"8 bytes")


def test_slow_app_is_not_the_clients_fault(server: RunningServer) -> None:
    """The client sent a body larger than the server buffers; the app reads it only after
    three deadlines: reading was paused meanwhile, so nobody waited on the client."""
    size = 4 * MiB
    with wire(server) as connection:
        connection.send(post("/slow-app", size))
        connection.send(b"x" * size)
        response = connection.response("POST")
        assert (response.status, response.body) == (200, b"%d bytes" % size)


def test_client_waiting_for_100_continue_is_not_timed_out(server: RunningServer) -> None:
    """A client that sent `Expect: 100-continue` waits for the app's first `receive` before it
    sends the body: until then its silence is the app's doing."""
    with wire(server) as connection:
        connection.send(post("/slow-app", 5)[:-2] + b"Expect: 100-continue\r\n\r\n")
        connection.expect_response("POST")
        assert connection.next_event().status_code == 100  # after three deadlines
        connection.send(b"hello")
        response = connection.finish_response()
        assert (response.status, response.body) == (200, b"5 bytes")


# -- the send deadline -----------------------------------------------------------------------------


def test_client_that_stops_reading_is_cut(server: RunningServer, recorder: Recorder) -> None:
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        sock.sendall(request("/download"))
        record = record_for(recorder, "/download")  # never reads a byte
    assert (record.status, record.outcome) == (200, "aborted")
    assert record.bytes_sent < 64 * MiB
    deadline = time.monotonic() + TIMEOUT
    while "/download" not in SEEN and time.monotonic() < deadline:
        time.sleep(0.01)
    assert SEEN["/download"] is None  # the app's send raised ClientDisconnected


def test_closing_connection_whose_client_reads_nothing_is_cut(server: RunningServer) -> None:
    """The response is complete (the app wrote it in one go) and the connection closing, but
    the client reads none of it: the transport would hold its 64 MiB and the socket for
    good, waiting to write them. After --timeout-send it is cut."""
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        port = sock.getsockname()[1]
        sock.sendall(request("/download-at-once", "Connection: close"))
        time.sleep(0.1)  # the response is written and the connection closing
        assert ours(server, port), "the connection closed before the test could see it"
        deadline = time.monotonic() + TIMEOUT
        while ours(server, port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not ours(server, port), "the server holds on to a client that reads nothing"


def ours(server: RunningServer, port: int) -> bool:
    connections = list(server.server.state.connections)
    return any(c.peer is not None and c.peer[1] == port for c in connections)


def test_slow_reader_that_keeps_reading_is_served(server: RunningServer) -> None:
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(request("/download", "Connection: close"))
        received = 0
        while chunk := sock.recv(MiB):
            received += len(chunk)
            if received < 4 * MiB:
                time.sleep(0.01)  # slow at first, but never silent for a deadline
    assert received > 64 * MiB  # the head and the chunked framing besides
    assert SEEN["/download"] == b"complete"
