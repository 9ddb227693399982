"""Both ends of a `--workers` worker: `WorkerServer`, a full Server that reports to its
supervisor over a pipe, and `Worker`, the supervisor's handle on one such process.

Messages are small tuples. Worker -> supervisor: ("ready",) once it listens, ("failed", line)
when it cannot start, ("snapshot", seq, MetricsSnapshot, rss_bytes, process families) in
answer to each request (they double as the heartbeat), ("retire", reason) when
--limit-max-requests is reached, and ("final", MetricsSnapshot) once it has drained, just
before it exits. Supervisor -> worker:
("snapshot", seq). The supervisor stops a worker with SIGTERM, as anyone else would.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import os
import random
import signal
import socket
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from prometheus_client.metrics_core import Metric

from monoceros.balance import LoadBoard, SharedListener, accepts_at_once
from monoceros.config import Config
from monoceros.errors import StartupError
from monoceros.importer import make_importable
from monoceros.lifespan import Lifespan
from monoceros.observe.group import process_families
from monoceros.observe.logging import configure_logging_for
from monoceros.observe.metrics import HttpMetrics, MetricsSnapshot, snapshot_of
from monoceros.server import Listener, Server

logger = logging.getLogger("monoceros.error")

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class Phase(enum.Enum):
    STARTING = "starting"
    READY = "ready"  # listening, lifespan startup complete


@dataclass(eq=False)
class Worker:
    """The supervisor's view of one worker process."""

    process: BaseProcess
    channel: Connection
    number: int  # its `worker` label: the lowest number no other running worker had (1 to 2N)
    # Loop time of the oldest snapshot request not answered yet (the heartbeat), or None.
    waiting_since: float | None = None
    phase: Phase = Phase.STARTING
    replace_reason: str | None = None  # recycled / reload: stop once a successor serves
    stop_reason: str | None = None  # set when the supervisor sends SIGTERM or SIGKILL
    failure: str | None = None  # the worker's startup error, when it could not start
    snapshot: MetricsSnapshot = field(default_factory=MetricsSnapshot)
    rss: int = 0  # resident bytes, as of the last snapshot
    processes: list[Metric] = field(default_factory=list)  # its process_* families, as of then
    waiters: dict[int, asyncio.Future[None]] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid or 0

    def send(self, message: tuple[Any, ...]) -> None:
        _send(self.channel, message)

    def signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def ask(self, seq: int, now: float) -> None:
        """Request a snapshot; the worker must answer within --timeout-worker-healthcheck."""
        if self.waiting_since is None:
            self.waiting_since = now
        self.send(("snapshot", seq))

    def record(self, message: tuple[Any, ...]) -> str:
        """Note what the worker said (any message proves it alive); return its kind."""
        self.waiting_since = None
        kind: str = message[0]
        if kind == "snapshot":
            _, seq, self.snapshot, self.rss, self.processes = message
            waiter = self.waiters.pop(seq, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        elif kind == "final":
            self.snapshot = message[1]
        elif kind == "ready":
            self.phase = Phase.READY
        elif kind == "failed":
            self.failure = message[1]
        return kind

    def reap(self) -> int | None:
        """Once the process has exited: read what it sent last (its final snapshot), close
        the pipe, and return the exit code."""
        with contextlib.suppress(EOFError, OSError):
            while self.channel.poll():
                self.record(self.channel.recv())
        self.channel.close()
        self.process.join(1.0)
        for waiter in self.waiters.values():
            if not waiter.done():
                waiter.set_result(None)
        return self.process.exitcode


def run_worker(
    config: Config,
    sockets: list[socket.socket] | None,
    channel: Connection,
    board: LoadBoard | None = None,
    number: int = 0,
) -> None:
    """The spawned process's entry point (picklable: a module-level function). `board`: where
    workers sharing `sockets` post their connections (balance.py); `number`: this worker's."""
    make_importable(config.app_dir)  # before --log-config, which may name classes from there
    configure_logging_for(config)
    limit = config.limit_max_requests
    if limit is not None and config.limit_max_requests_jitter:
        # Each worker its own limit, so workers started together do not retire together.
        config = config.replace(
            limit_max_requests=limit + random.randint(0, config.limit_max_requests_jitter)
        )
    if sockets is not None and config.listen.uds:
        # The socket file belongs to the supervisor: a retiring worker must not unlink it.
        config = config.replace(listen=dataclasses.replace(config.listen, uds=None))
    try:
        slot = board.slot(number) if board is not None else None
        code = WorkerServer(config, channel, board, slot).run(sockets=sockets)
    except StartupError as exc:  # raised before the event loop runs (e.g. --loop uvloop)
        logger.error("%s", exc)
        _send(channel, ("failed", str(exc)))
        code = exc.exit_code
    sys.exit(code)


class WorkerServer(Server):
    def __init__(
        self,
        config: Config,
        channel: Connection,
        board: LoadBoard | None = None,
        slot: int | None = None,
    ) -> None:
        super().__init__(config, admin_listener=False)
        self.channel = channel
        self._retiring = False
        self._board = board
        self._slot = slot

    async def listen(
        self,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        ssl_context: ssl.SSLContext | None,
    ) -> Listener:
        """A socket shared with other workers is listened on in turns (balance.py), on
        uvloop's loop: asyncio's makes a connection's transport a turn after accepting it,
        and refuses to once its listener has closed, so there the kernel alone decides."""
        if self._board is None or self._slot is None or not accepts_at_once():
            return await super().listen(sock, protocol_factory, ssl_context)
        state = self.state
        listener = SharedListener(
            sock,
            protocol_factory,
            self._board,
            self._slot,
            lambda: len(state.connections),
            ssl_context=ssl_context,
            backlog=self.config.listen.backlog,
        )
        await listener.start()
        return listener

    async def serve(self, sockets: list[socket.socket] | None = None) -> int:
        loop = asyncio.get_running_loop()
        loop.add_reader(self.channel.fileno(), self._on_message)
        try:
            code = await super().serve(sockets)
        finally:
            loop.remove_reader(self.channel.fileno())
        # Everything counted, every request answered: the supervisor keeps these counts.
        _send(self.channel, ("final", self._snapshot()))
        return code

    async def startup(self, sockets: list[socket.socket] | None = None) -> Lifespan:
        try:
            lifespan = await super().startup(sockets)
        except StartupError as exc:
            _send(self.channel, ("failed", str(exc)))
            raise
        _send(self.channel, ("ready",))
        return lifespan

    def request_limit_reached(self) -> None:
        """Keep serving, and ask for a replacement; the supervisor sends SIGTERM once it is
        ready, and this worker then drains like any other."""
        if self._retiring:
            return
        self._retiring = True
        logger.info(
            "Reached --limit-max-requests (%d): asking for a replacement",
            self.config.limit_max_requests,
        )
        _send(self.channel, ("retire", "max_requests"))

    def _on_message(self) -> None:
        try:
            message = self.channel.recv()
        except (EOFError, OSError):
            # The supervisor is gone: nobody will send SIGTERM, so drain and exit now.
            asyncio.get_running_loop().remove_reader(self.channel.fileno())
            logger.warning("Supervisor gone: shutting down")
            self.request_exit()
            return
        if message[0] == "snapshot":
            answer = (
                "snapshot",
                message[1],
                self._snapshot(),
                resident_bytes(),
                process_families(),
            )
            _send(self.channel, answer)

    def _snapshot(self) -> MetricsSnapshot:
        metrics = self.observability.metrics
        return snapshot_of(metrics if metrics is not None else HttpMetrics())


def resident_bytes() -> int:
    """This process's resident set size, from /proc (0 where there is no /proc)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def _send(channel: Connection, message: tuple[Any, ...]) -> None:
    with contextlib.suppress(OSError, ValueError):  # the supervisor is gone
        channel.send(message)
