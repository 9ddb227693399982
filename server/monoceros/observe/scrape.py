"""What `/metrics` shows, built when it is scraped: metric families from tallies.

Every metric is defined once, in `render()`, from a `MetricsSnapshot` (`metrics.py`): one
process's own tallies (`MetricsCollector`), or with --workers the supervisor's sum of its
workers' snapshots (`group.GroupCollector`). Plain Python, not compiled: it runs once per
scrape, and its collector derives from prometheus-client's.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from monoceros._version import __version__
from monoceros.observe.metrics import (
    DURATION_BUCKETS,
    SIZE_BUCKETS,
    HttpMetrics,
    MetricsSnapshot,
    Series,
    SeriesKey,
    snapshot_of,
)
from monoceros.protocols.observer import CONNECTION_REJECTION_REASONS, REASONS

HTTP_LABELS = (
    "http_request_method",
    "http_response_status_code",
    "http_route",
    "url_scheme",
    "network_protocol_version",
)


class MetricsCollector(Collector):
    """Turns one process's tallies into metric families at scrape time."""

    def __init__(self, http: HttpMetrics, lifespan_state: Any) -> None:
        self.http = http
        self.lifespan_state = lifespan_state  # a callable returning the lifespan state name

    def collect(self) -> Iterator[Metric]:
        return render(snapshot_of(self.http), self.lifespan_state())


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
    refused = CounterMetricFamily(
        "monoceros_connections_rejected",
        "Connections closed before any request, by reason (PROXY protocol header missing, "
        "invalid, late, or from a peer not trusted to send one).",
        labels=["reason"],
    )
    for reason in CONNECTION_REJECTION_REASONS:
        refused.add_metric([reason], snapshot.connection_rejections.get(reason, 0))
    yield refused
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
    for reason in REASONS:
        rejected.add_metric([reason], snapshot.rejections.get(reason, 0))
    yield rejected
    yield CounterMetricFamily(
        "monoceros_app_exceptions",
        "Requests whose app raised or failed to respond.",
        value=snapshot.app_exceptions,
    )
    yield CounterMetricFamily(
        "monoceros_event_loop_blocked",
        "Times the event loop did not run for longer than --loop-block-threshold.",
        value=snapshot.loop_blocks,
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


def _http_families(series_by_labels: dict[SeriesKey, Series]) -> Iterator[Metric]:
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
    for (method, status, route, scheme, version), series in list(series_by_labels.items()):
        labels = [method, str(status), route, scheme, version]
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
