"""Observability for a group of worker processes (`--workers`), served by the supervisor.

`GroupCollector` renders the same metric families as one server (`metrics.render`) from the
group's summed snapshot, plus `monoceros_workers` and `monoceros_worker_restarts_total`.
`AdminListener` serves the admin app outside a Server: its own socket, connections, clock
and Date header.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monoceros.config import Config, ListenSettings
from monoceros.errors import StartupError
from monoceros.observe.admin import AdminApp
from monoceros.observe.metrics import MetricsSnapshot, render
from monoceros.protocols.head import DefaultHeaders
from monoceros.protocols.http import HttpProtocol
from monoceros.protocols.state import ProtocolSettings, ServerState
from monoceros.sockets import bind_socket, describe

logger = logging.getLogger("monoceros.error")


@dataclass(frozen=True, slots=True)
class GroupStatus:
    # Counters: live workers' latest snapshots plus the final ones of exited workers.
    # Gauges: live workers only.
    snapshot: MetricsSnapshot
    lifespan_phase: str  # "started" while any worker serves
    workers: int  # running (starting or serving), not those being stopped
    restarts: dict[str, int]  # reason -> count


class GroupCollector(Collector):
    def __init__(self, status: Callable[[], GroupStatus]) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        status = self.status()
        yield from render(status.snapshot, status.lifespan_phase)
        yield GaugeMetricFamily(
            "monoceros_workers",
            "Worker processes running (starting or serving; not those being stopped).",
            value=status.workers,
        )
        restarts = CounterMetricFamily(
            "monoceros_worker_restarts",
            "Workers replaced, by reason: crashed, unresponsive, recycled, reload.",
            labels=["reason"],
        )
        for reason, count in status.restarts.items():
            restarts.add_metric([reason], count)
        yield restarts


class AdminListener:
    def __init__(self, app: AdminApp, config: Config) -> None:
        self.app = app
        self.config = config
        # Its own connections, never counted as traffic (as in server.py).
        self.state = ServerState(
            settings=ProtocolSettings(request_id_header=b""),
            default_headers=DefaultHeaders(
                server=config.server_header, date=config.date_header, extra=config.headers
            ),
        )
        self._listener: asyncio.Server | None = None
        self._socket: socket.socket | None = None
        self._second = 0

    async def start(self) -> None:
        settings = self.config.observe
        listen = ListenSettings(
            host=settings.metrics_host or self.config.listen.host, port=settings.metrics_port
        )
        try:
            sock = self._socket = bind_socket(listen)
        except StartupError as exc:
            # Name the flag: "address in use" alone reads as the application port.
            raise StartupError(f"Admin listener (--metrics-port): {exc}") from exc

        def protocol() -> HttpProtocol:
            return HttpProtocol(self.app, self.state)

        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(protocol, sock=sock)
        logger.info("Admin listener on %s (/metrics, /healthz, /readyz)", describe(sock, "http"))

    def housekeeping(self, now: float) -> None:
        """The connections' clock, Date header and deadlines (server.py does this every TICK;
        the supervisor calls it at least once a second: admin traffic is light)."""
        state = self.state
        state.now = now
        second = int(time.time())
        if second != self._second:
            self._second = second
            state.default_headers.refresh(second)
        for connection in list(state.connections):
            if connection.deadline <= now:
                connection.check_deadline(now)

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        for connection in list(self.state.connections):
            connection.abort()
        if self._socket is not None:
            self._socket.close()
