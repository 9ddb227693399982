"""Encoding response heads: status lines, the server's default headers, framing, validation.

A CR, LF or NUL smuggled into an app's header would split the response. Names are checked as
tokens once each and remembered; values are scanned for the three bytes with `memchr` (`in`
with an int), which for values this short costs a fraction of one `bytes.translate` over the
whole head (it builds a 256-byte table per call) or a regex per header (uvicorn's approach).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any, Final

from monoceros.grammar import TOKEN_PATTERN

# IMF-fixdate's names are English whatever the locale (time.strftime's follow LC_TIME).
WEEKDAYS: Final = (b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun")
MONTHS: Final = tuple(b"Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split())


def http_date(seconds: float) -> bytes:
    """The Date header's value (RFC 9110 5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`."""
    t = time.gmtime(seconds)
    return b"%s, %02d %s %d %02d:%02d:%02d GMT" % (
        WEEKDAYS[t.tm_wday],
        t.tm_mday,
        MONTHS[t.tm_mon - 1],
        t.tm_year,
        t.tm_hour,
        t.tm_min,
        t.tm_sec,
    )


STATUS_LINES: Final[dict[int, bytes]] = {
    status.value: b"HTTP/1.1 %d %s\r\n" % (status.value, status.phrase.encode("ascii"))
    for status in HTTPStatus
}

# Bytes that must never come from an app into a header: they would split the response.
CONTROL_BYTES: Final = b"\r\n\0"
_TOKEN: Final = re.compile(TOKEN_PATTERN.encode())

# What a header name means to the server: nothing (PLAIN), or it changes how the response is
# framed or decorated.
PLAIN: Final = 0
CONTENT_LENGTH: Final = 1
CONNECTION: Final = 2
TRANSFER_ENCODING: Final = 3
SERVER: Final = 4
DATE: Final = 5
_FRAMING_HEADERS: Final = {
    b"content-length": CONTENT_LENGTH,
    b"connection": CONNECTION,
    b"transfer-encoding": TRANSFER_ENCODING,
    b"server": SERVER,
    b"date": DATE,
}
# The names an app sends repeat endlessly: each valid one is lowered, checked and classified
# once, then found by one dict lookup (bounded: past the limit, names are checked each time).
_NAME_KINDS: Final[dict[bytes, int]] = {}
_NAME_KINDS_LIMIT: Final = 4096
# encode_head formats this many of the app's fields one onto another, then lists the rest.
_FORMATTED_FIELDS: Final = 8
# Content-Length values up to this many digits are read digit by digit (below).
_LENGTH_DIGITS: Final = 18


class InvalidResponseHead(ValueError):
    """The app's status or headers cannot be put on the wire safely."""


# The same by code, 100 to 599 (None: a code without a phrase of its own): a list index costs
# less than a dict lookup of an int.
_STATUS_BY_CODE: Final[list[bytes | None]] = [STATUS_LINES.get(code) for code in range(600)]


def status_line(status: int) -> bytes:
    # `type()` first: an app's status may be anything (a bool is an int, but not a status).
    line = _STATUS_BY_CODE[status] if type(status) is int and 100 <= status < 600 else None
    if line is None:
        if type(status) is not int or not 100 <= status <= 999:
            raise InvalidResponseHead(f"invalid status code {status!r}")
        line = b"HTTP/1.1 %d \r\n" % status
    return line


def no_body_allowed(status: int) -> bool:
    return status < 200 or status == 204 or status == 304


# Header fields as (name, value) pairs, fixed.
FieldTuple = tuple[tuple[bytes, bytes], ...]


