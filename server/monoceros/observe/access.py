"""The access log: one line per finished request or WebSocket session, written from here only.

It is the hottest log line there is, so a line is rendered straight to bytes from one
template (mypyc turns `b"..." % (...)` with `%s` and `%d` into a single concatenation):

- numbers the server produced (status, sizes, duration, pid) are written as digits;
- every value a client or the app could have chosen (path, query, headers, method, scheme,
  addresses, request id) goes in as a JSON string literal made by orjson, which escapes
  quotes, backslashes and control characters: no value can break or forge a line;
- literals of values that repeat from request to request (methods, hosts, user agents,
  addresses) are made once and looked up after (`Literals`).

Compiled, a request's line costs 15.6k instructions, against 27.5k for building a dict and
`orjson.dumps`-ing it. The line has the same shape as every other JSON line the process
writes (`timestamp`, `level`, `logger`, `event`, `pid`); in console format it is parsed back
and goes through structlog.
"""

from __future__ import annotations

import os
import time
from time import time_ns
from typing import Any

import structlog
from orjson import dumps, loads

from monoceros.observe.output import LineBuffer
from monoceros.protocols.events import RequestFinished, SessionFinished, reported_status

# What `Literals` remembers: this many distinct values (then it starts over: client ports
# churn), each at most this long (so hostile headers cannot grow it past ~2 MiB).
MAX_LITERALS = 4096
MAX_LITERAL_LENGTH = 256


def _six_digits(value: int) -> bytes:
    """0 <= value < 1_000_000, zero-padded to six digits."""
    return (b"%d" % (1_000_000 + value))[1:]


class Timestamps:
    """RFC 3339 UTC timestamps with microseconds, formatting the date part once a second."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = b""

    def now(self) -> bytes:
        micros = time_ns() // 1000
        second = micros // 1_000_000
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second)).encode()
        return b"%s%sZ" % (self._prefix, _six_digits(micros - second * 1_000_000))


def seconds_text(seconds: float) -> bytes:
    """A duration as a JSON number with six decimals (microseconds), like nginx's times."""
    micros = int(seconds * 1_000_000 + 0.5)
    whole = micros // 1_000_000
    return b"%d.%s" % (whole, _six_digits(micros - whole * 1_000_000))


