"""One server process: listener, event loop, lifespan, signals and the graceful drain."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import time
from collections.abc import Callable
from typing import Protocol

from monoceros.allocator import keep_freed_memory
from monoceros.collector import settle_after_startup
from monoceros.config import Config
from monoceros.errors import StartupError
from monoceros.importer import load_app
from monoceros.interface import WSGI_THREADS, FreshContext, adapt
from monoceros.lifespan import Lifespan
from monoceros.loops import loop_factory
from monoceros.observe.admin import AdminListener, Readiness
from monoceros.observe.hub import Observability
from monoceros.observe.trace import MessageLog, TracedProtocol, trace_enabled
from monoceros.observe.watchdog import LoopWatchdog
from monoceros.protocols.context import ConnectionContext, RequestLimit
from monoceros.protocols.http import TICK, HttpProtocol
from monoceros.protocols.observer import Observer
from monoceros.protocols.proxied import ProxiedHttpProtocol
from monoceros.protocols.state import ServerState
from monoceros.signals import captured_signals
from monoceros.sockets import bind_socket, close_sockets, describe
from monoceros.tls import create_ssl_context
from monoceros.types import ASGIApp

logger = logging.getLogger("monoceros.error")

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Listener(Protocol):
    """What shutdown needs of a listener: an `asyncio.Server`, or a worker's SharedListener."""

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


