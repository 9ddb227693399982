"""The ceiling: the fastest a Python server on uvloop + httptools can answer our four endpoints.

A bare `asyncio.Protocol` with an httptools parser and no ASGI layer: no scope dict, no Task, no
`receive`/`send`, no per-request timers. Static responses are prebuilt bytes (rebuilt once a second
for the `Date` header), so each response is exactly one `transport.write`. What an ASGI server
costs above this is ASGI itself (bench/asgi_floor.py measures the least of it) and what the
server does besides; see bench/README.md.

Endpoints match `examples/app.py` byte for byte in their bodies:

    /  or /plaintext   13-byte "Hello, World!"
    /json              the same 1 KB JSON document (JSON_DOCUMENT)
    /echo              the request body, echoed
    /stream            1 MiB (the app streams it in 64 KiB chunks; here it is one write)

Usage: python bench/ceiling.py --host 127.0.0.1 --port 8000

Not a server to deploy: no flow control, no timeouts, no limits. It exists to be measured against.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from email.utils import formatdate
from pathlib import Path
from typing import cast

import httptools
import uvloop

# Run as a script (`python bench/ceiling.py`), sys.path holds bench/, not the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from examples.app import JSON_DOCUMENT, PLAINTEXT, STREAM_CHUNK, STREAM_CHUNKS

STREAM_BODY = STREAM_CHUNK * STREAM_CHUNKS

# path -> (status line, content type, body) for the responses that never change.
STATIC_ROUTES: dict[bytes, tuple[bytes, bytes, bytes]] = {
    b"/": (b"HTTP/1.1 200 OK\r\n", b"text/plain", PLAINTEXT),
    b"/plaintext": (b"HTTP/1.1 200 OK\r\n", b"text/plain", PLAINTEXT),
    b"/json": (b"HTTP/1.1 200 OK\r\n", b"application/json", JSON_DOCUMENT),
    b"/stream": (b"HTTP/1.1 200 OK\r\n", b"application/octet-stream", STREAM_BODY),
}
NOT_FOUND = (b"HTTP/1.1 404 Not Found\r\n", b"text/plain", b"Not Found")
ECHO_PATH = b"/echo"


def build_response(status_line: bytes, date: bytes, content_type: bytes, body: bytes) -> bytes:
    """Join head and body into one buffer so the response goes out in a single write."""
    return b"".join(
        (
            status_line,
            b"date: ",
            date,
            b"\r\ncontent-type: ",
            content_type,
            b"\r\ncontent-length: %d\r\n\r\n" % len(body),
            body,
        )
    )


class ResponseCache:
    """Prebuilt responses, refreshed once a second so `Date` stays right (RFC 9110 §6.6.1).

    One timer for the whole process, like a real server's clock tick, instead of per-request work.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.date = b""
        self.static: dict[bytes, bytes] = {}
        self.not_found = b""
        self._refresh()

    def _refresh(self) -> None:
        self.date = formatdate(usegmt=True).encode()
        self.static = {
            path: build_response(status, self.date, ctype, body)
            for path, (status, ctype, body) in STATIC_ROUTES.items()
        }
        self.not_found = build_response(NOT_FOUND[0], self.date, NOT_FOUND[1], NOT_FOUND[2])
        self._loop.call_later(1.0, self._refresh)

    def echo(self, body: bytes) -> bytes:
        """The one response built per request: its body is the request's."""
        return build_response(b"HTTP/1.1 200 OK\r\n", self.date, b"application/octet-stream", body)


class CeilingProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection: parse with httptools, answer each request with one write."""

    def __init__(self, cache: ResponseCache) -> None:
        self._cache = cache
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport implements asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._close()

    # httptools parser callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._body = []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        self._transport.write(self._response())
        if not self._parser.should_keep_alive():
            self._close()

    # ------------------------------------------------------------------------------------------

    def _response(self) -> bytes:
        path = self._url.split(b"?", 1)[0]
        if path == ECHO_PATH:
            return self._cache.echo(b"".join(self._body))
        return self._cache.static.get(path, self._cache.not_found)

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def serve(host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM; the harness stops us with SIGTERM."""
    loop = asyncio.get_running_loop()
    cache = ResponseCache(loop)
    server = await loop.create_server(
        lambda: CeilingProtocol(cache), host, port, reuse_address=True, backlog=2048
    )
    stopped_by: asyncio.Future[signal.Signals] = loop.create_future()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, _settle, stopped_by, signum)
    async with server:
        received = await stopped_by
    # Said out loud, so an unexpected stop shows in the harness's report as "stopped by SIGTERM".
    print(f"ceiling: stopped by {received.name}", file=sys.stderr)


def _settle(future: asyncio.Future[signal.Signals], signum: signal.Signals) -> None:
    if not future.done():
        future.set_result(signum)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
