"""Every field of the JSON log lines, in each --log-schema: the one table the log reference
(docs/reference/log-fields.md, `<!-- generated: log-fields -->`) and the JSON schemas
(docs/reference/log-schemas/*.json, written by `make log-schemas`) are made from.
tests/unit/test_docs.py holds the renderers to its field order and the committed schemas to
what it generates; tests/integration/test_log_schemas.py validates real lines against them.

Run as a script, it writes the JSON schemas.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
SCHEMA_DIR = REPO / "docs" / "reference" / "log-schemas"
SITE = "https://monoceros-server.github.io/monoceros/"
SCHEMAS = ("default", "ecs", "otel")
KINDS = ("line", "request", "websocket")
TITLES = {
    "line": "Every line",
    "request": "Request lines",
    "websocket": "WebSocket session lines",
}
NULLABLE_STRING = ["string", "null"]
NULLABLE_INTEGER = ["integer", "null"]


@dataclass(frozen=True)
class Field:
    names: tuple[str | None, str | None, str | None]  # in default, ecs, otel (None: absent)
    type: Any  # a JSON schema type
    meaning: str
    kinds: tuple[str, ...]  # the line kinds that have it (in "line": required unless optional)
    unit: str = ""
    optional: bool = False  # on every line: only when it applies
    # What differs in a schema: {schema: (type, unit, meaning)}.
    differs: tuple[tuple[str, Any, str, str], ...] = ()

    def name(self, schema: str) -> str | None:
        return self.names[SCHEMAS.index(schema)]

    def shape(self, schema: str) -> tuple[Any, str, str]:
        for which, kind, unit, meaning in self.differs:
            if which == schema:
                return kind, unit, meaning
        return self.type, self.unit, self.meaning


ALL = KINDS
ACCESS = ("request", "websocket")


REQUEST_DURATION = "from the complete request head to the last byte handed to the socket"
SESSION_DURATION = "from the upgrade request to the connection's end"
ADDRESS = "after proxy resolution ([Behind a proxy](../proxy.md)); null when unknown"

# In the order the lines carry them.
FIELDS: tuple[Field, ...] = (
    Field(
        ("timestamp", "@timestamp", "timestamp"),
        "string",
        "when the line was written: RFC 3339, UTC, microseconds (`2026-11-25T13:12:41.016007Z`)",
        ALL,
    ),
    Field(
        ("level", "log.level", "severity_text"),
        "string",
        "`trace`, `debug`, `info`, `warning`, `error`, `critical`; an access line is `info`, or "
        "`error` when the app failed",
        ALL,
    ),
    Field(
        (None, None, "severity_number"),
        "integer",
        "OpenTelemetry's number for the level: 1 trace, 5 debug, 9 info, 13 warning, 17 error, "
        "21 critical",
        ALL,
    ),
    Field(
        ("logger", "log.logger", "scope.name"),
        "string",
        "`monoceros.access` for the access log, `monoceros.error` (and other `monoceros.*`) for "
        "the server's events, your logger's name for your records",
        ALL,
        optional=True,
    ),
    Field(
        ("event", "message", "body"),
        "string",
        "what happened, the message; `request` or `websocket` on access lines",
        ALL,
    ),
    Field((None, "ecs.version", None), "string", "the ECS version the names follow", ALL),
    Field(
        ("method", "http.request.method", "http.request.method"),
        "string",
        "the request method",
        ("request",),
    ),
    Field(
        ("path", "url.path", "url.path"),
        NULLABLE_STRING,
        "the decoded path, as the ASGI scope has it when the request is over (null if the app"
        " removed it)",
        ACCESS,
    ),
    Field(
        ("query", "url.query", "url.query"),
        NULLABLE_STRING,
        'the raw query string, `""` when there is none (null if the app removed it)',
        ACCESS,
    ),
    Field(
        ("status", "http.response.status_code", "http.response.status_code"),
        "integer",
        "the status sent; 499 when the client left before a response started (a WebSocket: 101 "
        "once accepted, otherwise the status sent instead)",
        ACCESS,
    ),
    Field(
        ("close_code", "monoceros.websocket.close_code", "monoceros.websocket.close_code"),
        "integer",
        "the close code received (or sent, if the peer never answered); 1006: none",
        ("websocket",),
    ),
    Field(
        ("outcome", "monoceros.outcome", "monoceros.outcome"),
        "string",
        "`complete`; `error` (the app raised or did not respond); `disconnected` (the client "
        "left first); `rejected` (bad input the server answered itself: 400, 408, 413, 414, "
        "431, 501); `aborted` (the server cut the connection in the middle of a response: the "
        "request body broke or stopped arriving after the response began, or the client "
        "stopped reading for `--timeout-send`)",
        ("request",),
    ),
    Field(
        ("duration", "event.duration", "http.server.request.duration"),
        "number",
        REQUEST_DURATION,
        ("request",),
        unit="seconds",
        differs=(("ecs", "integer", "nanoseconds", REQUEST_DURATION),),
    ),
    Field(
        ("duration", "event.duration", "monoceros.websocket.duration"),
        "number",
        SESSION_DURATION,
        ("websocket",),
        unit="seconds",
        differs=(("ecs", "integer", "nanoseconds", SESSION_DURATION),),
    ),
    Field(
        (
            "messages_received",
            "monoceros.websocket.messages_received",
            "monoceros.websocket.messages_received",
        ),
        "integer",
        "messages from the client",
        ("websocket",),
        unit="messages",
    ),
    Field(
        (
            "messages_sent",
            "monoceros.websocket.messages_sent",
            "monoceros.websocket.messages_sent",
        ),
        "integer",
        "messages to the client",
        ("websocket",),
        unit="messages",
    ),
    Field(
        ("body_bytes_received", "http.request.body.bytes", "http.request.body.size"),
        "integer",
        "request body bytes (not the head: nginx's `$request_length` counts it)",
        ("request",),
        unit="bytes",
    ),
    Field(
        ("body_bytes_sent", "http.response.body.bytes", "http.response.body.size"),
        "integer",
        "response body bytes, as nginx's `$body_bytes_sent` (its `$bytes_sent` counts the head "
        "too)",
        ("request",),
        unit="bytes",
    ),
    Field(
        (
            "message_bytes_received",
            "monoceros.websocket.bytes_received",
            "monoceros.websocket.bytes_received",
        ),
        "integer",
        "message payload bytes from the client",
        ("websocket",),
        unit="bytes",
    ),
    Field(
        ("message_bytes_sent", "monoceros.websocket.bytes_sent", "monoceros.websocket.bytes_sent"),
        "integer",
        "message payload bytes to the client",
        ("websocket",),
        unit="bytes",
    ),
    Field(
        ("client", "client.address", "client.address"),
        NULLABLE_STRING,
        f"the client's address (an IPv6 one without brackets), {ADDRESS}",
        ACCESS,
    ),
    Field(
        ("client_port", "client.port", "client.port"),
        NULLABLE_INTEGER,
        "the client's port; null when a proxy header named the client without one",
        ACCESS,
    ),
    Field(
        ("peer", "source.address", "network.peer.address"),
        NULLABLE_STRING,
        "the address of the direct TCP peer (a proxy, or the client); null on a unix socket",
        ACCESS,
    ),
    Field(
        ("peer_port", "source.port", "network.peer.port"),
        NULLABLE_INTEGER,
        "the direct peer's port; null on a unix socket",
        ACCESS,
    ),
    Field(
        ("scheme", "url.scheme", "url.scheme"),
        NULLABLE_STRING,
        "`http` or `https` (`ws` or `wss`), after proxy resolution (a session's: null if the app"
        " removed it)",
        ACCESS,
    ),
    Field(
        ("host", None, None),
        NULLABLE_STRING,
        "the `Host` header the request came with (a trusted proxy's `X-Forwarded-Host` with"
        " `--proxy-forwarded-host`)",
        ACCESS,
    ),
    Field(
        (None, "url.domain", "server.address"),
        NULLABLE_STRING,
        "the host of the `Host` header (an IPv6 one without brackets)",
        ACCESS,
    ),
    Field(
        (None, "url.port", "server.port"),
        NULLABLE_INTEGER,
        "the port of the `Host` header; null when it names none",
        ACCESS,
    ),
    Field(
        ("http_version", "http.version", "network.protocol.version"),
        NULLABLE_STRING,
        "`1.0`, `1.1` or `2` (null if the app removed it)",
        ACCESS,
    ),
    Field(
        ("user_agent", "user_agent.original", "user_agent.original"),
        NULLABLE_STRING,
        "the `User-Agent` header the request came with",
        ACCESS,
    ),
    Field(
        ("referer", "http.request.referrer", "http.request.header.referer"),
        NULLABLE_STRING,
        "the `Referer` header the request came with",
        ("request",),
        differs=(
            (
                "otel",
                {"type": ["array", "null"], "items": {"type": "string"}},
                "",
                "the `Referer` header, as a list of its values (OpenTelemetry's header "
                "attributes are lists)",
            ),
        ),
    ),
    Field(
        ("request_id", "http.request.id", "monoceros.request_id"),
        NULLABLE_STRING,
        "the request id ([Request ids](../observability/index.md#request-ids)): on access "
        "lines (null when turned off) and on every record written while a request is handled",
        ALL,
        optional=True,
    ),
    Field(
        ("trace_id", "trace.id", "trace_id"),
        NULLABLE_STRING,
        "the W3C trace id of the request's `traceparent` (32 hex digits), or one of its own "
        "with `--trace-id-generate`; null (on access lines) when there is none",
        ALL,
        optional=True,
    ),
    Field(
        ("span_id", "span.id", "span_id"),
        NULLABLE_STRING,
        "the caller's span: the parent id of the request's `traceparent` (16 hex digits), or "
        "one of its own with `--trace-id-generate`",
        ALL,
        optional=True,
    ),
    Field(
        ("error_type", "error.type", "error.type"),
        NULLABLE_STRING,
        "OpenTelemetry's `error.type`: the class of the exception the app raised "
        "(`ValueError`, `sqlalchemy.exc.OperationalError`), else the status of a 5xx answer "
        "(`503`); null otherwise",
        ("request",),
    ),
    Field(
        ("exception", "error.stack_trace", "exception.stacktrace"),
        "string",
        "the traceback, on a record written with one (`logger.exception`)",
        ("line",),
        optional=True,
    ),
    Field(
        ("pid", "process.pid", "process.pid"),
        "integer",
        "the process that wrote it (the supervisor or a worker, with `--workers`)",
        ALL,
    ),
)


def fields(schema: str, kind: str) -> list[tuple[str, Field]]:
    """(name, field) of the lines of `kind` in `schema`, in their order."""
    chosen = []
    for item in FIELDS:
        name = item.name(schema)
        if name is not None and kind in item.kinds:
            chosen.append((name, item))
    return chosen


def property_schema(item: Field, schema: str) -> dict[str, Any]:
    kind, unit, meaning = item.shape(schema)
    shown: dict[str, Any] = dict(kind) if isinstance(kind, dict) else {"type": kind}
    shown["description"] = meaning
    if unit:
        shown["x-unit"] = unit
    return shown


def json_schema(schema: str) -> dict[str, Any]:
    """The JSON schema of every line of `schema`: all share `line`; access lines are held to
    their own kind's fields, exactly."""
    defs: dict[str, Any] = {}
    for kind in KINDS:
        chosen = fields(schema, kind)
        properties = {name: property_schema(item, schema) for name, item in chosen}
        if kind == "line":
            required = [name for name, item in chosen if not item.optional]
            defs[kind] = {
                "title": TITLES[kind],
                "type": "object",
                "required": required,
                "properties": properties,
            }
        else:
            defs[kind] = {
                "title": TITLES[kind],
                "type": "object",
                "required": list(properties),
                "properties": properties,
                "additionalProperties": False,
            }
    logger, event = (_name("logger", schema), _name("event", schema))
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{SITE}reference/log-schemas/{schema}.json",
        "title": f"A monoceros JSON log line, --log-schema {schema}",
        "description": f"One line of stdout with --log-format json --log-schema {schema}. "
        f"Reference: {SITE}reference/log-fields/",
        "allOf": [
            {"$ref": "#/$defs/line"},
            *(
                {
                    "if": {
                        "required": [logger, event],
                        "properties": {
                            logger: {"const": "monoceros.access"},
                            event: {"const": kind},
                        },
                    },
                    "then": {"$ref": f"#/$defs/{kind}"},
                }
                for kind in ACCESS
            ),
        ],
        "$defs": defs,
    }


