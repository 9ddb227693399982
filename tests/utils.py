"""Real servers on ephemeral ports: in-process (for coverage and app introspection) or as
a `monoceros` subprocess (for the CLI, signals and exit codes)."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from monoceros import Config, Server
from monoceros.protocols.events import RequestFinished, SessionFinished
from monoceros.protocols.observer import Observer, Unobserved
from monoceros.types import ASGIApp

T = TypeVar("T")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def stop_process(process: subprocess.Popen[Any], grace: float) -> None:
    """SIGTERM, `grace` seconds to exit, then SIGKILL: a child process gone, whatever it was
    doing."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


@dataclass
class RunningServer:
    server: Server
    thread: threading.Thread
    host: str
    port: int
    exit_code: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def on_loop(self, look: Callable[[], T], timeout: float = 10.0) -> T:
        """`look()` run on the server's loop thread: a view of its state all taken at once."""
        loop = self.server.loop
        assert loop is not None, "the server is not running"
        result: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                result.set_result(look())
            except BaseException as exc:  # handed to the test's thread
                result.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return result.result(timeout)

    def stop(self, timeout: float = 10.0) -> int:
        loop = self.server.loop
        if loop is not None and self.thread.is_alive():
            loop.call_soon_threadsafe(self.server.request_exit)
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "server did not stop"
        return self.exit_code[0] if self.exit_code else -1


@contextlib.contextmanager
def run_server(
    app: ASGIApp | str, *, observer: Observer | None = None, **options: Any
) -> Iterator[RunningServer]:
    """Serve `app` in a thread on 127.0.0.1 and an ephemeral port; stop it afterwards.
    `observer` is told what the server's metrics and access log are told."""
    options.setdefault("host", "127.0.0.1")
    options.setdefault("port", 0)
    options.setdefault("access_log", False)
    options.setdefault("metrics_port", 0)  # the admin listener too: never a fixed port
    server = Server(Config.from_options(app, **options), observer=observer)
    exit_code: list[int] = []

    def target() -> None:
        exit_code.append(server.run())

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"server exited during startup with code {exit_code}")
        if time.monotonic() > deadline:
            raise TimeoutError("server did not start")
        time.sleep(0.005)
    address = server.sockets[0].getsockname()
    host = address[0] if isinstance(address, tuple) else "127.0.0.1"
    port = address[1] if isinstance(address, tuple) else 0
    running = RunningServer(server, thread, host, port, exit_code)
    try:
        yield running
    finally:
        if thread.is_alive():
            running.stop()


class ServerProcess:
    """`python -m monoceros ...` as a child process; output collected for assertions."""

    LISTENING = re.compile(r"Listening on (\S+)")

    def __init__(
        self, *args: str, env: dict[str, str] | None = None, pass_fds: tuple[int, ...] = ()
    ) -> None:
        full_env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "MONOCEROS_METRICS_PORT": "0",  # never a fixed port in tests
            **(env or {}),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "monoceros", *args],
            cwd=REPO,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            pass_fds=pass_fds,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                match = regex.search(line)
                if match:
                    return match
            seen = 0
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.01)
        raise AssertionError(f"no line matching {pattern!r} in output:\n{self.output}")

    def wait_listening(self, timeout: float = 10.0) -> str:
        """The URL the server printed (`--port 0` gives an ephemeral port)."""
        return self.wait_for_line(self.LISTENING.pattern, timeout).group(1)

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float = 15.0) -> int:
        code = self.process.wait(timeout)
        self._reader.join(timeout)
        return code

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        # A graceful stop first: a supervisor killed outright leaves the temporary directory
        # of its workers' app metrics behind in /tmp.
        stop_process(self.process, grace=5)


class Recorder(Unobserved):
    """An observer that keeps the records it is handed (the server's thread appends, the
    test reads)."""

    def __init__(self) -> None:
        self.requests: list[RequestFinished] = []
        self.rejected: list[tuple[RequestFinished | None, str]] = []
        self.sessions: list[SessionFinished] = []

    def request_finished(self, record: RequestFinished) -> None:
        self.requests.append(record)

    def request_rejected(self, record: RequestFinished | None, reason: str) -> None:
        self.rejected.append((record, reason))

    def session_finished(self, record: SessionFinished) -> None:
        self.sessions.append(record)


def raw_request(port: int, data: bytes, *, timeout: float = 5.0, host: str = "127.0.0.1") -> bytes:
    """Send raw bytes and read until the server closes (or `timeout`)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_until_closed(sock, timeout)


def read_until_closed(sock: socket.socket, timeout: float = 5.0) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
