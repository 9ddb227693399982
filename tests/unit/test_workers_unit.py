"""The supervisor's pure parts: which configurations run one, and how worker snapshots add
up into the group's metrics (a fresh registry, never the global one)."""

from __future__ import annotations

import multiprocessing
import os
import pickle
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from monoceros.balance import ABSENT, LoadBoard, over_share
from monoceros.config import Config
from monoceros.observe.group import SUPERVISOR, GroupCollector, GroupStatus, process_families
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
    record = RequestFinished(
        scope, "GET", "http", 200, "complete", 0.001, 0, 13, None, None, None, None
    )
    for _ in range(requests):
        http.observe(record)
    http.connections_accepted = requests
    http.request_rejected(None, REJECTION_REASONS[503])
    for _ in range(open_connections):
        http.request_started(scope, reused=False)
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
    processes = {SUPERVISOR: process_families(), "1": process_families()}
    status = GroupStatus(total, "started", len(live), {"crashed": 1, "recycled": 2}, processes)
    return build_registry(GroupCollector(lambda: status), process=False)


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
        "error_type": "",
    }
    value = registry.get_sample_value
    assert value("http_server_request_duration_seconds_count", labels) == 12
    assert value("http_server_response_body_size_bytes_sum", labels) == 12 * 13
    assert value("monoceros_connections_accepted_total") == 12
    assert value("monoceros_requests_rejected_total", {"reason": "overload"}) == 3
    assert value("monoceros_connections_open") == 3
    active = {"http_request_method": "GET", "url_scheme": "http"}
    assert value("http_server_active_requests", active) == 3
    assert value("monoceros_workers") == 2
    assert value("monoceros_worker_restarts_total", {"reason": "recycled"}) == 2
    assert value("monoceros_lifespan_state", {"state": "started"}) == 1


def test_process_metrics_are_each_process_s_labelled_with_its_worker() -> None:
    registry = group_registry(live=[worker_snapshot(1, 0)], exited=[])
    value = registry.get_sample_value
    for worker in (SUPERVISOR, "1"):
        assert value("process_resident_memory_bytes", {"worker": worker}) > 0
        assert value("process_cpu_seconds_total", {"worker": worker}) >= 0
        assert value("python_gc_collections_total", {"generation": "0", "worker": worker}) >= 0
    assert value("process_resident_memory_bytes") is None  # never unlabelled: the supervisor's
    assert value("python_info", {**sys_python_info()}) == 1


def sys_python_info() -> dict[str, str]:
    import platform

    major, minor, patchlevel = platform.python_version_tuple()
    return {
        "implementation": platform.python_implementation(),
        "major": major,
        "minor": minor,
        "patchlevel": patchlevel,
        "version": platform.python_version(),
    }


def test_a_group_without_a_writable_directory_serves_its_own_metrics_still(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A read-only file system (a container without a writable /tmp): a warning, and the
    server's own metrics, rather than no server."""
    import tempfile

    from monoceros import supervisor

    def read_only(prefix: str = "") -> str:
        raise OSError(30, "Read-only file system", "/tmp/monoceros-metrics-x")

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    group = supervisor.Supervisor(Config.from_options(APP, workers=2))
    group._open_app_metrics()
    assert "not aggregated over the workers" in caplog.text
    assert group.app_metrics is not None and list(group.app_metrics.collect()) == []
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


def _post_from_another_process(board: LoadBoard, slot: int, count: int) -> None:
    board.post(slot, count)


def test_the_load_board_is_shared_with_spawned_workers() -> None:
    """What a spawned worker posts, the others read: the board travels to a worker as it is
    spawned, as the supervisor hands it over."""
    context = multiprocessing.get_context("spawn")
    board = LoadBoard(context, 4)
    assert board.post(0, 3) == ABSENT  # nobody else listens yet
    worker = context.Process(target=_post_from_another_process, args=(board, 2, 7))
    worker.start()
    worker.join(30)
    assert worker.exitcode == 0
    assert board.post(0, 3) == 7
    assert board.post(1, 9) == 3
    board.withdraw(0)
    assert board.post(1, 9) == 7
    board.withdraw_worker(3)  # the supervisor, for the worker numbered 3 (slot 2)
    assert board.post(1, 9) == ABSENT
    board.withdraw_worker(99)  # past the board's slots: nothing to withdraw
    assert (board.slot(4), board.slot(5), board.slot(0)) == (3, None, None)


@pytest.mark.parametrize(
    ("mine", "fewest", "over"),
    [(4, 0, False), (5, 0, True), (22, 16, False), (23, 16, True), (5, ABSENT, False)],
)
def test_a_worker_is_over_its_share_past_four_and_an_eighth(
    mine: int, fewest: int, over: bool
) -> None:
    assert over_share(mine, fewest) is over
