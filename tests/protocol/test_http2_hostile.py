"""Hostile HTTP/2 peers: the known attacks on HTTP/2 servers (rapid reset, CONTINUATION flood,
HPACK bomb, PING and SETTINGS floods, a window kept shut), malformed frames, requests past
the server's limits, and slow clients (a body that stops arriving, a response nobody reads).
Each gets a clear answer (a status, RST_STREAM or GOAWAY with a code), the app is spared what
it should never see, and the server goes on serving."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Iterator

import hpack
import pytest

from monoceros.errors import ClientDisconnected
from monoceros.protocols.events import RequestFinished
from monoceros.protocols.http2 import MAX_CONTROL_FRAMES_PER_SECOND
from monoceros.types import Receive, Scope, Send
from tests.apps import answer_with_body_size, read_all
from tests.h2client import (
    CANCEL,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    ENHANCE_YOUR_CALM,
    GOAWAY,
    HEADERS,
    NO_ERROR,
    PING,
    PROTOCOL_ERROR,
    RST_STREAM,
    SETTINGS,
    TIMEOUT,
    WINDOW_UPDATE,
    FrameReader,
    H2Client,
    frame,
    frames_until_closed,
    goaway_code,
    raw_connection,
    request_block,
)
from tests.utils import Recorder, RunningServer, run_server

STARTED: list[str] = []
CHUNK = b"x" * 16384
CHUNKS_SENT: list[int] = []


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    path = scope["path"]
    STARTED.append(path)
    if scope["type"] == "websocket":  # accepts after a while, then waits for the end
        assert (await receive())["type"] == "websocket.connect"
        await asyncio.sleep(0.2)
        try:
            await send({"type": "websocket.accept"})
        except ClientDisconnected:
            STARTED.append("accept: disconnected")
            return
        STARTED.append("accept: " + (await receive())["type"])
        return
    if path == "/drip":
        # Sends as fast as send() lets it: the peer's window decides.
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(64):
            await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
            CHUNKS_SENT.append(1)
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/sleep":
        await asyncio.sleep(0.5)
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"%d" % len(body)})


RECORDER = Recorder()


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with run_server(
        app,
        lifespan="off",
        http2=True,
        observer=RECORDER,
        limit_request_body=100_000,
        limit_request_line=2048,
        limit_request_fields=50,
        limit_request_header_size=8192,
    ) as running:
        yield running


def fields(path: str) -> list[tuple[str, str]]:
    return [(":method", "GET"), (":scheme", "http"), (":authority", "127.0.0.1"), (":path", path)]


def still_serving(server: RunningServer) -> None:
    with H2Client(server.port) as client:
        response = client.response(client.request("/"))
    assert (response.status, response.body) == (200, b"0")


# -- the known attacks ---------------------------------------------------------------------
# As bytes (after the preface and SETTINGS), for the tests below and the HTTP/2 fuzz target's
# seed corpus (tests/fuzz/corpus.py).


def rapid_reset(streams: int) -> bytes:
    """CVE-2023-44487: `streams` requests, each reset as soon as it is sent."""
    block = request_block("/sleep")
    return b"".join(
        frame(HEADERS, END_STREAM | END_HEADERS, stream, block)
        + frame(RST_STREAM, 0, stream, CANCEL.to_bytes(4, "big"))
        for stream in range(1, 2 * streams, 2)
    )


# A header block that never ends: HEADERS without END_HEADERS, then CONTINUATION after
# CONTINUATION of 1000-byte fields.
UNENDED_HEADERS = frame(HEADERS, 0, 1, request_block("/"))
JUNK_CONTINUATION = frame(
    CONTINUATION, 0, 1, bytes(hpack.Encoder().encode([("x-junk", "y" * 1000)]))
)


def hpack_bomb(repeats: int = 4000) -> bytes:
    """A 4 KiB field put in the dynamic table once and then named by its one-byte index
    `repeats` times."""
    encoder = hpack.Encoder()
    first = bytes(encoder.encode([*fields("/bomb"), ("x-bomb", "z" * 4000)]))
    again = bytes(encoder.encode([("x-bomb", "z" * 4000)])) * repeats  # indexed: 1 byte each
    return frame(HEADERS, END_STREAM | END_HEADERS, 1, first + again)


# Each is answered (or counted): sent MAX_CONTROL_FRAMES_PER_SECOND times and more, a flood.
CONTROL_FLOODS = [
    pytest.param(frame(PING, 0, 0, b"12345678"), id="ping"),
    pytest.param(frame(SETTINGS, 0, 0), id="settings"),
    pytest.param(frame(WINDOW_UPDATE, 0, 0, (1).to_bytes(4, "big")), id="window-update"),
]
MALFORMED_FRAMES = [
    pytest.param(frame(DATA, 0, 0, b"x"), id="data-on-stream-0"),
    pytest.param(frame(HEADERS, END_HEADERS, 2, request_block("/")), id="even-stream-id"),
    pytest.param(frame(PING, 0, 0, b"short"), id="ping-wrong-length"),
    pytest.param(frame(SETTINGS, 0, 1), id="settings-on-a-stream"),
    pytest.param(frame(WINDOW_UPDATE, 0, 0, (0).to_bytes(4, "big")), id="zero-increment"),
    pytest.param(frame(HEADERS, END_HEADERS, 1, b"\xff\xff\xff\xff"), id="bad-hpack"),
    pytest.param(frame(CONTINUATION, END_HEADERS, 1, b""), id="continuation-alone"),
]
UPPERCASE_FIELD_NAME = frame(
    HEADERS,
    END_STREAM | END_HEADERS,
    1,
    bytes(hpack.Encoder().encode([*fields("/upper"), ("X-Upper", "1")])),
)


def test_rapid_reset_is_cut_off(server: RunningServer) -> None:
    """CVE-2023-44487: streams opened and reset at once, as fast as the peer can write; the
    app must not run a request per frame."""
    STARTED.clear()
    sock = raw_connection(server.port)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(rapid_reset(10_000))  # the server may stop reading part-way: what we want
    frames = frames_until_closed(sock)
    assert goaway_code(frames) == ENHANCE_YOUR_CALM
    assert len(STARTED) < 10_000 / 2
    still_serving(server)


def test_continuation_flood_is_cut_off(server: RunningServer) -> None:
    """CVE-2024-27316 and kin: a header block that never ends, CONTINUATION after
    CONTINUATION."""
    sock = raw_connection(server.port)
    sock.sendall(UNENDED_HEADERS)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        for _ in range(2000):
            sock.sendall(JUNK_CONTINUATION)
    frames = frames_until_closed(sock)
    assert goaway_code(frames) is not None
    assert goaway_code(frames) != NO_ERROR
    still_serving(server)


def test_hpack_bomb_is_refused(server: RunningServer) -> None:
    """A 4 KiB field put in the dynamic table once and then named by its one-byte index
    thousands of times: a few KiB on the wire, 16 MB decoded."""
    STARTED.clear()
    sock = raw_connection(server.port)
    sock.sendall(hpack_bomb())
    frames = frames_until_closed(sock)
    assert goaway_code(frames) == ENHANCE_YOUR_CALM
    assert STARTED == []
    still_serving(server)


@pytest.mark.parametrize("flood", CONTROL_FLOODS)
def test_control_frame_floods_are_cut_off(server: RunningServer, flood: bytes) -> None:
    """Each PING and SETTINGS is answered: a flood of them makes the server write as fast as
    it reads, unless it stops."""
    sock = raw_connection(server.port)
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(flood * (MAX_CONTROL_FRAMES_PER_SECOND * 3))
    frames = frames_until_closed(sock)
    assert goaway_code(frames) == ENHANCE_YOUR_CALM
    answers = [f for f in frames if f[0] in (PING, SETTINGS) and f[1] & 0x1]
    assert len(answers) <= MAX_CONTROL_FRAMES_PER_SECOND + 2
    still_serving(server)


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(frame(DATA, 0, 0, b"x"), id="malformed-frame"),
        pytest.param(frame(SETTINGS, 0, 0) * (MAX_CONTROL_FRAMES_PER_SECOND + 1), id="flood"),
    ],
)
def test_a_connection_that_fails_under_a_request_disconnects_its_app(
    server: RunningServer, caplog: pytest.LogCaptureFixture, failure: bytes
) -> None:
    """A request, and in the same read what ends the connection (found by the HTTP/2 fuzz
    target, tests/fuzz/http2_target.py): the app starts on the request only after the
    connection has failed. It must see a disconnect, not zttp's error from a send on a dead
    connection; its request is recorded once; nothing is written after the GOAWAY."""
    path = f"/failing-{len(failure)}"
    sock = raw_connection(server.port)
    with caplog.at_level(logging.ERROR):
        sock.sendall(frame(HEADERS, END_STREAM | END_HEADERS, 1, request_block(path)) + failure)
        frames = frames_until_closed(sock)
        record = record_for(RECORDER, path)
    assert goaway_code(frames) not in (None, NO_ERROR)
    assert frames[-1][0] == GOAWAY, frames[-3:]  # nothing after it
    assert record.outcome == "disconnected"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
    still_serving(server)


def test_websocket_ended_before_it_is_accepted_is_reset(server: RunningServer) -> None:
    """An extended CONNECT (RFC 8441) whose END_STREAM, the client's FIN, comes before the
    app has accepted (found by the HTTP/2 fuzz target): a stream cannot end before its
    response's HEADERS, so the server resets it, as an HTTP/1.1 FIN during the handshake
    closes the connection; the app's accept sees a disconnect."""
    STARTED.clear()
    sock = raw_connection(server.port)
    block = bytes(
        hpack.Encoder().encode(
            [
                (":method", "CONNECT"),
                (":protocol", "websocket"),
                (":scheme", "http"),
                (":authority", "127.0.0.1"),
                (":path", "/ws"),
                ("sec-websocket-version", "13"),
            ]
        )
    )
    sock.sendall(frame(HEADERS, END_HEADERS, 1, block) + frame(DATA, END_STREAM, 1, b""))
    reader = FrameReader(sock)
    on_stream: list[tuple[int, int, bytes]] = []
    deadline = time.monotonic() + TIMEOUT
    while "accept: disconnected" not in STARTED and len(STARTED) < 2:
        assert time.monotonic() < deadline, STARTED
        with contextlib.suppress(TimeoutError):
            frames = reader.frames(timeout=0.05)
            on_stream += [(kind, flags, payload) for kind, flags, s, payload in frames if s == 1]
    with contextlib.suppress(TimeoutError):  # anything sent after the app's accept
        frames = reader.frames(timeout=0.3)
        on_stream += [(kind, flags, payload) for kind, flags, s, payload in frames if s == 1]
    assert on_stream == [(RST_STREAM, 0, CANCEL.to_bytes(4, "big"))]
    assert STARTED == ["/ws", "accept: disconnected"]
    still_serving(server)


