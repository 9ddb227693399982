"""The Compose stack for real: the app image built from docker/Dockerfile in both variants
(<version>-py3.11 on Debian bookworm, <version>-py3.13 on trixie), nginx in front, the nginx
exporter, Prometheus and Alertmanager (Grafana's image cannot be pulled here; test_deploy_files.py
checks its files). Traffic and a WebSocket session through nginx on 127.0.0.1, then what the app
logged, what Prometheus scraped, every PromQL expression of the dashboard and the rules, a real
alert reaching Alertmanager, a stop during a slow request, your own app (examples/myapp, built FROM
the py3.13 variant) swapped in by examples/compose.override.yaml, and a crashed app restarted.

Public images cannot be pulled on our machines: tests/deploy/base-images.sh builds local stand-ins
(debootstrap + Debian packages), cached between runs. Skips without Docker, except under CI=true.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

import monoceros
from tests.integration.deploy_helpers import (
    DEPLOY,
    Response,
    all_expressions,
    ca_bundle,
    compose_command,
    http_request,
    prometheus_query,
    prometheus_value,
    require_docker,
    run,
    wait_for,
)

pytestmark = pytest.mark.timeout(1200)  # a cold machine builds the base images first (~2 min)

PROJECT = "monoceros-test"
VERSION = monoceros.__version__  # written once, in server/monoceros/_version.py
# The image variants, tagged as the release tags them, each on the stand-in for its Python base.
VARIANTS = {
    f"monoceros:{VERSION}-py3.11": ("3.11", "local/python:3.11-slim-bookworm"),
    f"monoceros:{VERSION}-py3.13": ("3.13", "local/python:3.13-slim-trixie"),
}
APP_IMAGE = f"monoceros:{VERSION}-py3.11"  # what the stack runs: <version> is the py3.11 variant
BASE_FOR_MYAPP = f"monoceros:{VERSION}-py3.13"  # examples/myapp builds FROM the other one
MYAPP_IMAGE = "myapp:compose-test"
OVERRIDE = ("-f", "compose.yaml", "-f", "examples/compose.override.yaml")
LOCAL_IMAGES = {
    "NGINX_IMAGE": "local/nginx:bookworm",
    "NGINX_EXPORTER_IMAGE": "local/nginx-exporter:bookworm",
    "PROMETHEUS_IMAGE": "local/prometheus:bookworm",
    "ALERTMANAGER_IMAGE": "local/alertmanager:bookworm",
}
SERVICES = ["app", "nginx", "nginx-exporter", "prometheus", "alertmanager"]  # no grafana image
SPOOFED = "203.0.113.50"
# Each wait is bounded; Prometheus scrapes every 5 s.
SCRAPE_WAIT = 30.0


@dataclass
class Stack:
    compose: list[str]
    env: dict[str, str]
    ca_file: Path | None
    traffic: Counter[tuple[str, int]] = field(default_factory=Counter)
    _port: int | None = None

    def run(self, *args: str, timeout: float = 60.0, check: bool = True, **env: str) -> str:
        result = run(
            [*self.compose, "-p", PROJECT, *args],
            timeout=timeout,
            env={**self.env, **env},
            check=check,
        )
        return result.stdout

    def port(self, refresh: bool = False) -> int:
        """nginx's published port (chosen by Docker; it changes when nginx restarts)."""
        if self._port is None or refresh:
            self._port = int(self.run("port", "nginx", "8080").strip().rsplit(":", 1)[1])
        return self._port

    def container(self, service: str) -> str:
        return self.run("ps", "-a", "-q", service).strip()

    def inspect(self, service: str, template: str) -> str:
        return run(
            ["docker", "inspect", "-f", template, self.container(service)], timeout=30
        ).stdout.strip()

    def logs(self, service: str) -> list[str]:
        out = self.run("logs", "--no-color", "--no-log-prefix", service)
        return [line for line in out.splitlines() if line.strip()]

    def json_logs(self, service: str, only: bool = True) -> list[dict[str, Any]]:
        """The service's log lines as JSON objects; with only=False, lines not starting with `{`
        (nginx's own error log on stderr) are left out."""
        records = []
        for line in self.logs(service):
            if not only and not line.startswith("{"):
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                pytest.fail(f"{service} wrote a line that is not JSON: {line!r}")
        return records

    def request(self, path: str, **kwargs: Any) -> Response:
        response = http_request(self.port(), path, **kwargs)
        self.traffic[(path.split("?")[0], response.status)] += 1
        return response

    def alerts(self) -> list[dict[str, Any]]:
        """Alertmanager's alerts (API v2), through nginx's alertmanager.localhost server."""
        response = http_request(
            self.port(), "/api/v2/alerts", headers={"Host": "alertmanager.localhost"}
        )
        assert response.status == 200, response.body[:500]
        alerts: list[dict[str, Any]] = json.loads(response.body)
        return alerts

    def app_metrics(self) -> str:
        script = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:9000/metrics').read().decode())"
        return self.run("exec", "-T", "app", "python", "-c", script)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_docker()
    run([str(DEPLOY / "base-images.sh")], timeout=420)
    ca_file = ca_bundle(tmp_path_factory.mktemp("ca"))
    env = {
        **os.environ,
        **LOCAL_IMAGES,
        "MONOCEROS_IMAGE": APP_IMAGE,
        "NGINX_PORT": "0",  # a free port on 127.0.0.1
        "DOCKER_BUILDKIT": "1",
    }
    if ca_file is not None:
        env["PIP_CA_FILE"] = str(ca_file)
    stack = Stack(compose_command(), env, ca_file)
    stack.run("down", "-v", "--remove-orphans", "--timeout", "5", timeout=120)
    for image, (_, base) in VARIANTS.items():  # each variant through compose.yaml's own build
        started = time.monotonic()
        stack.run("build", "app", timeout=600, PYTHON_IMAGE=base, MONOCEROS_IMAGE=image)
        print(f"built {image} in {time.monotonic() - started:.0f} s")
    try:
        stack.run(
            "up", "-d", "--no-build", "--wait", "--wait-timeout", "120", *SERVICES, timeout=180
        )
        yield stack
    finally:
        # Shown with a failure: the state of every container and the last lines of each log.
        print(stack.run("ps", "-a", timeout=60, check=False))
        print(stack.run("logs", "--no-color", "--tail", "30", timeout=60, check=False))
        if not os.environ.get("MONOCEROS_KEEP_STACK"):  # set it to look at a failed run
            stack.run("down", "-v", "--remove-orphans", "--timeout", "10", timeout=120, check=False)


