"""WebSockets against a real server, with the `websockets` package's asyncio client.

The app (`tests.apps.websocket_echo`) runs in the server's thread and reports how each session
ended through `WEBSOCKET_CLOSES`; each test runs its client in a fresh event loop (`asyncio.run`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from wsproto.frame_protocol import FrameProtocol

from monoceros.observe.access import render_session
from monoceros.observe.literals import Literals
from monoceros.protocols.events import SessionFinished
from monoceros.protocols.websocket import WebSocketProtocol
from tests.apps import FLOOD_SENT, WEBSOCKET_CLOSES, wait_for_close, websocket_echo
from tests.integration.helpers import TLSFiles
from tests.utils import Recorder, RunningServer, run_server

# A time as Timestamps.at() gives it to the line.
NEW_YEAR = (b"2026-01-01T00:00:00.", b"000", b"000")

MiB = 1024 * 1024
# An upgrade request from a raw socket (no extensions: frames arrive uncompressed).
UPGRADE_REQUEST = (
    b"GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


@pytest.fixture(scope="module", params=["auto", "auto-no-deflate", "websockets", "wsproto"])
def engine(request: pytest.FixtureRequest) -> str:
    """Every test runs on each `--ws` engine. `auto` frames a session itself unless the client
    negotiates permessage-deflate (websockets' client does): without deflate on offer, every
    session is framed by ws_frames.py."""
    return str(request.param)


def engine_options(engine: str) -> dict[str, Any]:
    return {
        "ws": engine.removesuffix("-no-deflate"),
        "ws_per_message_deflate": not engine.endswith("-no-deflate"),
    }


@pytest.fixture(scope="module")
def server(engine: str) -> Iterator[RunningServer]:
    options = engine_options(engine)
    with run_server(websocket_echo, ws_max_size=2 * MiB, lifespan="off", **options) as running:
        yield running


@pytest.fixture(autouse=True)
def clear_records() -> None:
    WEBSOCKET_CLOSES.clear()


def session_line(record: SessionFinished) -> dict[str, Any]:
    """The access-log line the server writes for `record`, parsed."""
    rendered = render_session(record, NEW_YEAR, b"1", Literals())
    assert rendered.count(b"\n") == 1
    line: dict[str, Any] = json.loads(rendered)
    return line


def ws_url(server: RunningServer, path: str = "/echo") -> str:
    return f"ws://{server.host}:{server.port}{path}"


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 10))


def test_echo_text_and_binary(server: RunningServer) -> None:
    async def client() -> None:
        async with connect(ws_url(server)) as ws:
            assert ws.response.headers["x-hello"] == "1"
            assert ws.response.headers["server"] == "monoceros"
            await ws.send("héllo")
            assert await ws.recv() == "héllo"
            await ws.send(b"\x00\x01")
            assert await ws.recv() == b"\x00\x01"

    run(client())
    assert wait_for_close("/echo") == (1000, "")


def test_large_and_fragmented_messages(server: RunningServer) -> None:
    big = bytes(range(256)) * (MiB // 256)

    async def client() -> None:
        async with connect(ws_url(server), max_size=4 * MiB) as ws:
            await ws.send(big)
            assert await ws.recv() == big
            await ws.send(["frag", "men", "ted"])
            assert await ws.recv() == "fragmented"
            await ws.send([b"a" * 1000, b"b" * 1000])
            assert await ws.recv() == b"a" * 1000 + b"b" * 1000

    run(client())


def test_without_compression(server: RunningServer) -> None:
    async def client() -> None:
        async with connect(ws_url(server), compression=None) as ws:
            await ws.send("plain")
            assert await ws.recv() == "plain"

    run(client())


def test_scope_and_subprotocol(server: RunningServer) -> None:
    async def client() -> dict[str, Any]:
        async with connect(ws_url(server, "/scope?a=1"), subprotocols=["chat", "x"]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "chat"
            return json.loads(await ws.recv())  # type: ignore[no-any-return]

    seen = run(client())
    assert seen["path"] == "/scope"
    assert seen["raw_path"] == "/scope"
    assert seen["query_string"] == "a=1"
    assert seen["scheme"] == "ws"
    assert seen["subprotocols"] == ["chat", "x"]
    assert seen["client"][0] == "127.0.0.1"
    assert "websocket.http.response" in seen["extensions"]


def test_close_before_accept_is_403(server: RunningServer) -> None:
    async def client() -> None:
        with pytest.raises(InvalidStatus) as caught:
            async with connect(ws_url(server, "/reject")):
                pass
        assert caught.value.response.status_code == 403

    run(client())


def test_denial_response(server: RunningServer) -> None:
    async def client() -> None:
        with pytest.raises(InvalidStatus) as caught:
            async with connect(ws_url(server, "/deny")):
                pass
        response = caught.value.response
        assert response.status_code == 401
        assert response.headers["x-why"] == "no"
        assert response.body == b"go away!"

    run(client())


def test_malformed_handshake_is_400(server: RunningServer) -> None:
    headers = {"upgrade": "websocket", "connection": "upgrade", "sec-websocket-version": "13"}
    response = httpx.get(f"{server.url}/echo", headers=headers)  # no Sec-WebSocket-Key
    assert response.status_code == 400


def test_close_codes_both_ways(server: RunningServer) -> None:
    async def client_closes() -> None:
        async with connect(ws_url(server)) as ws:
            await ws.close(4000, "client done")

    run(client_closes())
    assert wait_for_close("/echo") == (4000, "client done")

    async def server_closes() -> None:
        async with connect(ws_url(server)) as ws:
            await ws.send("close:4001")
            with pytest.raises(ConnectionClosed) as caught:
                await ws.recv()
            assert caught.value.rcvd is not None
            assert (caught.value.rcvd.code, caught.value.rcvd.reason) == (4001, "bye")

    run(server_closes())
    assert wait_for_close("/echo")[0] == 4001


def test_oversize_message_closes_1009(server: RunningServer) -> None:
    async def client() -> None:
        async with connect(ws_url(server), compression=None) as ws:
            with pytest.raises(ConnectionClosed) as caught:
                await ws.send(b"x" * (3 * MiB))
                await ws.recv()
            # The server closes TCP right after its close frame (RFC 6455 7.1.7); while the
            # client is still sending, the close frame may be lost to a reset.
            assert caught.value.rcvd is None or caught.value.rcvd.code == 1009

    run(client())
    assert wait_for_close("/echo")[0] == 1009


def test_oversize_fragmented_message_closes_1009(server: RunningServer) -> None:
    async def client() -> None:
        async with connect(ws_url(server), compression=None) as ws:
            with pytest.raises(ConnectionClosed) as caught:
                await ws.send([b"x" * MiB, b"y" * MiB, b"z" * MiB])
                await ws.recv()
            # The server closes TCP right after its close frame (RFC 6455 7.1.7); while the
            # client is still sending, the close frame may be lost to a reset.
            assert caught.value.rcvd is None or caught.value.rcvd.code == 1009

    run(client())
    assert wait_for_close("/echo")[0] == 1009


def test_many_concurrent_sessions(server: RunningServer) -> None:
    async def one(number: int) -> None:
        async with connect(ws_url(server)) as ws:
            for round_ in range(3):
                await ws.send(f"{number}-{round_}")
                assert await ws.recv() == f"{number}-{round_}"

    async def client() -> None:
        await asyncio.gather(*(one(n) for n in range(50)))

    run(client())
    for _ in range(50):
        assert wait_for_close("/echo") == (1000, "")


def test_plain_http_still_works(server: RunningServer) -> None:
    assert httpx.get(server.url).text == "http"


def test_ping_timeout_against_a_silent_peer(engine: str) -> None:
    options = {"ws_ping_interval": 0.1, "ws_ping_timeout": 0.2, "lifespan": "off"}
    with (
        run_server(websocket_echo, **engine_options(engine), **options) as running,
        socket.create_connection((running.host, running.port), timeout=5) as sock,
    ):
        sock.sendall(UPGRADE_REQUEST % b"/silent")
        head = sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 101")
        # Never answer the pings: the server gives up and tells the app.
        assert wait_for_close("/silent") == (1011, "")


def test_ws_none_answers_as_http() -> None:
    with run_server(websocket_echo, ws="none", lifespan="off") as running:
        headers = {
            "upgrade": "websocket",
            "connection": "upgrade",
            "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
            "sec-websocket-version": "13",
        }
        response = httpx.get(running.url, headers=headers)
        assert response.status_code == 200
        assert response.text == "http"


def test_graceful_shutdown_closes_1012(engine: str) -> None:
    with run_server(websocket_echo, **engine_options(engine), lifespan="off") as running:

        async def client() -> None:
            async with connect(ws_url(running)) as ws:
                await ws.send("hi")
                assert await ws.recv() == "hi"
                stopping = asyncio.get_running_loop().run_in_executor(None, running.stop)
                await expect_service_restart(ws, stopping)

        run(client())
    assert wait_for_close("/echo")[0] == 1012


async def expect_service_restart(ws: ClientConnection, stopping: asyncio.Future[int]) -> None:
    """The server, stopping, closes the session with 1012 and then exits 0."""
    with pytest.raises(ConnectionClosed) as caught:
        await ws.recv()
    assert caught.value.rcvd is not None and caught.value.rcvd.code == 1012
    assert await stopping == 0


def test_session_observation_access_line_and_metrics(engine: str) -> None:
    recorder = Recorder()
    finished = recorder.sessions
    with run_server(
        websocket_echo, **engine_options(engine), lifespan="off", observer=recorder
    ) as running:

        async def client() -> None:
            async with connect(ws_url(running, "/echo?x=1"), compression=None) as ws:
                await ws.send("abc")
                assert await ws.recv() == "abc"
                await ws.send(b"12345")
                assert await ws.recv() == b"12345"
                await ws.close(4002)

        run(client())
        assert wait_for_close("/echo")[0] == 4002
        deadline = time.monotonic() + 5
        while not finished and time.monotonic() < deadline:
            time.sleep(0.01)
        line = session_line(finished[0])
        assert line["event"] == "websocket"
        assert line["path"] == "/echo"
        assert line["query"] == "x=1"
        assert line["status"] == 101
        assert line["close_code"] == 4002
        assert (line["messages_received"], line["messages_sent"]) == (2, 2)
        assert (line["message_bytes_received"], line["message_bytes_sent"]) == (8, 8)
        assert line["client"] == "127.0.0.1" and line["client_port"] > 0
        assert line["scheme"] == "ws"
        assert line["duration"] >= 0
        admin = running.server.admin_sockets[0].getsockname()
        text = httpx.get(f"http://{admin[0]}:{admin[1]}/metrics").text
        assert 'monoceros_websocket_sessions_total{close_code="4002"} 1.0' in text
        assert "monoceros_websocket_sessions_active 0.0" in text


def test_upgrade_header_without_connection_upgrade_is_plain_http(server: RunningServer) -> None:
    response = httpx.get(server.url, headers={"upgrade": "websocket", "connection": "keep-alive"})
    assert response.status_code == 200
    assert response.text == "http"


def test_tls_gives_wss(tmp_path: Path, engine: str) -> None:
    tls = TLSFiles(tmp_path)
    options = {"ssl_certfile": tls.cert, "ssl_keyfile": tls.key}
    with run_server(websocket_echo, **engine_options(engine), lifespan="off", **options) as running:

        async def client() -> dict[str, Any]:
            url = f"wss://{running.host}:{running.port}/scope"
            async with connect(url, ssl=tls.client_context()) as ws:
                return json.loads(await ws.recv())  # type: ignore[no-any-return]

        assert run(client())["scheme"] == "wss"


@pytest.mark.parametrize("path", ["/boom", "/split"])
def test_app_error_before_accept_is_500(server: RunningServer, path: str) -> None:
    async def client() -> None:
        with pytest.raises(InvalidStatus) as caught:
            async with connect(ws_url(server, path)):
                pass
        assert caught.value.response.status_code == 500

    run(client())


def test_reading_pauses_while_the_app_does_not_receive(engine: str) -> None:
    with run_server(
        websocket_echo, **engine_options(engine), ws_max_queue=2, lifespan="off"
    ) as running:
        paused: list[bool] = []

        async def client() -> None:
            async with connect(ws_url(running, "/stall"), compression=None) as ws:
                for n in range(20):
                    await ws.send(f"m{n}" * 1000)
                await asyncio.sleep(0.15)
                sessions = [c for c in running.server.state.connections if hasattr(c, "session")]
                paused.extend(c.flow.reading_paused for c in sessions)  # type: ignore[attr-defined]
                for n in range(20):
                    assert await ws.recv() == f"m{n}" * 1000

        run(client())
        assert paused == [True]


def test_request_id_in_response_scope_and_session_record(engine: str) -> None:
    recorder = Recorder()
    finished = recorder.sessions
    with run_server(
        websocket_echo, **engine_options(engine), lifespan="off", observer=recorder
    ) as running:

        async def client() -> tuple[str, dict[str, Any]]:
            async with connect(ws_url(running, "/scope")) as ws:
                given = ws.response.headers["x-request-id"]
                return given, json.loads(await ws.recv())

        given, seen = run(client())
        wait_for_close("/scope")
        deadline = time.monotonic() + 5
        while not finished and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(given) == 32
    assert seen["request_id"] == given  # the app's log records carry it
    assert finished[0].request_id == given
    assert session_line(finished[0])["request_id"] == given


def test_upgrade_beyond_limit_concurrency_is_503(engine: str) -> None:
    with run_server(
        websocket_echo, **engine_options(engine), limit_concurrency=1, lifespan="off"
    ) as running:

        async def client() -> None:
            async with connect(ws_url(running)) as first:
                await first.send("one")
                assert await first.recv() == "one"
                with pytest.raises(InvalidStatus) as caught:
                    async with connect(ws_url(running)):
                        pass
                assert caught.value.response.status_code == 503
                await first.send("still here")
                assert await first.recv() == "still here"

        run(client())
        metrics = running.server.observability.metrics
        assert metrics is not None and metrics.rejections.get("overload") == 1


def test_session_accepted_during_shutdown_gets_1012(engine: str) -> None:
    """A session still in its handshake when SIGTERM comes is closed 1012 once accepted."""
    with run_server(websocket_echo, **engine_options(engine), lifespan="off") as running:

        async def client() -> None:
            loop = asyncio.get_running_loop()
            connecting = asyncio.ensure_future(connect(ws_url(running, "/slow-accept")))
            await asyncio.sleep(0.1)  # the app is sleeping before websocket.accept
            stopping = loop.run_in_executor(None, running.stop)
            await expect_service_restart(await connecting, stopping)

        run(client())
    assert wait_for_close("/slow-accept")[0] == 1012


def test_slow_reader_pauses_the_sender(engine: str) -> None:
    """The app's `send` waits while the client reads nothing: the server holds a bounded
    amount (the kernel's socket buffers plus our write high-water mark), not 64 MiB."""
    FLOOD_SENT.clear()
    with (
        run_server(websocket_echo, **engine_options(engine), lifespan="off") as running,
        socket.create_connection((running.host, running.port), timeout=5) as sock,
    ):
        sock.sendall(UPGRADE_REQUEST % b"/flood")
        head, _, frames = sock.recv(4096).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        time.sleep(0.5)  # reading nothing
        stalled = len(FLOOD_SENT)
        received = len(frames)
        while received < 64 * (MiB + 10):  # then everything arrives (10: a frame's header)
            chunk = sock.recv(MiB)
            assert chunk, f"closed after {received} bytes"
            received += len(chunk)
    assert stalled < 16, f"{stalled} MiB sent to a client that read nothing"
    assert len(FLOOD_SENT) == 64


# -- hostile frames from a raw socket ----------------------------------------------------------

TEXT, CONTINUATION, CLOSE = 0x1, 0x0, 0x8


def frame_header(first: int, length: int, masked: bool = True) -> bytes:
    """A frame's first byte as given, then its length (RFC 6455 5.2) and the mask bit."""
    mask_bit = 0x80 if masked else 0
    if length < 126:
        return bytes([first, mask_bit | length])
    if length < 0x10000:
        return bytes([first, mask_bit | 126]) + length.to_bytes(2, "big")
    return bytes([first, mask_bit | 127]) + length.to_bytes(8, "big")


def masked_frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0) -> bytes:
    """A client frame (RFC 6455 5.2) with a fixed mask."""
    mask = b"\x0f\x1e\x2d\x3c"
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return frame_header((0x80 if fin else 0) | rsv | opcode, len(payload)) + mask + masked


def server_frames(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """The complete server frames (unmasked) at the start of `data`, as (opcode, payload),
    and what follows them."""
    frames: list[tuple[int, bytes]] = []
    while len(data) >= 2:
        length, at = data[1] & 0x7F, 2
        if length >= 126:
            at += 2 if length == 126 else 8
            length = int.from_bytes(data[2:at], "big")
        if len(data) < at + length:
            break
        frames.append((data[0] & 0x0F, data[at : at + length]))
        data = data[at + length :]
    return frames, data


def server_close_code(sock: socket.socket, received: bytes) -> int:
    """Read the server's frames until its close frame; its code."""
    data = received
    while True:
        frames, data = server_frames(data)
        for opcode, payload in frames:
            if opcode == CLOSE:
                return int.from_bytes(payload[:2], "big")
        chunk = sock.recv(4096)
        assert chunk, "connection closed without a close frame"
        data += chunk


@pytest.fixture
def raw_session(server: RunningServer) -> Iterator[tuple[socket.socket, bytes]]:
    with accepted_session(server) as session:
        yield session


@contextmanager
def accepted_session(server: RunningServer) -> Iterator[tuple[socket.socket, bytes]]:
    """An accepted /echo session on a raw socket, and the bytes read after the 101 head."""
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(UPGRADE_REQUEST % b"/echo")
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        status, _, rest = head.partition(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 101")
        yield sock, rest


def test_close_between_fragments_is_echoed(raw_session: tuple[socket.socket, bytes]) -> None:
    """RFC 6455 5.4: control frames, close included, may come between a message's fragments;
    the close is answered with the peer's code (Autobahn case 7.1.5)."""
    sock, rest = raw_session
    sock.sendall(
        masked_frame(TEXT, b"fragment1", fin=False)
        + masked_frame(CLOSE, (1000).to_bytes(2, "big"))
        + masked_frame(CONTINUATION, b"fragment2")
    )
    assert server_close_code(sock, rest) == 1000
    assert wait_for_close("/echo") == (1000, "")


def test_invalid_utf8_in_a_fragment_fails_at_once(
    raw_session: tuple[socket.socket, bytes],
) -> None:
    """A fragmented text message is decoded as it comes: bad UTF-8 closes with 1007 before
    the message's last fragment (Autobahn cases 6.4.1 and 6.4.2)."""
    sock, rest = raw_session
    sock.sendall(masked_frame(TEXT, "κόσμε".encode(), fin=False))
    sock.sendall(masked_frame(CONTINUATION, b"\xce\xbc\xed\xa0\x80", fin=False))  # a surrogate
    assert server_close_code(sock, rest) == 1007
    assert wait_for_close("/echo")[0] == 1007


def test_a_read_of_tiny_frames_queues_at_most_max_queue_messages(
    server: RunningServer, engine: str
) -> None:
    """Found by the WebSocket fuzz target (tests/fuzz/websocket_target.py): one read full of
    tiny frames was parsed at once, so the messages waiting for an app that had not read yet
    were bounded per read, not by --ws-max-queue (64 KiB of 7-byte frames: ~9,000 messages,
    about 35 times the bytes). Now the rest waits as bytes, and every message still arrives,
    in order."""
    count = 4000
    frames = b"".join(masked_frame(TEXT, b"%d" % (i % 10)) for i in range(count))
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(UPGRADE_REQUEST % b"/stall")  # the app reads only after 0.3 s
        head, _, echoed = sock.recv(4096).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        port = sock.getsockname()[1]
        sock.sendall(frames)
        time.sleep(0.15)  # the server has read what it will before the app reads
        sessions = [
            c
            for c in server.server.state.connections
            if isinstance(c, WebSocketProtocol) and c.peer is not None and c.peer[1] == port
        ]
        queued = len(sessions[0]._queue)
        client = FrameProtocol(client=True, extensions=[])
        client.receive_bytes(echoed)
        texts: list[str] = []
        while len(texts) < count:
            texts += [str(frame.payload) for frame in client.received_frames()]
            if len(texts) < count:
                chunk = sock.recv(65536)
                assert chunk, f"closed after {len(texts)} echoes"
                client.receive_bytes(chunk)
    assert queued <= 32 + 1, f"{queued} messages queued (--ws-max-queue 32)"
    assert texts == [str(i % 10) for i in range(count)]


BINARY, PING, PONG = 0x2, 0x9, 0xA


def close_frame(code: int, reason: bytes = b"") -> bytes:
    return masked_frame(CLOSE, code.to_bytes(2, "big") + reason)


# Frames a client may not send, and the code every engine closes with (RFC 6455 5, 7.4).
VIOLATIONS = {
    "reserved bit": (masked_frame(TEXT, b"x", rsv=0x40), 1002),
    "unmasked": (frame_header(0x80 | TEXT, 1, masked=False) + b"x", 1002),
    "reserved data opcode": (masked_frame(0x3, b"x"), 1002),
    "reserved control opcode": (masked_frame(0xB, b"x"), 1002),
    "fragmented ping": (masked_frame(PING, b"x", fin=False), 1002),
    "ping of 126 bytes": (masked_frame(PING, b"x" * 126), 1002),
    "continuation first": (masked_frame(CONTINUATION, b"x"), 1002),
    "new message mid-message": (
        masked_frame(TEXT, b"a", fin=False) + masked_frame(TEXT, b"b"),
        1002,
    ),
    "close of one byte": (masked_frame(CLOSE, b"\x03"), 1002),
    "close code 999": (close_frame(999), 1002),
    "close code 1004": (close_frame(1004), 1002),
    "close code 1005": (close_frame(1005), 1002),
    "close code 2999": (close_frame(2999), 1002),
    "close reason not UTF-8": (close_frame(1000, b"\xff"), 1007),
    "frame beyond --ws-max-size, by its header alone": (
        frame_header(0x80 | TEXT, 3 * MiB) + b"\x00\x00\x00\x00",
        1009,
    ),
}


OVERSIZE = "frame beyond --ws-max-size, by its header alone"


@pytest.mark.parametrize("frames", list(VIOLATIONS), ids=list(VIOLATIONS))
def test_a_frame_the_client_may_not_send_closes_the_session(
    server: RunningServer, frames: str, engine: str
) -> None:
    data, code = VIOLATIONS[frames]
    with accepted_session(server) as (sock, rest):
        sock.sendall(data)
        if engine == "wsproto" and frames == OVERSIZE:  # wsproto reads the payload first
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(bytes(3 * MiB))
        assert server_close_code(sock, rest) == code
    assert wait_for_close("/echo")[0] == code


@pytest.mark.parametrize("code", [1000, 1001, 1011, 1014, 3000, 4999])
def test_the_client_close_code_is_echoed(server: RunningServer, code: int, engine: str) -> None:
    if engine == "wsproto" and code == 1014:  # registered after RFC 6455: wsproto refuses it
        with accepted_session(server) as (sock, rest):
            sock.sendall(close_frame(code))
            assert server_close_code(sock, rest) == 1002
        assert wait_for_close("/echo")[0] == 1002
        return
    with accepted_session(server) as (sock, rest):
        sock.sendall(close_frame(code, "au revoir é".encode()))
        assert server_close_code(sock, rest) == code
        assert sock.recv(65536) == b""  # the server closes TCP first (RFC 6455 7.1.1)
    assert wait_for_close("/echo") == (code, "au revoir é")


def read_frames(sock: socket.socket, data: bytes, count: int) -> list[tuple[int, bytes]]:
    """The next `count` frames from the server (unmasked), as (opcode, payload)."""
    frames: list[tuple[int, bytes]] = []
    while True:
        complete, data = server_frames(data)
        frames += complete
        if len(frames) >= count:
            return frames[:count]
        chunk = sock.recv(65536)
        assert chunk, f"closed after {len(frames)} frames"
        data += chunk


def test_a_ping_is_answered_with_its_payload_between_fragments(
    raw_session: tuple[socket.socket, bytes],
) -> None:
    sock, rest = raw_session
    sock.sendall(
        masked_frame(TEXT, b"hel", fin=False)
        + masked_frame(PING, b"are you there")
        + masked_frame(CONTINUATION, b"lo")
    )
    assert read_frames(sock, rest, 2) == [(PONG, b"are you there"), (TEXT, b"hello")]


def test_frames_arriving_a_byte_at_a_time_are_read_whole(
    raw_session: tuple[socket.socket, bytes],
) -> None:
    sock, rest = raw_session
    text = "é".encode() * 100  # a 16-bit length
    binary = bytes(range(256)) * 300  # a 64-bit length: 76,800 bytes
    data = masked_frame(TEXT, text) + masked_frame(BINARY, binary)
    for index in range(300):  # both headers split, byte by byte
        sock.sendall(data[index : index + 1])
        time.sleep(0.001)
    for index in range(300, len(data), 7000):
        sock.sendall(data[index : index + 7000])
    assert read_frames(sock, rest, 2) == [(TEXT, text), (BINARY, binary)]


def frames_until_closed(sock: socket.socket, data: bytes) -> list[tuple[int, bytes]]:
    """Every frame the server sends from here until it closes TCP (5 s at most)."""
    sock.settimeout(5)
    frames: list[tuple[int, bytes]] = []
    while True:
        complete, data = server_frames(data)
        frames += complete
        chunk = sock.recv(65536)
        if not chunk:
            return frames
        data += chunk


def test_a_ping_after_the_server_closed_is_still_answered(
    server: RunningServer, engine: str
) -> None:
    """RFC 6455 5.5.2: a ping is answered until a close is received, sent one or not
    (monoceros's wsproto adapter answers none once closing)."""
    with accepted_session(server) as (sock, rest):
        sock.sendall(masked_frame(TEXT, b"close:1000"))  # the app closes
        assert read_frames(sock, rest, 1) == [(CLOSE, (1000).to_bytes(2, "big") + b"bye")]
        sock.sendall(masked_frame(PING, b"still there?") + close_frame(1000))
        answer = [] if engine == "wsproto" else [(PONG, b"still there?")]
        assert frames_until_closed(sock, b"") == answer


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 2000, 5000])
def test_a_close_code_the_app_may_not_send_closes_with_1011(
    server: RunningServer, engine: str, code: int
) -> None:
    """RFC 6455 7.4.1: 1005, 1006 and 1015 never go in a close frame (an app that passes on the
    1006 of a `websocket.disconnect`, say), nor codes outside the defined ranges."""
    with accepted_session(server) as (sock, rest):
        sock.sendall(masked_frame(TEXT, b"close:%d" % code))
        assert server_close_code(sock, rest) == 1011
