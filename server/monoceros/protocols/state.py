"""What one listener's connections share while the server runs: passed in as one object,
never a global. What they are told (limits, headers) is in context.py; what they report goes
to the observer."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

# The name of every Task an app runs in (requests and WebSocket sessions).
APP_TASK_NAME: Final = "monoceros.app"
# A static under mypyc, not an attribute of the module looked up per request.
_Task: Final = asyncio.Task


class Connection(Protocol):
    """What the server's housekeeping and shutdown steps need of a connection (HTTP or
    WebSocket)."""

    deadline: float

    def check_deadline(self, now: float) -> None: ...

    def shutdown(self) -> None: ...

    def abort(self) -> None: ...


@dataclass(eq=False)
class ServerState:
    connections: set[Connection] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    # Set once graceful shutdown begins: responses then carry `connection: close`.
    draining: bool = False
    # A coarse clock (loop time), advanced by the server's housekeeping tick; timeouts use it so
    # the hot path never reads the clock just to arm a timer.
    now: float = 0.0
    _all_closed: asyncio.Event | None = None

    def start_task(
        self, loop: asyncio.AbstractEventLoop, app_call: Coroutine[Any, Any, None]
    ) -> asyncio.Task[None] | None:
        """Run an app's coroutine (a request's or a WebSocket session's) in a Task of its own:
        graceful shutdown waits for it and, past its timeout, cancels it. The coroutine hands
        its Task to `task_finished` as it ends (a done callback would cost a turn of the loop
        per request, and `asyncio.current_task()` is Python code on 3.11).

        Returns the Task, or None if it has ended already (an eager task factory ran all of
        it): the caller keeps it for `task_finished`."""
        if loop.get_task_factory() is None:
            # Named: a Task without a name formats "Task-<n>" for itself (Python 3.11).
            task = _Task(app_call, loop=loop, name=APP_TASK_NAME)
        else:  # the app's own factory: eager start, a tracer
            task = loop.create_task(app_call, name=APP_TASK_NAME)
            if task.done():  # only a factory's Task can have run already
                return None
        self.tasks.add(task)
        return task

    def task_finished(self, task: asyncio.Task[None] | None) -> None:
        """Said by an app's coroutine in its last step (None: an eager factory is running all
        of it before its Task was handed out, and it is never added)."""
        self.tasks.discard(task)

    def running_tasks(self) -> list[asyncio.Task[None]]:
        """The app Tasks still running; one cancelled before its first step never said it
        finished, and is forgotten here."""
        self.tasks.difference_update([task for task in self.tasks if task.done()])
        return list(self.tasks)

    def tick(self, now: float) -> None:
        """The housekeeping step (every TICK for a server, every heartbeat for a supervisor's
        admin listener): advance the coarse clock and expire connections whose keep-alive or
        header deadline has passed."""
        self.now = now
        for connection in list(self.connections):
            if connection.deadline <= now:
                connection.check_deadline(now)

    def over_capacity(self, limit: int) -> bool:
        """`--limit-concurrency`: more connections, or as many app tasks, as allowed."""
        return len(self.connections) > limit or len(self.tasks) >= limit

    def connection_closed(self, connection: Connection) -> None:
        self.connections.discard(connection)
        if not self.connections and self._all_closed is not None:
            self._all_closed.set()

    async def wait_all_closed(self) -> None:
        if self.connections:
            self._all_closed = asyncio.Event()
            await self._all_closed.wait()
