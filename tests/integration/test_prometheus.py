"""A real Prometheus (the Debian package) scrapes the admin listener while the server is under
load; what its query API returns must be what the test sent."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.deploy_helpers import (
    DASHBOARD,
    dashboard_expressions,
    substitute_grafana_variables,
)
from tests.integration.helpers import TIMEOUT
from tests.integration.observe_app import app
from tests.integration.observe_helpers import eventually, running_admin_url
from tests.integration.prometheus_helpers import (
    PROMETHEUS_TIMEOUT,
    Prometheus,
    running_prometheus,
)
from tests.utils import RunningServer, run_server


@pytest.fixture
def server() -> Iterator[RunningServer]:
    with run_server(app) as running:
        yield running


@pytest.fixture
def prometheus(server: RunningServer, tmp_path: Path) -> Iterator[Prometheus]:
    target = running_admin_url(server).removeprefix("http://")
    with running_prometheus([target], tmp_path) as instance:
        yield instance


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


def test_the_dashboard_shows_requests_by_http_version(tmp_path: Path) -> None:
    """The dashboard's HTTP versions row from a real Prometheus: a server with --http2 serves
    HTTP/1.1 and h2c clients, and each version is a series of its own in both panels."""
    expressions = dashboard_expressions(json.loads(DASHBOARD.read_text()))
    panels = [name for name in expressions if "by HTTP version" in name]
    assert len(panels) == 2, list(expressions)
    sent = {"1.1": 3, "2": 5}
    with run_server(app, http2=True) as server:
        target = running_admin_url(server).removeprefix("http://")
        labels = {"namespace": "monoceros", "service": "app", "instance": "app:9000"}
        with running_prometheus([target], tmp_path, labels=labels) as prometheus:
            for version, count in sent.items():
                http2 = version == "2"
                with httpx.Client(http1=not http2, http2=http2, timeout=TIMEOUT) as client:
                    for _ in range(count):
                        assert client.get(server.url + "/").status_code == 200

            def counts() -> dict[str, int] | None:
                result = prometheus.query(
                    "sum by (network_protocol_version) (http_server_request_duration_seconds_count)"
                )
                seen = {
                    s["metric"]["network_protocol_version"]: int(float(s["value"][1]))
                    for s in result
                }
                return seen if seen == sent else None

            eventually(counts, timeout=PROMETHEUS_TIMEOUT, what=f"counts {sent} scraped")
            for name in panels:
                query = substitute_grafana_variables(expressions[name])

                def versions(q: str = query) -> set[str] | None:
                    result = prometheus.query(q)
                    found = {s["metric"]["network_protocol_version"] for s in result}
                    return found if found == set(sent) else None

                # A rate needs two scrapes of a series.
                eventually(versions, timeout=PROMETHEUS_TIMEOUT, what=f"{name}: both versions")
