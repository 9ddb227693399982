"""The endpoints of examples/app.py that we measure, and a by-hand check of each answer."""

from __future__ import annotations

import http.client
import subprocess
from dataclasses import dataclass

from examples.app import JSON_DOCUMENT, PLAINTEXT, STREAM_CHUNK, STREAM_CHUNKS

from bench.ws_load import MESSAGE as WS_MESSAGE

ECHO_BODY_BYTES = 16 * 1024  # must match the body in bench/post_16k.lua
# A W3C trace context header as a traced client (or a tracing proxy) sends it.
TRACEPARENT = ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")

# A browser's request as nginx passes it on (the proxy_set_header lines of nginx's and uvicorn's
# deployment guides): twelve fields with Host, where wrk alone sends one.
BROWSER_THROUGH_NGINX = (
    ("X-Real-IP", "203.0.113.7"),
    ("X-Forwarded-For", "203.0.113.7"),
    ("X-Forwarded-Proto", "https"),
    (
        "User-Agent",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
        " Chrome/131.0.0.0 Safari/537.36",
    ),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("Accept-Language", "en-US,en;q=0.9"),
    ("Accept-Encoding", "gzip, deflate, br, zstd"),
    ("Cookie", "session=5f2b8c1e9a7d4e3f; theme=dark"),
    ("Referer", "https://shop.example.com/cart"),
    ("Sec-Fetch-Mode", "navigate"),
    ("Upgrade-Insecure-Requests", "1"),
)


@dataclass(frozen=True)
class Endpoint:
    """One thing we measure: a URL path, how wrk requests it, and what a correct answer is."""

    name: str
    path: str
    description: str
    expected_bytes: int
    script: str | None = None  # a wrk Lua script in bench/, for anything but a plain GET
    websocket: bool = False  # driven by bench/ws_load.py (messages), not wrk (requests)
    http2: bool = False  # driven by h2load, against the server started with HTTP/2 on
    headers: tuple[tuple[str, str], ...] = ()  # sent with every request

    @property
    def method(self) -> str:
        return "POST" if self.script else "GET"


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("plaintext", "/", "13-byte text", len(PLAINTEXT)),
    Endpoint(
        "traced", "/", "13-byte text, traceparent sent", len(PLAINTEXT), headers=(TRACEPARENT,)
    ),
    Endpoint(
        "proxied",
        "/",
        "13-byte text, a browser's request through nginx",
        len(PLAINTEXT),
        headers=BROWSER_THROUGH_NGINX,
    ),
    Endpoint("json", "/json", "1 KB JSON", len(JSON_DOCUMENT)),
    Endpoint("echo", "/echo", "16 KiB body echoed", ECHO_BODY_BYTES, script="post_16k.lua"),
    Endpoint("stream", "/stream", "1 MiB streamed", len(STREAM_CHUNK) * STREAM_CHUNKS),
    Endpoint("ws-echo", "/ws", "WebSocket 32-byte echo", len(WS_MESSAGE), websocket=True),
    Endpoint("h2-plaintext", "/", "13-byte text over HTTP/2", len(PLAINTEXT), http2=True),
    Endpoint("h2-json", "/json", "1 KB JSON over HTTP/2", len(JSON_DOCUMENT), http2=True),
)


def smoke_check(host: str, port: int, endpoint: Endpoint) -> str | None:
    """One request by hand; returns what is wrong, or None.

    wrk checks neither bodies nor lengths, and a fast server that answers wrongly must not look
    like a win, so each start checks status and body size once.
    """
    if endpoint.websocket:
        return _websocket_check(host, port, endpoint)
    if endpoint.http2:
        return _http2_check(host, port, endpoint)
    body = b"x" * ECHO_BODY_BYTES if endpoint.method == "POST" else None
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request(
            endpoint.method, endpoint.path, body=body, headers=dict(endpoint.headers)
        )
        response = connection.getresponse()
        data = response.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"check request failed: {exc!r}"
    finally:
        connection.close()
    if response.status != 200:
        return f"check got status {response.status}"
    if len(data) != endpoint.expected_bytes:
        return f"check got {len(data)} body bytes, expected {endpoint.expected_bytes}"
    return None


def _websocket_check(host: str, port: int, endpoint: Endpoint) -> str | None:
    """One message echoed over a real handshake (the `websockets` sync client)."""
    from websockets.exceptions import InvalidStatus, WebSocketException
    from websockets.sync.client import connect

    try:
        with connect(f"ws://{host}:{port}{endpoint.path}", open_timeout=10) as ws:
            ws.send(WS_MESSAGE.decode())
            echoed = ws.recv(timeout=10)
    except InvalidStatus as exc:
        return f"no WebSocket here (HTTP {exc.response.status_code})"
    except (OSError, TimeoutError, WebSocketException) as exc:
        return f"check session failed: {exc!r}"
    if echoed != WS_MESSAGE.decode():
        return f"check got {echoed!r} back"
    return None


def _http2_check(host: str, port: int, endpoint: Endpoint) -> str | None:
    """One request by curl, by prior knowledge: it must come back over HTTP/2."""
    try:
        done = subprocess.run(
            [
                "curl",
                "-sS",
                "--max-time",
                "10",
                "--http2-prior-knowledge",
                "-o",
                "/dev/null",
                "-w",
                "%{http_version} %{http_code} %{size_download}",
                f"http://{host}:{port}{endpoint.path}",
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"check request failed: {exc!r}"
    if done.returncode != 0:
        return f"no HTTP/2 here (curl: {done.stderr.strip()[-120:]})"
    version, status, size = done.stdout.split()
    if version != "2":
        return f"check was answered over HTTP/{version}"
    if status != "200":
        return f"check got status {status}"
    if int(size) != endpoint.expected_bytes:
        return f"check got {size} body bytes, expected {endpoint.expected_bytes}"
    return None
