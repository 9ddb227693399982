"""The admin listener: /healthz, /readyz through startup and shutdown, and where it is not."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.integration.helpers import TIMEOUT
from tests.integration.observe_app import app, starlette_app
from tests.integration.observe_helpers import (
    ADMIN_LINE,
    access_lines,
    admin_url,
    json_lines,
    running_admin_url,
    scrape,
    start,
)
from tests.utils import RunningServer, ServerProcess, free_port, run_server

# A synchronisation pause for a request sent from another thread; never asserted on.
SETTLE = 0.3


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with run_server(starlette_app) as running:
        yield running


def get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=TIMEOUT)


def error_events(process: ServerProcess) -> list[str]:
    return [str(r["event"]) for r in json_lines(process) if r.get("level") == "error"]


@pytest.mark.parametrize(
    ("method", "path", "status", "body"),
    [
        pytest.param("GET", "/healthz", 200, "ok\n", id="healthz"),
        pytest.param("GET", "/readyz", 200, "serving\n", id="readyz"),
        pytest.param("HEAD", "/healthz", 200, "", id="head-healthz"),
        pytest.param("GET", "/", 404, "Not Found\n", id="no-app-here"),
        pytest.param("GET", "/items/1", 404, "Not Found\n", id="no-app-routes-here"),
        pytest.param("POST", "/metrics", 405, "Method Not Allowed\n", id="post"),
    ],
)
def test_admin_endpoints(
    server: RunningServer, method: str, path: str, status: int, body: str
) -> None:
    response = httpx.request(method, running_admin_url(server) + path, timeout=TIMEOUT)
    assert response.status_code == status
    assert response.text == body
    assert response.headers["cache-control"] == "no-store"
    assert "x-request-id" not in response.headers


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz"])
def test_admin_paths_are_not_on_the_application_port(server: RunningServer, path: str) -> None:
    response = get(server.url + path)
    # The app answered (Starlette's own 404), not the admin listener.
    assert response.status_code == 404
    assert response.text == "Not Found"
    assert "# TYPE" not in response.text
    assert server.port != int(running_admin_url(server).rsplit(":", 1)[1])


def test_admin_traffic_is_neither_logged_nor_counted() -> None:
    with start() as process:
        process.wait_listening(TIMEOUT)
        admin = admin_url(process)
        for _ in range(3):
            get(admin + "/readyz")
            get(admin + "/healthz")
        metrics = scrape(admin)
        process.signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0
    assert access_lines(process) == []
    assert metrics.value("http_server_request_duration_seconds_count") == 0
    assert metrics.value("monoceros_connections_accepted_total") == 0


@pytest.mark.parametrize(
    ("args", "env", "admin_host"),
    [
        # The app on every interface, /metrics still on loopback only: it follows no --host.
        pytest.param(("--host", "0.0.0.0"), {}, "127.0.0.1", id="host-not-followed"),
        pytest.param(("--metrics-host", "127.0.0.2"), {}, "127.0.0.2", id="flag"),
        pytest.param(
            ("--host", "0.0.0.0"), {"MONOCEROS_METRICS_HOST": "127.0.0.2"}, "127.0.0.2", id="env"
        ),
    ],
)
def test_admin_listener_host(args: tuple[str, ...], env: dict[str, str], admin_host: str) -> None:
    with start(*args, env=env) as process:
        url = process.wait_listening(TIMEOUT)
        admin = admin_url(process)
        assert admin.startswith(f"http://{admin_host}:"), admin
        assert get(admin + "/healthz").status_code == 200
        process.signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0
    host = "0.0.0.0" if "0.0.0.0" in args else "127.0.0.1"
    assert url.startswith(f"http://{host}:"), url


def test_metrics_host_default_is_loopback_in_the_python_api() -> None:
    with run_server(app, host="0.0.0.0") as running:
        assert running.server.sockets[0].getsockname()[0] == "0.0.0.0"
        assert running.server.admin_sockets[0].getsockname()[0] == "127.0.0.1"
        assert get(running_admin_url(running) + "/healthz").status_code == 200


# -- readiness through the process's life -------------------------------------------------------


def test_readyz_is_503_until_a_slow_lifespan_startup_completes() -> None:
    app_name = "tests.integration.observe_app:slow_startup"
    with start(app=app_name) as process:
        admin = admin_url(process)  # the admin listener comes up before the app's startup
        starting = get(admin + "/readyz")
        health = get(admin + "/healthz")
        metrics = scrape(admin)
        assert "Listening on" not in process.output
        url = process.wait_listening(TIMEOUT)
        assert get(admin + "/readyz").status_code == 200
        assert get(url + "/").status_code == 200
        process.signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0
    assert (starting.status_code, starting.text) == (503, "starting\n")
    assert health.status_code == 200
    assert metrics.value("monoceros_lifespan_state", state="starting") == 1
    assert metrics.value("monoceros_lifespan_state", state="started") == 0


def test_readyz_turns_503_at_once_while_shutdown_delay_keeps_serving() -> None:
    with start("--shutdown-delay", "1") as process:
        url = process.wait_listening(TIMEOUT)
        admin = admin_url(process)
        assert get(admin + "/readyz").status_code == 200
        process.signal(signal.SIGTERM)
        process.wait_for_line("Shutting down", TIMEOUT)
        # Readiness flips in the same loop turn that logs "Shutting down".
        ready = get(admin + "/readyz")
        # The application port still serves during the delay, new connections included.
        during = get(url + "/")
        health = get(admin + "/healthz")
        assert process.process.poll() is None
        assert "Application shutdown complete" not in process.output
        assert process.wait(TIMEOUT) == 0
    assert (ready.status_code, ready.text) == (503, "draining\n")
    assert during.status_code == 200 and during.text == "ok"
    assert health.status_code == 200
    events = [str(r.get("event")) for r in json_lines(process)]
    assert any("--shutdown-delay" in event for event in events), events
    (line,) = access_lines(process)
    assert line["status"] == 200


def test_readyz_never_answers_200_after_sigterm() -> None:
    """Probe /readyz in a tight loop across the signal: once 503, never 200 again."""
    with start("--shutdown-delay", "1") as process:
        process.wait_listening(TIMEOUT)
        admin = admin_url(process)
        statuses: list[int] = []
        with httpx.Client(timeout=TIMEOUT) as client:
            for number in range(400):
                if number == 20:
                    process.signal(signal.SIGTERM)
                try:
                    statuses.append(client.get(admin + "/readyz").status_code)
                except httpx.TransportError:
                    break  # the process has exited
                time.sleep(0.005)
        assert process.wait(TIMEOUT) == 0
    assert statuses[:20] == [200] * 20
    first_503 = statuses.index(503)
    assert set(statuses[first_503:]) == {503}


def test_readyz_is_503_while_in_flight_requests_drain() -> None:
    with start() as process:
        url = process.wait_listening(TIMEOUT)
        admin = admin_url(process)
        with ThreadPoolExecutor(max_workers=1) as pool:
            slow = pool.submit(get, url + "/slow?seconds=1")
            time.sleep(SETTLE)
            process.signal(signal.SIGTERM)
            process.wait_for_line("Shutting down", TIMEOUT)
            ready = get(admin + "/readyz")
            metrics = scrape(admin)
            assert slow.result(TIMEOUT).status_code == 200
        assert process.wait(TIMEOUT) == 0
    assert ready.status_code == 503
    assert metrics.value("http_server_active_requests") == 1


# -- switching it off, and failing to start it ----------------------------------------------------


def test_no_metrics_means_no_admin_listener() -> None:
    with start("--no-metrics") as process:
        url = process.wait_listening(TIMEOUT)
        assert get(url + "/").status_code == 200
        process.signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0
    assert "Admin listener" not in process.output
    with run_server(app, metrics=False) as running:
        assert running.server.admin_sockets == []
        assert get(running.url + "/").status_code == 200


def test_metrics_port_in_use_is_a_one_line_startup_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with start("--metrics-port", str(port)) as process:
            assert process.wait(TIMEOUT) == 1, process.output
    assert "Traceback" not in process.output
    (error,) = error_events(process)
    assert "--metrics-port" in error
    assert f"127.0.0.1:{port}: address already in use" in error
    assert "Listening on" not in process.output


def test_metrics_port_equal_to_the_application_port_is_refused() -> None:
    port = free_port()
    with ServerProcess(
        "tests.integration.observe_app:app",
        *("--log-format", "json", "--port", str(port), "--metrics-port", str(port)),
    ) as process:
        assert process.wait(TIMEOUT) == 1, process.output
    assert "Traceback" not in process.output
    (error,) = error_events(process)
    assert "--metrics-port" in error
    assert "Listening on" not in process.output


def test_the_admin_listener_line_names_its_address() -> None:
    with start() as process:
        process.wait_listening(TIMEOUT)
        admin = process.wait_for_line(ADMIN_LINE, TIMEOUT).group(1)
        assert admin.startswith("http://127.0.0.1:")
        assert get(admin + "/healthz").status_code == 200
