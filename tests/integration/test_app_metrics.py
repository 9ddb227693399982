"""The app's own Prometheus metrics on /metrics, one process and a worker group, and each
process's own process_* metrics: real `monoceros` processes, a real Prometheus.

The app (tests/integration/shop_app.py) registers a counter, a histogram and gauges in
prometheus-client's default registry, as apps do, and knows nothing of workers.
"""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.integration.deploy_helpers import (
    DASHBOARD,
    REPO,
    dashboard_expressions,
    substitute_grafana_variables,
)
from tests.integration.helpers import TIMEOUT
from tests.integration.observe_helpers import admin_url, eventually, scrape, start
from tests.integration.prometheus_helpers import Prometheus, running_prometheus
from tests.utils import ServerProcess

APP = "tests.integration.shop_app:app"
RULES = REPO / "docker" / "prometheus" / "rules" / "monoceros.yml"
# The labels the dashboard's variables select (deploy_helpers.GRAFANA_VARIABLES).
LABELS = {"namespace": "monoceros", "service": "app", "instance": "app:9000"}
RESTART_ALERT = (
    "sum without (reason) (increase(monoceros_worker_restarts_total"
    '{job="monoceros", reason=~"crashed|unresponsive"}[15m])) > 2'
)
ORDERS = 60
RECYCLE_AFTER = 15  # --limit-max-requests: each worker retires after this many requests


def order(url: str, items: int) -> int:
    """One order on a new connection (so that every worker takes some); the worker's pid."""
    response = httpx.get(
        f"{url}/order?items={items}", headers={"connection": "close"}, timeout=TIMEOUT
    )
    assert response.status_code == 200
    return int(response.text)


def wait_lines(process: ServerProcess, pattern: str, count: int, timeout: float = 30) -> None:
    regex = re.compile(pattern)

    def enough() -> bool | None:
        return sum(1 for line in list(process.lines) if regex.search(line)) >= count or None

    eventually(enough, timeout, f"{count} lines matching {pattern!r} in\n{process.output}")


def test_one_server_serves_the_app_s_metrics_beside_its_own() -> None:
    with start(app=APP) as process:
        url = process.wait_listening(TIMEOUT)
        admin = admin_url(process)
        for items in (1, 2, 3):
            order(url, items)
        metrics = scrape(admin)
    assert metrics.value("shop_orders_total", kind="web") == 3
    assert metrics.value("shop_order_items_count") == 3
    assert metrics.value("shop_order_items_sum") == 6
    assert metrics.value("http_server_request_duration_seconds_count") == 3
    # One family each: the default registry's own process_* and python_* are ours already.
    names = [line.split()[2] for line in metrics.text.splitlines() if line.startswith("# TYPE")]
    assert len(names) == len(set(names)), names


@dataclass
class Group:
    process: ServerProcess
    url: str
    directory: Path  # its PROMETHEUS_MULTIPROC_DIR
    prometheus: Prometheus
    pids: list[int]
    items: int


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Group]:
    """Two workers recycled every RECYCLE_AFTER requests, ORDERS orders taken, scraped by
    Prometheus (with the shipped rules) as the Compose stack's app would be."""
    tmp_path = tmp_path_factory.mktemp("group")
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_4242.db").write_bytes(b"a previous run's")  # wiped at start
    args = ("--workers", "2", "--limit-max-requests", str(RECYCLE_AFTER))
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    with start(*args, app=APP, env=env) as process:
        url = process.wait_listening(TIMEOUT)
        target = admin_url(process).removeprefix("http://")
        wait_lines(process, r"Worker \[\d+\] is serving", 2)
        with running_prometheus([target], tmp_path, (RULES,), LABELS) as prometheus:
            pids = [order(url, n % 4 + 1) for n in range(ORDERS)]
            items = sum(n % 4 + 1 for n in range(ORDERS))
            yield Group(process, url, directory, prometheus, pids, items)
        process.signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0, process.output


