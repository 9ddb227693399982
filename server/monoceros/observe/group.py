"""Observability for a group of worker processes (`--workers`), served by the supervisor.

`GroupCollector` renders the same metric families as one server (`metrics.render`) from the
group's summed snapshot, plus `monoceros_workers` and `monoceros_worker_restarts_total`, and
each process's own `process_*` and `python_gc_*` families, labelled `worker`: `supervisor`,
or the worker's number, the lowest no running worker has: 1 to N, up to 2N while replaced
workers drain beside their successors, however many workers came and went.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import GCCollector, ProcessCollector
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monoceros.config import DURATION_BUCKETS
from monoceros.observe.metrics import MetricsSnapshot
from monoceros.observe.scrape import render

SUPERVISOR = "supervisor"  # the supervisor's own `worker` label


@dataclass(frozen=True, slots=True)
class GroupStatus:
    # Counters: live workers' latest snapshots plus the final ones of exited workers.
    # Gauges: live workers only.
    snapshot: MetricsSnapshot
    lifespan_phase: str  # "started" while any worker serves
    workers: int  # running (starting or serving), not those being stopped
    restarts: dict[str, int]  # reason -> count
    # `worker` label -> that process's process_* and python_gc_* families (live ones only).
    processes: dict[str, list[Metric]]


class GroupCollector(Collector):
    def __init__(
        self,
        status: Callable[[], GroupStatus],
        duration_buckets: tuple[float, ...] = DURATION_BUCKETS,
    ) -> None:
        self.status = status
        self.duration_buckets = duration_buckets

    def collect(self) -> Iterator[Metric]:
        status = self.status()
        yield from render(status.snapshot, status.lifespan_phase, self.duration_buckets)
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
        yield from by_worker(status.processes)


class _OwnGC(GCCollector):
    """prometheus-client's GC collector, registered nowhere."""

    def __init__(self) -> None:
        pass


_PROCESS = ProcessCollector(registry=None)
_GC = _OwnGC()


def process_families() -> list[Metric]:
    """This process's process_* (CPU, memory, file descriptors, start time) and python_gc_*
    families: what a worker reports of itself with each snapshot (picklable)."""
    return [*_PROCESS.collect(), *_GC.collect()]


def by_worker(processes: dict[str, list[Metric]]) -> Iterable[Metric]:
    """One family per name, with each process's samples labelled with its `worker`."""
    merged: dict[str, Metric] = {}
    for worker, families in processes.items():
        for family in families:
            into = merged.get(family.name)
            if into is None:
                into = Metric(family.name, family.documentation, family.type, family.unit)
                merged[family.name] = into
            for sample in family.samples:
                into.samples.append(sample._replace(labels={**sample.labels, "worker": worker}))
    return merged.values()