def json_literal(value: Any) -> bytes:
    """`value` as JSON: a string escaped by orjson (bytes read as latin-1, as HTTP defines
    header bytes), or null for None."""
    if type(value) is str:  # the common case, checked first: isinstance(tuple) is slower
        return dumps(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("latin-1")
    return dumps(value)


class Literals:
    """JSON literals of the values that repeat from request to request (methods, hosts, user
    agents, addresses), each made once. Bounded: at most MAX_LITERALS of each kind, none
    longer than MAX_LITERAL_LENGTH; anything else is encoded each time."""

    __slots__ = ("_addresses", "_headers", "_texts")

    def __init__(self) -> None:
        # Apart, so that a header's bytes are never compared with a scope field's str.
        self._headers: dict[bytes, bytes] = {}
        self._texts: dict[str, bytes] = {}
        self._addresses: dict[Any, bytes] = {}

    def header(self, value: Any) -> bytes:
        """A header value (bytes), or null if the request had none."""
        if type(value) is not bytes:
            return b"null" if value is None else json_literal(value)
        literal = self._headers.get(value)
        if literal is None:
            literal = _remember(self._headers, value, json_literal(value))
        return literal

    def text(self, value: Any) -> bytes:
        """A scope field the server set as a str (method, scheme, HTTP version)."""
        if type(value) is not str:
            return json_literal(value)  # an app changed the scope: encoded, not remembered
        literal = self._texts.get(value)
        if literal is None:
            literal = _remember(self._texts, value, json_literal(value))
        return literal

    def address(self, address: Any) -> bytes:
        """A (host, port) pair as `"host:port"`, or null."""
        literal = self._addresses.get(address)
        if literal is None:
            text = None if address is None else f"{address[0]}:{address[1]}"
            literal = _remember(self._addresses, address, json_literal(text))
        return literal


def _remember(literals: dict[Any, bytes], value: Any, literal: bytes) -> bytes:
    if len(literal) <= MAX_LITERAL_LENGTH:
        if len(literals) >= MAX_LITERALS:
            literals.clear()  # client ports churn; hostile values may too
        literals[value] = literal
    return literal


def _query_literal(query: Any) -> bytes:
    # Not remembered: real query strings (ids, cursors, tokens) rarely repeat.
    return b'""' if query == b"" else json_literal(query)


def _named_headers(scope: Any) -> tuple[Any, Any, Any]:  # bytes, or what an app put there
    host = user_agent = referer = None
    for name, value in scope["headers"]:
        if name == b"host":
            host = value
        elif name == b"user-agent":
            user_agent = value
        elif name == b"referer":
            referer = value
    return host, user_agent, referer


def _origin_fields(scope: Any, peer: Any, host: Any, user_agent: Any, literals: Literals) -> bytes:
    """Where the request came from: the fields both kinds of line carry, "client" to
    "user_agent"."""
    return b'"client":%s,"peer":%s,"scheme":%s,"host":%s,"http_version":%s,"user_agent":%s' % (
        literals.address(scope.get("client")),
        literals.address(peer),
        literals.text(scope["scheme"]),
        literals.header(host),
        literals.text(scope["http_version"]),
        literals.header(user_agent),
    )


def render_request(
    record: RequestFinished, timestamp: bytes, pid: int, literals: Literals
) -> bytes:
    """The access-log line of one request (docs/observability/logs.md); runs once per request."""
    scope = record.scope
    host, user_agent, referer = _named_headers(scope)
    return (
        b'{"timestamp":"%s","level":"%s","logger":"monoceros.access","event":"request",'
        b'"method":%s,"path":%s,"query":%s,"status":%d,"outcome":%s,"duration":%s,'
        b'"bytes_received":%d,"bytes_sent":%d,%s,"referer":%s,"request_id":%s,"pid":%d}\n'
        % (
            timestamp,
            b"error" if record.outcome == "error" else b"info",
            literals.text(scope["method"]),
            json_literal(scope["path"]),
            _query_literal(scope["query_string"]),
            reported_status(record),
            literals.text(record.outcome),
            seconds_text(record.duration),
            record.bytes_received,
            record.bytes_sent,
            _origin_fields(scope, record.peer, host, user_agent, literals),
            literals.header(referer),
            json_literal(record.request_id),
            pid,
        )
    )


def render_session(
    record: SessionFinished, timestamp: bytes, pid: int, literals: Literals
) -> bytes:
    """The access-log line of one WebSocket session (once per session)."""
    scope = record.scope
    host, user_agent, _ = _named_headers(scope)
    return (
        b'{"timestamp":"%s","level":"info","logger":"monoceros.access","event":"websocket",'
        b'"path":%s,"query":%s,"status":%d,"close_code":%d,"duration":%s,'
        b'"messages_received":%d,"messages_sent":%d,"bytes_received":%d,"bytes_sent":%d,'
        b'%s,"request_id":%s,"pid":%d}\n'
        % (
            timestamp,
            json_literal(scope["path"]),
            _query_literal(scope["query_string"]),
            record.status,
            record.close_code,
            seconds_text(record.duration),
            record.messages_received,
            record.messages_sent,
            record.bytes_received,
            record.bytes_sent,
            _origin_fields(scope, record.peer, host, user_agent, literals),
            json_literal(record.request_id),
            pid,
        )
    )


# Keys every line of the process starts with; the console renderer adds its own.
_LINE_META = ("timestamp", "level", "logger", "event", "pid")


class AccessLog:
    """Writes one line per RequestFinished and per SessionFinished."""

    def __init__(self, output: LineBuffer, log_format: str = "json") -> None:
        self._output = output
        self._json = log_format == "json"
        self._timestamps = Timestamps()
        self._pid = os.getpid()
        self._literals = Literals()
        self._logger = structlog.get_logger("monoceros.access")

    def __call__(self, record: RequestFinished) -> None:
        self._write(render_request(record, self._timestamps.now(), self._pid, self._literals))

    def session(self, record: SessionFinished) -> None:
        self._write(render_session(record, self._timestamps.now(), self._pid, self._literals))

    def _write(self, line: bytes) -> None:
        if self._json:
            self._output.write(line)
            return
        fields = loads(line)
        level, event = fields["level"], fields["event"]
        for key in _LINE_META:
            del fields[key]
        getattr(self._logger, level)(event, logger="monoceros.access", **fields)