def _scraped_requests(stack: Stack) -> float | None:
    return prometheus_value(
        stack.port(), 'sum(http_server_request_duration_seconds_count{job="monoceros"})'
    )


def _wait_scraped(stack: Stack, total: int) -> None:
    seen: list[float | None] = []

    def scraped() -> bool:
        seen.append(_scraped_requests(stack))
        return seen[-1] == total

    try:
        wait_for(f"Prometheus to scrape {total} requests", scraped, SCRAPE_WAIT)
    except pytest.fail.Exception:
        pytest.fail(f"Prometheus saw {seen[-3:]} requests, not {total}\n{stack.app_metrics()}")


def _batch(stack: Stack) -> None:
    for _ in range(10):
        response = stack.request("/")
        assert (response.status, response.body) == (200, b"Hello, World!")
    for _ in range(5):
        response = stack.request("/json")
        assert response.status == 200 and json.loads(response.body)["items"]
    for size in (0, 1000, 70_000):
        body = os.urandom(size)
        response = stack.request("/echo", method="POST", body=body)
        assert (response.status, response.body) == (200, body)
    response = stack.request("/stream")
    assert response.status == 200 and len(response.body) == 16 * 65536
    assert stack.request("/missing").status == 404


@pytest.fixture(scope="module")
def traffic(stack: Stack) -> Counter[tuple[str, int]]:
    """Two batches of requests through nginx, each scraped before the next, so rate() has data."""
    # Through nginx, never to the app: the admin listener's paths are not proxied.
    for path in ("/metrics", "/metrics/x"):
        assert http_request(stack.port(), path).status == 404
    # A client naming its own address: nginx appends the one it saw, the app must believe that.
    response = stack.request("/?probe=client", headers={"X-Forwarded-For": SPOOFED})
    assert response.status == 200
    # One WebSocket session through nginx (Upgrade passed on), closed normally by the client.
    with connect(f"ws://127.0.0.1:{stack.port()}/ws", open_timeout=10, close_timeout=10) as ws:
        ws.send("hello")
        assert ws.recv(10) == "hello"
    _batch(stack)
    _wait_scraped(stack, sum(stack.traffic.values()))
    _batch(stack)
    _wait_scraped(stack, sum(stack.traffic.values()))
    return stack.traffic