def test_a_shut_window_holds_the_app_not_the_memory(server: RunningServer) -> None:
    """A peer that grants no window: the app's send() waits (one chunk parked, not the whole
    response), and goes on when the window opens."""
    CHUNKS_SENT.clear()
    with H2Client(server.port, settings={0x4: 0}, auto_window=False) as client:  # window 0
        stream = client.request("/drip")
        client.read(lambda: client.responses[stream].status == 200)
        time.sleep(0.3)
        assert len(CHUNKS_SENT) <= 2  # the app is waiting in send()
        client.conn.update_settings({0x4: 65535})
        client.auto_window = True
        client.flush()
        response = client.response(stream)
    assert len(response.body) == 64 * len(CHUNK)
    assert len(CHUNKS_SENT) == 64


# -- malformed frames ----------------------------------------------------------------------


@pytest.mark.parametrize("bad", MALFORMED_FRAMES)
def test_malformed_frames_end_the_connection_with_goaway(server: RunningServer, bad: bytes) -> None:
    sock = raw_connection(server.port)
    sock.sendall(bad)
    frames = frames_until_closed(sock)
    code = goaway_code(frames)
    assert code is not None and code != NO_ERROR, frames
    still_serving(server)


def test_uppercase_header_name_is_malformed(server: RunningServer) -> None:
    """RFC 9113 section 8.2.1: a field name with uppercase letters is a malformed request."""
    STARTED.clear()
    sock = raw_connection(server.port)
    sock.sendall(UPPERCASE_FIELD_NAME)
    frames = frames_until_closed(sock, timeout=1)
    resets = [payload for kind, _f, stream, payload in frames if kind == RST_STREAM]
    assert resets == [PROTOCOL_ERROR.to_bytes(4, "big")]
    assert STARTED == []


