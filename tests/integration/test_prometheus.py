"""A real Prometheus (the Debian package) scrapes the admin listener while the server is under
load; what its query API returns must be what the test sent."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.helpers import TIMEOUT
from tests.integration.observe_app import app
from tests.integration.observe_helpers import eventually, require_tool, running_admin_url
from tests.utils import RunningServer, free_port, run_server

# Prometheus's first scrape lands ~5 s after it starts; everything is polled within this.
PROMETHEUS_TIMEOUT = 30.0
SCRAPE_CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: monoceros
    static_configs:
      - targets: ["{target}"]
"""


class Prometheus:
    def __init__(self, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.process = process
        self.log = log

    def query(self, expression: str) -> list[dict[str, Any]]:
        response = httpx.get(
            self.url + "/api/v1/query", params={"query": expression}, timeout=TIMEOUT
        )
        assert response.status_code == 200, response.text
        payload = response.json()
        assert payload["status"] == "success", payload
        result: list[dict[str, Any]] = payload["data"]["result"]
        return result

    def value(self, expression: str) -> float | None:
        """The single value of an instant query, or None while there is none."""
        result = self.query(expression)
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, expression: str, expected: float) -> float | None:
        """Poll until `expression` equals `expected` (bounded); return the last value seen."""
        deadline = time.monotonic() + PROMETHEUS_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            last = self.value(expression)
            if last == expected:
                break
            time.sleep(0.5)
        return last


@pytest.fixture
def server() -> Iterator[RunningServer]:
    with run_server(app) as running:
        yield running


@pytest.fixture
def prometheus(server: RunningServer, tmp_path: Path) -> Iterator[Prometheus]:
    binary = require_tool("prometheus")
    target = running_admin_url(server).removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(SCRAPE_CONFIG.format(target=target))
    promtool = require_tool("promtool")
    check = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, timeout=30, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    address = f"127.0.0.1:{free_port()}"
    log = tmp_path / "prometheus.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--web.listen-address={address}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                "--log.level=warn",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    instance = Prometheus(f"http://{address}", process, log)
    try:
        deadline = time.monotonic() + PROMETHEUS_TIMEOUT
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(instance.url + "/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "Prometheus did not become ready\n" + (
                log.read_text()
            )
            time.sleep(0.2)
        yield instance
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def test_prometheus_sees_exactly_the_requests_sent(
    server: RunningServer, prometheus: Prometheus
) -> None:
    counts = {"200": 0, "404": 0, "500": 0}
    stop = threading.Event()

    def load() -> None:
        """Requests until told to stop (at most 20 s or 20,000 requests)."""
        with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
            deadline = time.monotonic() + 20
            number = 0
            while not stop.is_set() and time.monotonic() < deadline and number < 20_000:
                status = client.get(("/", "/missing", "/", "/boom")[number % 4]).status_code
                counts[str(status)] += 1
                number += 1
                if number % 50 == 0:
                    time.sleep(0.01)

    thread = threading.Thread(target=load)
    thread.start()
    try:
        # Keep the load on until a scrape has landed in the middle of it.
        up = prometheus.wait_for('up{job="monoceros"}', 1.0)
        mid_load = eventually(
            lambda: prometheus.value("sum(http_server_request_duration_seconds_count)") or None,
            timeout=PROMETHEUS_TIMEOUT,
            what="a scrape during the load",
        )
    finally:
        stop.set()
        thread.join(TIMEOUT)
    assert up == 1.0, prometheus.log.read_text()
    assert not thread.is_alive()
    sent = sum(counts.values())
    assert 0 < mid_load < sent
    total = prometheus.wait_for("sum(http_server_request_duration_seconds_count)", sent)
    assert total == sent, (total, counts)
    for status, count in counts.items():
        seen = prometheus.value(
            "sum(http_server_request_duration_seconds_count"
            f'{{http_response_status_code="{status}"}})'
        )
        assert seen == count, (status, seen, count)
    assert prometheus.value("sum(monoceros_app_exceptions_total)") == counts["500"]
    # The histogram is usable as one: a quantile over its buckets is a number.
    quantile = prometheus.value(
        "histogram_quantile(0.99, sum by (le) (http_server_request_duration_seconds_bucket))"
    )
    assert quantile is not None and quantile >= 0
    assert prometheus.value("http_server_active_requests") == 0
    assert prometheus.value('monoceros_lifespan_state{state="started"}') == 1
