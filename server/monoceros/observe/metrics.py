"""Prometheus metrics: HTTP server metrics under OpenTelemetry's names, and `monoceros_*`.

Why not prometheus-client's Histogram on the hot path: `.labels(...).observe()` costs
~1.7 us (a lock and a label lookup) and a request feeds three histograms and a gauge, ~6 us,
more than the rest of our per-request work. Requests are instead tallied into plain lists
(each bucket found by comparing native numbers, not `bisect`) and turned into metric
families only when scraped, by `MetricsCollector`. Connection and rejection counts are plain
ints the protocol already keeps in `ServerState`, read at scrape time.

Every metric is defined once, in `render()`, from a `MetricsSnapshot`: one process's own
tallies, or (with --workers) the supervisor's sum of its workers' snapshots.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from monoceros import __version__
from monoceros.protocols.events import RequestFinished, reported_status
from monoceros.protocols.state import ServerState

# OpenTelemetry's default buckets for http.server.request.duration (seconds).
# fmt: off
DURATION_BUCKETS: Final[tuple[float, ...]] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)
# fmt: on
# Body sizes in bytes: powers of four from 64 B to 64 MiB.
SMALLEST_SIZE_BUCKET: Final = 64
SIZE_BUCKET_COUNT: Final = 11
SIZE_BUCKETS = tuple(float(SMALLEST_SIZE_BUCKET * 4**i) for i in range(SIZE_BUCKET_COUNT))
KNOWN_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
)
HTTP_LABELS = ("http_request_method", "http_response_status_code", "http_route", "url_scheme")
# Beyond this many label sets, new ones are folded into one overflow series per status.
MAX_SERIES = 2000
OVERFLOW_ROUTE = "_overflow"
REJECTION_REASONS = {
    400: "bad_request",
    408: "header_timeout",
    413: "body_too_large",
    414: "uri_too_long",
    431: "headers_too_large",
    503: "overload",
}


class _Series:
    """Non-cumulative bucket counts (+Inf last) and sums for one label set."""

    __slots__ = (
        "duration",
        "duration_sum",
        "request_size",
        "request_sum",
        "response_size",
        "response_sum",
    )

    def __init__(self) -> None:
        self.duration = [0] * (len(DURATION_BUCKETS) + 1)
        self.request_size = [0] * (len(SIZE_BUCKETS) + 1)
        self.response_size = [0] * (len(SIZE_BUCKETS) + 1)
        self.duration_sum = 0.0
        self.request_sum = 0
        self.response_sum = 0

    def add(self, other: _Series) -> None:
        for mine, theirs in (
            (self.duration, other.duration),
            (self.request_size, other.request_size),
            (self.response_size, other.response_size),
        ):
            for index, count in enumerate(theirs):
                mine[index] += count
        self.duration_sum += other.duration_sum
        self.request_sum += other.request_sum
        self.response_sum += other.response_sum


def duration_bucket(seconds: float) -> int:
    """The index of the first DURATION_BUCKETS bound >= seconds (len(): +Inf)."""
    index = 0
    for bound in DURATION_BUCKETS:
        if seconds <= bound:
            break
        index += 1
    return index


def size_bucket(size: int) -> int:
    """The index of the first SIZE_BUCKETS bound >= size (len(): +Inf)."""
    index = 0
    bound = SMALLEST_SIZE_BUCKET
    while size > bound and index < SIZE_BUCKET_COUNT:
        bound *= 4
        index += 1
    return index


def route_of(scope: Any) -> str:
    """The route template when the framework says which route matched (Starlette and
    FastAPI put the Route in scope["route"]); otherwise "" (unknown), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None) if route is not None else None
    return path if isinstance(path, str) else ""


class HttpMetrics:
    """Per-request tallies, fed one RequestFinished at a time."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, int, str, str], _Series] = {}
        self.app_exceptions = 0

    def observe(self, record: RequestFinished) -> None:
        if record.outcome == "rejected":
            return  # answered by the server itself: monoceros_requests_rejected_total has it
        scope = record.scope
        method = scope["method"]
        if method not in KNOWN_METHODS:
            method = "_OTHER"
        status = reported_status(record)
        if record.outcome == "error":
            self.app_exceptions += 1
        key = (method, status, route_of(scope), scope["scheme"])
        series = self.series.get(key)
        if series is None:
            if len(self.series) >= MAX_SERIES:
                key = (method, status, OVERFLOW_ROUTE, scope["scheme"])
                series = self.series.get(key)
            if series is None:
                series = self.series[key] = _Series()
        duration = record.duration
        series.duration[duration_bucket(duration)] += 1
        series.duration_sum += duration
        received = record.bytes_received
        series.request_size[size_bucket(received)] += 1
        series.request_sum += received
        sent = record.bytes_sent
        series.response_size[size_bucket(sent)] += 1
        series.response_sum += sent


@dataclass(slots=True)
class MetricsSnapshot:
    """Everything `/metrics` shows from one process's traffic, as plain picklable data: what a
    worker sends its supervisor, and what the supervisor sums over workers (`add`)."""

    series: dict[tuple[str, int, str, str], _Series] = field(default_factory=dict)
    app_exceptions: int = 0
    connections_accepted: int = 0
    keepalive_reuses: int = 0
    rejections: dict[int, int] = field(default_factory=dict)  # status -> count
    websocket_closes: dict[int, int] = field(default_factory=dict)  # close code -> sessions
    # Gauges: only live processes contribute (`add(..., gauges=False)` for exited ones).
    active_requests: int = 0
    connections_open: int = 0
    websocket_sessions: int = 0

    def add(self, other: MetricsSnapshot, *, gauges: bool = True) -> None:
        for key, theirs in other.series.items():
            ours = self.series.get(key)
            if ours is None:
                ours = self.series[key] = _Series()
            ours.add(theirs)
        self.app_exceptions += other.app_exceptions
        self.connections_accepted += other.connections_accepted
        self.keepalive_reuses += other.keepalive_reuses
        _add_counts(self.rejections, other.rejections)
        _add_counts(self.websocket_closes, other.websocket_closes)
        if gauges:
            self.active_requests += other.active_requests
            self.connections_open += other.connections_open
            self.websocket_sessions += other.websocket_sessions


def _add_counts(into: dict[int, int], other: dict[int, int]) -> None:
    for key, count in other.items():
        into[key] = into.get(key, 0) + count


def snapshot_of(http: HttpMetrics, state: ServerState) -> MetricsSnapshot:
    """A view of one process's tallies (shared, not copied: pickling copies)."""
    return MetricsSnapshot(
        series=http.series,
        app_exceptions=http.app_exceptions,
        connections_accepted=state.connections_accepted,
        keepalive_reuses=state.keepalive_reuses,
        rejections=state.rejections,
        active_requests=state.active_requests,
        connections_open=len(state.connections),
        websocket_closes=state.websocket_closes,
        websocket_sessions=state.websocket_sessions,
    )


