"""One logging configuration for everything the process writes.

structlog renders the server's own events and, through `ProcessorFormatter`, every stdlib
`logging` record (the app's included, with its `extra=` fields), as JSON lines or readable
console output. All lines go to one `LineBuffer` on stdout. The request id and trace context of
the request being served are added to every record emitted inside it, and its credentials
are kept out (see `protocols/events.current_exchange`). --log-schema renames the fields of
JSON lines (observe/log_schemas.py).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import sys
from typing import Any, Literal

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from monoceros.config import Config, LogSchema
from monoceros.errors import StartupError
from monoceros.observe.log_schemas import schema_processor
from monoceros.observe.output import LineBuffer
from monoceros.protocols.events import current_exchange

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


def add_request_context(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """The request id and trace context of the request being served, if any."""
    exchange = current_exchange.get()
    if exchange is None:
        return event
    if exchange.request_id is not None:
        event.setdefault("request_id", exchange.request_id)
    trace = exchange.trace
    if trace is not None:
        event.setdefault("trace_id", trace[0])
        event.setdefault("span_id", trace[1])
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


# Header fields whose values are credentials: never written to a log line, in whatever the
# line carries (a message, an exception an app raised with one in it, a traceback).
SECRET_FIELDS = frozenset((b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"))
REDACTED = "[redacted]"
# The parts of a secret value that are hidden too (a token without its scheme, one cookie's
# value), when at least this long: shorter ones are words a line may hold for other reasons.
MIN_SECRET_PART = 6
_SEPARATORS = re.compile(r"[\s;,=]+")


def secrets_in(fields: Any) -> list[str]:
    """The secret values among header `fields` (name, value) and their parts, as text, the
    longest first (so no part of a longer one is left behind)."""
    found: set[str] = set()
    for field in fields:
        if not isinstance(field, tuple | list) or len(field) != 2:
            continue
        name, value = field
        if not isinstance(name, bytes) or name.lower() not in SECRET_FIELDS:
            continue
        if not isinstance(value, bytes) or not value:
            continue
        text = value.decode("latin-1")
        found.add(text)
        parts = _SEPARATORS.split(text)
        if name.lower() != b"set-cookie" or len(parts) < 2:
            found.update(part for part in parts if len(part) >= MIN_SECRET_PART)
        else:  # name=value; attributes: only the value is secret
            found.update(part for part in parts[1:2] if len(part) >= MIN_SECRET_PART)
        if len(parts) > 1 and parts[0].lower() == "basic":
            try:
                credentials = base64.b64decode(parts[1], validate=True).decode("latin-1")
            except ValueError:
                continue
            found.add(credentials)
            found.update(p for p in credentials.split(":") if len(p) >= MIN_SECRET_PART)
    return sorted(found, key=len, reverse=True)


def redact_secrets(logger: WrappedLogger, method: str, event: EventDict) -> EventDict:
    """Replace the current exchange's credentials (Authorization, Proxy-Authorization,
    Cookie, Set-Cookie values and their parts) in every text of the line: the message, the
    rendered exception, any field."""
    exchange = current_exchange.get()
    if exchange is None:
        return event
    secrets = secrets_in(exchange.secret_fields())
    if not secrets:
        return event
    for key, value in event.items():
        if isinstance(value, str):
            for secret in secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
            event[key] = value
    return event


def shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_request_context,
        add_pid,
    ]


class _LineHandler(logging.Handler):
    """A stdlib handler writing formatted records into the shared LineBuffer."""

    def __init__(self, output: LineBuffer) -> None:
        super().__init__()
        self.output = output

    def emit(self, record: logging.LogRecord) -> None:
        try:
            # An access line that went through the access logger's filters is written as
            # rendered (observe/access_logger.py).
            line = getattr(record, "monoceros_line", None)
            if line is None:
                line = self.format(record).encode("utf-8", "backslashreplace") + b"\n"
            self.output.write_from_any_thread(line)
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


def resolve_colors(config: Config) -> bool:
    """--use-colors, or colours when stdout is a terminal."""
    colors = config.observe.use_colors
    return sys.stdout.isatty() if colors is None else colors


def configure_logging_for(config: Config) -> LineBuffer:
    """`configure_logging` with the config's --log-level, --log-format, --log-schema,
    --use-colors and --log-config (whose classes must be importable by now: --app-dir is on
    sys.path)."""
    return configure_logging(
        config.log_level,
        resolve_log_format(config),
        config.observe.log_config,
        colors=resolve_colors(config),
        schema=config.observe.log_schema,
    )


def configure_logging(
    level: str = "info",
    log_format: LogFormat = "json",
    log_config: str | None = None,
    output: LineBuffer | None = None,
    *,
    colors: bool = False,
    schema: LogSchema = "default",
) -> LineBuffer:
    """Configure structlog and stdlib logging once for the process; return the output.
    `colors`: ANSI colours in the console format (JSON lines have none); `schema`: the field
    names of JSON lines."""
    global _output
    output = _output = output if output is not None else current_output()
    # People read the console format as it is written: each line goes out at once, after
    # anything print() wrote before it, so the two come out in the order they were written.
    output.immediate = log_format == "console"
    shared = shared_processors()
    last: list[Processor] = [structlog.processors.format_exc_info, redact_secrets]
    if log_format == "json":
        renamed = schema_processor(schema)
        if renamed is not None:
            last.append(renamed)
        last.append(structlog.processors.JSONRenderer(serializer=_json_dumps_str))
    else:
        last.append(structlog.dev.ConsoleRenderer(colors=colors))
    stdlib_level = LEVELS[level]

    structlog.configure(
        processors=[*shared, *last],
        # structlog's own loggers know the standard levels only; TRACE is for stdlib records.
        wrapper_class=structlog.make_filtering_bound_logger(max(stdlib_level, logging.DEBUG)),
        logger_factory=_NamedLoggerFactory(_TextOutput(output)),
        cache_logger_on_first_use=True,
    )
    handler = _LineHandler(output)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            # ExtraAdder: the fields a record was given with `extra=`.
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *last],
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


class _NamedLoggerFactory:
    """structlog's WriteLoggerFactory, keeping the name a logger is asked for
    (`structlog.get_logger("app.jobs")`) for the `logger` field."""

    def __init__(self, output: _TextOutput) -> None:
        self._output = output

    def __call__(self, *args: Any) -> structlog.WriteLogger:
        logger = structlog.WriteLogger(self._output)  # type: ignore[arg-type]
        if args and isinstance(args[0], str):
            logger.name = args[0]  # type: ignore[attr-defined]
        return logger


class _TextOutput:
    """structlog's WriteLogger writes str; hand it to the byte buffer as UTF-8."""

    def __init__(self, output: LineBuffer) -> None:
        self.output = output

    def write(self, text: str) -> None:
        self.output.write_from_any_thread(text.encode("utf-8", "backslashreplace"))

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
    import configparser  # here: only --log-config needs them (start-up time)
    import logging.config

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
    import logging.config

    logging.config.dictConfig(config)
