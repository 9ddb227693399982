"""Signals, the graceful drain and the limits that end or shed work, on the real process."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import pytest

from tests.integration.helpers import TIMEOUT
from tests.utils import ServerProcess

# Long enough for the server to accept and parse a request sent just before; this is a
# synchronisation pause, never something a test asserts on.
SETTLE = 0.3


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4) as executor:
        yield executor


def start(*args: str) -> tuple[ServerProcess, str]:
    process = ServerProcess("examples.app:app", "--port", "0", *args)
    return process, process.wait_listening(TIMEOUT)


def request_in_flight(pool: ThreadPoolExecutor, url: str) -> Future[httpx.Response]:
    """Send `url` from another thread and give the server time to start working on it."""
    future = pool.submit(httpx.get, url, timeout=TIMEOUT)
    time.sleep(SETTLE)
    assert not future.done(), future.result()
    return future


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_exits_zero_after_lifespan_shutdown(sig: signal.Signals) -> None:
    process, url = start()
    with process:
        assert httpx.get(url + "/", timeout=5).status_code == 200
        process.signal(sig)
        assert process.wait(TIMEOUT) == 0, process.output
    assert "Application shutdown complete" in process.output
    assert "Traceback" not in process.output


def test_sigterm_lets_an_in_flight_request_finish(pool: ThreadPoolExecutor) -> None:
    process, url = start()
    with process:
        future = request_in_flight(pool, url + "/slow?seconds=1")
        process.signal(signal.SIGTERM)
        response = future.result(TIMEOUT)
        assert process.wait(TIMEOUT) == 0, process.output
    assert response.status_code == 200
    assert response.text == "slept"
    assert response.headers["connection"] == "close"
    assert "Application shutdown complete" in process.output


def test_graceful_timeout_cuts_off_a_slow_request(pool: ThreadPoolExecutor) -> None:
    process, url = start("--timeout-graceful-shutdown", "0.5")
    with process:
        future = request_in_flight(pool, url + "/slow?seconds=30")
        process.signal(signal.SIGTERM)
        # Well before the request's 30 seconds: the drain gave up after 0.5.
        assert process.wait(5) == 0, process.output
        with pytest.raises(httpx.TransportError):
            future.result(5)
    assert "Graceful shutdown timed out" in process.output
    assert "Application shutdown complete" in process.output


def test_second_sigint_during_the_drain_exits_at_once(pool: ThreadPoolExecutor) -> None:
    process, url = start()
    with process:
        future = request_in_flight(pool, url + "/slow?seconds=30")
        process.signal(signal.SIGINT)
        process.wait_for_line("Shutting down", TIMEOUT)
        time.sleep(SETTLE)
        assert process.process.poll() is None, "the first SIGINT must wait for the request"
        process.signal(signal.SIGINT)
        assert process.wait(5) == 0, process.output
        with pytest.raises(httpx.TransportError):
            future.result(5)
    assert "Traceback" not in process.output


def test_idle_keep_alive_connection_does_not_delay_exit() -> None:
    process, url = start("--timeout-keep-alive", "60")
    with process, httpx.Client(timeout=5) as client:
        response = client.get(url + "/")
        assert response.status_code == 200
        assert response.headers.get("connection") != "close"  # kept alive, now idle
        process.signal(signal.SIGTERM)
        # Far less than the 60 s keep-alive timeout: idle connections close at once.
        assert process.wait(5) == 0, process.output


def test_limit_max_requests_exits_on_its_own() -> None:
    process, url = start("--limit-max-requests", "3")
    with process, httpx.Client(timeout=5) as client:
        statuses = [client.get(url + "/").status_code for _ in range(3)]
        assert process.wait(TIMEOUT) == 0, process.output
    assert statuses == [200, 200, 200]
    assert "Application shutdown complete" in process.output


def test_limit_concurrency_answers_503(pool: ThreadPoolExecutor) -> None:
    process, url = start("--limit-concurrency", "1")
    with process:
        first = request_in_flight(pool, url + "/slow?seconds=1")
        second = httpx.get(url + "/slow?seconds=1", timeout=5)
        assert second.status_code == 503
        assert second.headers["connection"] == "close"
        assert first.result(TIMEOUT).status_code == 200
        # Capacity is back once the first request is done.
        assert httpx.get(url + "/", timeout=5).status_code == 200
        process.signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0, process.output