def test_a_worker_group_sums_the_app_s_metrics_across_recycling(group: Group) -> None:
    prometheus = group.prometheus
    assert len(set(group.pids)) > 2, "workers were recycled"
    assert prometheus.wait_for("sum(shop_orders_total)", ORDERS) == ORDERS
    assert prometheus.value("sum(shop_order_items_count)") == ORDERS
    assert prometheus.value("sum(shop_order_items_sum)") == group.items
    assert prometheus.value('sum(shop_order_items_bucket{le="1.0"})') == ORDERS / 4
    assert prometheus.value("sum(shop_orders_in_progress)") == 0
    # Scraped every second while workers came and went: the counter never went back.
    assert prometheus.value('max(resets(shop_orders_total{kind="web"}[5m]))') == 0
    assert prometheus.value('sum(monoceros_worker_restarts_total{reason="recycled"})') >= 2
    assert prometheus.value("sum(http_server_request_duration_seconds_count)") == ORDERS


def test_exited_workers_leave_a_bounded_directory(group: Group) -> None:
    eventually(lambda: group.prometheus.value("sum(shop_orders_total)") or None)
    files = {os.path.basename(path) for path in glob.glob(str(group.directory / "*.db"))}
    assert "counter_4242.db" not in files  # the previous run's
    assert {"counter_retired.db", "histogram_retired.db"} <= files
    pids = {int(match) for name in files for match in re.findall(r"_(\d+)\.db$", name)}
    exited = set(group.pids) - pids
    assert exited, "some workers exited"
    assert len(pids) <= 3  # live workers only (one more while a replacement starts)
    # The default-mode gauge: a series per live worker, none for those gone.
    series = group.prometheus.query("shop_last_order_items")
    assert {int(s["metric"]["pid"]) for s in series} <= pids


def test_process_metrics_are_per_worker_with_a_bounded_label(group: Group) -> None:
    prometheus = group.prometheus
    series = prometheus.query("process_resident_memory_bytes")
    workers = {s["metric"].get("worker") for s in series}
    assert "supervisor" in workers and None not in workers
    numbers = {int(w) for w in workers - {"supervisor"}}
    # 2 workers; while replaced ones drain, their successors take the next free numbers.
    assert numbers and max(numbers) <= 4, workers
    assert prometheus.value('count(process_cpu_seconds_total{worker!="supervisor"})') >= 2
    # The dashboard's process panels show one line per process.
    dashboard = json.loads(DASHBOARD.read_text())
    for name, expr in dashboard_expressions(dashboard).items():
        if re.search(r"by \([^)]*\bworker\b", expr):  # the panels of each process
            query = substitute_grafana_variables(expr)
            # A rate needs two scrapes of a series: a worker may have started a moment ago.
            result = eventually(lambda q=query: prometheus.query(q) or None, 30, f"{name}")
            assert all("worker" in s["metric"] for s in result), name


def test_a_reload_does_not_fire_the_worker_restart_alert(group: Group) -> None:
    prometheus = group.prometheus
    group.process.signal(signal.SIGHUP)
    wait_lines(group.process, r"Worker \[\d+\] exited .*: reload", 2)
    for items in (1, 1):
        order(group.url, items)
    reloads = 'sum(monoceros_worker_restarts_total{reason="reload"})'
    assert prometheus.wait_for(reloads, 2) == 2
    assert prometheus.wait_for("sum(shop_orders_total)", ORDERS + 2) == ORDERS + 2
    time.sleep(2)  # two more rule evaluations
    assert prometheus.query(RESTART_ALERT) == []
    assert prometheus.query('ALERTS{alertname="MonocerosWorkerRestarts"}') == []


def test_a_killed_worker_s_app_metrics_are_kept() -> None:
    """A worker killed with SIGKILL wrote its counts to the shared files as it counted."""
    with start("--workers", "2", app=APP) as process:
        url = process.wait_listening(TIMEOUT)
        admin = admin_url(process)
        wait_lines(process, r"Worker \[\d+\] is serving", 2)
        pids = [order(url, 2) for _ in range(20)]
        os.kill(pids[-1], signal.SIGKILL)
        wait_lines(process, rf"Worker \[{pids[-1]}\] exited", 1)
        wait_lines(process, r"Worker \[\d+\] is serving", 3)
        for _ in range(10):
            order(url, 2)
        metrics = scrape(admin)
    assert metrics.value("shop_orders_total", kind="web") == 30
    assert metrics.value("shop_order_items_sum") == 60
