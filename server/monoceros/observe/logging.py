"""One logging configuration for everything the process writes.

structlog renders the server's own events and, through `ProcessorFormatter`, every stdlib
`logging` record (the app's included), as JSON lines or readable console output. All lines
go to one `LineBuffer` on stdout. The request id of the request being served is added to
every record emitted inside it (see `protocols/events.current_exchange`).
"""

from __future__ import annotations

import base64
import configparser
import json
import logging
import logging.config
import os
import re
import sys
from typing import Any, Literal

import orjson
import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from monoceros.config import Config
from monoceros.errors import StartupError
from monoceros.observe.output import LineBuffer
from monoceros.protocols.events import current_exchange, current_request_id

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
    rid = current_request_id()
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
            line = self.format(record).encode("utf-8", "backslashreplace") + b"\n"
            if self.output.on_loop_thread():
                self.output.write(line)
            else:  # a thread pool's, or the loop watchdog's: the loop may not flush for a while
                self.output.write_now(line)
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
        processors=[*shared, structlog.processors.format_exc_info, redact_secrets, renderer],
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
                redact_secrets,
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
