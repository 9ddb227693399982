"""An app that rewrites its own scope as the request's `x-rewrite: KEY=KIND[;KEY=KIND...]`
header says (tests/rewrites.py's kinds), before it answers."""

from __future__ import annotations

from monoceros.types import Receive, Scope, Send
from tests.rewrites import rewrite


def rewrite_as_asked(scope: Scope) -> None:
    wanted = dict(scope["headers"]).get(b"x-rewrite")
    if wanted is not None:
        for change in wanted.decode().split(";"):
            key, _, kind = change.partition("=")
            rewrite(scope, key, kind)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        return
    if scope["type"] == "websocket":
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        rewrite_as_asked(scope)
        await send({"type": "websocket.close", "code": 1000})
        return
    rewrite_as_asked(scope)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"answered"})