class DefaultHeaders:
    """`server`, `date` and `--header` lines every response carries, re-encoded once a second."""

    __slots__ = (
        "_date_enabled",
        "_date_line",
        "_date_value",
        "_extra",
        "_extra_fields",
        "_fields",
        "_second",
        "_server_line",
        "block",
    )

    def __init__(self, *, server: bool, date: bool, extra: Iterable[tuple[str, str]] = ()) -> None:
        self._server_line = b"server: monoceros\r\n" if server else b""
        self._date_line = b""
        self._date_value = b""
        self._extra_fields = [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in extra
        ]
        self._extra = b"".join(b"%s: %s\r\n" % field for field in self._extra_fields)
        self.block = b""
        self._fields: FieldTuple = ()
        self._date_enabled = date
        self._second = -1
        self.refresh()

    def refresh(self, now: float | None = None) -> None:
        if self._date_enabled:
            self._date_value = http_date(time.time() if now is None else now)
            self._date_line = b"date: %s\r\n" % self._date_value
        self.block = self._server_line + self._date_line + self._extra
        self._fields = self._fields_without(server=False, date=False)

    def at_second(self, second: int) -> None:
        """Re-encode the Date line if the wall-clock second has moved on (idempotent within
        one second, so states that share these headers may each call it)."""
        if second != self._second:
            self._second = second
            self.refresh(second)

    def without(self, *, server: bool, date: bool) -> bytes:
        """The block minus the lines the app set itself."""
        return (
            (b"" if server else self._server_line)
            + (b"" if date else self._date_line)
            + self._extra
        )

    def fields(self, *, server: bool = False, date: bool = False) -> FieldTuple:
        """The same as (name, value) pairs, minus those the app set itself (HTTP/2, the
        WebSocket handshake). A tuple: the common answer (the app set neither) is made once a
        second, not per response."""
        if server or date:
            return self._fields_without(server=server, date=date)
        return self._fields

    def _fields_without(self, *, server: bool, date: bool) -> FieldTuple:
        found = []
        if self._server_line and not server:
            found.append((b"server", b"monoceros"))
        if self._date_value and not date:
            found.append((b"date", self._date_value))
        found.extend(self._extra_fields)
        return tuple(found)


# A response head on its way to the wire, and what it decided about the body:
# (data, content_length, chunked, keep_alive). `content_length` is the app's or ours (None:
# chunked, or to close); `chunked`: the body goes out in chunks we frame; `keep_alive` False:
# the connection closes after this response. A tuple rather than a class: mypyc returns a
# fixed-length tuple to a native caller unboxed, where an object costs ~300 instructions to
# allocate and free per response.
ResponseHead = tuple[bytes, int | None, bool, bool]


def encode_head(
    status: int,
    headers: Iterable[Any],  # the app's (name, value) pairs: checked below, not by type
    defaults: DefaultHeaders,
    *,
    http10: bool,
    keep_alive: bool,
    body_length: int | None,
    send_body: bool,
    request_id_header: bytes = b"",
    request_id: bytes = b"",
) -> ResponseHead:
    """Encode the head of a response.

    `body_length` is the whole body's length when it is already known (the first body message
    said `more_body=False`), else None (a stream). `send_body` is False for HEAD requests and
    for statuses that carry no body. `keep_alive` is whether the request allows reuse. A
    non-empty `request_id` goes out in a `request_id_header` line (formatted into the head
    here: a line built apart costs one more bytes object).
    Runs once per response (mypyc passes the keywords positionally).
    """
    first = status_line(status)
    # Each field is formatted onto the ones before it (mypyc builds `b"%s..." % (...)` of
    # bytes in one allocation), and the head by one more. A response has few fields: a list
    # of lines joined at the end costs twice as much. Past _FORMATTED_FIELDS, where copying the
    # fields so far each time would grow with their square, the rest go to a list.
    fields = b""
    more: list[bytes] | None = None
    count = 0
    content_length: int | None = None
    app_chunked = has_server = has_date = False
    for field in headers:
        # A tuple (as nearly every app sends) is read by index: unpacked, it is iterated.
        if type(field) is tuple and len(field) == 2:
            raw_name, raw_value = field[0], field[1]
        else:
            raw_name, raw_value = field
        kind = _name_kind(raw_name)
        # Typed from here (the checks above made sure), so the line below is one allocation.
        name: bytes = raw_name
        value: bytes = raw_value if type(raw_value) is bytes else _as_bytes(raw_value)
        if kind == CONTENT_LENGTH:
            content_length = _parse_content_length(value)  # digits only: nothing to scan
        elif 13 in value or 10 in value or 0 in value:
            raise InvalidResponseHead("CR, LF or NUL in a response header")
        elif kind != PLAIN:
            if kind == CONNECTION:
                if b"close" in value.lower():
                    keep_alive = False
                continue  # we write the one connection line ourselves, below
            elif kind == TRANSFER_ENCODING:
                app_chunked = True
                continue  # we frame chunked bodies ourselves
            elif kind == SERVER:
                has_server = True
            else:
                has_date = True
        count += 1
        if count <= _FORMATTED_FIELDS:
            fields = b"%s%s: %s\r\n" % (fields, name, value)
        else:
            if more is None:
                more = [fields]
            more.append(b"%s: %s\r\n" % (name, value))
    if has_server or has_date:
        defaults_block = defaults.without(server=has_server, date=has_date)
    else:
        defaults_block = defaults.block

    chunked = False
    framing = b""
    if status >= 200 and status != 204 and status != 304:
        if content_length is None and body_length is not None and not app_chunked:
            content_length = body_length
            framing = b"content-length: %d\r\n" % body_length
        elif content_length is None and send_body:
            if http10:
                keep_alive = False  # HTTP/1.0 has no chunked: the body ends when we close
            else:
                chunked = True
                framing = b"transfer-encoding: chunked\r\n"
    if not keep_alive:
        ending = b"connection: close\r\n\r\n"
    elif http10:
        ending = b"connection: keep-alive\r\n\r\n"
    else:
        ending = b"\r\n"
    if more is not None:
        fields = b"".join(more)
    if request_id:
        data = b"%s%s%s%s: %s\r\n%s%s" % (
            first, fields, defaults_block, request_id_header, request_id, framing, ending
        )  # fmt: skip
    else:
        data = b"%s%s%s%s%s" % (first, fields, defaults_block, framing, ending)
    return data, content_length, chunked, keep_alive