def _name(default_name: str, schema: str) -> str:
    item = next(f for f in FIELDS if f.name("default") == default_name)
    name = item.name(schema)
    assert name is not None
    return name


def schema_text(schema: str) -> str:
    return json.dumps(json_schema(schema), indent=2) + "\n"


def reference() -> str:
    """The tables of docs/reference/log-fields.md: per schema, per kind of line."""
    out: list[str] = []
    for schema in SCHEMAS:
        out += ["", f"## `--log-schema {schema}` {{ #{schema} }}", ""]
        out.append(f"JSON schema: [`{schema}.json`](log-schemas/{schema}.json).")
        for kind in KINDS:
            out += ["", f"### {TITLES[kind]} {{ #{schema}-{kind} }}", ""]
            out += ["| field | type | unit | meaning |", "| --- | --- | --- | --- |"]
            for name, item in fields(schema, kind):
                kind_of, unit, meaning = item.shape(schema)
                if kind == "line" and item.optional:
                    meaning += " (only when it applies)"
                shown, escaped = _type_text(kind_of), meaning.replace("|", "\\|")
                out.append(f"| `{name}` | {shown} | {unit} | {escaped} |")
    return "\n".join(out)


def _type_text(kind: Any) -> str:
    if isinstance(kind, dict):
        return " or ".join("list of strings" if k == "array" else str(k) for k in kind["type"])
    if isinstance(kind, list):
        return " or ".join(kind)
    return str(kind)


if __name__ == "__main__":
    SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
    for name in SCHEMAS:
        (SCHEMA_DIR / f"{name}.json").write_text(schema_text(name))
    sys.exit(0)