# -- the server's limits -------------------------------------------------------------------


def test_long_path_is_414(server: RunningServer) -> None:
    with H2Client(server.port) as client:
        response = client.response(client.request("/" + "a" * 3000))
    assert response.status == 414


def test_too_many_fields_is_431(server: RunningServer) -> None:
    headers = [(f"x-field-{index}", "v") for index in range(60)]
    with H2Client(server.port) as client:
        response = client.response(client.request("/", headers=headers))
    assert response.status == 431


def test_large_header_list_is_431(server: RunningServer) -> None:
    with H2Client(server.port) as client:
        response = client.response(client.request("/", headers=[("x-big", "v" * 9000)]))
    assert response.status == 431


def test_declared_body_past_the_limit_is_413(server: RunningServer) -> None:
    STARTED.clear()
    with H2Client(server.port) as client:
        stream = client.request(
            "/upload", method="POST", headers=[("content-length", "200000")], end=False
        )
        response = client.response(stream)
    assert response.status == 413
    assert "/upload" not in STARTED


def test_undeclared_body_past_the_limit_is_413(server: RunningServer) -> None:
    with H2Client(server.port) as client:
        stream = client.request("/upload", method="POST", end=False)
        client.send_body(stream, b"x" * 60_000, end=False)
        client.send_body(stream, b"x" * 60_000, end=False)
        response = client.response(stream)
        assert response.status == 413
        later = client.response(client.request("/"))  # the connection goes on
    assert later.status == 200


