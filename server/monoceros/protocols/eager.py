"""Start a request's app coroutine in its own Task, eagerly where Python can.

The app always runs inside a real asyncio Task, from its first step to its last:
`asyncio.current_task()`, `asyncio.timeout()` and anyio's cancel scopes (Starlette's
BaseHTTPMiddleware, FastAPI) need one, and the same one throughout.

Most responses (plaintext, JSON, anything answered from memory) finish without ever waiting.
On Python 3.12+ the Task is created with `eager_start=True`: its first step runs inside the
protocol callback, so such a response is written at once and needs no trip through the
event loop. On 3.11 the Task starts on the next loop turn. (Running the first step outside
a Task is faster on 3.11 but breaks the libraries above; a pure-Python eager Task, as 3.12
does it in C, measured slower than the C Task's extra loop turn on 3.11.)
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Coroutine
from typing import Any

EAGER_TASKS = sys.version_info >= (3, 12)


def start_eagerly(
    coro: Coroutine[Any, Any, None], loop: asyncio.AbstractEventLoop
) -> asyncio.Task[None] | None:
    """Start `coro` in a Task; return it, or None if it already finished."""
    context = contextvars.copy_context()  # one context per request
    if EAGER_TASKS:
        task = asyncio.Task(coro, loop=loop, context=context, eager_start=True)  # type: ignore[call-arg,unused-ignore]
        return None if task.done() else task
    return loop.create_task(coro, context=context)
