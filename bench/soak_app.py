"""The app `make soak` serves (bench/soak.py): a route for each kind of load, and /tasks, which
says how many tasks the server's event loop holds (the soak samples it)."""

from __future__ import annotations

import asyncio
from typing import Any

Scope = dict[str, Any]


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await websocket_echo(receive, send)
        return
    path = scope["path"]
    if path == "/boom":
        raise RuntimeError("a 500 on purpose (the soak's error route)")
    if path == "/tasks":  # this request's own task is not counted
        body = b"%d" % (len(asyncio.all_tasks()) - 1)
    elif path == "/echo":
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message["body"]
            if not message.get("more_body"):
                break
    elif path == "/big":  # 4 MiB in 64 KiB pieces, for slow readers
        await send({"type": "http.response.start", "status": 200, "headers": []})
        piece = b"x" * 65536
        for _ in range(64):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    elif path == "/":
        body = b"hello"
    else:
        await respond(send, 404, b"not found")
        return
    await respond(send, 200, body)


async def respond(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def websocket_echo(receive: Any, send: Any) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": message.get("text") or "?"})