def test_rejections_are_recorded(server: RunningServer) -> None:
    RECORDER.rejected.clear()
    with H2Client(server.port) as client:
        client.response(client.request("/" + "a" * 3000))
    (record, reason), *_ = RECORDER.rejected
    assert reason == "uri_too_long"
    assert record is not None and record.scope["http_version"] == "2"
    assert record.status == 414


def test_idle_connection_is_closed() -> None:
    with run_server(app, lifespan="off", http2=True, timeout_keep_alive=0.5) as running:
        sock = raw_connection(running.port)
        started = time.monotonic()
        frames = frames_until_closed(sock, timeout=5)
    assert time.monotonic() - started < 3
    assert goaway_code(frames) == NO_ERROR


# -- slow clients: --timeout-request-body and --timeout-send -------------------------------

SHORT = 1.0  # both deadlines, in seconds (the server's tick adds up to 0.25 s)
MiB = 1024 * 1024
MAX_WINDOW = 2**31 - 1
INITIAL_WINDOW_SIZE = 0x4
# What the deadline app saw, by path: the request body (None for a disconnect), or, for a
# download, "complete" or the type of the message `receive()` gave once `send()` failed.
SEEN: dict[str, object] = {}
DEADLINES = Recorder()


async def deadline_app(scope: Scope, receive: Receive, send: Send) -> None:
    path = scope["path"]
    if path == "/slow-app":  # reads its body only after three deadlines
        await asyncio.sleep(3 * SHORT)
    if path in ("/download", "/flood", "/eager-flood"):  # 1 MiB of 16 KiB; 64 MiB of 1 MiB
        await read_all(receive)
        chunk = CHUNK if path == "/download" else b"x" * MiB
        await send({"type": "http.response.start", "status": 200, "headers": []})
        with contextlib.suppress(ClientDisconnected):
            for _ in range(64):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if path != "/eager-flood":  # which never yields but in send()
                    # A producer that awaits something between chunks (a file, a database).
                    await asyncio.sleep(0)
            await send({"type": "http.response.body", "body": b""})
            SEEN[path] = "complete"
            return
        SEEN[path] = (await receive())["type"]
        return
    await answer_with_body_size(path, receive, send, SEEN)


