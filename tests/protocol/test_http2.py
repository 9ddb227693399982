"""HTTP/2 (--http2) as its clients use it: httpx and curl by prior knowledge (h2c) and over TLS
(ALPN), many streams on one connection, bodies past the flow-control windows, trailers and
early hints, resets, the server's own answers, and graceful shutdown with GOAWAY. HTTP/1.1
on the same port is unchanged."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import hpack
import httpx
import pytest

from monoceros.protocols.h2_stream import H2RequestCycle, H2Stream
from monoceros.protocols.http2 import MAX_STREAMS_PER_CONNECTION
from monoceros.types import Receive, Scope, Send
from tests.h2client import (
    CANCEL,
    DATA,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    NO_ERROR,
    PREFACE,
    REFUSED_STREAM,
    RST_STREAM,
    SETTINGS,
    FrameReader,
    H2Client,
    frame,
    frames_until_closed,
    raw_connection,
    request_block,
    request_fields,
)
from tests.integration.helpers import TLSFiles
from tests.utils import Recorder, RunningServer, raw_request, run_server

TIMEOUT = 10.0
BIG = os.urandom(1024 * 1024)  # far past HTTP/2's initial 64 KiB windows
DISCONNECTED: list[str] = []
RELEASE = threading.Event()


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http"
    path = scope["path"]
    body = b""
    more = True
    while more and path != "/wait-disconnect":
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if path == "/scope":
        seen = {
            "http_version": scope["http_version"],
            "method": scope["method"],
            "scheme": scope["scheme"],
            "query": scope["query_string"].decode(),
            "host": dict(scope["headers"]).get(b"host", b"").decode(),
            "extensions": sorted(scope["extensions"]),
            "received": len(body),
            "client": scope["client"][0],
        }
        await respond(send, json.dumps(seen).encode())
    elif path == "/echo":
        await respond(send, body, [(b"x-received", b"%d" % len(body))])
    elif path == "/big":
        await respond(send, BIG)
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for index in range(16):
            await send({"type": "http.response.body", "body": BIG[index::16], "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/trailers":
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
        await send({"type": "http.response.body", "body": b"data"})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")]})
    elif path == "/hints":
        await send({"type": "http.response.early_hint", "links": [b"</a.css>; rel=preload"]})
        await respond(send, b"page")
    elif path == "/wait-disconnect":
        message = await receive()
        while message["type"] != "http.disconnect":
            message = await receive()
        DISCONNECTED.append(path)
    elif path == "/slow":
        await asyncio.get_running_loop().run_in_executor(None, RELEASE.wait, TIMEOUT)
        await respond(send, b"finished")
    elif path == "/fail":
        raise RuntimeError("boom")
    elif path == "/head-check":
        await respond(send, b"twelve bytes")
    elif path == "/uppercase":
        await respond(send, b"ok", [(b"X-Mixed-Case", b"yes"), (b"Connection", b"keep-alive")])
    else:
        await respond(send, b"hello", status=404 if path == "/missing" else 200)


async def respond(
    send: Send, body: bytes, headers: list[tuple[bytes, bytes]] | None = None, status: int = 200
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or []})
    await send({"type": "http.response.body", "body": body})


RECORDER = Recorder()


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with run_server(
        app, lifespan="off", http2=True, observer=RECORDER, limit_request_body=2 * len(BIG)
    ) as running:
        yield running


def h2c() -> httpx.Client:
    """httpx speaking HTTP/2 by prior knowledge on a plain-text port (h2c)."""
    return httpx.Client(http1=False, http2=True, timeout=TIMEOUT)


def test_prior_knowledge_request_is_served_over_http2(server: RunningServer) -> None:
    with h2c() as client:
        response = client.post(f"{server.url}/scope?a=1", content=b"abc")
    assert response.http_version == "HTTP/2"
    assert response.status_code == 200
    seen = response.json()
    assert seen == {
        "http_version": "2",
        "method": "POST",
        "scheme": "http",
        "query": "a=1",
        "host": f"127.0.0.1:{server.port}",
        "extensions": [
            "http.response.early_hint",
            "http.response.pathsend",
            "http.response.trailers",
            "monoceros.peer",
        ],
        "received": 3,
        "client": "127.0.0.1",
    }


def test_http11_on_the_same_port_is_unchanged(server: RunningServer) -> None:
    with httpx.Client(timeout=TIMEOUT) as client:
        response = client.get(f"{server.url}/scope")
    assert response.http_version == "HTTP/1.1"
    assert response.json()["http_version"] == "1.1"


def test_many_concurrent_streams_on_one_connection(server: RunningServer) -> None:
    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(http1=False, http2=True, timeout=TIMEOUT) as client:
            return await asyncio.gather(
                *(
                    client.post(f"{server.url}/echo", content=b"%d" % index * 1000)
                    for index in range(60)
                )
            )

    responses = asyncio.run(main())
    assert [r.content for r in responses] == [b"%d" % index * 1000 for index in range(60)]
    assert {r.http_version for r in responses} == {"HTTP/2"}


def test_bodies_past_the_flow_control_windows_both_ways(server: RunningServer) -> None:
    with h2c() as client:
        upload = client.post(f"{server.url}/echo", content=BIG)
        download = client.get(f"{server.url}/big")
        streamed = client.get(f"{server.url}/stream")
    assert upload.content == BIG
    assert upload.headers["x-received"] == str(len(BIG))
    assert download.content == BIG
    assert download.headers["content-length"] == str(len(BIG))
    assert sorted(streamed.content) == sorted(BIG)
    assert "content-length" not in streamed.headers


def test_response_fields_are_lowercase_without_connection_headers(
    server: RunningServer,
) -> None:
    with H2Client(server.port) as client:
        response = client.response(client.request("/uppercase"))
    assert response.status == 200
    assert response.header(b"x-mixed-case") == b"yes"
    assert response.header(b"connection") is None
    assert response.header(b"content-length") == b"2"
    assert response.header(b"server") == b"monoceros"
    assert response.header(b"date") is not None


def test_trailers_and_early_hints(server: RunningServer) -> None:
    with H2Client(server.port) as client:
        trailers = client.response(client.request("/trailers", headers=[("te", "trailers")]))
        hints = client.response(client.request("/hints"))
    assert trailers.body == b"data"
    assert trailers.trailers == [(b"x-checksum", b"abc")]
    assert hints.informational == [(103, [(b"link", b"</a.css>; rel=preload")])]
    assert hints.status == 200 and hints.body == b"page"


def test_head_gets_the_length_and_no_body(server: RunningServer) -> None:
    with H2Client(server.port) as client:
        response = client.response(client.request("/head-check", method="HEAD"))
    assert response.status == 200
    assert response.header(b"content-length") == b"12"
    assert response.body == b""


def test_app_exception_is_a_500_and_the_connection_goes_on(server: RunningServer) -> None:
    with H2Client(server.port) as client:
        failed = client.response(client.request("/fail"))
        after = client.response(client.request("/"))
    assert failed.status == 500
    assert b"Traceback" not in failed.body and b"boom" not in failed.body
    assert after.status == 200 and after.body == b"hello"


def test_client_reset_is_a_disconnect_for_the_app(server: RunningServer) -> None:
    DISCONNECTED.clear()
    with H2Client(server.port) as client:
        waiting = client.request("/wait-disconnect")
        client.reset(waiting, CANCEL)
        other = client.response(client.request("/"))
        assert other.body == b"hello"  # the connection and its other streams go on
        client.read(lambda: bool(DISCONNECTED))
    assert DISCONNECTED == ["/wait-disconnect"]


def test_finished_streams_leave_nothing_for_the_garbage_collector(server: RunningServer) -> None:
    # A stream, its flow control and its request's cycle refer to one another: were those
    # references kept once the stream is done, every request's objects would wait for the
    # collector (and make it run more often).
    with H2Client(server.port) as client:
        client.response(client.request("/echo", body=b"warm"))
        gc.collect()
        gc.disable()
        try:
            for _ in range(20):
                response = client.response(client.request("/echo", body=b"body"))
                assert response.status == 200 and response.body == b"body"
            time.sleep(0.1)  # the last Task's final step
            alive = [item for item in gc.get_objects() if type(item) in (H2Stream, H2RequestCycle)]
        finally:
            gc.enable()
    assert len(alive) <= 2, f"{len(alive)} objects of finished streams still in memory"


def test_streams_beyond_the_limit_are_refused() -> None:
    RELEASE.clear()
    with (
        run_server(app, lifespan="off", http2=True, http2_max_concurrent_streams=2) as running,
        H2Client(running.port) as client,
    ):
        first = client.request("/slow")
        second = client.request("/slow")
        third = client.request("/")
        refused = client.response(third)
        RELEASE.set()
        assert client.response(first).body == b"finished"
        assert client.response(second).body == b"finished"
        later = client.response(client.request("/"))
    assert refused.reset == REFUSED_STREAM
    assert later.body == b"hello"


def test_graceful_shutdown_finishes_streams_and_sends_goaway() -> None:
    """GOAWAY first, naming the last stream taken; the stream under way is answered; then the
    connection closes. Frames by hand: the h2 library stops reading at a GOAWAY."""
    RELEASE.clear()
    with run_server(app, lifespan="off", http2=True) as running:
        sock = raw_connection(running.port)
        sock.sendall(frame(HEADERS, END_STREAM | END_HEADERS, 1, request_block("/slow")))
        deadline = time.monotonic() + TIMEOUT
        while not running.server.state.tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        stopper = threading.Thread(target=running.stop)
        stopper.start()
        time.sleep(0.2)  # the server's GOAWAY goes out before the app finishes
        RELEASE.set()
        frames = frames_until_closed(sock)
        stopper.join(TIMEOUT)
    kinds = [(kind, stream) for kind, _flags, stream, _payload in frames if kind != SETTINGS]
    goaway = next(payload for kind, _f, _s, payload in frames if kind == GOAWAY)
    assert goaway[:8] == (1).to_bytes(4, "big") + NO_ERROR.to_bytes(4, "big")
    assert kinds[0] == (GOAWAY, 0)
    assert (HEADERS, 1) in kinds
    body = b"".join(payload for kind, _f, stream, payload in frames if kind == DATA)
    assert body == b"finished"
    assert frames[-1][1] & END_STREAM  # the last frame ends the stream; then the close


def test_access_records_say_http2(server: RunningServer) -> None:
    RECORDER.requests.clear()
    with h2c() as client:
        assert client.get(f"{server.url}/missing").status_code == 404
    record = next(r for r in RECORDER.requests if r.scope["path"] == "/missing")
    assert record.scope["http_version"] == "2"
    assert record.status == 404
    assert record.outcome == "complete"


def test_without_http2_the_preface_is_refused_cleanly() -> None:
    with run_server(app, lifespan="off") as running:
        answer = raw_request(running.port, PREFACE)
    assert answer.startswith(b"HTTP/1.1 400 "), answer


# -- TLS (ALPN) ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return TLSFiles(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_server(tls_files: TLSFiles) -> Iterator[RunningServer]:
    with run_server(
        app, lifespan="off", http2=True, ssl_certfile=tls_files.cert, ssl_keyfile=tls_files.key
    ) as running:
        yield running


def test_tls_alpn_chooses_http2(tls_server: RunningServer, tls_files: TLSFiles) -> None:
    url = f"https://127.0.0.1:{tls_server.port}/scope"
    with httpx.Client(http2=True, verify=tls_files.client_context(), timeout=TIMEOUT) as client:
        response = client.get(url)
    assert response.http_version == "HTTP/2"
    seen = response.json()
    assert seen["scheme"] == "https" and seen["http_version"] == "2"


def test_tls_client_without_h2_gets_http11(tls_server: RunningServer, tls_files: TLSFiles) -> None:
    url = f"https://127.0.0.1:{tls_server.port}/scope"
    with httpx.Client(verify=tls_files.client_context(), timeout=TIMEOUT) as client:
        response = client.get(url)
    assert response.http_version == "HTTP/1.1"


def test_tls_without_http2_offers_only_http11(tls_files: TLSFiles) -> None:
    with run_server(
        app, lifespan="off", ssl_certfile=tls_files.cert, ssl_keyfile=tls_files.key
    ) as running:
        url = f"https://127.0.0.1:{running.port}/scope"
        with httpx.Client(http2=True, verify=tls_files.client_context(), timeout=TIMEOUT) as c:
            assert c.get(url).http_version == "HTTP/1.1"


# -- curl ----------------------------------------------------------------------------------


def curl() -> str:
    path = shutil.which("curl")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("curl is not installed")
        pytest.skip("curl is not installed")
    return path


def run_curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [curl(), "-sS", "--max-time", "10", *args], capture_output=True, text=True, check=False
    )


def test_curl_prior_knowledge(server: RunningServer) -> None:
    result = run_curl(
        "--http2-prior-knowledge", "-w", "\n%{http_version}", "-d", "x" * 100, f"{server.url}/echo"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "x" * 100 + "\n2"


def test_curl_over_tls_negotiates_http2(tls_server: RunningServer, tls_files: TLSFiles) -> None:
    ca = Path(tls_files.cert).with_name("ca.pem")
    tls_files.ca.cert_pem.write_to_path(str(ca))
    url = f"https://127.0.0.1:{tls_server.port}/"
    result = run_curl("--http2", "--cacert", str(ca), "-w", "\n%{http_version}", url)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello\n2"


def test_curl_upgrade_h2c_falls_back_to_http11(server: RunningServer) -> None:
    """`Upgrade: h2c` is not taken (RFC 9113 deprecates it): curl's request is served over
    HTTP/1.1, body and all."""
    result = run_curl("--http2", "-w", "\n%{http_version}", "-d", "abc", f"{server.url}/echo")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "abc\n1.1"


def test_a_long_lived_connection_is_recycled_gracefully(server: RunningServer) -> None:
    """After MAX_STREAMS_PER_CONNECTION streams the server says GOAWAY (NO_ERROR), answers
    every stream it took and refuses the rest, which a client retries on a new connection;
    zttp would fail the connection at its 4096th stream, losing the streams under way."""
    sock = raw_connection(server.port)
    reader = FrameReader(sock)
    encoder = hpack.Encoder()
    block = bytes(encoder.encode([*request_fields("/")]))  # then 1-byte indexed refs
    ended: set[int] = set()
    refused: set[int] = set()
    goaway = b""
    stream_id = 1
    while not reader.closed and stream_id < 2 * (MAX_STREAMS_PER_CONNECTION + 200):
        batch = range(stream_id, stream_id + 200, 2)  # 100 streams at a time
        stream_id += 200
        sock.sendall(b"".join(frame(HEADERS, END_STREAM | END_HEADERS, s, block) for s in batch))
        while not reader.closed and not all(s in ended or s in refused for s in batch):
            for kind, flags, stream, payload in reader.frames():
                if kind == DATA and flags & END_STREAM:
                    ended.add(stream)
                elif kind == RST_STREAM and payload == REFUSED_STREAM.to_bytes(4, "big"):
                    refused.add(stream)
                elif kind == GOAWAY:
                    goaway = payload
            if goaway and not reader.closed:
                continue
    last = int.from_bytes(goaway[:4], "big")
    assert int.from_bytes(goaway[4:8], "big") == NO_ERROR
    assert last == 2 * MAX_STREAMS_PER_CONNECTION - 1
    assert ended == set(range(1, last + 1, 2))  # every stream taken was answered
    assert refused and min(refused) > last
    assert reader.closed


def test_behind_a_proxy_protocol_balancer() -> None:
    """--proxy-protocol and --http2 together: the PROXY header first, then the preface; the
    client is the header's."""
    header = b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n"
    with run_server(
        app, lifespan="off", http2=True, proxy_protocol=True, forwarded_allow_ips="127.0.0.1"
    ) as running:
        sock = socket.create_connection(("127.0.0.1", running.port), timeout=TIMEOUT)
        sock.sendall(header + PREFACE + frame(SETTINGS, 0, 0))
        sock.sendall(frame(HEADERS, END_STREAM | END_HEADERS, 1, request_block("/scope")))
        reader = FrameReader(sock)
        body = b""
        while not body.endswith(b"}"):
            body += b"".join(p for kind, _f, _s, p in reader.frames() if kind == DATA)
        sock.close()
    seen = json.loads(body)
    assert seen["client"] == "203.0.113.7"
    assert seen["http_version"] == "2"
