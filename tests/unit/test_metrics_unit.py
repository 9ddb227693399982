"""HttpMetrics and MetricsCollector without a server: RequestFinished records in, a fresh
registry's samples out (`get_sample_value`), never the global REGISTRY."""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Counter, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

import monoceros
from monoceros.config import DURATION_BUCKETS
from monoceros.observe.app_metrics import default_registry
from monoceros.observe.metrics import (
    MAX_SERIES,
    OVERFLOW_ROUTE,
    SIZE_BUCKETS,
    HttpMetrics,
    duration_bucket,
    size_bucket,
)
from monoceros.observe.routes import route_of
from monoceros.observe.scrape import MetricsCollector, build_registry
from monoceros.protocols.events import RequestFinished, TraceContext
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
    trace: TraceContext | None = None,
    error_type: str | None = None,
    **scope_options: Any,
) -> RequestFinished:
    full = scope(**scope_options)
    return RequestFinished(
        full,
        full["method"],
        full["scheme"],
        status,
        outcome,
        duration,
        received,
        sent,
        None,
        None,
        trace,
        error_type,
    )


class Route:
    """What Starlette puts in scope["route"], as far as the label reads it."""

    def __init__(self, path_format: Any) -> None:
        self.path_format = path_format


class Setup:
    """HttpMetrics and a fresh registry reading it."""

    def __init__(self, lifespan: str = "started", **options: Any) -> None:
        self.http = HttpMetrics(**options)
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
            "error_type": "",
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
    error = label if int(label) >= 500 else ""
    assert setup.count(http_response_status_code=label, error_type=error) == 1
    assert setup.value("monoceros_app_exceptions_total") == exceptions


@pytest.mark.parametrize(
    ("status", "error_type", "label"),
    [
        pytest.param(200, None, "", id="success"),
        pytest.param(404, None, "", id="client-error"),
        pytest.param(503, None, "503", id="server-error"),
        pytest.param(500, "ValueError", "ValueError", id="app-raised"),
        pytest.param(500, "sqlalchemy.exc.OperationalError", "sqlalchemy.exc.OperationalError"),
    ],
)
def test_error_type_label(setup: Setup, status: int, error_type: str | None, label: str) -> None:
    setup.http.observe(finished(status=status, error_type=error_type))
    assert setup.count(http_response_status_code=str(status), error_type=label) == 1


class Mount(Route):
    def __init__(self, path: str) -> None:
        super().__init__(path + "/{path}")
        self.path = path
        self.routes: list[Any] = []
        self.param_convertors = {"path": None}


def mounted(route: Any, params: dict[str, str], root: str = "", top: str = "") -> dict[str, Any]:
    """A scope as Starlette leaves it after routing under Mounts (`root`: the root_path they
    grew it to; `top`: the root_path before them). The route's own parameters: its template's."""
    if not hasattr(route, "param_convertors"):
        route.param_convertors = dict.fromkeys(re.findall(r"{(\w+)}", route.path_format))
    return {**scope(route=route), "root_path": root, "app_root_path": top, "path_params": params}


ITEM = Route("/items/{item_id}")


@pytest.mark.parametrize(
    ("the_scope", "label"),
    [
        pytest.param(scope(), "", id="no-route"),
        pytest.param(scope(route=ITEM), "/items/{item_id}", id="template"),
        pytest.param(scope(route=Route(None)), "", id="route-without-path"),
        pytest.param(scope(route=Route(b"/bytes")), "", id="path-not-str"),
        pytest.param(scope(route=object()), "", id="not-a-route"),
        pytest.param(
            mounted(Route("/users/{uid}"), {"uid": "7"}, "/v2", ""), "/v2/users/{uid}", id="mount"
        ),
        pytest.param(
            mounted(Route("/users/{uid}"), {"uid": "7"}, "/api/v2", "/api"),
            "/v2/users/{uid}",
            id="mount-below-root-path",
        ),
        pytest.param(
            mounted(Route("/users/{uid}"), {"uid": "7", "tenant": "acme"}, "/t/acme", ""),
            "",
            id="mount-with-parameters-unknown-without-the-app",
        ),
        pytest.param(mounted(Mount("/static"), {}, "/static", ""), "/static/{path}", id="files"),
        pytest.param({**scope(), "path_template": "/books/{book_id:int}"}, "/books/{book_id:int}"),
        pytest.param(
            {**scope(), "extensions": {"monoceros.route": "/own/{id}"}}, "/own/{id}", id="own"
        ),
        pytest.param({**scope(), "extensions": {"monoceros.route": 7}}, "", id="own-not-str"),
    ],
)
def test_route_label(the_scope: dict[str, Any], label: str) -> None:
    assert route_of(the_scope) == label


