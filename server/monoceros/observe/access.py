"""The access log: one line per finished request or WebSocket session, written from here only.

It is the hottest log line there is, so a line is rendered straight to bytes from one
template per log schema (mypyc turns `b"..." % (...)` with `%s` and `%d` into a single
concatenation; the schema picks the template, never a per-field lookup, so --log-schema costs
nothing per request):

- numbers the server produced (status, sizes, duration, pid) are written as digits;
- every value a client or the app could have chosen (path, query, headers, method, scheme,
  addresses, request id) goes in as a JSON string literal made by orjson, which escapes
  quotes, backslashes and control characters: no value can break or forge a line;
- literals of values that repeat from request to request (methods, hosts, user agents,
  addresses) are made once and looked up after (`Literals`);
- the timestamp, the duration and the origin fields (client to user agent) come as pieces of
  the template (tuples, which mypyc does not box), not as bytes made first and copied again.

The fields of each schema, their types and units: docs/reference/log-fields.md, and the JSON
schemas beside it, which the tests hold real lines to. In the console format the line is
observe/console.py's, for people; with --log-config filters or handlers on the access logger,
it goes through them (observe/access_logger.py).
"""

from __future__ import annotations

import os
import time
from typing import Any, Final

import orjson

from monoceros.observe.output import LineBuffer
from monoceros.protocols.events import (
    RequestFinished,
    SessionFinished,
    header_fields,
    reported_status,
)
from monoceros.types import ServerScope

# What `Literals` remembers: this many distinct values (then it starts over: client ports
# churn), each at most this long (so hostile headers cannot grow it past ~2 MiB).
MAX_LITERALS = 4096
MAX_LITERAL_LENGTH = 256

# --log-schema, as the templates below number them.
SCHEMAS: Final = ("default", "ecs", "otel")
DEFAULT: Final = 0
ECS: Final = 1
OTEL: Final = 2


# Held as a static under mypyc; a module global would be a dict lookup at every call.
_dumps: Final = orjson.dumps

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


def json_literal(value: Any) -> bytes:
    """`value` as JSON: a string escaped by orjson (bytes read as latin-1, as HTTP defines
    header bytes), or null for None."""
    if type(value) is str:  # the common case, checked first: isinstance(tuple) is slower
        try:
            return _dumps(value)
        except TypeError:  # a lone surrogate: an app's str, decoded with surrogateescape
            return _dumps(_without_surrogates(value))
    return _other_literal(value)


def _other_literal(value: Any) -> bytes:
    """Anything but a str, as the line's fields are strings or null (the log schemas): None
    as null, bytes-like objects read as latin-1, whatever else an app put in its scope as
    its repr. Never an exception: the line is written whatever the app did."""
    if value is None:
        return b"null"
    return _dumps(_without_surrogates(_text_of(value)))


