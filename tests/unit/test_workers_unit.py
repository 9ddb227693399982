"""The supervisor's pure parts: which configurations run one, and how worker snapshots add
up into the group's metrics (a fresh registry, never the global one)."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from monoceros.config import Config
from monoceros.observe.group import GroupCollector, GroupStatus
from monoceros.observe.metrics import HttpMetrics, MetricsSnapshot, snapshot_of
from monoceros.observe.scrape import build_registry
from monoceros.protocols.events import RequestFinished
from monoceros.protocols.observer import REJECTION_REASONS
from monoceros.proxy import ProxyResolver

APP = "examples.app:app"


async def app_object(scope: Any, receive: Any, send: Any) -> None:
    pass


@pytest.mark.parametrize(
    ("options", "supervised"),
    [
        pytest.param({}, False, id="default"),
        pytest.param({"workers": 2}, True, id="workers"),
        pytest.param({"limit_max_rss": 512}, True, id="max-rss-one-worker"),
        pytest.param({"limit_max_requests": 100}, False, id="max-requests-alone"),
    ],
)
def test_which_configurations_run_a_supervisor(options: dict[str, Any], supervised: bool) -> None:
    assert Config.from_options(APP, **options).supervised is supervised


@pytest.mark.parametrize(
    ("app", "options", "message"),
    [
        pytest.param(app_object, {"workers": 2}, "import string", id="app-object"),
        pytest.param(app_object, {"limit_max_rss": 100}, "import string", id="app-object-rss"),
        pytest.param(APP, {"workers": 2, "reuse_port": True, "port": 0}, "fixed --port", id="rp0"),
        pytest.param(APP, {"reuse_port": True, "uds": "/tmp/x.sock"}, "--reuse-port", id="rp-uds"),
        pytest.param(APP, {"limit_max_requests_jitter": -1}, "jitter", id="jitter"),
        pytest.param(APP, {"limit_max_rss": 0}, "--limit-max-rss", id="rss"),
        pytest.param(APP, {"timeout_worker_healthcheck": 0}, "healthcheck", id="healthcheck"),
    ],
)
def test_invalid_worker_options_are_refused(
    app: Any, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Config.from_options(app, **options)


def test_the_config_survives_pickling_for_spawned_workers() -> None:
    config = Config.from_options(APP, workers=2, forwarded_allow_ips="10.0.0.0/8,unix:")
    copy = pickle.loads(pickle.dumps(config))
    assert copy == config
    # The trust list a worker builds from it trusts the same peers.
    resolver = ProxyResolver.from_settings(copy.proxy)
    assert resolver is not None
    trusted = resolver.trusted
    assert trusted.trusts_peer(("10.1.2.3", 1)) and trusted.trusts_peer(None)
    assert not trusted.trusts_peer(("192.0.2.1", 1))


def worker_snapshot(requests: int, open_connections: int) -> MetricsSnapshot:
    """A worker's snapshot after `requests` GETs, as it crosses the pipe (pickled)."""
    http = HttpMetrics()
    scope = {"method": "GET", "scheme": "http", "path": "/", "http_version": "1.1"}
    for _ in range(requests):
        http.observe(RequestFinished(scope, 200, "complete", 0.001, 0, 13, None, None))
    http.connections_accepted = requests
    http.request_rejected(None, REJECTION_REASONS[503])
    http.active_requests = open_connections
    snapshot = snapshot_of(http)
    snapshot.connections_open = open_connections
    result: MetricsSnapshot = pickle.loads(pickle.dumps(snapshot))
    return result


def group_registry(live: list[MetricsSnapshot], exited: list[MetricsSnapshot]) -> CollectorRegistry:
    retired = MetricsSnapshot()
    for snapshot in exited:
        retired.add(snapshot, gauges=False)
    total = MetricsSnapshot()
    total.add(retired)
    for snapshot in live:
        total.add(snapshot)
    status = GroupStatus(total, "started", len(live), {"crashed": 1, "recycled": 2})
    return build_registry(GroupCollector(lambda: status))


def test_counters_add_up_over_live_and_exited_workers_and_gauges_over_live_only() -> None:
    registry = group_registry(
        live=[worker_snapshot(3, 1), worker_snapshot(4, 2)], exited=[worker_snapshot(5, 7)]
    )
    labels = {
        "http_request_method": "GET",
        "http_response_status_code": "200",
        "http_route": "",
        "url_scheme": "http",
        "network_protocol_version": "1.1",
    }
    value = registry.get_sample_value
    assert value("http_server_request_duration_seconds_count", labels) == 12
    assert value("http_server_response_body_size_bytes_sum", labels) == 12 * 13
    assert value("monoceros_connections_accepted_total") == 12
    assert value("monoceros_requests_rejected_total", {"reason": "overload"}) == 3
    assert value("monoceros_connections_open") == 3
    assert value("http_server_active_requests") == 3
    assert value("monoceros_workers") == 2
    assert value("monoceros_worker_restarts_total", {"reason": "recycled"}) == 2
    assert value("monoceros_lifespan_state", {"state": "started"}) == 1
