"""The app `make soak` serves (bench/soak.py): the example app (examples/app.py: /, /echo,
/stream, /ws, 404s), plus /boom (a 500) and /tasks, which says how many tasks the server's
event loop holds (the soak samples it)."""

from __future__ import annotations

import asyncio
from typing import Any

from examples.app import app as example


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    path = scope.get("path")
    if path == "/boom":
        raise RuntimeError("a 500 on purpose (the soak's error route)")
    if path != "/tasks":
        await example(scope, receive, send)
        return
    body = b"%d" % (len(asyncio.all_tasks()) - 1)  # not this request's own task
    headers = [(b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