@pytest.mark.parametrize(("image", "python"), [(i, p) for i, (p, _) in VARIANTS.items()])
def test_image_variants(stack: Stack, image: str, python: str) -> None:
    """Each variant runs its Python, with the request hot path compiled for it, HTTP/2's
    engine included (`--http2` works in the image)."""
    script = (
        "import sys, monoceros, monoceros.protocols.http as m, monoceros.protocols.http2 as h2; "
        "print('%d.%d' % sys.version_info[:2], monoceros.__version__, m.__file__, h2.__file__)"
    )
    command = ["docker", "run", "--rm", "--entrypoint", "python", image, "-c", script]
    version, package, module, http2 = run(command, timeout=60).stdout.split()
    assert (version, package) == (python, VERSION)
    suffix = f"cpython-{python.replace('.', '')}-x86_64-linux-gnu.so"
    assert module.endswith(suffix), module
    assert http2.endswith(suffix), http2
    labels = run(["docker", "image", "inspect", "-f", "{{json .Config.Labels}}", image], 30)
    assert json.loads(labels.stdout)["org.opencontainers.image.base.name"] == VARIANTS[image][1]


def test_container_runs_as_non_root(stack: Stack) -> None:
    assert stack.run("exec", "-T", "app", "id", "-u").strip() == "10001"
    assert stack.inspect("app", "{{.Config.User}}") == "10001:10001"
    assert stack.inspect("app", "{{.State.Health.Status}}") == "healthy"
    assert stack.inspect("app", "{{json .Config.Entrypoint}}") == '["monoceros"]'


@pytest.mark.parametrize("image", list(VARIANTS))
def test_build_secret_is_not_in_the_image(stack: Stack, image: str) -> None:
    if stack.ca_file is None:
        pytest.skip("no extra CA on this machine")
    # A line from inside each certificate (base64, not a header) must be nowhere in the image.
    lines = [
        block.splitlines()[3]
        for block in stack.ca_file.read_text().split("-----END CERTIFICATE-----")
        if len(block.splitlines()) > 4
    ]
    for line in lines:
        found = run(
            [
                "docker",
                "run",
                "--rm",
                "--user",
                "0",
                "--entrypoint",
                "grep",
                image,
                "-rlF",
                line,
                "/opt",
                "/app",
                "/etc",
                "/usr/local",
                "/tmp",
                "/root",
                "/run",
            ],
            timeout=60,
            check=False,
        )
        assert found.returncode == 1 and not found.stdout, found.stdout


def test_app_sees_the_real_client_address(stack: Stack, traffic: Counter[tuple[str, int]]) -> None:
    nginx_ip = stack.inspect("nginx", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}")
    app_line = next(
        r
        for r in stack.json_logs("app")
        if r.get("event") == "request" and r["query"] == "probe=client"
    )
    nginx_line = next(
        r
        for r in stack.json_logs("nginx", only=False)
        if r.get("request_id") == app_line["request_id"]
    )
    assert app_line["peer"] == nginx_ip  # the connection came from nginx ...
    help_text = run(["docker", "run", "--rm", APP_IMAGE, "--help"], timeout=60).stdout
    if "--forwarded-allow-ips" not in help_text:
        pytest.xfail("this server has no --forwarded-allow-ips yet (proxy headers, issue 3)")
    client = app_line["client"]
    assert client == nginx_line["remote_addr"]  # ... and the client is who nginx saw,
    assert client != nginx_ip
    assert client != SPOOFED  # never what the client claimed to be
    assert nginx_line["x_forwarded_for"] == SPOOFED


def test_access_log_lines_parse(stack: Stack, traffic: Counter[tuple[str, int]]) -> None:
    records = stack.json_logs("app")
    access = [
        r for r in records if r.get("logger") == "monoceros.access" and r["event"] == "request"
    ]
    assert len(access) == sum(traffic.values())
    (session,) = [r for r in records if r.get("event") == "websocket"]
    assert session["path"] == "/ws"
    assert Counter((r["path"], r["status"]) for r in access) == traffic
    for record in access:
        assert record["event"] == "request" and record["outcome"] == "complete"
        assert record["timestamp"].endswith("Z") and record["duration"] >= 0
        assert len(record["request_id"]) == 32
    echo = [r for r in access if r["path"] == "/echo"]
    assert sorted(r["body_bytes_received"] for r in echo) == [0, 0, 1000, 1000, 70_000, 70_000]
    # nginx's log is JSON too, one line per request it handled (ours plus the /metrics probes).
    nginx = [r for r in stack.json_logs("nginx", only=False) if r.get("logger") == "nginx.access"]
    assert len([r for r in nginx if r["host"] != "prometheus.localhost"]) == len(access) + 3