def test_route_label_asks_the_app_when_the_scope_cannot_say() -> None:
    asked: list[Any] = []

    def finder(scope: Any) -> str:
        asked.append(scope)
        return "/found"

    assert route_of(scope(), finder) == "/found"
    assert route_of(scope(route=ITEM), finder) == "/items/{item_id}"
    assert len(asked) == 1  # a scope that names its route is not asked about


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
    labels = LABELS
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


LABELS = {
    "http_request_method": "GET",
    "http_response_status_code": "200",
    "http_route": "",
    "url_scheme": "http",
    "network_protocol_version": "1.1",
    "error_type": "",
}


def test_duration_buckets_of_one_s_own() -> None:
    setup = Setup(duration_buckets=(0.1, 1.0))
    for seconds in (0.05, 0.5, 5.0):
        setup.http.observe(finished(duration=seconds))
    buckets = [setup.value(DURATION + "_bucket", le=le, **LABELS) for le in ("0.1", "1.0", "+Inf")]
    assert buckets == [1, 2, 3]
    assert setup.value(DURATION + "_bucket", le="0.005", **LABELS) is None


def test_exemplars_of_traced_requests_in_openmetrics_only(setup: Setup) -> None:
    trace = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    setup.http.observe(finished(duration=0.02, trace=trace))
    setup.http.observe(finished(duration=0.3))  # untraced: no exemplar in its bucket
    families = openmetrics_families(openmetrics_latest(setup.registry).decode())
    duration = next(f for f in families if f.name == DURATION)
    exemplars = {s.labels["le"]: s.exemplar for s in duration.samples if s.exemplar is not None}
    assert list(exemplars) == ["0.025"]
    assert exemplars["0.025"].labels == {"trace_id": trace[0], "span_id": trace[1]}
    assert exemplars["0.025"].value == pytest.approx(0.02)
    assert b"trace_id" not in generate_latest(setup.registry)  # the text format has none


def test_active_requests_by_method_and_scheme_pair_with_how_they_started(setup: Setup) -> None:
    http = setup.http
    started = [scope(method="GET"), scope(method="POST", scheme="https"), scope(method="BREW")]
    for each in started:
        http.request_started(each, reused=False)
    active = "http_server_active_requests"
    assert setup.value(active, http_request_method="GET", url_scheme="http") == 1
    assert setup.value(active, http_request_method="POST", url_scheme="https") == 1
    assert setup.value(active, http_request_method="_OTHER", url_scheme="http") == 1
    for each in started:
        record = finished(**{k: each[k] for k in ("method", "scheme")})
        record.scope["scheme"] = "https"  # an app's middleware rewrote it (uvicorn's does)
        http.request_finished(record)
    for method, scheme in (("GET", "http"), ("POST", "https"), ("_OTHER", "http")):
        assert setup.value(active, http_request_method=method, url_scheme=scheme) == 0


def test_body_size_histograms(setup: Setup) -> None:
    setup.http.observe(finished(received=100, sent=5000))
    setup.http.observe(finished(received=0, sent=64))
    labels = LABELS
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


def test_every_scrape_counts_the_requests_alike_so_far(setup: Setup) -> None:
    """Requests alike in series and buckets are counted as a run, added to the buckets when
    the run ends: a scrape in the middle of one, or between runs, sees every request."""
    request = "http_server_request_body_size_bytes"
    response = "http_server_response_body_size_bytes"

    def histograms() -> list[float | None]:
        return [
            *(setup.value(DURATION + "_bucket", le=le, **LABELS) for le in ("0.005", "0.5")),
            *(setup.value(request + "_bucket", le=le, **LABELS) for le in ("64.0", "256.0")),
            *(setup.value(response + "_bucket", le=le, **LABELS) for le in ("64.0", "4096.0")),
            setup.value(DURATION + "_count", **LABELS),
        ]

    fast_small = finished(duration=0.001, received=10, sent=10)
    slow_large = finished(duration=0.3, received=200, sent=4000)
    for _ in range(3):
        setup.http.observe(fast_small)
    assert histograms() == [3, 3, 3, 3, 3, 3, 3]
    for _ in range(2):  # the same run, after a scrape
        setup.http.observe(fast_small)
    assert histograms() == [5, 5, 5, 5, 5, 5, 5]
    setup.http.observe(slow_large)  # another run, in the same series
    assert histograms() == [5, 6, 5, 6, 5, 6, 6]
    setup.http.observe(finished(duration=0.3, received=10, sent=4000))  # one bucket differs
    setup.http.observe(fast_small)
    setup.http.observe(finished(status=404))  # another series
    setup.http.observe(fast_small)
    assert histograms() == [7, 9, 8, 9, 7, 9, 9]
    assert setup.count(http_response_status_code="404") == 1
    assert setup.value(request + "_sum", **LABELS) == 5 * 10 + 200 + 10 + 2 * 10


