"""The app runs inside a real asyncio Task from its first step.

`asyncio.current_task()`, `asyncio.timeout()` and anyio's cancel scopes (used by Starlette's
BaseHTTPMiddleware and FastAPI) need one; an app coroutine stepped by hand outside any Task
answered 500 to every request through them.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import time
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

from monoceros.protocols.cycle import RequestCycle
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


# -- the Tasks' bookkeeping ------------------------------------------------------------------------

factory_made: list[asyncio.Task[Any]] = []


async def factory_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Sets a task factory at startup, as tracing libraries and eager-start setups do."""
    if scope["type"] == "lifespan":
        await receive()
        loop = asyncio.get_running_loop()

        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
            task = asyncio.Task(coro, loop=loop, **kwargs)
            factory_made.append(task)
            return task

        loop.set_task_factory(factory)
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    await answer(send, b"factory" if asyncio.current_task() in factory_made else b"other")


def test_a_task_factory_the_app_sets_makes_the_request_tasks() -> None:
    factory_made.clear()
    with run_server(factory_app) as running, httpx.Client(base_url=running.url) as client:
        assert [client.get("/").text for _ in range(3)] == ["factory"] * 3


def finish_now_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
    """What an eager task factory (3.12's `asyncio.eager_task_factory`) does with a coroutine
    that never waits: runs it to its end before returning (3.11 has no eager start)."""
    future = loop.create_future()
    try:
        contextvars.copy_context().run(coro.send, None)
    except StopIteration:
        future.set_result(None)
    else:
        raise AssertionError("the coroutine waited")
    return future


EAGER_FACTORIES = [pytest.param(finish_now_factory, False, id="finished-at-once")]
if hasattr(asyncio, "eager_task_factory"):  # 3.12+
    EAGER_FACTORIES += [
        pytest.param(asyncio.eager_task_factory, False, id="eager"),
        pytest.param(asyncio.eager_task_factory, True, id="eager-then-waits"),
    ]


@pytest.mark.parametrize(("factory", "waits"), EAGER_FACTORIES)
def test_an_eager_task_factory_leaves_no_task_behind(factory: Any, waits: bool) -> None:
    async def eager_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            asyncio.get_running_loop().set_task_factory(factory)
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if waits:
            await asyncio.sleep(0)
        await answer(send, b"answered")

    # --limit-concurrency counts running Tasks: one left behind would make the rest 503.
    with run_server(eager_app, limit_concurrency=1) as running:
        with httpx.Client(base_url=running.url) as client:
            assert [client.get("/").status_code for _ in range(10)] == [200] * 10
        assert not running.server.state.tasks


async def named_task_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        task = asyncio.current_task()
        await answer(send, task.get_name().encode() if task is not None else b"")


def test_request_tasks_are_named() -> None:
    with run_server(named_task_app, lifespan="off") as running:
        assert httpx.get(running.url).text == "monoceros.app"


async def background_work_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers, then keeps working in the request's Task (as Starlette's BackgroundTasks do)."""
    if scope["type"] == "http":
        await answer(send, b"answered")
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("fresh_connections", [False, True], ids=["keep-alive", "fresh"])
def test_every_finished_task_gives_its_place_back(fresh_connections: bool) -> None:
    # --limit-concurrency counts running Tasks: one left behind would make the rest 503.
    with run_server(background_work_app, lifespan="off", limit_concurrency=1) as running:
        headers = {"connection": "close"} if fresh_connections else {}
        statuses = []
        with httpx.Client(base_url=running.url, headers=headers) as client:
            for _ in range(20):
                response = client.get("/")
                statuses.append(response.status_code)
                if response.status_code == 503:  # the previous one's background work
                    time.sleep(0.05)
                    statuses.append(client.get("/").status_code)
        assert statuses.count(200) == 20, statuses
        deadline = time.monotonic() + 5
        while running.server.state.tasks and time.monotonic() < deadline:
            time.sleep(0.01)  # the last one's background work
        assert not running.server.state.tasks


def test_finished_requests_leave_nothing_for_the_garbage_collector() -> None:
    # A cycle among a request's objects (its Task, coroutine, RequestCycle) would keep each
    # request's objects alive until the collector ran: slower, and it would run more often.
    with (
        run_server(current_task_app, lifespan="off") as running,
        httpx.Client(base_url=running.url) as client,
    ):
        client.get("/")
        gc.collect()
        gc.disable()
        try:
            for _ in range(20):
                assert client.get("/").text == "task"
            time.sleep(0.1)  # the last Task's final step
            alive = [item for item in gc.get_objects() if type(item) is RequestCycle]
        finally:
            gc.enable()
    assert len(alive) <= 1, f"{len(alive)} finished requests still in memory"