def test_prometheus_counts_match_the_traffic(
    stack: Stack, traffic: Counter[tuple[str, int]]
) -> None:
    port = stack.port()
    up = {r["metric"]["job"]: r["value"][1] for r in prometheus_query(port, "up")}
    assert up == {"monoceros": "1", "nginx": "1", "prometheus": "1"}
    by_status = {
        int(r["metric"]["http_response_status_code"]): float(r["value"][1])
        for r in prometheus_query(
            port,
            "sum by (http_response_status_code) "
            '(http_server_request_duration_seconds_count{job="monoceros"})',
        )
    }
    expected: Counter[int] = Counter()
    for (_, status), count in traffic.items():
        expected[status] += count
    assert by_status == expected
    posts = prometheus_value(
        port,
        'sum(http_server_request_body_size_bytes_sum{job="monoceros",http_request_method="POST"})',
    )
    assert posts == 2 * (1000 + 70_000)
    rejected = prometheus_value(port, 'sum(monoceros_requests_rejected_total{job="monoceros"})')
    assert rejected == 0
    # nginx keeps its upstream connections alive: most requests reuse one.
    reused = prometheus_value(
        port, 'sum(monoceros_keepalive_reused_requests_total{job="monoceros"})'
    )
    assert reused is not None and reused > 0
    assert prometheus_value(port, 'nginx_up{job="nginx"}') == 1
    # The WebSocket session, closed normally, and the worker group (MONOCEROS_WORKERS=2).
    closed = 'monoceros_websocket_sessions_total{job="monoceros",close_code="1000"}'
    assert prometheus_value(port, f"sum({closed})") == 1
    assert prometheus_value(port, 'monoceros_workers{job="monoceros"}') == 2
    # The labels the dashboard's variables pick, as a ServiceMonitor gives them in Kubernetes.
    (build,) = prometheus_query(port, "monoceros_build_info")
    assert (build["metric"]["namespace"], build["metric"]["service"]) == ("monoceros", "app")


def test_every_promql_expression_returns_data(
    stack: Stack, traffic: Counter[tuple[str, int]]
) -> None:
    port = stack.port()
    expressions = all_expressions()

    def empty() -> list[str]:
        return [
            f"{n}: {e}" for n, e in sorted(expressions.items()) if not prometheus_query(port, e)
        ]

    # Alerts read the recording rules' series, which appear one evaluation (5 s) after the data.
    deadline = time.monotonic() + SCRAPE_WAIT
    missing = empty()
    while missing and time.monotonic() < deadline:
        time.sleep(1)
        missing = empty()
    assert not missing, "expressions with no data:\n" + "\n".join(missing)


# MonocerosTargetDown has `for: 1m`; Prometheus evaluates every 5 s and sends at once.
ALERT_WAIT = 150.0


def _firing(stack: Stack, name: str) -> dict[str, Any] | None:
    for alert in stack.alerts():
        if alert["labels"]["alertname"] == name and alert["status"]["state"] == "active":
            return alert
    return None


def test_a_firing_alert_reaches_alertmanager(
    stack: Stack, traffic: Counter[tuple[str, int]]
) -> None:
    """The app stops; a minute later the real rule MonocerosTargetDown fires in Prometheus, and
    Alertmanager holds it, routed to the receiver a user replaces."""
    assert _firing(stack, "MonocerosTargetDown") is None
    stack.run("stop", "app", timeout=60)
    try:
        alert = wait_for(
            "MonocerosTargetDown in Alertmanager",
            lambda: _firing(stack, "MonocerosTargetDown"),
            ALERT_WAIT,
            interval=2,
        )
    finally:
        _back_up(stack)
    labels = alert["labels"]
    assert {k: labels[k] for k in ("severity", "job", "namespace", "service", "instance")} == {
        "severity": "critical",
        "job": "monoceros",
        "namespace": "monoceros",
        "service": "app",
        "instance": "app:9000",
    }
    assert alert["annotations"]["summary"] == "monoceros target app:9000 is down"
    assert [r["name"] for r in alert["receivers"]] == ["default"]


def _back_up(stack: Stack) -> None:
    """The app started again after a stop. nginx resolved `app` when it started and is not
    restarted: the app's fixed address is what lets it through."""
    stack.run("up", "-d", "--no-build", "--wait", "--wait-timeout", "60", "app", timeout=90)
    wait_for("nginx to reach the app again", lambda: _answers(stack), 20.0)


def _slow_request(
    stack: Stack, seconds: float, results: list[Response | BaseException]
) -> threading.Thread:
    port = stack.port()

    def send() -> None:
        try:
            results.append(http_request(port, f"/slow?seconds={seconds}", timeout=60))
        except BaseException as exc:  # reported by the test
            results.append(exc)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def _answers(stack: Stack) -> bool:
    try:
        return stack.request("/").status == 200
    except OSError:
        return False


