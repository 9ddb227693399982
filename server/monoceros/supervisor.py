"""`--workers N`: a supervisor process over N worker processes sharing one listening socket.

The supervisor binds the application socket once (or, with --reuse-port, lets each worker
bind its own), runs no application code, and spawns workers (worker.py) that are full
monoceros servers without an admin listener. It serves the admin listener for the whole
group itself: /metrics sums fresh snapshots from every worker (and the app's own metrics, from
the directory it owns: observe/app_metrics.py), /readyz is 200 while at least one worker
serves. Everything happens in one loop, `_act()`: signal handlers, pipe readers
and exit watchers only record what happened and wake it up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections import deque
from multiprocessing.context import SpawnContext
from typing import Any

from monoceros.balance import LoadBoard
from monoceros.config import Config
from monoceros.errors import StartupError
from monoceros.loops import loop_factory
from monoceros.observe.admin import AdminApp, AdminListener, Readiness
from monoceros.observe.app_metrics import WorkerMetricsDirectory
from monoceros.observe.group import SUPERVISOR, GroupCollector, GroupStatus, process_families
from monoceros.observe.logging import current_output
from monoceros.observe.metrics import MetricsSnapshot
from monoceros.observe.scrape import build_registry
from monoceros.signals import captured_signals
from monoceros.sockets import bind_socket, close_sockets, describe
from monoceros.worker import Phase, Worker, run_worker

logger = logging.getLogger("monoceros.error")

HEARTBEAT = 1.0  # seconds between snapshot requests; a kill -9 loses at most this much counting
SCRAPE_TIMEOUT = 1.0  # how long a scrape waits for fresh snapshots
MAX_START_FAILURES = 5  # consecutive exits before serving, with no worker serving: give up
BACKOFF_FIRST, BACKOFF_MAX = 0.1, 10.0  # seconds before restarting after a failed start
RESTART_REASONS = ("crashed", "unresponsive", "recycled", "reload")
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU)


class Supervisor:
    role = "supervisor"  # in its log lines

    @property
    def serving_what(self) -> str:
        return f"{self.target} workers"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.target = config.workers
        self.workers: list[Worker] = []
        self.retired = MetricsSnapshot()  # final counts of workers that have exited
        self.restarts = dict.fromkeys(RESTART_REASONS, 0)
        self.sockets: list[socket.socket] = []
        self.signals: deque[signal.Signals] = deque()
        self.exited: deque[Worker] = deque()
        self.stopping = False
        self.failures = 0  # consecutive worker exits before serving
        self.next_start = 0.0  # backoff: no start before this loop time
        self.exit_code: int | None = None
        self._seq = 0
        self._next_heartbeat = 0.0
        self._wakeup: asyncio.Event | None = None
        self._context = multiprocessing.get_context("spawn")
        self.board = None if config.listen.reuse_port else _board_for(self._context, config)
        self.admin: AdminListener | None = None
        self.app_metrics: WorkerMetricsDirectory | None = None
        if config.observe.metrics:
            self.app_metrics = WorkerMetricsDirectory()
            group = GroupCollector(self.status, config.observe.metrics_duration_buckets)
            registry = build_registry(group, self.app_metrics, process=False)
            admin_app = AdminApp(lambda: registry)
            admin_app.before_scrape = self.refresh
            self.admin = AdminListener(admin_app, config)

    def run(self) -> int:
        with asyncio.Runner(loop_factory=loop_factory(self.config.loop)) as runner:
            return runner.run(self.serve())

    async def serve(self) -> int:
        loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        output = current_output()
        output.attach(loop)
        try:
            logger.info("Started %s process [%d]", self.role, os.getpid())
            self._open_app_metrics()
            try:
                if not self.config.listen.reuse_port:
                    self.sockets = [bind_socket(self.config.listen)]
                    scheme = "https" if self.config.tls.enabled else "http"
                    where = describe(self.sockets[0], scheme)
                    logger.info("Bound %s for %s", where, self.serving_what)
                if self.admin is not None:
                    await self.admin.start()
            except StartupError as exc:
                logger.error("%s", exc)
                return exc.exit_code
            with captured_signals(loop, SIGNALS, self._record_signal):
                while (timeout := self._act(loop)) is not None:
                    self._wakeup.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), timeout)
            logger.info("Finished %s process [%d]", self.role, os.getpid())
            return self.exit_code or 0
        finally:
            self._close()
            output.close()

    # -- the loop: one pass acts on everything recorded since the last -------------------------

    def _act(self, loop: asyncio.AbstractEventLoop) -> float | None:
        """Handle signals, then exits, then bring the workers to the wanted state; return how
        long to sleep before the next pass at the latest, or None once it is time to exit."""
        now = loop.time()
        while self.signals:
            self._on_signal(self.signals.popleft())
        while self.exited and self.exit_code is None:
            self._on_worker_exit(loop, self.exited.popleft())
        if self.exit_code is not None:
            return None
        timeout = self.config.timeout_worker_healthcheck
        for worker in self.workers:
            since = worker.waiting_since
            if since is not None and now - since > timeout and worker.stop_reason != "unresponsive":
                self._kill_unresponsive(worker)
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + HEARTBEAT
            self._seq += 1
            for worker in self.workers:
                worker.ask(self._seq, now)
        if self.admin is not None:
            self.admin.housekeeping(now, int(time.time()))
        if self.stopping:
            if not self.workers:
                self.exit_code = 0
                return None
            return max(0.0, self._next_heartbeat - now)
        self._converge(loop, now)
        if self.admin is not None:
            serving = any(w.phase is Phase.READY and w.stop_reason is None for w in self.workers)
            self.admin.app.readiness = Readiness.SERVING if serving else Readiness.STARTING
        wake_at = self._next_heartbeat
        if self.next_start > now:
            wake_at = min(wake_at, self.next_start)
        return max(0.0, wake_at - now)

    def _converge(self, loop: asyncio.AbstractEventLoop, now: float) -> None:
        live = [w for w in self.workers if w.stop_reason is None]
        marked = [w for w in live if w.replace_reason is not None]
        fresh = [w for w in live if w.replace_reason is None]
        # Scale down: the newest go first (a starting worker before a serving one).
        while len(fresh) > self.target:
            self._stop(fresh.pop(), "scale-down")
        # A worker being replaced stops only once enough fresh ones serve: never fewer
        # serving workers than wanted, so no connection waits on an empty accept queue.
        ready = sum(w.phase is Phase.READY for w in fresh)
        while marked and ready + len(marked) > self.target:
            old = marked.pop(0)
            self._stop(old, old.replace_reason or "recycled")
        if len(fresh) >= self.target or now < self.next_start:
            return
        if marked:  # a rolling replacement: one new worker at a time
            if not any(w.phase is Phase.STARTING for w in fresh):
                self._start_worker(loop)
        else:
            for _ in range(self.target - len(fresh)):
                self._start_worker(loop)

    # -- workers -------------------------------------------------------------------------------

    def _start_worker(self, loop: asyncio.AbstractEventLoop) -> None:
        parent, child = self._context.Pipe()
        sockets = self.sockets or None
        number = self._free_number()
        process = self._context.Process(
            target=run_worker,
            args=(self.config, sockets, child, self.board, number),
            name="monoceros-worker",
        )
        process.start()
        child.close()
        worker = Worker(process, parent, number)
        self.workers.append(worker)
        loop.add_reader(parent.fileno(), self._on_readable, worker)
        loop.add_reader(process.sentinel, self._on_sentinel, worker)
        logger.info("Started worker process [%d]", worker.pid)

    def _free_number(self) -> int:
        """The lowest worker number no running worker has (the `worker` label)."""
        taken = {worker.number for worker in self.workers}
        return next(number for number in range(1, len(taken) + 2) if number not in taken)

    def _stop(self, worker: Worker, reason: str) -> None:
        worker.stop_reason = reason
        logger.info("Stopping worker [%d] (%s)", worker.pid, reason)
        worker.signal(signal.SIGTERM)

    def _kill_unresponsive(self, worker: Worker) -> None:
        logger.warning(
            "Worker [%d] did not answer for %.0f seconds (--timeout-worker-healthcheck): "
            "killing it",
            worker.pid,
            self.config.timeout_worker_healthcheck,
        )
        worker.stop_reason = "unresponsive"
        worker.signal(signal.SIGKILL)

    def _on_readable(self, worker: Worker) -> None:
        try:
            message = worker.channel.recv()
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(worker.channel.fileno())
            return
        self._on_message(worker, message)

    def _on_message(self, worker: Worker, message: tuple[Any, ...]) -> None:
        assert self._wakeup is not None
        kind = worker.record(message)
        limit = self.config.limit_max_rss
        if (
            kind == "snapshot"
            and limit
            and worker.rss > limit * 2**20
            and not worker.replace_reason
        ):
            megabytes = worker.rss // 2**20
            logger.info(
                "Worker [%d] uses %d MB (--limit-max-rss %d): replacing it",
                worker.pid,
                megabytes,
                limit,
            )
            worker.replace_reason = "recycled"
        elif kind == "ready":
            self.failures = 0
            logger.info("Worker [%d] is serving", worker.pid)
        elif kind == "retire" and worker.replace_reason is None:
            logger.info("Worker [%d] retires (--limit-max-requests): replacing it", worker.pid)
            worker.replace_reason = "recycled"
        else:
            return
        self._wakeup.set()

    def _on_sentinel(self, worker: Worker) -> None:
        assert self._wakeup is not None
        asyncio.get_running_loop().remove_reader(worker.process.sentinel)
        self.exited.append(worker)
        self._wakeup.set()

    def _on_worker_exit(self, loop: asyncio.AbstractEventLoop, worker: Worker) -> None:
        loop.remove_reader(worker.channel.fileno())
        if self.board is not None:  # one killed could not withdraw itself
            self.board.withdraw_worker(worker.number)
        code = worker.reap()
        self.workers.remove(worker)
        self.retired.add(worker.snapshot, gauges=False)
        if self.app_metrics is not None:
            self.app_metrics.worker_exited(worker.pid)
        reason = worker.stop_reason or "crashed"
        served = worker.phase is Phase.READY
        if not served and worker.stop_reason is None:
            self._failed_start(loop, worker, code)
        else:
            log = logger.info if worker.stop_reason else logger.warning
            log("Worker [%d] exited (exit code %s): %s", worker.pid, code, reason)
        if reason in RESTART_REASONS and not self.stopping:
            self.restarts[reason] += 1
        serving = any(w.phase is Phase.READY for w in self.workers)
        if self.failures >= MAX_START_FAILURES and not serving and not self.stopping:
            cause = worker.failure or f"exit code {code}"
            logger.error("Workers cannot start (%d attempts failed): %s", self.failures, cause)
            for other in self.workers:
                other.signal(signal.SIGKILL)
                other.process.join(5.0)
            self.exit_code = code if code and code > 0 else 1

    def _failed_start(
        self, loop: asyncio.AbstractEventLoop, worker: Worker, code: int | None
    ) -> None:
        """A worker exited before it served: the next one starts after a growing backoff."""
        self.failures += 1
        delay = min(BACKOFF_FIRST * 2 ** (self.failures - 1), BACKOFF_MAX)
        self.next_start = loop.time() + delay
        logger.warning(
            "Worker [%d] exited before serving (exit code %s); next start in %.1f s",
            worker.pid,
            code,
            delay,
        )

    # -- signals -------------------------------------------------------------------------------

    def _record_signal(self, sig: signal.Signals) -> None:
        assert self._wakeup is not None
        self.signals.append(sig)
        self._wakeup.set()

    def _on_signal(self, sig: signal.Signals) -> None:
        if sig in (signal.SIGTERM, signal.SIGINT):
            if self.stopping:
                if sig == signal.SIGINT:  # a second Ctrl+C: stop waiting
                    logger.warning("Killing %d workers", len(self.workers))
                    for worker in self.workers:
                        worker.signal(signal.SIGKILL)
                return
            self.stopping = True
            if self.admin is not None:
                self.admin.app.readiness = Readiness.DRAINING
            logger.info("Shutting down: stopping %d workers", len(self.workers))
            # Our copy of the listening socket goes now: once the last worker stops
            # accepting, connecting clients are refused instead of queued with nobody to accept.
            for sock in self.sockets:
                sock.close()
            for worker in self.workers:
                if worker.stop_reason is None:
                    worker.stop_reason = "shutdown"
                worker.signal(signal.SIGTERM)
        elif self.stopping:
            return
        elif sig == signal.SIGHUP:
            logger.info("Reloading: replacing %d workers one by one", len(self.workers))
            for worker in self.workers:
                if worker.stop_reason is None and worker.replace_reason is None:
                    worker.replace_reason = "reload"
        elif sig == signal.SIGTTIN:
            self.target += 1
            logger.info("SIGTTIN: %d workers wanted", self.target)
        elif sig == signal.SIGTTOU:
            self.target = max(1, self.target - 1)
            logger.info("SIGTTOU: %d workers wanted", self.target)

    # -- metrics and the admin listener -------------------------------------------------------

    async def refresh(self) -> None:
        """Before a scrape: ask every worker for its counts now, wait briefly for answers."""
        loop = asyncio.get_running_loop()
        self._seq += 1
        waiters = []
        for worker in self.workers:
            waiter = worker.waiters[self._seq] = loop.create_future()
            waiters.append(waiter)
            worker.ask(self._seq, loop.time())
        if waiters:
            await asyncio.wait(waiters, timeout=SCRAPE_TIMEOUT)
        for worker in self.workers:
            worker.waiters.pop(self._seq, None)

    def status(self) -> GroupStatus:
        total = MetricsSnapshot()
        total.add(self.retired)
        for worker in self.workers:
            total.add(worker.snapshot)
        serving = any(w.phase is Phase.READY for w in self.workers)
        processes = {SUPERVISOR: process_families()}
        for worker in self.workers:
            if worker.processes:
                processes[str(worker.number)] = worker.processes
        return GroupStatus(
            snapshot=total,
            lifespan_phase="stopping" if self.stopping else "started" if serving else "starting",
            workers=sum(w.stop_reason is None for w in self.workers),
            restarts=dict(self.restarts),
            processes=processes,
        )

    def _open_app_metrics(self) -> None:
        """Before any worker starts: the directory the workers' app metrics go to. Without
        one (a read-only file system), a warning, and the server's own metrics still."""
        if self.app_metrics is None:
            return
        try:
            self.app_metrics.open()
        except OSError as exc:
            logger.warning(
                "The app's own Prometheus metrics are not aggregated over the workers: %s "
                "(set PROMETHEUS_MULTIPROC_DIR to a writable directory)",
                exc,
            )

    def _close(self) -> None:
        if self.admin is not None:
            self.admin.close()
        if self.app_metrics is not None:
            self.app_metrics.close()
        close_sockets(self.sockets, self.config.listen)


def _board_for(context: SpawnContext, config: Config) -> LoadBoard | None:
    """Where workers sharing the socket post their connections (balance.py): a slot for each
    worker number up to twice the workers asked for, and four more (a rolling restart runs
    one more at a time, SIGTTIN adds some). None where no shared memory can be had (no
    /dev/shm, say): the kernel alone then spreads the connections."""
    try:
        return LoadBoard(context, 2 * config.workers + 4)
    except OSError as exc:
        logger.warning("Workers cannot share their connection counts (%s): not balanced", exc)
        return None
