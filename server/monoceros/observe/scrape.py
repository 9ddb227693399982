"""What `/metrics` shows, built when it is scraped: metric families from tallies.

Every metric is defined once, in `render()`, from a `MetricsSnapshot` (`metrics.py`): one
process's own tallies (`MetricsCollector`), or with --workers the supervisor's sum of its
workers' snapshots (`group.GroupCollector`). After ours, the app's own metrics
(observe/app_metrics.py), each family name once. Plain Python, not compiled: it runs once per
scrape, and its collector derives from prometheus-client's.
"""

from __future__ import annotations

import logging
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
from prometheus_client.samples import Exemplar

from monoceros._version import __version__
from monoceros.config import DURATION_BUCKETS
from monoceros.observe.metrics import (
    METHOD_LABELS,
    SCHEMES,
    SIZE_BUCKETS,
    HttpMetrics,
    MetricsSnapshot,
    Series,
    SeriesKey,
    snapshot_of,
)
from monoceros.observe.metrics import (
    Exemplar as Traced,
)
from monoceros.protocols.observer import CONNECTION_REJECTION_REASONS, REASONS

logger = logging.getLogger("monoceros.error")

HTTP_LABELS = (
    "http_request_method",
    "http_response_status_code",
    "http_route",
    "url_scheme",
    "network_protocol_version",
    "error_type",
)


class MetricsCollector(Collector):
    """Turns one process's tallies into metric families at scrape time."""

    def __init__(self, http: HttpMetrics, lifespan_state: Any) -> None:
        self.http = http
        self.lifespan_state = lifespan_state  # a callable returning the lifespan state name

    def collect(self) -> Iterator[Metric]:
        http = self.http
        return render(snapshot_of(http), self.lifespan_state(), http.duration_buckets)


def render(
    snapshot: MetricsSnapshot,
    lifespan_phase: str,
    duration_buckets: tuple[float, ...] = DURATION_BUCKETS,
) -> Iterator[Metric]:
    """The metric families for one snapshot (one process's, or a worker group's sum)."""
    yield from _http_families(snapshot.series, duration_buckets)
    active = GaugeMetricFamily(
        "http_server_active_requests",
        "Requests being served.",
        labels=["http_request_method", "url_scheme"],
    )
    for slot, count in enumerate(snapshot.active_requests):
        active.add_metric([METHOD_LABELS[slot >> 1], SCHEMES[slot & 1]], count)
    yield active
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


def _http_families(
    series_by_labels: dict[SeriesKey, Series], duration_buckets: tuple[float, ...]
) -> Iterator[Metric]:
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
    for (method, status, route, scheme, version, error), series in list(series_by_labels.items()):
        labels = [method, str(status), route, scheme, version, error]
        buckets = _cumulative(duration_buckets, series.duration, series.exemplars)
        duration.add_metric(labels, buckets, series.duration_sum)
        request_size.add_metric(
            labels, _cumulative(SIZE_BUCKETS, series.request_size), float(series.request_sum)
        )
        response_size.add_metric(
            labels, _cumulative(SIZE_BUCKETS, series.response_size), float(series.response_sum)
        )
    yield duration
    yield request_size
    yield response_size


def _cumulative(
    bounds: tuple[float, ...], counts: list[int], exemplars: dict[int, Traced] | None = None
) -> list[Any]:
    """(bound, cumulative count) per bucket, and the bucket's exemplar when it has one (only
    the OpenMetrics format shows them)."""
    total = 0
    buckets: list[Any] = []
    bounds_text = (*map(_format_bound, bounds), "+Inf")
    for index, (bound, count) in enumerate(zip(bounds_text, counts, strict=True)):
        total += count
        traced = exemplars.get(index) if exemplars else None
        if traced is None:
            buckets.append((bound, float(total)))
        else:
            trace_id, span_id, seconds = traced
            exemplar = Exemplar({"trace_id": trace_id, "span_id": span_id}, seconds)
            buckets.append((bound, float(total), exemplar))
    return buckets


def _format_bound(bound: float) -> str:
    return repr(float(bound))


class ServedRegistry(CollectorRegistry):
    """What /metrics serves: the collectors registered here (ours), then `app`'s families (the
    app's own metrics), leaving out any whose name one of ours has: the text format allows a
    family once, and a scrape with two would be refused whole."""

    def __init__(self, app: Collector | None = None) -> None:
        super().__init__(auto_describe=False)
        self.app = app
        self._clashes_logged: set[str] = set()

    def collect(self) -> Iterator[Metric]:
        names = set()
        for family in super().collect():
            names.add(family.name)
            yield family
        if self.app is None:
            return
        for family in self.app.collect():
            if family.name not in names:
                yield family
            elif family.name not in self._clashes_logged and not family.name.startswith(
                _STANDARD_PREFIXES
            ):
                # The standard process_* and python_* families are in the default registry
                # too: ours are the same, left out quietly.
                self._clashes_logged.add(family.name)
                logger.warning(
                    "The app's metric %s has the name of one of monoceros's: it is not served",
                    family.name,
                )


_STANDARD_PREFIXES = ("process_", "python_")


def build_registry(
    collector: Collector, app: Collector | None = None, *, process: bool = True
) -> ServedRegistry:
    """An explicit registry (never the global one): ours plus Python's build, and this
    process's own metrics (`process`: a worker group's collector brings each process's
    instead), then `app`'s (the app's own metrics)."""
    registry = ServedRegistry(app)
    registry.register(collector)
    PlatformCollector(registry=registry)
    if process:
        ProcessCollector(registry=registry)
        GCCollector(registry=registry)
    return registry
