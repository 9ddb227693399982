"""Observability for a group of worker processes (`--workers`), served by the supervisor.

`GroupCollector` renders the same metric families as one server (`metrics.render`) from the
group's summed snapshot, plus `monoceros_workers` and `monoceros_worker_restarts_total`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monoceros.observe.metrics import MetricsSnapshot
from monoceros.observe.scrape import render


@dataclass(frozen=True, slots=True)
class GroupStatus:
    # Counters: live workers' latest snapshots plus the final ones of exited workers.
    # Gauges: live workers only.
    snapshot: MetricsSnapshot
    lifespan_phase: str  # "started" while any worker serves
    workers: int  # running (starting or serving), not those being stopped
    restarts: dict[str, int]  # reason -> count


class GroupCollector(Collector):
    def __init__(self, status: Callable[[], GroupStatus]) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        status = self.status()
        yield from render(status.snapshot, status.lifespan_phase)
        yield GaugeMetricFamily(
            "monoceros_workers",
            "Worker processes running (starting or serving; not those being stopped).",
            value=status.workers,
        )
        restarts = CounterMetricFamily(
            "monoceros_worker_restarts",
            "Workers replaced, by reason: crashed, unresponsive, recycled, reload.",
            labels=["reason"],
        )
        for reason, count in status.restarts.items():
            restarts.add_metric([reason], count)
        yield restarts
