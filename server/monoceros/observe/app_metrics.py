"""The app's own Prometheus metrics, served on /metrics beside ours.

Apps register their metrics in prometheus-client's default registry (`Counter(...)` with no
`registry=`, prometheus-fastapi-instrumentator, starlette-exporter). One server process serves
that registry as it is (`default_registry`). With --workers, each worker has its own, so the
supervisor aggregates them the way prometheus-client's multiprocess mode does
(`WorkerMetricsDirectory`): it points PROMETHEUS_MULTIPROC_DIR at a directory it owns before
it starts a worker, so every worker's values live in memory-mapped files there, and it sums
the files when scraped. The app changes nothing.

When a worker exits, the supervisor folds its counters, histograms and summaries (and gauges
that keep the values of exited processes: sum, min, max, mostrecent) into one file per kind,
`*_retired.db`, and deletes its files: a counter never goes backwards when a worker is
recycled, and the directory holds a bounded number of files however many workers came and
went. Its gauges of the live* modes go, as `mark_process_dead` does; so do its gauges of the
default `all` mode, whose series carry a pid label (prometheus-client keeps them for exited
processes, a series per worker ever started).
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from typing import Any

from prometheus_client import REGISTRY, mmap_dict, multiprocess
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

logger = logging.getLogger("monoceros.error")
# prometheus-client's multiprocess helpers carry no type annotations.
_multiprocess: Any = multiprocess
_mmap: Any = mmap_dict

ENVIRONMENT_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
RETIRED = "retired"  # in place of the pid in the name of a file of folded values
# Gauge modes whose values outlive their process in prometheus-client, and how they combine.
KEPT_GAUGE_MODES = ("sum", "min", "max", "mostrecent")


def default_registry() -> Collector:
    """prometheus-client's default registry, where apps register their metrics."""
    return REGISTRY


class WorkerMetricsDirectory(Collector):
    """The PROMETHEUS_MULTIPROC_DIR of a worker group, owned by its supervisor from `open()` to
    `close()`: the one the environment names (emptied of metric files first), or a temporary
    one (removed at exit). As a collector: the sum of every worker's files."""

    def __init__(self) -> None:
        self.path: str | None = None
        self.created = False

    def open(self) -> None:
        """Before the first worker starts; raises OSError when there is nowhere to write."""
        given = os.environ.get(ENVIRONMENT_VARIABLE)
        path = given or tempfile.mkdtemp(prefix="monoceros-metrics-")
        self.created = not given
        os.makedirs(path, exist_ok=True)
        self.path = path
        for stale in self._files("*"):  # a previous run's: its counts are not this run's
            os.remove(stale)
        # Workers are spawned: they read it from the environment they inherit, before their
        # first import of prometheus_client.
        os.environ[ENVIRONMENT_VARIABLE] = path

    def collect(self) -> Iterable[Metric]:
        if self.path is None:
            return ()
        collected: Iterable[Metric] = _multiprocess.MultiProcessCollector(
            None, path=self.path
        ).collect()
        return collected

    def worker_exited(self, pid: int) -> None:
        """Fold what worker `pid` counted into the retired files, then remove its files."""
        if self.path is None:
            return
        for path in self._files(str(pid)):
            kind = os.path.basename(path).rsplit("_", 1)[0]  # counter, gauge_livesum, ...
            if kind.startswith("gauge_") and kind.removeprefix("gauge_") not in KEPT_GAUGE_MODES:
                os.remove(path)
                continue
            try:
                self._fold(path, os.path.join(self.path, f"{kind}_{RETIRED}.db"))
            except (OSError, ValueError) as exc:  # a file a killed worker left half-written
                logger.warning("Could not keep the app metrics of worker [%d]: %s", pid, exc)
            os.remove(path)

    def close(self) -> None:
        if self.created and self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)

    def _files(self, pid: str) -> list[str]:
        assert self.path is not None
        return glob.glob(os.path.join(self.path, f"*_{pid}.db"))

    def _fold(self, path: str, retired: str) -> None:
        sources = [retired, path] if os.path.exists(retired) else [path]
        # accumulate=False: buckets stay per bucket, as the files keep them.
        merged = _multiprocess.MultiProcessCollector.merge(sources, accumulate=False)
        folded = retired + ".new"
        with contextlib.suppress(FileNotFoundError):
            os.remove(folded)
        _write(folded, merged)
        os.replace(folded, retired)  # a scrape reads the old file or the new one, whole


def _write(path: str, families: Iterable[Metric]) -> None:
    values = _mmap.MmapedDict(path)
    try:
        for family in families:
            for sample in family.samples:
                labels = {k: v for k, v in sample.labels.items() if k != "pid"}
                key = _mmap.mmap_key(
                    family.name,
                    sample.name,
                    list(labels),
                    list(labels.values()),
                    family.documentation,
                )
                values.write_value(key, sample.value, sample.timestamp or 0.0)
    finally:
        values.close()