def _without_surrogates(text: str) -> str:
    """`text` as UTF-8 can hold it: a lone surrogate as its escape (\\udcff)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _text_of(value: Any) -> str:
    try:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value).decode("latin-1")
        return value if isinstance(value, str) else repr(value)
    except Exception:  # a released memoryview, a repr that raises...
        return f"<{type(value).__name__}>"


# An address or a Host header as two JSON values: host (or IP) and port (null: none known).
Pair = tuple[bytes, bytes]
_NULLS: Final[Pair] = (b"null", b"null")


class LastText:
    """One field's last str and its literal. The server fills the fields `Literals.text` takes
    from a few str objects of its own (the method table's "GET", the scope's "1.1", the
    outcome's "complete"), the same object request after request: telling it by identity
    costs a compare where the lookup cost 140 instructions."""

    __slots__ = ("literal", "value")

    def __init__(self) -> None:
        self.value: Any = None  # None's literal is null: right for None too
        self.literal = b"null"


class Literals:
    """JSON literals of the values that repeat from request to request (methods, hosts, user
    agents, addresses), each made once. Bounded: at most MAX_LITERALS of each kind, none
    longer than MAX_LITERAL_LENGTH; anything else is encoded each time."""

    __slots__ = (
        "_addresses",
        "_headers",
        "_hosts",
        "_paths",
        "_texts",
        "last_method",
        "last_outcome",
        "last_scheme",
        "last_version",
    )

    def __init__(self) -> None:
        # Apart, so that a header's bytes are never compared with a scope field's str, and
        # paths (which may not repeat) never push the others out.
        self._headers: dict[bytes, bytes] = {}
        self._texts: dict[str, bytes] = {}
        self._paths: dict[str, bytes] = {}
        self._addresses: dict[Any, Pair] = {}
        self._hosts: dict[Any, Pair] = {}
        # One per field `text` takes: a memo shared by two fields would change at each.
        self.last_method = LastText()
        self.last_outcome = LastText()
        self.last_scheme = LastText()
        self.last_version = LastText()

    def header(self, value: Any) -> bytes:
        """A header value (bytes), or null if the request had none."""
        if type(value) is not bytes:
            return b"null" if value is None else json_literal(value)
        literal = self._headers.get(value)
        if literal is None:
            literal = _remember(self._headers, value, json_literal(value))
        return literal

    def text(self, value: Any, last: LastText) -> bytes:
        """A field the server set as a str (method, outcome, scheme, HTTP version); `last` is
        that field's own."""
        if value is last.value:
            return last.literal
        if type(value) is not str:
            return json_literal(value)  # an app changed the scope: encoded, not remembered
        literal = self._texts.get(value)
        if literal is None:
            literal = _remember(self._texts, value, json_literal(value))
        last.value = value  # a str: the same object always has the same literal
        last.literal = literal
        return literal

    def path(self, value: Any) -> bytes:
        """The request's path: most requests go to a few of them (a dict lookup costs a
        fifth of encoding one)."""
        if type(value) is not str:
            return json_literal(value)
        literal = self._paths.get(value)
        if literal is None:
            literal = _remember(self._paths, value, json_literal(value))
        return literal

    def address(self, address: Any) -> Pair:
        """A (host, port) pair as its host and its port (null for port 0: a client a proxy
        header named without one), or two nulls. Apart, an IPv6 address reads unambiguously."""
        if type(address) is not tuple:
            # None, or what an app put in its scope (ASGI allows a list): not remembered.
            return _address_pair(address) if type(address) is list else _NULLS
        try:
            pair = self._addresses.get(address)
        except TypeError:  # an app's tuple holding something unhashable
            return _address_pair(address)
        if pair is None:
            pair = _address_pair(address)
            if len(address) == 2 and type(address[0]) is str and type(address[1]) is int:
                # Only the server's own shape: ("h", 80.0) or ("h", True) would be found in
                # place of ("h", 80), which they equal.
                _remember_pair(self._addresses, address, pair)
        return pair

    def host(self, value: Any) -> Pair:
        """A Host header as its host and port (the port null when not given), for the
        schemas that name them apart."""
        if type(value) is not bytes:
            if value is None:
                return _NULLS
            return _split_host(_text_of(value))  # what an app put there
        pair = self._hosts.get(value)
        if pair is None:
            pair = _split_host(value.decode("latin-1"))
            _remember_pair(self._hosts, value, pair)
        return pair


def _address_pair(address: tuple[Any, ...] | list[Any]) -> Pair:
    if len(address) != 2:
        return _NULLS
    host, port = address[0], address[1]
    return json_literal(host), (b"%d" % port if type(port) is int and port else b"null")


def _split_host(text: str) -> Pair:
    if text.startswith("["):  # an IPv6 literal: [::1]:8000
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, colon, port = text.rpartition(":")
        if not colon:
            host, port = text, ""
    # isascii: "²" is a digit to isdigit(), and no JSON number.
    digits = port.isascii() and port.isdigit() and len(port) <= 5
    return json_literal(host), (port.encode() if digits else b"null")


def _remember(literals: dict[Any, bytes], value: Any, literal: bytes) -> bytes:
    if len(literal) <= MAX_LITERAL_LENGTH:
        if len(literals) >= MAX_LITERALS:
            literals.clear()  # client ports churn; hostile values may too
        literals[value] = literal
    return literal


def _remember_pair(pairs: dict[Any, Pair], value: Any, pair: Pair) -> None:
    if len(pair[0]) <= MAX_LITERAL_LENGTH:
        if len(pairs) >= MAX_LITERALS:
            pairs.clear()
        pairs[value] = pair


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


# Where a request came from, as the lines' templates take it (JSON literals): the client and
# its port, the peer and its port, the scheme, the HTTP version and the User-Agent. Pieces of
# the line itself rather than a part made apart: a bytes object less, and no copy of it.
Origin = tuple[bytes, bytes, bytes, bytes, bytes, bytes, bytes]


def _origin(
    scope: ServerScope, peer: Any, scheme: Any, user_agent: Any, literals: Literals
) -> Origin:
    client = scope.get("client")
    client_host, client_port = literals.address(client)
    # Without proxy headers the scope's client is the peer's own tuple: one lookup, not two.
    peer_host, peer_port = (client_host, client_port) if peer is client else literals.address(peer)
    return (
        client_host,
        client_port,
        peer_host,
        peer_port,
        literals.text(scheme, literals.last_scheme),
        literals.text(scope.get("http_version"), literals.last_version),
        literals.header(user_agent),
    )


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
    client, client_port, peer, peer_port, scheme, version, agent = _origin(
        scope, record.peer, record.scheme, user_agent, literals
    )
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
            b'"body_bytes_received":%s,"body_bytes_sent":%s,"client":%s,"client_port":%s,'
            b'"peer":%s,"peer_port":%s,"scheme":%s,"host":%s,"http_version":%s,"user_agent":%s,'
            b'"referer":%s,"request_id":%s,"trace_id":%s,"span_id":%s,"error_type":%s,"pid":%s}\n'
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
                client,
                client_port,
                peer,
                peer_port,
                scheme,
                literals.header(host),
                version,
                agent,
                refered,
                rid,
                trace_id,
                span_id,
                failure,
                pid,
            )
        )
    server_host, server_port = literals.host(host)
    if schema == ECS:
        return (
            b'{"@timestamp":"%s%s%sZ","log.level":"%s","log.logger":"monoceros.access",'
            b'"message":"request","ecs.version":"8.11.0","http.request.method":%s,'
            b'"url.path":%s,"url.query":%s,"http.response.status_code":%s,'
            b'"monoceros.outcome":%s,"event.duration":%d,"http.request.body.bytes":%s,'
            b'"http.response.body.bytes":%s,"client.address":%s,"client.port":%s,'
            b'"source.address":%s,"source.port":%s,"url.scheme":%s,"url.domain":%s,'
            b'"url.port":%s,"http.version":%s,"user_agent.original":%s,'
            b'"http.request.referrer":%s,"http.request.id":%s,"trace.id":%s,"span.id":%s,'
            b'"error.type":%s,"process.pid":%s}\n'
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
                client,
                client_port,
                peer,
                peer_port,
                scheme,
                server_host,
                server_port,
                version,
                agent,
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
        b'"http.response.body.size":%s,"client.address":%s,"client.port":%s,'
        b'"network.peer.address":%s,"network.peer.port":%s,"url.scheme":%s,'
        b'"server.address":%s,"server.port":%s,"network.protocol.version":%s,'
        b'"user_agent.original":%s,"http.request.header.referer":%s,'
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
            client,
            client_port,
            peer,
            peer_port,
            scheme,
            server_host,
            server_port,
            version,
            agent,
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
    client, client_port, peer, peer_port, scheme, version, agent = _origin(
        scope, record.peer, scope.get("scheme"), user_agent, literals
    )
    rid = json_literal(record.request_id)
    trace_id, span_id = _trace_literals(record.trace)
    if schema == DEFAULT:
        return (
            b'{"timestamp":"%s%s%sZ","level":"info","logger":"monoceros.access",'
            b'"event":"websocket","path":%s,"query":%s,"status":%d,"close_code":%d,'
            b'"duration":%s.%s%s,"messages_received":%d,"messages_sent":%d,'
            b'"message_bytes_received":%d,"message_bytes_sent":%d,"client":%s,"client_port":%s,'
            b'"peer":%s,"peer_port":%s,"scheme":%s,"host":%s,"http_version":%s,"user_agent":%s,'
            b'"request_id":%s,"trace_id":%s,"span_id":%s,"pid":%s}\n'
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
                client,
                client_port,
                peer,
                peer_port,
                scheme,
                literals.header(host),
                version,
                agent,
                rid,
                trace_id,
                span_id,
                pid,
            )
        )
    server_host, server_port = literals.host(host)
    if schema == ECS:
        return (
            b'{"@timestamp":"%s%s%sZ","log.level":"info","log.logger":"monoceros.access",'
            b'"message":"websocket","ecs.version":"8.11.0","url.path":%s,"url.query":%s,'
            b'"http.response.status_code":%d,"monoceros.websocket.close_code":%d,'
            b'"event.duration":%d,"monoceros.websocket.messages_received":%d,'
            b'"monoceros.websocket.messages_sent":%d,"monoceros.websocket.bytes_received":%d,'
            b'"monoceros.websocket.bytes_sent":%d,"client.address":%s,"client.port":%s,'
            b'"source.address":%s,"source.port":%s,"url.scheme":%s,"url.domain":%s,'
            b'"url.port":%s,"http.version":%s,"user_agent.original":%s,"http.request.id":%s,'
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
                client,
                client_port,
                peer,
                peer_port,
                scheme,
                server_host,
                server_port,
                version,
                agent,
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
        b'"client.address":%s,"client.port":%s,"network.peer.address":%s,'
        b'"network.peer.port":%s,"url.scheme":%s,"server.address":%s,"server.port":%s,'
        b'"network.protocol.version":%s,"user_agent.original":%s,'
        b'"monoceros.request_id":%s,"trace_id":%s,"span_id":%s,"process.pid":%s}\n'
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
            client,
            client_port,
            peer,
            peer_port,
            scheme,
            server_host,
            server_port,
            version,
            agent,
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
