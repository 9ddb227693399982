"""One logging configuration for everything the process writes.

structlog renders the server's own events and, through `ProcessorFormatter`, every stdlib
`logging` record (the app's included), as JSON lines or readable console output. All lines
go to one `LineBuffer` on stdout. The request id of the request being served is added to
every record emitted inside it (see `protocols/events.request_id`).
"""

from __future__ import annotations

import configparser
import json
import logging
import logging.config
import os
import sys
from typing import Any, Literal

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from monoceros.config import Config
from monoceros.errors import StartupError
from monoceros.observe.output import LineBuffer
from monoceros.protocols.events import request_id

LogFormat = Literal["json", "console"]
TRACE = 5
logging.addLevelName(TRACE, "TRACE")

LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE,
}


def add_request_id(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    rid = request_id.get()
    if rid is not None:
        event.setdefault("request_id", rid)
    return event


def add_logger_name(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    record = event.get("_record")
    name = record.name if record is not None else getattr(logger, "name", None)
    if name:
        event.setdefault("logger", name)
    return event


def add_pid(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    event["pid"] = os.getpid()
    return event


def shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_request_id,
        add_pid,
    ]


class _LineHandler(logging.Handler):
    """A stdlib handler writing formatted records into the shared LineBuffer."""

    def __init__(self, output: LineBuffer) -> None:
        super().__init__()
        self.output = output

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.output.write(self.format(record).encode("utf-8", "backslashreplace") + b"\n")
        except Exception:
            self.handleError(record)


def _json_dumps_str(value: Any, **kwargs: Any) -> str:
    try:
        return orjson.dumps(value, default=str).decode()
    except orjson.JSONEncodeError:
        # A lone surrogate: bytes someone decoded with surrogateescape (a library reading a
        # hostile header). Escaped as text, the line stays one valid JSON object.
        return orjson.dumps(_without_surrogates(value), default=str).decode()


def _without_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_without_surrogates(key): _without_surrogates(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_surrogates(item) for item in value]
    return value


_output: LineBuffer | None = None


def resolve_log_format(config: Config) -> LogFormat:
    """--log-format, or json unless stdout is a terminal (people read, machines parse)."""
    if config.observe.log_format is not None:
        return config.observe.log_format
    return "console" if sys.stdout.isatty() else "json"


def current_output() -> LineBuffer:
    """The process's log output (stdout), as configured by `configure_logging`."""
    global _output
    if _output is None:
        _output = LineBuffer()
    return _output


def configure_logging_for(config: Config) -> LineBuffer:
    """`configure_logging` with the config's --log-level, --log-format, --use-colors and
    --log-config (whose classes must be importable by now: --app-dir is on sys.path)."""
    colors = config.observe.use_colors
    return configure_logging(
        config.log_level,
        resolve_log_format(config),
        config.observe.log_config,
        colors=sys.stdout.isatty() if colors is None else colors,
    )


def configure_logging(
    level: str = "info",
    log_format: LogFormat = "json",
    log_config: str | None = None,
    output: LineBuffer | None = None,
    *,
    colors: bool = False,
) -> LineBuffer:
    """Configure structlog and stdlib logging once for the process; return the output.
    `colors`: ANSI colours in the console format (JSON lines have none)."""
    global _output
    output = _output = output if output is not None else current_output()
    shared = shared_processors()
    renderer: Processor
    if log_format == "json":
        renderer = structlog.processors.JSONRenderer(serializer=_json_dumps_str)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=colors)
    stdlib_level = LEVELS[level]

    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        # structlog's own loggers know the standard levels only; TRACE is for stdlib records.
        wrapper_class=structlog.make_filtering_bound_logger(max(stdlib_level, logging.DEBUG)),
        logger_factory=structlog.WriteLoggerFactory(file=_TextOutput(output)),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    handler = _LineHandler(output)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(stdlib_level)
    for name in ("monoceros", "monoceros.error", "monoceros.access"):
        named = logging.getLogger(name)
        named.handlers[:] = []
        named.propagate = True
        named.setLevel(logging.NOTSET)
    if log_config:
        _apply_log_config(log_config)
    return output


class _TextOutput:
    """structlog's WriteLogger writes str; hand it to the byte buffer as UTF-8."""

    def __init__(self, output: LineBuffer) -> None:
        self.output = output

    def write(self, text: str) -> None:
        self.output.write(text.encode("utf-8", "backslashreplace"))

    def flush(self) -> None:
        self.output.flush()


# --log-config files written for uvicorn name its loggers: what they set there (level,
# handlers, filters, propagate) is set on ours (docs/migrating.md).
UVICORN_LOGGERS = {
    "uvicorn": "monoceros",
    "uvicorn.error": "monoceros.error",
    "uvicorn.access": "monoceros.access",
}


def _apply_log_config(path: str) -> None:
    """`--log-config`, then what it set on uvicorn's loggers, on ours."""
    _read_log_config(path)
    for theirs, ours in UVICORN_LOGGERS.items():
        if theirs not in logging.Logger.manager.loggerDict:
            continue
        source, target = logging.getLogger(theirs), logging.getLogger(ours)
        if source.level != logging.NOTSET:
            target.setLevel(source.level)
        if source.handlers:
            target.handlers[:] = source.handlers
        if source.filters:
            target.filters[:] = source.filters
        if not source.propagate:
            target.propagate = False


def _read_log_config(path: str) -> None:
    """A dictConfig as JSON (or YAML if PyYAML is installed), or an INI file."""
    try:
        if path.endswith(".json"):
            with open(path, encoding="utf-8") as file:
                _dict_config(json.load(file))
        elif path.endswith((".yaml", ".yml")):
            import yaml  # type: ignore[import-untyped]

            with open(path, encoding="utf-8") as file:
                _dict_config(yaml.safe_load(file))
        else:
            logging.config.fileConfig(path, disable_existing_loggers=False)
    except ImportError as exc:
        if exc.name == "yaml":
            raise StartupError(
                f"--log-config {path}: YAML needs PyYAML: pip install 'monoceros[yaml]'"
            ) from exc
        raise StartupError(f"--log-config {path}: {exc}") from exc
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, configparser.Error) as exc:
        raise StartupError(f"--log-config {path}: {exc}") from exc


def _dict_config(config: Any) -> None:
    """Add to our setup, as the INI branch does: a config that does not say otherwise leaves
    existing loggers on (dictConfig's default would silence the server and access logs)."""
    if not isinstance(config, dict):
        raise ValueError("a dictConfig must be a mapping")
    config.setdefault("disable_existing_loggers", False)
    logging.config.dictConfig(config)