def _in_flight(stack: Stack) -> None:
    wait_for(
        "the slow request to reach the app",
        lambda: (
            'http_server_active_requests{http_request_method="GET",url_scheme="http"} 1.0'
            in stack.app_metrics()
        ),
        10.0,
        interval=0.2,
    )


def test_stop_during_a_slow_request_loses_nothing(
    stack: Stack, traffic: Counter[tuple[str, int]]
) -> None:
    # The app alone: SIGTERM while a request is in flight; the drain answers it, then exit 0.
    results: list[Response | BaseException] = []
    thread = _slow_request(stack, 3, results)
    _in_flight(stack)
    stack.run("stop", "app", timeout=60)
    thread.join(30)
    (response,) = results
    assert isinstance(response, Response), response
    assert (response.status, response.body) == (200, b"slept")
    assert stack.inspect("app", "{{.State.ExitCode}}") == "0"
    slow = [r for r in stack.json_logs("app") if r.get("path") == "/slow"]
    assert [(r["status"], r["outcome"]) for r in slow] == [(200, "complete")]

    _back_up(stack)

    # The whole stack: `docker compose stop` stops nginx first (SIGQUIT: graceful), then the app.
    results.clear()
    thread = _slow_request(stack, 3, results)
    _in_flight(stack)
    started = time.monotonic()
    stack.run("stop", timeout=120)
    thread.join(30)
    (response,) = results
    assert isinstance(response, Response), response
    assert (response.status, response.body) == (200, b"slept")
    assert time.monotonic() - started < 30
    for service in ("app", "nginx"):
        assert stack.inspect(service, "{{.State.ExitCode}}") == "0", stack.logs(service)[-20:]


def test_your_own_app_replaces_the_example(stack: Stack) -> None:
    """examples/compose.override.yaml over compose.yaml: examples/myapp/Dockerfile builds FROM
    the py3.13 variant (pip-installing Starlette with the CA secret), and the stack (stopped by
    the test above) comes back serving it through nginx, scraped by Prometheus."""
    env = {"MONOCEROS_BASE_IMAGE": BASE_FOR_MYAPP, "MYAPP_IMAGE": MYAPP_IMAGE}
    started = time.monotonic()
    stack.run(*OVERRIDE, "build", "app", timeout=600, **env)
    print(f"built {MYAPP_IMAGE} in {time.monotonic() - started:.0f} s")
    stack.run(
        *OVERRIDE,
        "up",
        "-d",
        "--no-build",
        "--wait",
        "--wait-timeout",
        "120",
        *SERVICES,
        timeout=180,
        **env,
    )
    assert stack.inspect("app", "{{.Config.Image}}") == MYAPP_IMAGE
    stack.port(refresh=True)
    home = stack.request("/")
    assert (home.status, home.body) == (200, b"Hello from myapp\n")
    item = stack.request("/items/7")
    assert (item.status, json.loads(item.body)) == (200, {"item_id": "7", "python": "3.13"})
    assert stack.run("exec", "-T", "app", "id", "-u").strip() == "10001"

    # Prometheus scrapes the new app: Starlette's route template as http_route, and its Python
    # (the example app's series from before the stop may linger for Prometheus's lookback).
    def scraped() -> bool:
        port = stack.port()
        route = prometheus_value(
            port,
            'sum(http_server_request_duration_seconds_count{job="monoceros",'
            'http_route="/items/{item_id}"})',
        )
        build = 'monoceros_build_info{job="monoceros", python=~"3\\\\.13\\\\..+"}'
        return route == 1 and prometheus_value(port, f"count({build})") == 1

    wait_for("Prometheus to scrape myapp's route and Python", scraped, SCRAPE_WAIT)


def test_a_crashed_app_is_restarted(stack: Stack) -> None:
    """`restart: unless-stopped`: the app's process killed from outside (as the OOM killer
    would) is started again by Docker, and becomes healthy."""
    pid = int(stack.inspect("app", "{{.State.Pid}}"))
    before = int(stack.inspect("app", "{{.RestartCount}}"))
    os.kill(pid, signal.SIGKILL)  # the container's main process, started by this test's stack

    def restarted_and_healthy() -> bool:
        state = stack.inspect("app", "{{.RestartCount}} {{.State.Health.Status}}").split()
        return int(state[0]) == before + 1 and state[1] == "healthy"

    wait_for("Docker to restart the app", restarted_and_healthy, 60.0)
    assert int(stack.inspect("app", "{{.State.Pid}}")) != pid
    wait_for("nginx to reach the restarted app", lambda: _answers(stack), 20.0)