@pytest.fixture(scope="module")
def deadlines() -> Iterator[RunningServer]:
    with run_server(
        deadline_app,
        lifespan="off",
        http2=True,
        observer=DEADLINES,
        timeout_request_body=SHORT,
        timeout_send=SHORT,
    ) as running:
        yield running


def test_body_that_stops_arriving_gets_408(deadlines: RunningServer) -> None:
    """One stream's body stops part-way: that stream is answered 408 once it has been silent
    for --timeout-request-body; a stream beside it whose body trickles in (never silent that
    long) is served."""
    DEADLINES.rejected.clear()
    with H2Client(deadlines.port) as client:
        stalled = client.request(
            "/stalled", method="POST", headers=[("content-length", "100")], end=False
        )
        client.send_body(stalled, b"x" * 40, end=False)
        silent_since = time.monotonic()
        trickle = client.request("/trickle", method="POST", end=False)
        refused = client.responses[stalled]
        trickled = 0
        while not refused.ended and refused.reset is None:
            assert time.monotonic() - silent_since < TIMEOUT, "no answer to the stalled stream"
            read_for(client, SHORT * 0.4)
            client.send_body(trickle, b"x", end=False)
            trickled += 1
        waited = time.monotonic() - silent_since
        for _ in range(3):  # the trickle goes on after its neighbour's 408
            read_for(client, SHORT * 0.4)
            client.send_body(trickle, b"x", end=False)
            trickled += 1
        client.send_body(trickle, b"", end=True)
        served = client.response(trickle)
    assert refused.status == 408
    assert SHORT <= waited < SHORT + 1.5, waited
    assert (served.status, served.body) == (200, b"%d bytes" % trickled)
    assert SEEN["/stalled"] is None  # the app saw a disconnect, not a short body
    record = record_for(DEADLINES, "/stalled")
    assert (record.status, record.outcome, record.bytes_received) == (408, "rejected", 40)
    assert (None, "body_timeout") in DEADLINES.rejected


@pytest.mark.parametrize(
    "path",
    [
        "/stream-then-read",
        # The body all sent, the trailers waiting for the upload: still under way (found by
        # the HTTP/2 fuzz target: a second response, a 408, went out on the stream).
        "/trailers-then-read",
    ],
)
def test_body_that_stops_after_the_response_began_is_reset(
    deadlines: RunningServer, path: str
) -> None:
    """A response under way cannot become a 408: the stream is reset, and the access log
    says so."""
    with H2Client(deadlines.port) as client:
        stream = client.request(path, method="POST", headers=[("content-length", "100")], end=False)
        client.send_body(stream, b"x" * 40, end=False)
        response = client.response(stream)
    assert (response.status, response.body, response.reset) == (200, b"first", CANCEL)
    assert SEEN[path] is None
    assert record_for(DEADLINES, path).outcome == "aborted"


def test_app_that_does_not_read_is_not_the_clients_fault(deadlines: RunningServer) -> None:
    """The app reads its body only after three deadlines: the server stops reading (and so
    granting window) once it holds 64 KiB unread, so the client's silence meanwhile is the
    server's doing."""
    size = MiB
    with H2Client(deadlines.port) as client:
        stream = client.request("/slow-app", method="POST", end=False)
        client.send_body(stream, b"x" * size)
        response = client.response(stream)
    assert (response.status, response.body) == (200, b"%d bytes" % size)


def test_client_waiting_for_100_continue_is_not_timed_out(deadlines: RunningServer) -> None:
    """A client that sent `Expect: 100-continue` sends its body once the app's first
    `receive()` has sent the 100: until then its silence is the app's doing."""
    with H2Client(deadlines.port) as client:
        stream = client.request(
            "/slow-app",
            method="POST",
            headers=[("content-length", "5"), ("expect", "100-continue")],
            end=False,
        )
        response = client.responses[stream]
        client.read(lambda: bool(response.informational))  # after three deadlines
        assert response.informational[0][0] == 100
        client.send_body(stream, b"hello")
        client.response(stream)
    assert (response.status, response.body) == (200, b"5 bytes")


