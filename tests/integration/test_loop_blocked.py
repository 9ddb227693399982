"""A blocked event loop is visible (--loop-block-threshold, observe/watchdog.py): a warning that
says where the loop is stuck, written while it is stuck; a line when it runs again; a count in
monoceros_event_loop_blocked_total; and /healthz unanswered meanwhile, so that a liveness probe
fails. With --workers the supervisor answers /healthz and replaces a stuck worker itself
(--timeout-worker-healthcheck), so its /healthz stays 200: a pod restart would take the healthy
workers down too.

The app blocks its loop with time.sleep, as a synchronous call in an async app does.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from monoceros.observe.watchdog import LoopWatchdog
from monoceros.types import Receive, Scope, Send
from tests.utils import ServerProcess, read_until_closed

BLOCK = 5.0  # seconds the app blocks its loop: time for a warning and a probe, under load too
THRESHOLD = "1"


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/block":
        time.sleep(BLOCK)  # the mistake this is about: a blocking call in async code
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"done"})


def get(url: str, timeout: float) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, response.read().decode()


def block(port: int) -> threading.Thread:
    """GET /block in a thread: the request that blocks the server's loop."""

    def run() -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /block HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            read_until_closed(sock, 10)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_blocked_loop_is_logged_counted_and_fails_healthz() -> None:
    with ServerProcess(
        "tests.integration.test_loop_blocked:app",
        *("--port", "0", "--log-format", "json", "--loop-block-threshold", THRESHOLD),
    ) as process:
        port = int(process.wait_listening().rsplit(":", 1)[1])
        admin = process.wait_for_line(r"Admin listener on (http://\S+?:\d+)").group(1)
        assert get(admin + "/healthz", 5) == (200, "ok\n")
        requester = block(port)
        # While the loop sleeps: the warning is out already, naming the blocking call ...
        warning = process.wait_for_line("Event loop blocked for more than 1.0 seconds", BLOCK)
        assert "time.sleep(BLOCK)" in warning.string
        # ... and /healthz gets no answer: a liveness probe (timeoutSeconds: 1) fails.
        with pytest.raises((TimeoutError, urllib.error.URLError)):
            get(admin + "/healthz", 1)
        requester.join(10)
        process.wait_for_line(r"Event loop ran again after being blocked for [56]\.\d seconds")
        assert get(admin + "/healthz", 5) == (200, "ok\n")
        _, metrics = get(admin + "/metrics", 5)
    assert "monoceros_event_loop_blocked_total 1.0" in metrics.splitlines()


def test_with_workers_the_supervisor_keeps_answering_healthz() -> None:
    with ServerProcess(
        "tests.integration.test_loop_blocked:app",
        *("--port", "0", "--workers", "2", "--loop-block-threshold", THRESHOLD),
        *("--log-format", "json"),
    ) as process:
        admin = process.wait_for_line(r"Admin listener on (http://\S+?:\d+)").group(1)
        port = int(process.wait_for_line(r"Bound http://\S+:(\d+)").group(1))
        process.wait_for_line(r"Worker \[\d+\] is serving")
        requester = block(port)
        process.wait_for_line("Event loop blocked for more than", BLOCK)  # the worker's
        assert get(admin + "/healthz", 1) == (200, "ok\n")
        requester.join(10)


class Counter:
    def __init__(self) -> None:
        self.count = 0

    def loop_blocked(self) -> None:
        self.count += 1


def test_one_block_is_counted_once(caplog: pytest.LogCaptureFixture) -> None:
    counter = Counter()
    watchdog = LoopWatchdog(2.0, counter)
    watchdog.beat()
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, "monoceros.error"):
        watchdog.check(start + 1.5)  # within the threshold
        assert counter.count == 0
        watchdog.check(start + 2.5)
        watchdog.check(start + 3.5)  # the same block
        assert counter.count == 1
        watchdog.beat()
        watchdog.check(time.monotonic())
        watchdog.check(time.monotonic() + 2.5)  # a second block
    assert counter.count == 2
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 3
    assert messages[0].startswith("Event loop blocked for more than 2.0 seconds")
    assert "test_one_block_is_counted_once" in messages[0]  # the loop thread's stack
    assert messages[1].startswith("Event loop ran again after being blocked for")
