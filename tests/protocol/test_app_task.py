"""The app runs inside a real asyncio Task from its first step.

`asyncio.current_task()`, `asyncio.timeout()` and anyio's cancel scopes (used by Starlette's
BaseHTTPMiddleware and FastAPI) need one; an app coroutine stepped by hand outside any Task
answered 500 to every request through them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from monoceros.types import Receive, Scope, Send
from tests.utils import run_server


async def answer(send: Send, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def current_task_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await answer(send, b"task" if asyncio.current_task() is not None else b"no task")


async def asyncio_timeout_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        async with asyncio.timeout(5):
            await answer(send, b"task")


async def anyio_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        with anyio.fail_after(5):
            await answer(send, b"task")


class PassThrough(BaseHTTPMiddleware):
    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        return await call_next(request)


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse("task")


starlette_with_middleware = Starlette(
    routes=[Route("/", home)], middleware=[Middleware(PassThrough)]
)


@pytest.mark.parametrize(
    "app",
    [
        pytest.param(current_task_app, id="current_task"),
        pytest.param(asyncio_timeout_app, id="asyncio.timeout"),
        pytest.param(anyio_app, id="anyio.fail_after"),
        pytest.param(starlette_with_middleware, id="starlette-BaseHTTPMiddleware"),
    ],
)
def test_the_app_runs_in_a_task(app: Any) -> None:
    with run_server(app) as running, httpx.Client(base_url=running.url, timeout=5) as client:
        for _ in range(3):  # a fresh connection, then keep-alive
            response = client.get("/")
            assert (response.status_code, response.text) == (200, "task")