class MetricsCollector(Collector):
    """Turns the tallies and the server's counters into metric families at scrape time."""

    def __init__(self, http: HttpMetrics, state: ServerState, lifespan_state: Any) -> None:
        self.http = http
        self.state = state
        self.lifespan_state = lifespan_state  # a callable returning the lifespan state name

    def collect(self) -> Iterator[Metric]:
        return render(snapshot_of(self.http, self.state), self.lifespan_state())


def render(snapshot: MetricsSnapshot, lifespan_phase: str) -> Iterator[Metric]:
    """The metric families for one snapshot (one process's, or a worker group's sum)."""
    yield from _http_families(snapshot.series)
    yield GaugeMetricFamily(
        "http_server_active_requests", "Requests being served.", value=snapshot.active_requests
    )
    yield GaugeMetricFamily(
        "monoceros_connections_open", "Open client connections.", value=snapshot.connections_open
    )
    yield CounterMetricFamily(
        "monoceros_connections_accepted",
        "Client connections accepted.",
        value=snapshot.connections_accepted,
    )
    yield CounterMetricFamily(
        "monoceros_keepalive_reused_requests",
        "Requests served on a connection that had served a request before.",
        value=snapshot.keepalive_reuses,
    )
    rejected = CounterMetricFamily(
        "monoceros_requests_rejected",
        "Requests answered by the server itself, by reason (parse error, limit, timeout, "
        "overload).",
        labels=["reason"],
    )
    for status, reason in REJECTION_REASONS.items():
        rejected.add_metric([reason], snapshot.rejections.get(status, 0))
    yield rejected
    yield CounterMetricFamily(
        "monoceros_app_exceptions",
        "Requests whose app raised or failed to respond.",
        value=snapshot.app_exceptions,
    )
    yield GaugeMetricFamily(
        "monoceros_websocket_sessions_active",
        "Open WebSocket sessions.",
        value=snapshot.websocket_sessions,
    )
    sessions = CounterMetricFamily(
        "monoceros_websocket_sessions",
        "Finished WebSocket sessions, by close code (0: answered with HTTP instead).",
        labels=["close_code"],
    )
    for code, count in sorted(snapshot.websocket_closes.items()):
        sessions.add_metric([str(code)], count)
    yield sessions
    lifespan = GaugeMetricFamily(
        "monoceros_lifespan_state", "1 for the current lifespan state.", labels=["state"]
    )
    for name in ("starting", "started", "unsupported", "failed", "stopping", "stopped"):
        lifespan.add_metric([name], 1.0 if name == lifespan_phase else 0.0)
    yield lifespan
    info = InfoMetricFamily("monoceros_build", "monoceros build information.")
    info.add_metric(
        [],
        {
            "version": __version__,
            "python": platform.python_version(),
            "implementation": sys.implementation.name,
        },
    )
    yield info


def _http_families(series_by_labels: dict[tuple[str, int, str, str], _Series]) -> Iterator[Metric]:
    duration = HistogramMetricFamily(
        "http_server_request_duration_seconds",
        "Duration of HTTP server requests.",
        labels=HTTP_LABELS,
        unit="seconds",
    )
    request_size = HistogramMetricFamily(
        "http_server_request_body_size_bytes",
        "Size of HTTP server request bodies.",
        labels=HTTP_LABELS,
        unit="bytes",
    )
    response_size = HistogramMetricFamily(
        "http_server_response_body_size_bytes",
        "Size of HTTP server response bodies.",
        labels=HTTP_LABELS,
        unit="bytes",
    )
    for (method, status, route, scheme), series in list(series_by_labels.items()):
        labels = [method, str(status), route, scheme]
        duration.add_metric(
            labels, _cumulative(DURATION_BUCKETS, series.duration), series.duration_sum
        )
        request_size.add_metric(
            labels, _cumulative(SIZE_BUCKETS, series.request_size), float(series.request_sum)
        )
        response_size.add_metric(
            labels, _cumulative(SIZE_BUCKETS, series.response_size), float(series.response_sum)
        )
    yield duration
    yield request_size
    yield response_size


def _cumulative(bounds: tuple[float, ...], counts: list[int]) -> list[tuple[str, float]]:
    total = 0
    buckets = []
    for bound, count in zip((*map(_format_bound, bounds), "+Inf"), counts, strict=True):
        total += count
        buckets.append((bound, float(total)))
    return buckets


def _format_bound(bound: float) -> str:
    return repr(float(bound))


def build_registry(collector: Collector) -> CollectorRegistry:
    """An explicit registry (never the global one): ours plus process and Python metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry
