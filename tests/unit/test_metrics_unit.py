"""HttpMetrics and MetricsCollector without a server: RequestFinished records in, a fresh
registry's samples out (`get_sample_value`), never the global REGISTRY."""

from __future__ import annotations

import math
from bisect import bisect_left
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import monoceros
from monoceros.observe.metrics import (
    DURATION_BUCKETS,
    MAX_SERIES,
    OVERFLOW_ROUTE,
    SIZE_BUCKETS,
    HttpMetrics,
    duration_bucket,
    route_of,
    size_bucket,
)
from monoceros.observe.scrape import MetricsCollector, build_registry
from monoceros.protocols.events import RequestFinished
from monoceros.protocols.observer import REJECTION_REASONS

DURATION = "http_server_request_duration_seconds"
OTEL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


def scope(method: str = "GET", scheme: str = "http", route: Any = None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "type": "http",
        "method": method,
        "scheme": scheme,
        "path": "/some/raw/path",
        "query_string": b"",
        "headers": [],
        "http_version": "1.1",
        "client": ("127.0.0.1", 5000),
    }
    if route is not None:
        result["route"] = route
    return result


def finished(
    status: int = 200,
    outcome: str = "complete",
    duration: float = 0.001,
    received: int = 0,
    sent: int = 0,
    **scope_options: Any,
) -> RequestFinished:
    return RequestFinished(
        scope(**scope_options), status, outcome, duration, received, sent, None, None
    )


class Route:
    def __init__(self, path: Any) -> None:
        self.path = path


