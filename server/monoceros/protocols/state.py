"""What one listener's connections share while the server runs: passed in as one object,
never a global. What they are told (limits, headers) is in context.py; what they report goes
to the observer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Protocol


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

    def track(self, task: asyncio.Task[None]) -> None:
        """An app's Task (a request's or a WebSocket session's): graceful shutdown waits for it
        and, past its timeout, cancels it."""
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

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
