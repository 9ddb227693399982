"""The admin listener's app: /metrics, /healthz and /readyz, never on the application port.

It is served by the same HttpProtocol as the app, on its own socket and with its own
ServerState, so its requests are neither logged nor counted as application traffic.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from monoceros.config import Config, ListenSettings
from monoceros.errors import StartupError
from monoceros.protocols.context import ConnectionContext
from monoceros.protocols.head import DefaultHeaders
from monoceros.protocols.http import HttpProtocol
from monoceros.protocols.state import ServerState
from monoceros.sockets import bind_socket, describe
from monoceros.types import Receive, Scope, Send

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

logger = logging.getLogger("monoceros.error")


class Readiness(enum.Enum):
    STARTING = "starting"  # lifespan startup has not completed
    SERVING = "serving"
    DRAINING = "draining"  # graceful shutdown (or its --shutdown-delay) has begun


class AdminApp:
    def __init__(self, registry: Callable[[], CollectorRegistry]) -> None:
        """`registry` makes what /metrics serves, at the first scrape: prometheus-client takes
        tens of milliseconds to import, which the process's startup does not wait for."""
        self._make_registry = registry
        self._registry: CollectorRegistry | None = None
        self.readiness = Readiness.STARTING
        # The supervisor asks its workers for fresh counts here before each scrape.
        self.before_scrape: Callable[[], Awaitable[None]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan and anything else: nothing to do
        path = scope["path"]
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(send, 405, b"text/plain; charset=utf-8", b"Method Not Allowed\n")
        elif path == "/metrics":
            accept = b""
            for name, value in scope["headers"]:
                if name == b"accept":
                    accept = value
            from prometheus_client.exposition import choose_encoder  # see __init__

            registry = self._registry
            if registry is None:
                registry = self._registry = self._make_registry()
            encoder, content_type = choose_encoder(accept.decode("latin-1"))
            if self.before_scrape is not None:
                await self.before_scrape()
            await _respond(send, 200, content_type.encode(), encoder(registry))
        elif path == "/healthz":
            await _respond(send, 200, b"text/plain; charset=utf-8", b"ok\n")
        elif path == "/readyz":
            ready = self.readiness is Readiness.SERVING
            body = self.readiness.value.encode() + b"\n"
            await _respond(send, 200 if ready else 503, b"text/plain; charset=utf-8", body)
        else:
            await _respond(send, 404, b"text/plain; charset=utf-8", b"Not Found\n")


async def _respond(send: Send, status: int, content_type: bytes, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"cache-control", b"no-store")],
        }
    )
    await send({"type": "http.response.body", "body": body})


class AdminListener:
    """The admin app on its own socket, with its own connections (never counted as traffic),
    clock and Date header: used by a Server and by the supervisor of a worker group."""

    def __init__(self, app: AdminApp, config: Config) -> None:
        self.app = app
        self.config = config
        # Told nothing of proxies, WebSockets or request ids, and observed by nobody.
        self.context = ConnectionContext(
            default_headers=DefaultHeaders(
                server=config.server_header, date=config.date_header, extra=config.headers
            )
        )
        self.state = ServerState()
        self._listener: asyncio.Server | None = None
        self.socket: socket.socket | None = None

    async def start(self) -> None:
        settings = self.config.observe
        listen = ListenSettings(host=settings.metrics_host, port=settings.metrics_port)
        try:
            sock = self.socket = bind_socket(listen)
        except StartupError as exc:
            # Name the flag: "address in use" alone reads as the application port.
            raise StartupError(f"Admin listener (--metrics-port): {exc}") from exc

        def protocol() -> HttpProtocol:
            return HttpProtocol(self.app, self.context, self.state)

        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(protocol, sock=sock)
        logger.info("Admin listener on %s (/metrics, /healthz, /readyz)", describe(sock, "http"))

    def housekeeping(self, now: float, second: int) -> None:
        """The connections' clock and deadlines (see ServerState.tick), and the Date header."""
        self.state.tick(now)
        self.context.default_headers.at_second(second)

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        for connection in list(self.state.connections):
            connection.abort()
        if self.socket is not None:
            self.socket.close()