def _as_bytes(value: object) -> bytes:
    """A header value that is not `bytes`: a bytes-like one (bytearray, memoryview) is taken, as
    uvicorn takes it; anything else is refused."""
    try:
        return memoryview(value).tobytes()  # type: ignore[arg-type]
    except TypeError:
        raise InvalidResponseHead("header names and values must be bytes") from None


# Fields a trailer section must not carry (RFC 9110 section 6.5.1: framing, routing, and what
# the recipient needs before the body).
_NOT_IN_TRAILERS: Final = frozenset(
    (b"content-length", b"transfer-encoding", b"connection", b"host", b"te", b"trailer",
     b"content-type", b"content-encoding", b"content-range", b"set-cookie", b"authorization")
)  # fmt: skip


def trailer_fields(headers: Iterable[Any]) -> list[tuple[bytes, bytes]]:
    """The app's trailer fields, checked as strictly as a head's, names lowercased."""
    fields = []
    for name, value in headers:
        _kind_of(name)  # a token, as bytes
        lowered = name.lower()
        if lowered in _NOT_IN_TRAILERS:
            raise InvalidResponseHead(f"{name!r} is not allowed in trailers")
        fields.append((lowered, field_value(value)))
    return fields


def encode_early_hints(links: Iterable[Any]) -> bytes:
    """A 103 (Early Hints) response with one Link line per link; b"" for no links."""
    lines = [b"link: %s\r\n" % field_value(link) for link in links]
    if not lines:
        return b""
    return b"HTTP/1.1 103 Early Hints\r\n" + b"".join(lines) + b"\r\n"


def field_value(value: object) -> bytes:
    if type(value) is not bytes:
        raise InvalidResponseHead(f"field values must be bytes, not {value!r}")
    if 13 in value or 10 in value or 0 in value:  # CR, LF, NUL: see the module's docstring
        raise InvalidResponseHead("CR, LF or NUL in a response field")
    return value


# Connection-specific fields: HTTP/2 forbids them (RFC 9113 section 8.2.2), the framing is its own.
_CONNECTION_SPECIFIC: Final = frozenset((b"keep-alive", b"proxy-connection", b"upgrade"))
# An app's header names as an HTTP/2 HEADERS frame carries them, by the app's spelling:
# lowercased (HTTP/2 requires it), or b"" for a connection-specific name, which is dropped.
# Filled beside _NAME_KINDS (a name gets here once it was checked), and as bounded.
_H2_NAMES: Final[dict[bytes, bytes]] = {}

# A response head as HTTP/2 fields, and the Content-Length the app set (None: it set none). A
# tuple, as ResponseHead is: returned to a native caller unboxed.
ResponseFields = tuple[list[tuple[bytes, bytes]], int | None]


