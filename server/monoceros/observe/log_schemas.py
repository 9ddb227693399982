"""--log-schema for the lines structlog renders (the server's events and the app's records): the
field names of the `ecs` and `otel` schemas, given to each line by one processor just before
the JSON renderer. The default schema has none: it costs nothing. (The access line has a
template per schema instead: observe/access.py.)

Fields of the app's own (`extra=`, structlog key-values) keep their names in every schema.
The reference, and the JSON schemas the tests hold lines to: docs/reference/log-fields.md.
"""

from __future__ import annotations

from structlog.typing import EventDict, Processor, WrappedLogger

from monoceros.config import LogSchema

# Elastic Common Schema 8.x: the names ecs-logging libraries write.
ECS_VERSION = "8.11.0"
ECS_NAMES = {
    "timestamp": "@timestamp",
    "level": "log.level",
    "logger": "log.logger",
    "event": "message",
    "pid": "process.pid",
    "request_id": "http.request.id",
    "trace_id": "trace.id",
    "span_id": "span.id",
    "exception": "error.stack_trace",
}
# OpenTelemetry's log data model, flattened: its record fields (timestamp, severity_text and
# severity_number, body, trace_id, span_id), the logger as the instrumentation scope, and
# semantic-convention attribute names for the rest.
OTEL_NAMES = {
    "level": "severity_text",
    "logger": "scope.name",
    "event": "body",
    "pid": "process.pid",
    "request_id": "monoceros.request_id",
    "exception": "exception.stacktrace",
}
# OpenTelemetry's SeverityNumber of each level (TRACE, DEBUG, INFO, WARN, ERROR, FATAL).
SEVERITY_NUMBERS = {
    "trace": 1,
    "debug": 5,
    "info": 9,
    "warning": 13,
    "error": 17,
    "critical": 21,
}


def schema_processor(schema: LogSchema) -> Processor | None:
    """The processor renaming a line's fields for `schema`; None for the default."""
    if schema == "ecs":
        return _rename_ecs
    if schema == "otel":
        return _rename_otel
    return None


def _rename_ecs(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    renamed = {ECS_NAMES.get(key, key): value for key, value in event.items()}
    renamed["ecs.version"] = ECS_VERSION
    return renamed


def _rename_otel(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    renamed = {OTEL_NAMES.get(key, key): value for key, value in event.items()}
    level = renamed.get("severity_text")
    if isinstance(level, str):
        renamed["severity_number"] = SEVERITY_NUMBERS.get(level, 9)
    return renamed