def test_series_beyond_the_cap_fold_into_an_overflow_route(setup: Setup) -> None:
    for number in range(MAX_SERIES + 500):
        setup.http.observe(finished(route=Route(f"/r{number}")))
    assert len(setup.http.series) == MAX_SERIES + 1
    assert setup.count(http_route=OVERFLOW_ROUTE) == 500
    assert setup.count(http_route="/r0") == 1
    # Existing series keep counting after the cap.
    setup.http.observe(finished(route=Route("/r0")))
    assert setup.count(http_route="/r0") == 2
    # A new route twice in a row: the second is the tally's "alike" case, overflow still.
    setup.http.observe(finished(route=Route("/late")))
    setup.http.observe(finished(route=Route("/late")))
    assert setup.count(http_route=OVERFLOW_ROUTE) == 502
    assert len(setup.http.series) == MAX_SERIES + 1


def test_requests_unlike_the_last_are_each_tallied_in_their_own_series(setup: Setup) -> None:
    """The tally keeps the last request's series for the next one alike: a request that
    differs from the one before in any single label still lands in its own series."""
    version_2 = finished()
    version_2.scope["http_version"] = "2"
    variants: list[tuple[RequestFinished, dict[str, str]]] = [
        (finished(), {}),
        (finished(method="POST"), {"http_request_method": "POST"}),
        (finished(status=404), {"http_response_status_code": "404"}),
        (finished(route=Route("/items/{id}")), {"http_route": "/items/{id}"}),
        (finished(scheme="https"), {"url_scheme": "https"}),
        (version_2, {"network_protocol_version": "2"}),
        (finished(status=500), {"http_response_status_code": "500", "error_type": "500"}),
    ]
    for _ in range(3):
        for record, _labels in variants:
            setup.http.observe(record)
            setup.http.observe(record)
    assert [setup.count(**labels) for _record, labels in variants] == [6] * len(variants)
    assert len(setup.http.series) == len(variants)


def test_scheme_label(setup: Setup) -> None:
    setup.http.observe(finished(scheme="https"))
    assert setup.count(url_scheme="https") == 1


def test_server_counters(setup: Setup) -> None:
    http = setup.http
    http.connections_accepted = 7
    http.keepalive_reuses = 11
    http.connections_open = 2
    for status in (400, 400, 408, 413, 414, 431, 503):
        http.request_rejected(None, REJECTION_REASONS[status])
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


def test_the_app_s_metrics_in_the_default_registry_are_served_beside_ours(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """prometheus-client's default registry is the app's: served after ours, each family name
    once (the standard process_* ones and any clash with ours left out, the clash logged)."""
    orders = Counter("orders_made", "Orders the app made.")
    clash = Counter("monoceros_connections_accepted", "An app's counter with our name.")
    try:
        orders.inc(3)
        setup = Setup()
        setup.registry = build_registry(
            MetricsCollector(setup.http, lambda: "started"), default_registry()
        )
        text = generate_latest(setup.registry).decode()
        names = [family.name for family in text_string_to_metric_families(text)]
        assert setup.value("orders_made_total") == 3
        assert len(names) == len(set(names)), names
        assert setup.value("monoceros_connections_accepted_total") == 0  # ours
        generate_latest(setup.registry)
        warnings = [r for r in caplog.records if "monoceros_connections_accepted" in r.message]
        assert len(warnings) == 1, "the clash is logged once"
    finally:
        REGISTRY.unregister(orders)
        REGISTRY.unregister(clash)


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
        "error_type": "",
    }