def response_fields(
    status: int,
    headers: Iterable[Any],  # the app's (name, value) pairs: checked below, not by type
    defaults: DefaultHeaders,
    *,
    body_length: int | None,
    extra: tuple[bytes, bytes] | None = None,
) -> ResponseFields:
    """The app's headers for an HTTP/2 HEADERS frame: names checked and lowercased (HTTP/2
    requires it), values checked, connection-specific fields dropped; then the server's
    defaults and `extra` (the request id), and a Content-Length when the body's length is
    known and the app set none. Runs once per response."""
    status_line(status)  # checks the status
    fields: list[tuple[bytes, bytes]] = []
    content_length: int | None = None
    has_server = has_date = False
    for field in headers:
        # Read as encode_head reads a field, and inline as there: a function that returned
        # the pair cost about 120 instructions a field (bench/README.md).
        if type(field) is tuple and len(field) == 2:
            raw_name, raw_value = field[0], field[1]
        else:
            raw_name, raw_value = field
        kind = _name_kind(raw_name)
        name: bytes = raw_name  # checked by _name_kind
        value = field_value(raw_value)
        if kind == CONTENT_LENGTH:
            content_length = _parse_content_length(value)
        elif kind in (CONNECTION, TRANSFER_ENCODING):
            continue
        elif kind == SERVER:
            has_server = True
        elif kind == DATE:
            has_date = True
        lowered = _H2_NAMES.get(name)
        if lowered is None:
            lowered = _h2_name(name)
        if not lowered:
            continue
        # The app's own pair when HTTP/2 takes it as it is (a lowercase name): no new tuple.
        fields.append(field if lowered is name and type(field) is tuple else (lowered, value))
    fields.extend(defaults.fields(server=has_server, date=has_date))
    if extra is not None:
        fields.append(extra)
    if content_length is None and body_length is not None and not no_body_allowed(status):
        fields.append((b"content-length", b"%d" % body_length))
    return fields, content_length


def _h2_name(name: bytes) -> bytes:
    """`name` (checked) as HTTP/2 sends it: lowercased, or b"" where HTTP/2 forbids it."""
    lowered = name.lower()
    if lowered in _CONNECTION_SPECIFIC:
        lowered = b""
    elif lowered == name:
        lowered = name  # the app's object: response_fields then keeps the app's pair
    if len(_H2_NAMES) < _NAME_KINDS_LIMIT:
        _H2_NAMES[name] = lowered
    return lowered


def _parse_content_length(value: bytes) -> int:
    # Digit by digit: an app's value is a new object each response, whose hash and a dict
    # lookup, or int() of bytes, cost several times reading its few digits.
    size = len(value)
    if 0 < size <= _LENGTH_DIGITS:
        length = 0
        for index in range(size):
            digit = value[index] - 48
            if digit < 0 or digit > 9:
                raise InvalidResponseHead(f"invalid content-length {value!r}")
            length = length * 10 + digit
        return length
    if not value.isdigit():
        raise InvalidResponseHead(f"invalid content-length {value!r}")
    return int(value)


def _name_kind(name: Any) -> int:  # Any: the app may have sent anything
    """What a header name means (PLAIN, CONTENT_LENGTH...): remembered, or checked now."""
    kind = _NAME_KINDS.get(name, -1) if type(name) is bytes else -1
    return kind if kind >= 0 else _kind_of(name)


def _kind_of(name: object) -> int:  # object: the app may have sent anything
    """Check a header name not seen before, and say what it means (PLAIN, CONTENT_LENGTH...)."""
    if type(name) is not bytes or _TOKEN.fullmatch(name) is None:
        raise InvalidResponseHead(f"invalid header name {name!r}")
    kind = _FRAMING_HEADERS.get(name.lower(), PLAIN)
    if len(_NAME_KINDS) < _NAME_KINDS_LIMIT:
        _NAME_KINDS[name] = kind
    return kind


def error_response(status: int, defaults: DefaultHeaders, *, head_only: bool = False) -> bytes:
    """A complete response the server sends on its own (400, 408, 413, ...), closing after;
    to a HEAD request, the head alone (with the length the body would have had)."""
    phrase = HTTPStatus(status).phrase.encode("ascii")
    return b"".join(
        (
            STATUS_LINES[status],
            defaults.block,
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(phrase),
            b"connection: close\r\n\r\n",
            b"" if head_only else phrase,
        )
    )
