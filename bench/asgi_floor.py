"""The ASGI floor: the least any ASGI server on uvloop + httptools does per request.

`ceiling.py` shows what the libraries cost with no ASGI layer. This server adds what ASGI
itself requires and nothing else: a scope dict per request, the app called in a Task of its own
with `receive` and `send` coroutines taking message dicts, and the response head encoded from
the app's status and headers. No validation of what the app sends, no limits, no timeouts, no
Date or Server header, no request ids, no logs or metrics, no flow control; HTTP/1.1 keep-alive
only. It serves `examples/app.py` (or any app given), so its figures compare with every other
server's.

`make bench` compiles it with mypyc into build/floor, the same way monoceros's hot path is
compiled, so the two differ by what they do, not by how they run: whatever monoceros costs
above this is the price of what it does for a production server. Run from its source it is
plain Python and says so (`--allow-plain`), and its figures mean little.

Usage (the harness's): python -c 'import asgi_floor; asgi_floor.main()' --host H --port P

Not a server to deploy. It exists to be measured against.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import signal
import sys
from typing import Any

import httptools

# Shared by every scope: the floor does not guard against an app that changes it.
ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}
Message = dict[str, Any]


class Exchange:
    """One request and its response: the app's `receive` and `send`."""

    def __init__(self, connection: FloorProtocol, scope: dict[str, Any]) -> None:
        self.connection = connection
        self.scope = scope
        self.body: list[bytes] = []
        self.complete = False
        self.waiter: asyncio.Future[None] | None = None
        self.status = 200
        self.headers: Any = ()
        self.chunked: bool | None = None  # None until the head is written

    async def receive(self) -> Message:
        while not self.complete:
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        body = b"".join(self.body)
        self.body = []
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = message.get("headers", ())
            return
        body: bytes = message.get("body", b"")
        more_body: bool = message.get("more_body", False)
        write = self.connection.transport.write
        if self.chunked is None:  # the first body message: the head goes with it
            self.chunked = more_body  # a stream (examples/app.py's sets no length)
            lines = [b"HTTP/1.1 %d OK\r\n" % self.status]
            for name, value in self.headers:
                lines.append(b"%s: %s\r\n" % (name, value))
            if more_body:
                lines.append(b"transfer-encoding: chunked\r\n\r\n%x\r\n" % len(body))
                lines.append(body)
                lines.append(b"\r\n")
            else:
                lines.append(b"\r\n")
                lines.append(body)
            write(b"".join(lines))
        elif body:
            write(b"%x\r\n%s\r\n" % (len(body), body))
        if self.chunked and not more_body:
            write(b"0\r\n\r\n")

    def body_received(self, chunk: bytes) -> None:
        self.body.append(chunk)

    def request_complete(self) -> None:
        self.complete = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


async def run(app: Any, exchange: Exchange) -> None:
    await app(exchange.scope, exchange.receive, exchange.send)


class FloorProtocol(asyncio.Protocol):
    """One connection: parse with httptools, run each request's app call in a Task."""

    def __init__(self, app: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.app = app
        self.loop = loop
        self.parser = httptools.HttpRequestParser(self)
        self.transport: Any = None
        self.client: Any = None
        self.server: Any = None
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.exchange: Exchange | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.client = transport.get_extra_info("peername")[:2]
        self.server = transport.get_extra_info("sockname")[:2]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    # httptools parser callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        raw_path, _, query = self.url.partition(b"?")
        scope = {
            "type": "http",
            "asgi": ASGI_VERSION,
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": "http",
            "method": self.parser.get_method().decode("ascii"),
            "root_path": "",
            "path": raw_path.decode("ascii"),
            "raw_path": raw_path,
            "query_string": query,
            "headers": self.headers,
        }
        exchange = Exchange(self, scope)
        self.exchange = exchange
        asyncio.Task(run(self.app, exchange), loop=self.loop, name="floor")

    def on_body(self, body: bytes) -> None:
        if self.exchange is not None:
            self.exchange.body_received(body)

    def on_message_complete(self) -> None:
        if self.exchange is not None:
            self.exchange.request_complete()


async def serve(app: Any, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM (the harness stops servers with SIGTERM)."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: FloorProtocol(app, loop), host, port, reuse_address=True, backlog=2048
    )
    stopped: asyncio.Future[None] = loop.create_future()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, _settle, stopped)
    async with server:
        await stopped


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def compiled() -> bool:
    return not __file__.endswith(".py")


def main(argv: list[str] | None = None) -> None:
    # Not __doc__: a module compiled by mypyc has none.
    parser = argparse.ArgumentParser(description="The ASGI floor (bench/asgi_floor.py).")
    parser.add_argument("app", nargs="?", default="examples.app:app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--allow-plain", action="store_true", help="run uncompiled anyway")
    args = parser.parse_args(argv)
    if not compiled() and not args.allow_plain:
        sys.exit("asgi_floor: not compiled (make bench builds it into build/floor)")
    module, _, name = args.app.partition(":")
    app = getattr(importlib.import_module(module), name)
    import uvloop

    uvloop.run(serve(app, args.host, args.port))


if __name__ == "__main__":
    main()
