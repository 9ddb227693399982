"""The access log: one line per finished request or WebSocket session, written from here only.

It is the hottest log line there is, so a line is rendered straight to bytes from one
template per log schema (mypyc turns `b"..." % (...)` with `%s` and `%d` into a single
concatenation; the schema picks the template, never a per-field lookup, so --log-schema costs
nothing per request):

- numbers the server produced (status, sizes, duration, pid) are written as digits;
- every value a client or the app could have chosen (path, query, headers, method, scheme,
  addresses, request id) goes in as a JSON string literal (observe/literals.py): no value can
  break or forge a line; those that repeat from request to request are made once (`Literals`);
- the timestamp and the duration come as pieces of the template (tuples, which mypyc does not
  box), not as bytes made first and copied again;
- the origin fields (client to User-Agent), alike from one request of a connection to the
  next, are one piece rendered once per connection and checked at each request
  (`origin_fields`).

The fields of each schema, their types and units: docs/reference/log-fields.md, and the JSON
schemas beside it, which the tests hold real lines to. In the console format the line is
observe/console.py's, for people; with --log-config filters or handlers on the access logger,
it goes through them (observe/access_logger.py).
"""

from __future__ import annotations

import os
import time
from typing import Any, Final

from monoceros.observe.literals import Literals, OriginMemo, json_literal
from monoceros.observe.output import LineBuffer
from monoceros.protocols.events import (
    RequestFinished,
    SessionFinished,
    header_fields,
    reported_status,
)
from monoceros.types import ServerScope

# --log-schema, as the templates below number them.
SCHEMAS: Final = ("default", "ecs", "otel")
DEFAULT: Final = 0
ECS: Final = 1
OTEL: Final = 2

# Zero-padded three-digit groups: six digits are two lookups, not an int formatted and sliced.
_THREE_DIGITS: Final = tuple(b"%03d" % number for number in range(1000))
_NUMBERS: Final = tuple(b"%d" % number for number in range(1000))


# A timestamp or a duration as three pieces of the line's template, so that no bytes object
# is made for either: what changes at most once a second (the date and time, or the whole
# seconds), then the microseconds as two three-digit groups.
Pieces = tuple[bytes, bytes, bytes]