def test_window_kept_shut_is_reset_after_the_send_deadline(deadlines: RunningServer) -> None:
    """A client that never opens its flow-control window: the stream is reset once it has
    been stalled for --timeout-send, and the app, waiting in `send()`, sees a disconnect."""
    with H2Client(deadlines.port, auto_window=False) as client:  # no WINDOW_UPDATE, ever
        stream = client.request("/download")
        started = time.monotonic()
        response = client.response(stream)
        waited = time.monotonic() - started
        later = client.request("/")  # the connection goes on (its window is shut too)
        client.read(lambda: client.responses[later].status != 0)
    assert (response.status, response.reset) == (200, CANCEL)
    assert len(response.body) < 64 * len(CHUNK)
    assert SHORT <= waited < SHORT + 1.5, waited
    assert wait_for_seen("/download") == "http.disconnect"
    record = record_for(DEADLINES, "/download")
    assert (record.status, record.outcome) == (200, "aborted")


def test_a_response_waiting_for_window_outlives_the_keep_alive_timeout() -> None:
    """The app has sent its whole response, but its tail waits for the client's window (found
    by the HTTP/2 fuzz target): the connection is not idle while it does, so a client that
    opens its window after the keep-alive timeout, well within --timeout-send, gets all of it
    rather than a GOAWAY and a response cut short."""
    with (
        run_server(app, lifespan="off", http2=True, timeout_keep_alive=0.5) as running,
        H2Client(running.port, settings={INITIAL_WINDOW_SIZE: 0}, auto_window=False) as client,
    ):
        stream = client.request("/")
        response = client.responses[stream]
        client.read(lambda: response.status != 0)
        read_for(client, 1.5)  # past the keep-alive timeout and its tick
        assert not client.closed, "closed with the response's body unsent"
        client.conn.update_settings({INITIAL_WINDOW_SIZE: 65535})
        client.flush()
        client.response(stream)
    assert (response.status, response.body, response.ended) == (200, b"0", True)


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/flood", id="app-that-yields"),
        # An app that sends chunk after chunk without awaiting anything else: frames go out as
        # they pile up, so back-pressure holds its send() too, and the response is not
        # buffered whole in memory.
        pytest.param("/eager-flood", id="app-that-never-yields"),
    ],
)
def test_peer_that_reads_nothing_is_cut(deadlines: RunningServer, path: str) -> None:
    """Windows wide open, but the client reads nothing from its socket: the server's writes
    back up until the transport pauses, and once it has been paused for --timeout-send the
    connection is cut."""
    with H2Client(deadlines.port, settings={INITIAL_WINDOW_SIZE: MAX_WINDOW}) as client:
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        client.conn.increment_flow_control_window(MAX_WINDOW - 65535)
        client.flush()
        client.request(path)
        record = record_for(DEADLINES, path)  # never reads a byte
    assert (record.status, record.outcome) == (200, "aborted")
    assert record.bytes_sent < 64 * MiB
    assert wait_for_seen(path) == "http.disconnect"


def read_for(client: H2Client, seconds: float) -> None:
    """Handle what the server sends for `seconds`, sending nothing of our own."""
    until = time.monotonic() + seconds
    client.read(lambda: time.monotonic() >= until)


def wait_for_seen(path: str) -> object:
    deadline = time.monotonic() + TIMEOUT
    while path not in SEEN and time.monotonic() < deadline:
        time.sleep(0.01)
    return SEEN.get(path, "nothing seen")


def record_for(recorder: Recorder, path: str) -> RequestFinished:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        for record in recorder.requests:
            if record.scope["path"] == path:
                return record
        time.sleep(0.01)
    raise AssertionError(f"no record for {path}: {recorder.requests}")


# -- helpers -------------------------------------------------------------------------------


def status_of(frames: list[tuple[int, int, int, bytes]]) -> int | None:
    decoder = hpack.Decoder()
    for kind, _flags, stream, payload in frames:
        if kind == HEADERS and stream:
            for name, value in decoder.decode(payload, raw=True):
                if name == b":status":
                    return int(value)
    return None
