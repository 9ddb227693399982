"""State the server shares with every connection: passed in as one object, never a global."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from monoceros.config import HttpLimits
from monoceros.protocols.events import RequestFinished
from monoceros.protocols.head import DefaultHeaders

if TYPE_CHECKING:
    from monoceros.protocols.http import HttpProtocol


@dataclass(frozen=True, slots=True)
class ProtocolSettings:
    """The part of the configuration a connection reads (not the whole Config)."""

    limits: HttpLimits = field(default_factory=HttpLimits)
    root_path: str = ""
    limit_concurrency: int | None = None
    limit_max_requests: int | None = None


@dataclass(eq=False)
class ServerState:
    settings: ProtocolSettings
    default_headers: DefaultHeaders
    # Lifespan state: each request scope gets a shallow copy (ASGI lifespan "state").
    app_state: dict[str, Any] = field(default_factory=dict)
    connections: set[HttpProtocol] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    total_requests: int = 0
    # Set once graceful shutdown begins: responses then carry `connection: close`.
    draining: bool = False
    # A coarse clock (loop time), advanced by the server's housekeeping tick; timeouts use it so
    # the hot path never reads the clock just to arm a timer.
    now: float = 0.0
    on_request_finished: Callable[[RequestFinished], None] | None = None
    # Called once `limit_max_requests` requests have been received.
    on_request_limit: Callable[[], None] | None = None
    _all_closed: asyncio.Event | None = None

    def count_request(self) -> None:
        self.total_requests += 1
        limit = self.settings.limit_max_requests
        if limit is not None and self.total_requests == limit and self.on_request_limit:
            self.on_request_limit()

    def over_capacity(self) -> bool:
        limit = self.settings.limit_concurrency
        return limit is not None and (
            len(self.connections) > limit or len(self.tasks) >= limit
        )

    def connection_closed(self, connection: HttpProtocol) -> None:
        self.connections.discard(connection)
        if not self.connections and self._all_closed is not None:
            self._all_closed.set()

    async def wait_all_closed(self) -> None:
        if self.connections:
            self._all_closed = asyncio.Event()
            await self._all_closed.wait()
