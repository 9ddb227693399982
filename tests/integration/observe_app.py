"""Apps the observability tests serve, importable by a `monoceros` subprocess as
`tests.integration.observe_app:<name>` (the server runs from the repository root).

`app` answers by path:

/missing         404
/boom            the app raises (500)
/echo            reads the request body and sends it back
/log             logs a stdlib record on logger "observe_app" (with extra={"order_id": 7}) and a
                 structlog one on "observe_app.structured" (answer=42), then 200
/print           print()s a line, logs a record, print()s another, then 200
/slow?seconds=   sleeps (at most 10 s), then 200
/hang            never starts a response; returns once the client has gone (at most 10 s)
/stream          200, then 100 chunks of 1 KiB, 50 ms apart (5 s if the client stays)
anything else    200 "ok"
WebSocket        accepts, echoes one message, closes with 1000

`slow_startup` is the same app whose lifespan startup takes STARTUP_SECONDS.
`starlette_app` is a Starlette app with a route template, for the `http_route` label.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qs

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from monoceros.types import Receive, Scope, Send

logger = logging.getLogger("observe_app")

STARTUP_SECONDS = 1.0
STREAM_CHUNK = b"x" * 1024
STREAM_CHUNKS = 100


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send, startup_seconds=0.0)
        return
    if scope["type"] == "websocket":
        await echo_once(receive, send)
        return
    path = scope["path"]
    if path == "/missing":
        await respond(send, 404, b"not found")
    elif path == "/boom":
        raise RuntimeError("boom from the app")
    elif path == "/echo":
        body = b""
        more_body = True
        while more_body:
            message = await receive()
            body += message.get("body", b"")
            more_body = message.get("more_body", False)
        await respond(send, 200, body)
    elif path == "/log":
        logger.warning("inside a request", extra={"order_id": 7})
        structlog.get_logger("observe_app.structured").info("structured inside", answer=42)
        await respond(send, 200, b"logged")
    elif path == "/print":
        print("printed before")
        logger.warning("logged between")
        print("printed after")
        await respond(send, 200, b"printed")
    elif path == "/slow":
        query = parse_qs(scope["query_string"].decode())
        await asyncio.sleep(min(float(query.get("seconds", ["0.5"])[0]), 10.0))
        await respond(send, 200, b"slept")
    elif path == "/hang":
        async with asyncio.timeout(10):
            while (await receive())["type"] != "http.disconnect":
                pass
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(STREAM_CHUNKS):
            await send({"type": "http.response.body", "body": STREAM_CHUNK, "more_body": True})
            await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b""})
    else:
        await respond(send, 200, b"ok")


async def slow_startup(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send, startup_seconds=STARTUP_SECONDS)
    else:
        await app(scope, receive, send)


async def lifespan(receive: Receive, send: Send, startup_seconds: float) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            logger.warning("outside any request")
            await asyncio.sleep(startup_seconds)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def echo_once(receive: Receive, send: Send) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    message = await receive()
    if message["type"] == "websocket.receive":
        await send({"type": "websocket.send", "text": message.get("text") or ""})
        await send({"type": "websocket.close", "code": 1000})


async def respond(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def item(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"item {request.path_params['item_id']}")


async def thing(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"thing {request.path_params['thing_id']}")


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse("home")


def _routes() -> list[Any]:
    return [
        Route("/", home),
        Route("/items/{item_id}", item),
        Mount("/api", routes=[Route("/things/{thing_id}", thing)]),
    ]


starlette_app = Starlette(routes=_routes())