class Server:
    def __init__(
        self, config: Config, *, admin_listener: bool = True, observer: Observer | None = None
    ) -> None:
        """`observer`: one of the embedder's own (protocols/observer.py), told everything this
        server's metrics and access log are told."""
        self.config = config
        self.state = ServerState()
        self.lifespan: Lifespan | None = None
        self.observability = Observability(config, self._lifespan_phase, observer)
        limit = config.limit_max_requests
        # What every application connection is told (an admin listener has its own).
        self.context = ConnectionContext.for_application(
            config,
            self.observability.observer,
            RequestLimit(limit, self.request_limit_reached) if limit is not None else None,
        )
        admin_app = self.observability.admin
        # A supervised worker (worker.py) serves no admin listener: its supervisor does.
        self.admin = (
            AdminListener(admin_app, config) if admin_app is not None and admin_listener else None
        )
        self.sockets: list[socket.socket] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.started = False
        self.force_exit = False
        self._exit_requested: asyncio.Event | None = None
        self._listeners: list[Listener] = []
        self._tick: asyncio.TimerHandle | None = None
        self._drain_waiter: asyncio.Task[None] | None = None
        self._force_exit_requested: asyncio.Event | None = None
        threshold = config.observe.loop_block_threshold
        self.watchdog = (
            LoopWatchdog(threshold, self.observability.metrics) if threshold > 0 else None
        )

    # -- entry points --------------------------------------------------------------------------

    def run(self, sockets: list[socket.socket] | None = None) -> int:
        """Serve until told to stop; return the process exit code."""
        with asyncio.Runner(loop_factory=loop_factory(self.config.loop)) as runner:
            return runner.run(self.serve(sockets))

    async def serve(self, sockets: list[socket.socket] | None = None) -> int:
        self.loop = asyncio.get_running_loop()
        self._exit_requested = asyncio.Event()
        self._force_exit_requested = asyncio.Event()
        self.observability.output.attach(self.loop)
        try:
            with captured_signals(self.loop, HANDLED_SIGNALS, self._handle_signal):
                try:
                    lifespan = await self.startup(sockets)
                except StartupError as exc:
                    logger.error("%s", exc)
                    self._close_sockets()
                    return exc.exit_code
                await self._exit_requested.wait()
                await self.shutdown(lifespan)
            return 0
        finally:
            if self.watchdog is not None:
                self.watchdog.stop()
            self.observability.close()  # every request observed, every line written

    def request_exit(self) -> None:
        if self._exit_requested is not None:
            self._exit_requested.set()

    def request_limit_reached(self) -> None:
        """`--limit-max-requests`: drain and exit (a supervised worker asks to retire instead)."""
        self.request_exit()

    # -- startup -------------------------------------------------------------------------------

    async def startup(self, sockets: list[socket.socket] | None = None) -> Lifespan:
        config = self.config
        logger.info("Started server process [%d]", os.getpid())
        app = self.load_app()
        ssl_context = None
        if config.tls.enabled:
            ssl_context = create_ssl_context(config.tls, http2=config.http2.enabled)
        # Bind before the app's startup runs, so a busy port fails fast; connections made
        # meanwhile wait in the backlog until we start serving.
        self.sockets = sockets if sockets is not None else [bind_socket(config.listen)]
        loop = asyncio.get_running_loop()
        # The admin listener comes up first: /readyz answers 503 while the app starts.
        if self.admin is not None:
            await self.admin.start()
        if self.watchdog is not None:
            self.watchdog.start()
        self._housekeeping()
        lifespan = self.lifespan = Lifespan(app, config.lifespan, self.context.app_state)
        await lifespan.startup()
        # What exists now lives as long as the process: out of the collector's way (collector.py).
        frozen = settle_after_startup()
        logger.debug("Garbage collector: %d startup objects frozen", frozen)

        scheme = "https" if ssl_context else "http"

        # Behind a PROXY-protocol balancer, connections read its header first (proxied.py).
        connection = HttpProtocol if self.context.proxy_protocol is None else ProxiedHttpProtocol

        def protocol_factory() -> asyncio.Protocol:
            return connection(app, self.context, self.state, scheme)

        if trace_enabled():

            def traced_factory() -> asyncio.Protocol:
                return TracedProtocol(connection(app, self.context, self.state, scheme))

            protocol_factory = traced_factory

        for sock in self.sockets:
            listener = await self.listen(sock, protocol_factory, ssl_context)
            self._listeners.append(listener)
            logger.info("Listening on %s (Press CTRL+C to quit)", describe(sock, scheme))
        self.observability.set_readiness(Readiness.SERVING)
        self.started = True
        # What requests free stays for the next ones (allocator.py): set a tick after the
        # first requests may come, since it imports ctypes, which start-up does not need.
        loop.call_later(TICK, _keep_freed_memory)
        return lifespan

    async def listen(
        self,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        ssl_context: ssl.SSLContext | None,
    ) -> Listener:
        """Start accepting connections on `sock` (a worker sharing it does so its own way)."""
        loop = asyncio.get_running_loop()
        return await loop.create_server(
            protocol_factory, sock=sock, ssl=ssl_context, backlog=self.config.listen.backlog
        )

    def load_app(self) -> ASGIApp:
        """The app as the server calls it: imported, made ASGI 3 (--interface), and wrapped
        for --reset-contextvars and the TRACE message log when asked for."""
        config = self.config
        obj = load_app(config.app, factory=config.factory, app_dir=config.app_dir)
        self.observability.app_loaded(obj)
        name = config.app if isinstance(config.app, str) else repr(config.app)
        app, kind = adapt(obj, config.interface, name)
        if kind == "asgi2":
            logger.info("Serving %s as an ASGI 2 application", name)
        elif kind == "wsgi":
            logger.info("Serving %s as a WSGI application (a2wsgi, %d threads)", name, WSGI_THREADS)
        if config.reset_contextvars:
            app = FreshContext(app)
        return MessageLog(app) if trace_enabled() else app

    @property
    def admin_sockets(self) -> list[socket.socket]:
        """The admin listener's socket once bound (none with --no-metrics or in a worker)."""
        sock = self.admin.socket if self.admin is not None else None
        return [sock] if sock is not None else []

    def _lifespan_phase(self) -> str:
        return self.lifespan.phase if self.lifespan is not None else "starting"

    def _housekeeping(self) -> None:
        """Every TICK: the application's and the admin listener's ServerState.tick."""
        loop = asyncio.get_running_loop()
        now, second = loop.time(), int(time.time())
        if self.watchdog is not None:
            self.watchdog.beat()
        self.state.tick(now)
        self.context.default_headers.at_second(second)
        if self.admin is not None:
            self.admin.housekeeping(now, second)
        self._tick = loop.call_later(TICK, self._housekeeping)

    # -- shutdown ------------------------------------------------------------------------------

    async def shutdown(self, lifespan: Lifespan) -> None:
        state = self.state
        timeout = self.config.timeout_graceful_shutdown
        deadline = asyncio.get_running_loop().time() + timeout if timeout else None
        logger.info("Shutting down")
        # 1. Readiness turns 503 at once; with --shutdown-delay, keep serving a while so load
        #    balancers (a Kubernetes Service, nginx health checks) stop sending first.
        self.observability.set_readiness(Readiness.DRAINING)
        delay = self.config.shutdown_delay
        if delay and not self.force_exit and self._force_exit_requested is not None:
            logger.info("Serving for %.1f more seconds before draining (--shutdown-delay)", delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._force_exit_requested.wait(), delay)
            if deadline is not None:
                deadline += delay  # the graceful timeout counts from the drain
        # 2. Responses finished from now on carry `connection: close`.
        state.draining = True
        # 3. Stop accepting new connections.
        for listener in self._listeners:
            listener.close()
        # 4. Close idle keep-alive connections; busy ones close after their response, and
        #    ones still waiting for their first request get a moment for it to arrive.
        for connection in list(state.connections):
            connection.shutdown()
        # 5. Wait for in-flight requests, at most --timeout-graceful-shutdown seconds.
        if not await self._wait_drained(deadline) and not self.force_exit:
            logger.warning("Graceful shutdown timed out: cancelling what is left.")
        # 6. Cancel what is left: close connections and cancel tasks still running.
        for connection in list(state.connections):
            connection.abort()
        for task in list(state.tasks):
            task.cancel()
        if state.tasks:
            await asyncio.wait(list(state.tasks), timeout=1.0)
        if self._tick is not None:
            self._tick.cancel()
        # 7. Let the app clean up.
        if not self.force_exit:
            await lifespan.shutdown()
        for listener in self._listeners:
            await listener.wait_closed()
        # 8. The sockets, and the admin listener last: /healthz answers until the very end.
        self._close_sockets()
        logger.info("Finished server process [%d]", os.getpid())

    async def _wait_drained(self, deadline: float | None) -> bool:
        """Wait for connections and then app tasks to finish; False on timeout or force exit."""
        loop = asyncio.get_running_loop()

        async def drained() -> None:
            await self.state.wait_all_closed()
            while running := self.state.running_tasks():
                await asyncio.wait(running)

        waiter = loop.create_task(drained())
        self._drain_waiter = waiter
        timeout = None if deadline is None else max(0.0, deadline - loop.time())
        done, _ = await asyncio.wait([waiter], timeout=timeout)
        if not done:
            waiter.cancel()
            return False
        return not waiter.cancelled()

    def _close_sockets(self) -> None:
        close_sockets(self.sockets, self.config.listen)
        if self.admin is not None:
            self.admin.close()

    # -- signals -------------------------------------------------------------------------------

    def _handle_signal(self, sig: signal.Signals) -> None:
        assert self._exit_requested is not None
        if self._exit_requested.is_set() and sig == signal.SIGINT:
            # A second Ctrl+C: stop waiting for the drain.
            self.force_exit = True
            if self._force_exit_requested is not None:
                self._force_exit_requested.set()
            waiter = self._drain_waiter
            if waiter is not None:
                waiter.cancel()
        self._exit_requested.set()


def _keep_freed_memory() -> None:
    logger.debug("Memory: %s", keep_freed_memory())  # allocator.py
