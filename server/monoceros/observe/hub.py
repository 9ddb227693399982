"""Everything `observe/` contributes to one server process, built from the config once:
the observer its connections report to (metrics + access log), the metrics registry and the
admin app."""

from __future__ import annotations

import logging
from collections.abc import Callable

from monoceros.config import Config
from monoceros.observe import Observers
from monoceros.observe.access import AccessLog
from monoceros.observe.admin import AdminApp, Readiness
from monoceros.observe.logging import current_output, resolve_log_format
from monoceros.observe.metrics import HttpMetrics
from monoceros.observe.scrape import MetricsCollector, build_registry
from monoceros.protocols.observer import Observer


class Observability:
    def __init__(
        self, config: Config, lifespan_phase: Callable[[], str], also: Observer | None = None
    ) -> None:
        settings = config.observe
        self.output = current_output()
        self.metrics = HttpMetrics() if settings.metrics else None
        access_enabled = config.access_log and logging.getLogger("monoceros.access").isEnabledFor(
            logging.INFO
        )
        log_format = resolve_log_format(config)  # the console format on a terminal, as the rest
        self.access_log = AccessLog(self.output, log_format) if access_enabled else None
        # None when nobody would be told anything: connections then build no records.
        self.observer = (
            Observers(self.metrics, self.access_log, also)
            if self.metrics is not None or self.access_log is not None or also is not None
            else None
        )
        self.admin: AdminApp | None = None
        if self.metrics is not None:
            collector = MetricsCollector(self.metrics, lifespan_phase)
            self.admin = AdminApp(build_registry(collector))

    def set_readiness(self, readiness: Readiness) -> None:
        if self.admin is not None:
            self.admin.readiness = readiness
