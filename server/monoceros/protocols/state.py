"""State the server shares with every connection: passed in as one object, never a global."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from monoceros.config import HttpLimits, ProxySettings, WebSocketSettings
from monoceros.protocols.events import RequestFinished, SessionFinished
from monoceros.protocols.head import DefaultHeaders


class Connection(Protocol):
    """What the server's housekeeping and shutdown steps need of a connection (HTTP or
    WebSocket)."""

    deadline: float

    def check_deadline(self, now: float) -> None: ...

    def shutdown(self) -> None: ...

    def abort(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ProtocolSettings:
    """The part of the configuration a connection reads (not the whole Config)."""

    limits: HttpLimits = field(default_factory=HttpLimits)
    root_path: str = ""
    limit_concurrency: int | None = None
    limit_max_requests: int | None = None
    # Lowercased request/response header carrying the request id; empty to turn ids off.
    request_id_header: bytes = b"x-request-id"
    # Proxy headers: off unless the server passes --proxy-headers settings (the admin listener
    # never resolves them).
    proxy: ProxySettings = field(default_factory=lambda: ProxySettings(enabled=False))
    # WebSockets: None answers upgrade requests as plain HTTP (--ws none, the admin listener).
    ws: WebSocketSettings | None = None


_HEX_PAD: Final = 1 << 64


class RequestIds:
    """Request ids as 32 hex digits, like a UUID's: 16 random per process, then a counter.

    Unique across processes and restarts without a random draw per request (`os.urandom`
    plus `hex()` costs several times more, on the hot path)."""

    __slots__ = ("_count", "_prefix")

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._count = 0

    def next(self) -> str:
        self._count += 1
        # hex() of 2**64 + count is "0x1" and then exactly 16 digits (the count, zero-padded):
        # a quarter of the cost of a `:016x` format spec.
        return self._prefix + hex(_HEX_PAD + self._count)[3:]


@dataclass(eq=False)
class ServerState:
    settings: ProtocolSettings
    default_headers: DefaultHeaders
    # Lifespan state: each request scope gets a shallow copy (ASGI lifespan "state").
    app_state: dict[str, Any] = field(default_factory=dict)
    connections: set[Connection] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    total_requests: int = 0
    # Counters read by the metrics collector at scrape time: plain ints, no locks.
    active_requests: int = 0
    connections_accepted: int = 0
    keepalive_reuses: int = 0
    rejections: dict[int, int] = field(default_factory=dict)  # status -> count
    request_ids: RequestIds = field(default_factory=RequestIds)
    # Set once graceful shutdown begins: responses then carry `connection: close`.
    draining: bool = False
    # A coarse clock (loop time), advanced by the server's housekeeping tick; timeouts use it so
    # the hot path never reads the clock just to arm a timer.
    now: float = 0.0
    on_request_finished: Callable[[RequestFinished], None] | None = None
    # WebSocket sessions: open now, and finished ones by close code (read at scrape time).
    websocket_sessions: int = 0
    websocket_closes: dict[int, int] = field(default_factory=dict)
    on_session_finished: Callable[[SessionFinished], None] | None = None
    # Called once `limit_max_requests` requests have been received.
    on_request_limit: Callable[[], None] | None = None
    _all_closed: asyncio.Event | None = None

    def track(self, task: asyncio.Task[None]) -> None:
        """An app's Task (a request's or a WebSocket session's): graceful shutdown waits for it
        and, past its timeout, cancels it."""
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def request_limit_reached(self) -> None:
        """`--limit-max-requests` requests have been received (connections count them)."""
        if self.on_request_limit is not None:
            self.on_request_limit()

    def tick(self, now: float, second: int) -> None:
        """The housekeeping step (every TICK for a server, every heartbeat for a supervisor's
        admin listener): advance the coarse clock, refresh the Date header once a second, and
        expire connections whose keep-alive or header deadline has passed."""
        self.now = now
        self.default_headers.at_second(second)
        for connection in list(self.connections):
            if connection.deadline <= now:
                connection.check_deadline(now)

    def count_rejection(self, status: int) -> None:
        self.rejections[status] = self.rejections.get(status, 0) + 1

    def over_capacity(self) -> bool:
        limit = self.settings.limit_concurrency
        return limit is not None and (len(self.connections) > limit or len(self.tasks) >= limit)

    def connection_closed(self, connection: Connection) -> None:
        self.connections.discard(connection)
        if not self.connections and self._all_closed is not None:
            self._all_closed.set()

    async def wait_all_closed(self) -> None:
        if self.connections:
            self._all_closed = asyncio.Event()
            await self._all_closed.wait()
