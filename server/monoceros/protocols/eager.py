"""Run a request's app coroutine eagerly: its first step runs inside the protocol callback.

Most responses (plaintext, JSON, anything answered from memory) finish without ever waiting,
so they need no Task and no extra trip through the event loop. A coroutine that does wait is
handed, already started, to a Task that continues it. Python 3.12's eager task factory does
the same for every task; we do it for requests on 3.11 too.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine, Generator
from typing import Any


def start_eagerly(
    coro: Coroutine[Any, Any, None], loop: asyncio.AbstractEventLoop
) -> asyncio.Task[None] | None:
    """Run `coro` until it first waits; return a Task finishing it, or None if it is done."""
    context = contextvars.copy_context()  # one context per request, as a Task would give
    try:
        first = context.run(coro.send, None)
    except StopIteration:
        return None
    return loop.create_task(_continue(coro, first), context=context)


async def _continue(coro: Coroutine[Any, Any, None], first: Any) -> None:
    await _Continuation(coro, first)


class _Continuation:
    """An awaitable that passes a started coroutine's yields and wake-ups straight through,
    so the Task driving it sees the same futures the coroutine awaits (cancellation included)."""

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, None], first: Any) -> None:
        self._coro = coro
        self._first = first

    def __await__(self) -> Generator[Any, Any, None]:
        coro = self._coro
        yielded = self._first
        while True:
            try:
                sent = yield yielded
            except BaseException as exc:  # CancelledError from Task.cancel(), or a throw
                try:
                    yielded = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    yielded = coro.send(sent)
                except StopIteration:
                    return