class Setup:
    """HttpMetrics and a fresh registry reading it."""

    def __init__(self, lifespan: str = "started") -> None:
        self.http = HttpMetrics()
        self.lifespan = lifespan
        self.registry: CollectorRegistry = build_registry(
            MetricsCollector(self.http, lambda: self.lifespan)
        )

    def value(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def count(self, **labels: str) -> float | None:
        full = {
            "http_request_method": "GET",
            "http_response_status_code": "200",
            "http_route": "",
            "url_scheme": "http",
            "network_protocol_version": "1.1",
            **labels,
        }
        return self.value(DURATION + "_count", **full)


@pytest.fixture
def setup() -> Setup:
    return Setup()


def test_buckets_are_opentelemetry_defaults() -> None:
    assert DURATION_BUCKETS == OTEL_BUCKETS


@pytest.mark.parametrize(
    ("method", "label"),
    [
        *[
            pytest.param(m, m, id=m)
            for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE")
        ],
        pytest.param("PATCH", "PATCH", id="PATCH"),
        pytest.param("PROPFIND", "_OTHER", id="PROPFIND"),
        pytest.param("QUERY", "_OTHER", id="QUERY"),
        pytest.param("get", "_OTHER", id="lowercase"),
        pytest.param("X" * 100, "_OTHER", id="long"),
    ],
)
def test_method_label(setup: Setup, method: str, label: str) -> None:
    setup.http.observe(finished(method=method))
    assert setup.count(http_request_method=label) == 1


@pytest.mark.parametrize(
    ("status", "outcome", "label", "exceptions"),
    [
        pytest.param(200, "complete", "200", 0, id="ok"),
        pytest.param(404, "complete", "404", 0, id="not-found"),
        pytest.param(500, "error", "500", 1, id="app-raised"),
        pytest.param(0, "disconnected", "499", 0, id="gone-before-response"),
        pytest.param(200, "disconnected", "200", 0, id="gone-mid-response"),
        pytest.param(503, "complete", "503", 0, id="overload"),
    ],
)
def test_status_label_and_app_exceptions(
    setup: Setup, status: int, outcome: str, label: str, exceptions: int
) -> None:
    setup.http.observe(finished(status=status, outcome=outcome))
    assert setup.count(http_response_status_code=label) == 1
    assert setup.value("monoceros_app_exceptions_total") == exceptions


@pytest.mark.parametrize(
    ("scope_route", "label"),
    [
        pytest.param(None, "", id="no-route"),
        pytest.param(Route("/items/{item_id}"), "/items/{item_id}", id="template"),
        pytest.param(Route(None), "", id="route-without-path"),
        pytest.param(Route(b"/bytes"), "", id="path-not-str"),
        pytest.param(object(), "", id="not-a-route"),
    ],
)
def test_route_label(scope_route: Any, label: str) -> None:
    assert route_of(scope(route=scope_route)) == label


def test_route_never_comes_from_the_raw_path(setup: Setup) -> None:
    for number in range(100):
        record = finished()
        record.scope["path"] = f"/random/{number}"
        setup.http.observe(record)
    assert len(setup.http.series) == 1
    assert setup.count() == 100


@pytest.mark.parametrize(
    ("duration", "first_bucket"),
    [
        pytest.param(0.0, "0.005", id="zero"),
        pytest.param(0.005, "0.005", id="on-a-bound"),
        pytest.param(0.0050001, "0.01", id="just-above"),
        pytest.param(0.3, "0.5", id="middle"),
        pytest.param(10.0, "10.0", id="last-bound"),
        pytest.param(11.0, "+Inf", id="beyond"),
    ],
)
def test_duration_buckets(setup: Setup, duration: float, first_bucket: str) -> None:
    setup.http.observe(finished(duration=duration))
    bounds = [*map(repr, OTEL_BUCKETS), "+Inf"]
    labels = {
        "http_request_method": "GET",
        "http_response_status_code": "200",
        "http_route": "",
        "url_scheme": "http",
        "network_protocol_version": "1.1",
    }
    counts = [setup.value(DURATION + "_bucket", le=bound, **labels) for bound in bounds]
    index = bounds.index(first_bucket)
    assert counts == [0.0] * index + [1.0] * (len(bounds) - index)
    assert setup.value(DURATION + "_sum", **labels) == pytest.approx(duration)


def test_bucket_of_every_edge_matches_bisect() -> None:
    """The hot path finds buckets by comparing numbers; `bisect_left` is the definition."""
    for bound in DURATION_BUCKETS:
        for seconds in (bound, math.nextafter(bound, 0), math.nextafter(bound, math.inf)):
            assert duration_bucket(seconds) == bisect_left(DURATION_BUCKETS, seconds), seconds
    assert duration_bucket(0.0) == 0
    assert duration_bucket(math.inf) == len(DURATION_BUCKETS)
    for bound in SIZE_BUCKETS:
        for size in (int(bound) - 1, int(bound), int(bound) + 1):
            assert size_bucket(size) == bisect_left(SIZE_BUCKETS, size), size
    assert size_bucket(0) == 0
    assert size_bucket(2**62) == len(SIZE_BUCKETS)


def test_body_size_histograms(setup: Setup) -> None:
    setup.http.observe(finished(received=100, sent=5000))
    setup.http.observe(finished(received=0, sent=64))
    labels = {
        "http_request_method": "GET",
        "http_response_status_code": "200",
        "http_route": "",
        "url_scheme": "http",
        "network_protocol_version": "1.1",
    }
    request = "http_server_request_body_size_bytes"
    response = "http_server_response_body_size_bytes"
    assert setup.value(request + "_sum", **labels) == 100
    assert setup.value(request + "_bucket", le="64.0", **labels) == 1
    assert setup.value(request + "_bucket", le="256.0", **labels) == 2
    assert setup.value(response + "_sum", **labels) == 5064
    assert setup.value(response + "_bucket", le="64.0", **labels) == 1
    assert setup.value(response + "_bucket", le="4096.0", **labels) == 1
    assert setup.value(response + "_bucket", le="16384.0", **labels) == 2
    assert setup.value(response + "_count", **labels) == 2


def test_series_beyond_the_cap_fold_into_an_overflow_route(setup: Setup) -> None:
    for number in range(MAX_SERIES + 500):
        setup.http.observe(finished(route=Route(f"/r{number}")))
    assert len(setup.http.series) == MAX_SERIES + 1
    assert setup.count(http_route=OVERFLOW_ROUTE) == 500
    assert setup.count(http_route="/r0") == 1
    # Existing series keep counting after the cap.
    setup.http.observe(finished(route=Route("/r0")))
    assert setup.count(http_route="/r0") == 2


def test_scheme_label(setup: Setup) -> None:
    setup.http.observe(finished(scheme="https"))
    assert setup.count(url_scheme="https") == 1


def test_server_counters(setup: Setup) -> None:
    http = setup.http
    http.active_requests = 3
    http.connections_accepted = 7
    http.keepalive_reuses = 11
    http.connections_open = 2
    for status in (400, 400, 408, 413, 414, 431, 503):
        http.request_rejected(None, REJECTION_REASONS[status])
    assert setup.value("http_server_active_requests") == 3
    assert setup.value("monoceros_connections_open") == 2
    assert setup.value("monoceros_connections_accepted_total") == 7
    assert setup.value("monoceros_keepalive_reused_requests_total") == 11
    expected = {
        "bad_request": 2,
        "header_timeout": 1,
        "body_too_large": 1,
        "uri_too_long": 1,
        "headers_too_large": 1,
        "overload": 1,
    }
    for reason, count in expected.items():
        assert setup.value("monoceros_requests_rejected_total", reason=reason) == count


@pytest.mark.parametrize(
    "phase", ["starting", "started", "unsupported", "failed", "stopping", "stopped"]
)
def test_lifespan_state(phase: str) -> None:
    setup = Setup(lifespan=phase)
    for name in ("starting", "started", "unsupported", "failed", "stopping", "stopped"):
        expected = 1.0 if name == phase else 0.0
        assert setup.value("monoceros_lifespan_state", state=name) == expected


def test_build_info(setup: Setup) -> None:
    text = generate_latest(setup.registry).decode()
    (sample,) = [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "monoceros_build_info"
    ]
    assert sample.value == 1
    assert sample.labels["version"] == monoceros.__version__
    assert {"python", "implementation"} <= set(sample.labels)


def test_process_and_python_metrics_are_registered(setup: Setup) -> None:
    names = {
        f.name for f in text_string_to_metric_families(generate_latest(setup.registry).decode())
    }
    assert {"process_resident_memory_bytes", "process_open_fds", "python_info"} <= names
    assert "python_gc_objects_collected" in names


def test_the_global_registry_is_left_alone(setup: Setup) -> None:
    setup.http.observe(finished())
    assert REGISTRY.get_sample_value(DURATION + "_count", {}) is None
    global_names = {
        name for collector in REGISTRY._collector_to_names.values() for name in collector
    }
    assert not any(name.startswith(("monoceros_", "http_server_")) for name in global_names)


def test_exposition_round_trips(setup: Setup) -> None:
    setup.http.observe(finished(route=Route("/items/{item_id}"), status=201, method="POST"))
    text = generate_latest(setup.registry).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families[DURATION].type == "histogram"
    assert families["monoceros_connections_accepted"].type == "counter"
    assert families["http_server_active_requests"].type == "gauge"
    (count,) = [s for s in families[DURATION].samples if s.name == DURATION + "_count"]
    assert count.labels == {
        "http_request_method": "POST",
        "http_response_status_code": "201",
        "http_route": "/items/{item_id}",
        "url_scheme": "http",
        "network_protocol_version": "1.1",
    }