class Timestamps:
    """RFC 3339 UTC timestamps with microseconds, formatting the date part once a second."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = b""

    def at(self, nanoseconds: int) -> Pieces:
        """A time.time_ns() as the line's template takes it: b"2026-12-06T14:52:07.",
        b"123", b"456" (the template adds the "Z")."""
        micros = nanoseconds // 1000
        second = micros // 1_000_000
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second)).encode()
        # `%`, not `micros - second * 1_000_000`: mypyc multiplies large ints the slow way.
        fraction = micros % 1_000_000
        return self._prefix, _THREE_DIGITS[fraction // 1000], _THREE_DIGITS[fraction % 1000]


def seconds_pieces(seconds: float) -> Pieces:
    """A duration as a JSON number with six decimals (microseconds), like nginx's times, as
    the line's template takes it: b"0", b"001", b"250" for 0.00125 s (the template adds the
    point)."""
    micros = int(seconds * 1_000_000 + 0.5)
    fraction = micros % 1_000_000
    return (
        number_text(micros // 1_000_000),
        _THREE_DIGITS[fraction // 1000],
        _THREE_DIGITS[fraction % 1000],
    )


def number_text(number: int) -> bytes:
    """A number as digits: looked up below 1000 (status codes, most bodies' sizes, durations'
    whole seconds), formatted otherwise."""
    return _NUMBERS[number] if 0 <= number < 1000 else b"%d" % number


def _query_literal(query: Any) -> bytes:
    # Not remembered: real query strings (ids, cursors, tokens) rarely repeat.
    return b'""' if query == b"" else json_literal(query)


def named_headers(scope: ServerScope) -> tuple[Any, Any, Any]:
    """The Host, User-Agent and Referer values among a scope's headers: bytes, or whatever an
    app put there. (An HTTP/1 request's record carries them as the reader parsed them.)"""
    host = user_agent = referer = None
    # Ours are a list of (bytes, bytes) tuples, read by index and compared as bytes: a browser's
    # dozen fields do not pay a generic unpack and compare each. What an app put in their
    # place (any iterable of pairs, bytearray names) is read the slow way.
    for field in header_fields(scope):
        if type(field) is tuple and len(field) == 2:
            given_name, value = field[0], field[1]
        elif isinstance(field, (tuple, list)) and len(field) == 2:
            given_name, value = field
        else:
            continue  # not a field: an app's mistake, not the request's
        name: bytes = given_name if type(given_name) is bytes else _name_bytes(given_name)
        if name == b"host":
            host = value
        elif name == b"user-agent":
            user_agent = value
        elif name == b"referer":
            referer = value
    return host, user_agent, referer


def _name_bytes(name: Any) -> bytes:
    """A header name an app gave as another bytes-like object; anything else names no field."""
    if not isinstance(name, (bytes, bytearray, memoryview)):
        return b""
    try:
        return bytes(name)
    except ValueError:  # a released memoryview
        return b""


def origin_fields(
    scope: ServerScope,
    peer: Any,
    scheme: Any,
    host: Any,
    user_agent: Any,
    literals: Literals,
    schema: int,
) -> bytes:
    """Where a request came from, as one piece of its line: the fields from the client to the
    User-Agent (client and port, peer and port, scheme, Host, HTTP version, User-Agent). They
    seldom change between one connection's requests, so they are rendered once and kept by the
    connection's peer address, and kept again whenever one of them changes (a proxy's
    connection carries many clients' requests)."""
    client = scope.get("client")
    version = scope.get("http_version")
    if type(peer) is not tuple:  # none to keep them by (a unix socket has no address)
        return _render_origin(client, peer, scheme, version, host, user_agent, literals, schema)
    memo = literals.origins.get(peer)
    if memo is not None and memo.matches(schema, client, scheme, version, host, user_agent):
        return memo.fields
    fields = _render_origin(client, peer, scheme, version, host, user_agent, literals, schema)
    literals.remember_origin(
        peer, OriginMemo(schema, client, scheme, version, host, user_agent, fields)
    )
    return fields


def _render_origin(
    client: Any,
    peer: Any,
    scheme: Any,
    version: Any,
    host: Any,
    user_agent: Any,
    literals: Literals,
    schema: int,
) -> bytes:
    client_host, client_port = literals.address(client)
    # Without proxy headers the scope's client is the peer's own tuple: one lookup, not two.
    peer_host, peer_port = (client_host, client_port) if peer is client else literals.address(peer)
    scheme_literal = literals.text(scheme, literals.last_scheme)
    version_literal = literals.text(version, literals.last_version)
    agent = literals.header(user_agent)
    if schema == DEFAULT:
        return (
            b'"client":%s,"client_port":%s,"peer":%s,"peer_port":%s,"scheme":%s,"host":%s,'
            b'"http_version":%s,"user_agent":%s'
            % (
                client_host,
                client_port,
                peer_host,
                peer_port,
                scheme_literal,
                literals.header(host),
                version_literal,
                agent,
            )
        )
    server_host, server_port = literals.host(host)
    return _HOST_APART_ORIGINS[schema] % (
        client_host,
        client_port,
        peer_host,
        peer_port,
        scheme_literal,
        server_host,
        server_port,
        version_literal,
        agent,
    )


# The origin fields of the schemas that name the Host's parts apart. Rendered once per
# connection, they can take mypyc's generic `%`: no need for a literal template at the call.
_HOST_APART_ORIGINS: Final = {
    ECS: b'"client.address":%s,"client.port":%s,"source.address":%s,"source.port":%s,'
    b'"url.scheme":%s,"url.domain":%s,"url.port":%s,"http.version":%s,"user_agent.original":%s',
    OTEL: b'"client.address":%s,"client.port":%s,"network.peer.address":%s,'
    b'"network.peer.port":%s,"url.scheme":%s,"server.address":%s,"server.port":%s,'
    b'"network.protocol.version":%s,"user_agent.original":%s',
}


_NO_TRACE: Final = (b"null", b"null")


def _trace_literals(trace: tuple[str, str] | None) -> tuple[bytes, bytes]:
    """The trace id and span id as JSON (hex digits: nothing to escape), or two nulls."""
    if trace is None:
        return _NO_TRACE
    return b'"%s"' % trace[0].encode(), b'"%s"' % trace[1].encode()


def error_type(record: RequestFinished, status: int) -> str | None:
    """OpenTelemetry's error.type of a request: the class of the exception the app raised,
    else a 5xx status (a server error), else None."""
    if record.error_type is not None:
        return record.error_type
    return str(status) if status >= 500 else None


def render_request(
    record: RequestFinished,
    timestamp: Pieces,
    pid: bytes,
    literals: Literals,
    schema: int = DEFAULT,
) -> bytes:
    """The access-log line of one request (docs/reference/log-fields.md); runs once per
    request."""
    # Each schema's template is written out with its values beside it, though the lists look
    # alike: mypyc joins `b"..." % (...)` in one step only when both are literal there (a
    # tuple shared by the three would be formatted the generic way).
    scope = record.scope
    stamp, stamp_ms, stamp_us = timestamp
    whole_seconds, duration_ms, duration_us = seconds_pieces(record.duration)
    # Any: what an app put in the scope's headers (a bytearray...) may be found instead, and
    # the compiled build checks the type a variable was first given.
    host: Any
    user_agent: Any
    referer: Any
    noted = record.named_fields
    if noted is not None:  # HTTP/1: as the reader parsed them
        host, user_agent, referer = noted
    else:
        host, user_agent, referer = named_headers(scope)
    error = record.outcome == "error"
    status = reported_status(record)
    method = literals.text(record.method, literals.last_method)
    path = literals.path(scope.get("path"))
    query = _query_literal(scope.get("query_string"))
    outcome = literals.text(record.outcome, literals.last_outcome)
    origin = origin_fields(scope, record.peer, record.scheme, host, user_agent, literals, schema)
    refered = literals.header(referer)
    status_text = number_text(status)
    received = number_text(record.bytes_received)
    sent = number_text(record.bytes_sent)
    rid = json_literal(record.request_id)
    trace_id, span_id = _trace_literals(record.trace)
    failure_type = error_type(record, status)
    failure = b"null" if failure_type is None else json_literal(failure_type)
    if schema == DEFAULT:
        return (
            b'{"timestamp":"%s%s%sZ","level":"%s","logger":"monoceros.access","event":"request",'
            b'"method":%s,"path":%s,"query":%s,"status":%s,"outcome":%s,"duration":%s.%s%s,'
            b'"body_bytes_received":%s,"body_bytes_sent":%s,%s,"referer":%s,"request_id":%s,'
            b'"trace_id":%s,"span_id":%s,"error_type":%s,"pid":%s}\n'
            % (
                stamp,
                stamp_ms,
                stamp_us,
                b"error" if error else b"info",
                method,
                path,
                query,
                status_text,
                outcome,
                whole_seconds,
                duration_ms,
                duration_us,
                received,
                sent,
                origin,
                refered,
                rid,
                trace_id,
                span_id,
                failure,
                pid,
            )
        )
    if schema == ECS:
        return (
            b'{"@timestamp":"%s%s%sZ","log.level":"%s","log.logger":"monoceros.access",'
            b'"message":"request","ecs.version":"8.11.0","http.request.method":%s,'
            b'"url.path":%s,"url.query":%s,"http.response.status_code":%s,'
            b'"monoceros.outcome":%s,"event.duration":%d,"http.request.body.bytes":%s,'
            b'"http.response.body.bytes":%s,%s,"http.request.referrer":%s,"http.request.id":%s,'
            b'"trace.id":%s,"span.id":%s,"error.type":%s,"process.pid":%s}\n'
            % (
                stamp,
                stamp_ms,
                stamp_us,
                b"error" if error else b"info",
                method,
                path,
                query,
                status_text,
                outcome,
                int(record.duration * 1e9 + 0.5),
                received,
                sent,
                origin,
                refered,
                rid,
                trace_id,
                span_id,
                failure,
                pid,
            )
        )
    return (
        b'{"timestamp":"%s%s%sZ",%s,"scope.name":"monoceros.access","body":"request",'
        b'"http.request.method":%s,"url.path":%s,"url.query":%s,'
        b'"http.response.status_code":%s,"monoceros.outcome":%s,'
        b'"http.server.request.duration":%s.%s%s,"http.request.body.size":%s,'
        b'"http.response.body.size":%s,%s,"http.request.header.referer":%s,'
        b'"monoceros.request_id":%s,"trace_id":%s,"span_id":%s,"error.type":%s,'
        b'"process.pid":%s}\n'
        % (
            stamp,
            stamp_ms,
            stamp_us,
            _OTEL_ERROR if error else _OTEL_INFO,
            method,
            path,
            query,
            status_text,
            outcome,
            whole_seconds,
            duration_ms,
            duration_us,
            received,
            sent,
            origin,
            b"null" if refered == b"null" else b"[%s]" % refered,  # a header: a list of values
            rid,
            trace_id,
            span_id,
            failure,
            pid,
        )
    )


# OpenTelemetry's severity numbers: INFO is 9, ERROR 17.
_OTEL_INFO: Final = b'"severity_text":"info","severity_number":9'
_OTEL_ERROR: Final = b'"severity_text":"error","severity_number":17'


def render_session(
    record: SessionFinished,
    timestamp: Pieces,
    pid: bytes,
    literals: Literals,
    schema: int = DEFAULT,
) -> bytes:
    """The access-log line of one WebSocket session (once per session)."""
    scope = record.scope
    stamp, stamp_ms, stamp_us = timestamp
    whole_seconds, duration_ms, duration_us = seconds_pieces(record.duration)
    host, user_agent, _ = named_headers(scope)
    path = literals.path(scope.get("path"))
    query = _query_literal(scope.get("query_string"))
    origin = origin_fields(
        scope, record.peer, scope.get("scheme"), host, user_agent, literals, schema
    )
    rid = json_literal(record.request_id)
    trace_id, span_id = _trace_literals(record.trace)
    if schema == DEFAULT:
        return (
            b'{"timestamp":"%s%s%sZ","level":"info","logger":"monoceros.access",'
            b'"event":"websocket","path":%s,"query":%s,"status":%d,"close_code":%d,'
            b'"duration":%s.%s%s,"messages_received":%d,"messages_sent":%d,'
            b'"message_bytes_received":%d,"message_bytes_sent":%d,%s,"request_id":%s,'
            b'"trace_id":%s,"span_id":%s,"pid":%s}\n'
            % (
                stamp,
                stamp_ms,
                stamp_us,
                path,
                query,
                record.status,
                record.close_code,
                whole_seconds,
                duration_ms,
                duration_us,
                record.messages_received,
                record.messages_sent,
                record.bytes_received,
                record.bytes_sent,
                origin,
                rid,
                trace_id,
                span_id,
                pid,
            )
        )
    if schema == ECS:
        return (
            b'{"@timestamp":"%s%s%sZ","log.level":"info","log.logger":"monoceros.access",'
            b'"message":"websocket","ecs.version":"8.11.0","url.path":%s,"url.query":%s,'
            b'"http.response.status_code":%d,"monoceros.websocket.close_code":%d,'
            b'"event.duration":%d,"monoceros.websocket.messages_received":%d,'
            b'"monoceros.websocket.messages_sent":%d,"monoceros.websocket.bytes_received":%d,'
            b'"monoceros.websocket.bytes_sent":%d,%s,"http.request.id":%s,'
            b'"trace.id":%s,"span.id":%s,"process.pid":%s}\n'
            % (
                stamp,
                stamp_ms,
                stamp_us,
                path,
                query,
                record.status,
                record.close_code,
                int(record.duration * 1e9 + 0.5),
                record.messages_received,
                record.messages_sent,
                record.bytes_received,
                record.bytes_sent,
                origin,
                rid,
                trace_id,
                span_id,
                pid,
            )
        )
    return (
        b'{"timestamp":"%s%s%sZ",%s,"scope.name":"monoceros.access","body":"websocket",'
        b'"url.path":%s,"url.query":%s,"http.response.status_code":%d,'
        b'"monoceros.websocket.close_code":%d,"monoceros.websocket.duration":%s.%s%s,'
        b'"monoceros.websocket.messages_received":%d,"monoceros.websocket.messages_sent":%d,'
        b'"monoceros.websocket.bytes_received":%d,"monoceros.websocket.bytes_sent":%d,'
        b'%s,"monoceros.request_id":%s,"trace_id":%s,"span_id":%s,"process.pid":%s}\n'
        % (
            stamp,
            stamp_ms,
            stamp_us,
            _OTEL_INFO,
            path,
            query,
            record.status,
            record.close_code,
            whole_seconds,
            duration_ms,
            duration_us,
            record.messages_received,
            record.messages_sent,
            record.bytes_received,
            record.bytes_sent,
            origin,
            rid,
            trace_id,
            span_id,
            pid,
        )
    )


class ExcludedPaths:
    """--access-log-exclude: exact paths, and prefixes (given ending in "*")."""

    __slots__ = ("exact", "prefixes")

    def __init__(self, patterns: tuple[str, ...]) -> None:
        self.exact = frozenset(p for p in patterns if not p.endswith("*"))
        self.prefixes = tuple(p[:-1] for p in patterns if p.endswith("*"))

    def __contains__(self, path: Any) -> bool:
        if type(path) is not str:
            return False
        return path in self.exact or path.startswith(self.prefixes)


class AccessLog:
    """Writes one line per RequestFinished and per SessionFinished.

    `console`: renders the line for people instead (observe/console.py); `through`: hands
    each line to the access logger's filters and handlers (observe/access_logger.py)."""

    def __init__(
        self,
        output: LineBuffer,
        schema: str = "default",
        excluded: tuple[str, ...] = (),
        console: Any = None,
        through: Any = None,
    ) -> None:
        self._output = output
        self._schema = SCHEMAS.index(schema)
        self._excluded = ExcludedPaths(excluded) if excluded else None
        self._console = console
        self._through = through
        self._timestamps = Timestamps()
        self._pid = b"%d" % os.getpid()
        self._literals = Literals()

    @property
    def through_logging(self) -> bool:
        """Whether lines go through the access logger's filters and handlers."""
        return self._through is not None

    def hold(self) -> None:
        """The lines of the requests until `release()` are written together then."""
        self._output.hold()

    def release(self) -> None:
        self._output.release()

    def request(self, record: RequestFinished, ended: int) -> None:
        """`ended`: when the request finished, as time.time_ns() gave it (the line's
        timestamp)."""
        if self._excluded is not None and record.scope.get("path") in self._excluded:
            return
        if self._console is not None:
            line = self._console.request(record, ended)
        else:
            timestamp = self._timestamps.at(ended)
            line = render_request(record, timestamp, self._pid, self._literals, self._schema)
        if self._through is None:
            self._output.write(line)
        else:
            self._through.request(record, line)

    def session(self, record: SessionFinished, ended: int) -> None:
        if self._excluded is not None and record.scope.get("path") in self._excluded:
            return
        if self._console is not None:
            line = self._console.session(record, ended)
        else:
            timestamp = self._timestamps.at(ended)
            line = render_session(record, timestamp, self._pid, self._literals, self._schema)
        if self._through is None:
            self._output.write(line)
        else:
            self._through.session(record, line)
