"""Everything `observe/` contributes to one server process, built from the config once:
the observer its connections report to (metrics + access log), the metrics registry and the
admin app."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from monoceros.config import Config
from monoceros.observe import Observers
from monoceros.observe.access import AccessLog
from monoceros.observe.access_logger import LoggedAccess, configured
from monoceros.observe.admin import AdminApp, Readiness
from monoceros.observe.console import ConsoleAccessLine
from monoceros.observe.logging import current_output, resolve_colors, resolve_log_format
from monoceros.observe.metrics import HttpMetrics
from monoceros.observe.route_hooks import route_finder
from monoceros.protocols.observer import Observer

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry


class Observability:
    def __init__(
        self, config: Config, lifespan_phase: Callable[[], str], also: Observer | None = None
    ) -> None:
        settings = config.observe
        self.output = current_output()
        self.metrics = HttpMetrics(settings.metrics_duration_buckets) if settings.metrics else None
        self.access_log = access_log(config, self.output)
        # None when nobody would be told anything: connections then build no records.
        self.observer = (
            Observers(self.metrics, self.access_log, also)
            if self.metrics is not None or self.access_log is not None or also is not None
            else None
        )
        self.admin: AdminApp | None = None
        if self.metrics is not None:
            self.admin = AdminApp(partial(served_registry, self.metrics, lifespan_phase))

    def app_loaded(self, app: Any) -> None:
        """The object the import string named: where route templates come from when the
        scope does not carry one (observe/route_hooks.py)."""
        if self.metrics is not None:
            self.metrics.find_route = route_finder(app)

    def set_readiness(self, readiness: Readiness) -> None:
        if self.admin is not None:
            self.admin.readiness = readiness

    def close(self) -> None:
        """Before the process exits: the last turn's finished requests tallied and logged,
        every line written out."""
        try:
            if self.observer is not None:
                self.observer.observe_finished()
        finally:
            self.output.close()


def served_registry(metrics: HttpMetrics, lifespan_phase: Callable[[], str]) -> CollectorRegistry:
    """What /metrics serves: ours, the process's, the app's own (prometheus-client's default
    registry). Made at the first scrape, when prometheus-client is first imported."""
    from monoceros.observe.app_metrics import default_registry
    from monoceros.observe.scrape import MetricsCollector, build_registry

    return build_registry(MetricsCollector(metrics, lifespan_phase), default_registry())


def access_log(config: Config, output: Any) -> AccessLog | None:
    """The access log the config asks for, or None (--no-access-log, or a level above info)."""
    logger = logging.getLogger("monoceros.access")
    if not config.access_log or not logger.isEnabledFor(logging.INFO):
        return None
    settings = config.observe
    # The console format, as the rest of the lines: on a terminal, unless --log-format says.
    console = resolve_log_format(config) == "console"
    return AccessLog(
        output,
        settings.log_schema,
        settings.access_log_exclude,
        console=ConsoleAccessLine(resolve_colors(config)) if console else None,
        through=LoggedAccess(logger) if configured(logger) else None,
    )
