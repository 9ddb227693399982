"""Server processes: start one pinned on a fresh port, know when it listens, measure, stop it.

A server that fails to start or dies is a ServerFailed carrying its last log lines, so the
report can say why instead of the harness stopping.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bench.wrk import pinned

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
# Where `make bench` compiles bench/asgi_floor.py.
FLOOR_BUILD = REPO_ROOT / "build" / "floor"

# `{python}` is this interpreter, `{port}` a fresh free port; both are plain text substitutions,
# so other braces in a command are left alone.
DEFAULT_SERVERS: dict[str, str] = {
    # Bare: no access log, no metrics, as uvicorn runs below.
    "monoceros": "{python} -m monoceros examples.app:app --host 127.0.0.1 --port {port}"
    " --no-access-log --no-metrics --log-level warning",
    # What users get by default: JSON access log and metrics on.
    "monoceros+obs": "{python} -m monoceros examples.app:app --host 127.0.0.1 --port {port}"
    " --metrics-port 0 --log-format json",
    "uvicorn": "{python} -m uvicorn examples.app:app --host 127.0.0.1 --port {port}"
    " --no-access-log --log-level warning --loop uvloop --http httptools",
    # uvicorn with its (text) access log, as most deployments run it.
    "uvicorn+log": "{python} -m uvicorn examples.app:app --host 127.0.0.1 --port {port}"
    " --log-level info --loop uvloop --http httptools",
    "ceiling": "{python} bench/ceiling.py --host 127.0.0.1 --port {port}",
    # The least an ASGI server does (bench/asgi_floor.py), compiled by `make bench`.
    # Uncompiled (no build/floor), bench/'s source is found instead, and says so.
    "floor": "env "
    + shlex.quote(f"PYTHONPATH={FLOOR_BUILD}:{REPO_ROOT / 'bench'}:{REPO_ROOT}")
    + " {python} -c 'import asgi_floor; asgi_floor.main()' --host 127.0.0.1 --port {port}",
    # The other servers a team would choose between, bare, on one core like the rest.
    "hypercorn": "{python} -m hypercorn examples.app:app --bind 127.0.0.1:{port}"
    " --worker-class uvloop --log-level warning",
    "granian": "{python} -m granian --interface asgi --host 127.0.0.1 --port {port}"
    " --loop uvloop --log-level warning --no-access-log examples.app:app",
}
# The workers row: each server with two worker processes, unpinned (server and load generator
# share both cores), measured on plaintext and json: how far each scales past one process.
WORKER_SERVERS: dict[str, str] = {
    "monoceros-w2": "{python} -m monoceros examples.app:app --host 127.0.0.1 --port {port}"
    " --no-access-log --no-metrics --log-level warning --workers 2",
    "uvicorn-w2": "{python} -m uvicorn examples.app:app --host 127.0.0.1 --port {port}"
    " --no-access-log --log-level warning --loop uvloop --http httptools --workers 2",
    "granian-w2": "{python} -m granian --interface asgi --host 127.0.0.1 --port {port}"
    " --loop uvloop --log-level warning --no-access-log --workers 2 examples.app:app",
}
WORKER_ENDPOINTS = frozenset(("plaintext", "json"))
# What each server adds to serve HTTP/2 by prior knowledge (h2c) for the h2-* endpoints;
# a server not named here is not measured on them.
HTTP2_ARGS: dict[str, str] = {
    "monoceros": "--http2",
    "monoceros+obs": "--http2",
    "uvicorn": "--http zttp --http2",  # uvicorn's own HTTP/2 (0.55+) is on zttp too
    "uvicorn+log": "--http zttp --http2",
    "hypercorn": "",  # takes the preface on any plain-text port
    "granian": "--http 2",
}


def http2_args(name: str) -> str | None:
    """What the server called `name` adds to serve HTTP/2 (None: it is not measured there).
    A server added by name and command whose name starts with `monoceros` (another build:
    `monoceros-base=env PYTHONPATH=... {python} -m monoceros ...`) takes monoceros's."""
    if name in HTTP2_ARGS:
        return HTTP2_ARGS[name]
    return HTTP2_ARGS["monoceros"] if name.startswith("monoceros") else None


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ServerFailed(Exception):
    """The server did not start, or died while being measured."""

    def __init__(self, reason: str, log_tail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.log_tail = log_tail

    def short(self) -> str:
        """One line for the report: the reason and the server's last log line, if any."""
        lines = self.log_tail.strip().splitlines()
        return f"{self.reason}: {lines[-1].strip()}" if lines else self.reason


@dataclass(frozen=True)
class ServerSpec:
    """A named command template; the harness fills in `{python}` and `{port}`."""

    name: str
    template: str
    http2_args: str | None = None  # appended to serve HTTP/2; None: it does not
    workers_row: bool = False  # unpinned, and measured on WORKER_ENDPOINTS only

    def command(self, port: int) -> list[str]:
        text = self.template.replace("{python}", shlex.quote(sys.executable))
        return shlex.split(text.replace("{port}", str(port)))

    def with_http2(self) -> ServerSpec:
        """The same server, started to serve HTTP/2 (h2c by prior knowledge)."""
        assert self.http2_args is not None
        return ServerSpec(
            self.name, f"{self.template} {self.http2_args}".strip(), workers_row=self.workers_row
        )


@dataclass(frozen=True)
class RunningServer:
    """A started server: its process (the leader of its own process group) and its port."""

    spec: ServerSpec
    process: subprocess.Popen[bytes]
    port: int
    log: IO[bytes]  # its output, for the tail a failure report shows

    def failure(self, exc: ServerFailed) -> ServerFailed:
        """`exc` as the report shows it: with the tail of this server's output."""
        return ServerFailed(exc.reason, exc.log_tail or read_tail(self.log))

    def ensure_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise ServerFailed(f"exited with code {code} while being measured")

    def cpu_time(self) -> CpuTime:
        """User and system CPU time of every process in the server's group (master and workers).

        Requests/s stops telling servers apart once the server is not the bottleneck (wrk's
        core is full, or both sides wait on cross-core wake-ups); CPU per request still does.
        Softirq time the kernel spends on loopback is charged to no process, so it is left out.
        """
        stats = list(_group_stats(self.process.pid))
        return CpuTime(
            user=sum(int(fields[11]) for fields in stats) / _CLOCK_TICKS,  # utime, proc(5) 14
            system=sum(int(fields[12]) for fields in stats) / _CLOCK_TICKS,  # stime, 15
        )


@dataclass(frozen=True)
class CpuTime:
    """Seconds of CPU in user space (the server's own code, the interpreter, its libraries) and
    in the kernel on its behalf (its system calls: over loopback, most of sending and receiving
    the bytes)."""

    user: float
    system: float

    @property
    def total(self) -> float:
        return self.user + self.system

    def __sub__(self, earlier: CpuTime) -> CpuTime:
        return CpuTime(self.user - earlier.user, self.system - earlier.system)


def _group_stats(pgrp: int) -> Iterator[list[str]]:
    """The fields after `comm` in /proc/PID/stat, for each live process in the group."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
        except OSError:  # exited while we looked
            continue
        if int(fields[2]) == pgrp:  # field 5 of proc(5), counting from state (field 3)
            yield fields


def free_port() -> int:
    """Ask the kernel for a free port on the loopback address (port 0), then release it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def server_env() -> dict[str, str]:
    """Let `examples.app` import from the checkout, and `-m monoceros` too where this
    interpreter has no monoceros of its own: an installed one (a virtualenv holding only a
    release, for start-up figures) is what is measured, not the checkout's plain source."""
    env = dict(os.environ)
    paths = [str(REPO_ROOT)]
    if importlib.util.find_spec("monoceros") is None:
        paths.insert(0, str(REPO_ROOT / "server"))
    if env.get("PYTHONPATH"):
        # First: `make bench` points it at the compiled build (setup.py).
        paths.insert(0, env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def wait_until_listening(process: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    """Return once the port accepts a connection; fail at once if the process exits first.

    Between attempts we wait on the process itself rather than sleep, so a crash ends the wait.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            pass
        try:
            code = process.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            continue
        raise ServerFailed(f"exited with code {code} before listening")
    raise ServerFailed(f"not listening on port {port} after {timeout:g} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (it may have workers), SIGKILL it if it lingers."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=grace)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def read_tail(log: IO[bytes], lines: int = 20) -> str:
    log.flush()
    log.seek(0)
    text = log.read().decode(errors="replace")
    return "\n".join(text.strip().splitlines()[-lines:])


@contextmanager
def running_server(spec: ServerSpec, cpus: str, startup_timeout: float) -> Iterator[RunningServer]:
    """Start the server pinned to `cpus` on a fresh port; always stop it afterwards.

    Output goes to a temporary file (a pipe nobody reads would stall the server), and its tail
    is attached to any ServerFailed raised while it runs.
    """
    port = free_port()
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [*pinned(cpus), *spec.command(port)],
            cwd=REPO_ROOT,
            env=server_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() reaches its workers
        )
        try:
            wait_until_listening(process, port, startup_timeout)
            yield RunningServer(spec, process, port, log)
        except ServerFailed as exc:
            stop(process)
            raise ServerFailed(exc.reason, read_tail(log)) from None
        finally:
            stop(process)
