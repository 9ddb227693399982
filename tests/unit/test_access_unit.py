"""The access-log line, its timestamps, the line buffer and the logging setup, without a
server: RequestFinished records in, bytes out."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog

from monoceros.observe import Observers
from monoceros.observe import logging as observe_logging
from monoceros.observe.access import (
    SCHEMAS,
    AccessLog,
    Timestamps,
    number_text,
    render_request,
    seconds_pieces,
)
from monoceros.observe.literals import (
    MAX_LITERAL_LENGTH,
    MAX_LITERALS,
    MAX_ORIGIN_LENGTH,
    Literals,
)
from monoceros.observe.logging import add_request_context, configure_logging
from monoceros.observe.metrics import HttpMetrics, snapshot_of
from monoceros.observe.output import FLUSH_THRESHOLD, LineBuffer
from monoceros.protocols.events import RequestFinished, TraceContext, current_exchange
from tests.utils import Recorder

# A time as Timestamps.at() gives it to the line.
NEW_YEAR = (b"2026-01-01T00:00:00.", b"000", b"000")
# When a request ended, as time.time_ns() gives it: 2026-01-01T00:00:00.123456Z.
ENDED = 1_767_225_600_123_456_789

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def record(
    headers: list[tuple[bytes, bytes]] | None = None,
    status: int = 200,
    outcome: str = "complete",
    client: tuple[str, int] | None = ("203.0.113.7", 0),
    trace: TraceContext | None = None,
    error_type: str | None = None,
    peer: tuple[str, int] | None = ("127.0.0.1", 4321),
    request_id: str | None = "rid-1",
    started_as: tuple[str, str] | None = None,  # (method, scheme), if not the scope's
    **scope: Any,
) -> RequestFinished:
    full_scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "query_string": b"",
        "headers": headers if headers is not None else [(b"host", b"example.com")],
        "scheme": "https",
        "http_version": "1.1",
        "client": client,
        **scope,
    }
    method, scheme = started_as or (full_scope["method"], full_scope["scheme"])
    return RequestFinished(
        full_scope,
        method,
        scheme,
        status,
        outcome,
        0.0123456789,
        10,
        20,
        peer,
        request_id,
        trace,
        error_type,
    )


# -- fields -------------------------------------------------------------------------------------


def request_fields(record: Any) -> dict[str, Any]:
    """The request's own fields: the line minus what every log line carries."""
    rendered = render_request(record, NEW_YEAR, b"4242", Literals())
    assert rendered.count(b"\n") == 1 and rendered.endswith(b"\n")
    line = json.loads(rendered)
    assert (line.pop("timestamp"), line.pop("logger"), line.pop("event"), line.pop("pid")) == (
        "2026-01-01T00:00:00.000000Z",
        "monoceros.access",
        "request",
        4242,
    )
    assert line.pop("level") in ("info", "error")
    return line


def test_request_fields() -> None:
    fields = request_fields(
        record(
            headers=[
                (b"host", b"example.com"),
                (b"user-agent", b"caf\xe9"),
                (b"referer", b"http://r/"),
            ],
            path="/a\nb",
            query_string=b'x=%0a&y="',
        )
    )
    assert fields == {
        "method": "GET",
        "path": "/a\nb",
        "query": 'x=%0a&y="',
        "status": 200,
        "outcome": "complete",
        "duration": 0.012346,
        "body_bytes_received": 10,
        "body_bytes_sent": 20,
        "client": "203.0.113.7",
        "client_port": None,  # a client named by a proxy header, without a port
        "peer": "127.0.0.1",
        "peer_port": 4321,
        "scheme": "https",
        "host": "example.com",
        "http_version": "1.1",
        "user_agent": "caf\xe9",
        "referer": "http://r/",
        "request_id": "rid-1",
        "trace_id": None,
        "span_id": None,
        "error_type": None,
    }


@pytest.mark.parametrize(
    ("client", "peer", "shown"),
    [
        pytest.param(
            ("2001:db8::7", 0), ("::1", 50266), ("2001:db8::7", None, "::1", 50266), id="ipv6"
        ),
        pytest.param(
            ("203.0.113.7", 4711), None, ("203.0.113.7", 4711, None, None), id="unix-socket"
        ),
    ],
)
def test_addresses_and_ports_are_apart(client: Any, peer: Any, shown: tuple[Any, ...]) -> None:
    """An IPv6 address followed by `:port` reads as a longer address: they are two fields."""
    rec = record(client=client, peer=peer)
    fields = request_fields(rec)
    assert (fields["client"], fields["client_port"], fields["peer"], fields["peer_port"]) == shown


def test_trace_context_and_error_type() -> None:
    trace = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
    fields = request_fields(record(status=500, outcome="error", trace=trace, error_type="KeyError"))
    assert (fields["trace_id"], fields["span_id"]) == trace
    assert fields["error_type"] == "KeyError"
    assert request_fields(record(status=503))["error_type"] == "503"  # a server error status
    assert request_fields(record(status=404))["error_type"] is None


@pytest.mark.parametrize(
    ("status", "outcome", "logged"),
    [
        pytest.param(0, "disconnected", 499, id="gone-before-response"),
        pytest.param(200, "disconnected", 200, id="gone-mid-response"),
        pytest.param(500, "error", 500, id="error"),
    ],
)
def test_status_of_a_disconnect(status: int, outcome: str, logged: int) -> None:
    fields = request_fields(record(status=status, outcome=outcome))
    assert (fields["status"], fields["outcome"]) == (logged, outcome)


def test_missing_values_are_null() -> None:
    fields = request_fields(record(headers=[], client=None))
    assert fields["host"] is None
    assert fields["user_agent"] is None
    assert fields["referer"] is None
    assert fields["client"] is fields["client_port"] is None


# -- the JSON line ------------------------------------------------------------------------------


def test_access_log_writes_one_escaped_json_line() -> None:
    stream = io.BytesIO()
    log = AccessLog(LineBuffer(stream))
    hostile = '"}\n{"forged": true, "x": "\r\x00\x1b'
    log.request(
        record(
            headers=[(b"user-agent", hostile.encode("latin-1"))],
            path=hostile,
            query_string=hostile.encode("latin-1"),
        ),
        ENDED,
    )
    data = stream.getvalue()
    assert data.count(b"\n") == 1 and data.endswith(b"\n")
    line = json.loads(data)
    assert line["path"] == line["query"] == line["user_agent"] == hostile
    assert "forged" not in line
    assert (line["level"], line["logger"], line["event"]) == ("info", "monoceros.access", "request")
    assert TIMESTAMP.fullmatch(line["timestamp"])
    assert isinstance(line["pid"], int)


def test_repeated_values_come_out_the_same_each_time() -> None:
    """Literals of repeating values are cached: a hostile one must stay escaped on reuse."""
    literals = Literals()
    hostile = b'"}\n{"forged": 1, "\xff'
    rec = record(
        headers=[(b"host", b"a.example"), (b"user-agent", hostile)],
        query_string=hostile,
        path=hostile.decode("latin-1"),
    )
    first, second = (render_request(rec, NEW_YEAR, b"1", literals) for _ in range(2))
    assert first == second
    line = json.loads(first)
    assert line["user_agent"] == line["query"] == line["path"] == hostile.decode("latin-1")
    assert line["host"] == "a.example"


def test_unicode_and_long_values_round_trip() -> None:
    literals = Literals()
    long_agent = b"x" * (MAX_LITERAL_LENGTH * 4)
    rec = record(headers=[(b"user-agent", long_agent)], path="/caf\u00e9/\u2603")
    for _ in range(2):
        line = json.loads(render_request(rec, NEW_YEAR, b"1", literals))
        assert line["path"] == "/caf\u00e9/\u2603"
        assert line["user_agent"] == long_agent.decode()


def test_literals_are_bounded() -> None:
    literals = Literals()
    for number in range(MAX_LITERALS + 10):
        assert literals.header(b"agent-%d" % number) == b'"agent-%d"' % number
        assert literals.text(f"m-{number}", literals.last_method) == b'"m-%d"' % number
        assert literals.path(f"/items/{number}") == b'"/items/%d"' % number
        assert literals.address(("10.0.0.1", number + 1)) == (b'"10.0.0.1"', b"%d" % (number + 1))
        assert literals.host(b"h%d.example:80" % number) == (b'"h%d.example"' % number, b"80")
    long_host = "h" * MAX_LITERAL_LENGTH
    assert literals.address((long_host, 1)) == (b'"%s"' % long_host.encode(), b"1")
    assert literals.path("/" + long_host) == b'"/%s"' % long_host.encode()  # not remembered
    for cache in (literals._headers, literals._texts, literals._paths):
        assert 0 < len(cache) <= MAX_LITERALS
        assert all(len(literal) <= MAX_LITERAL_LENGTH for literal in cache.values())
    for pairs in (literals._addresses, literals._hosts):
        assert 0 < len(pairs) <= MAX_LITERALS
        assert all(len(pair[0]) <= MAX_LITERAL_LENGTH for pair in pairs.values())
    assert literals.header(None) == b"null"
    assert literals.address(None) == literals.host(None) == (b"null", b"null")


def test_each_field_remembers_its_own_last_text() -> None:
    """A field's last literal answers for the very same str only: another value, or what an
    app put in the scope that is no str (a list it may change), is encoded as it is now."""
    literals = Literals()
    get, post = "GET", "".join(["PO", "ST"])
    for method, expected in ((get, b'"GET"'), (get, b'"GET"'), (post, b'"POST"'), (get, b'"GET"')):
        assert literals.text(method, literals.last_method) == expected
        assert literals.text("http", literals.last_scheme) == b'"http"'
    assert literals.text(None, literals.last_version) == b"null"
    assert literals.text("1.1", literals.last_version) == b'"1.1"'
    version = ["1.1"]
    assert literals.text(version, literals.last_version) == b"\"['1.1']\""
    version[0] = "2"
    assert literals.text(version, literals.last_version) == b"\"['2']\""
    # Lines of alternating requests through one Literals, as a server renders them.
    for method, outcome, scheme in [("GET", "complete", "https"), ("POST", "error", "http")] * 2:
        rec = record(method=method, outcome=outcome, scheme=scheme, started_as=(method, scheme))
        line = json.loads(render_request(rec, NEW_YEAR, b"1", literals))
        assert (line["method"], line["outcome"], line["scheme"]) == (method, outcome, scheme)


@pytest.mark.parametrize(
    ("host", "parts"),
    [
        (b"example.com", (b'"example.com"', b"null")),
        (b"example.com:8443", (b'"example.com"', b"8443")),
        (b"[2001:db8::1]:8000", (b'"2001:db8::1"', b"8000")),
        (b"[::1]", (b'"::1"', b"null")),
        (b"example.com:http", (b'"example.com"', b"null")),
        (b"example.com:\xb2", (b'"example.com"', b"null")),  # a digit to isdigit(), not JSON's
    ],
)
def test_host_header_split_for_the_schemas_that_name_its_parts(
    host: bytes, parts: tuple[bytes, bytes]
) -> None:
    assert Literals().host(host) == parts


def test_an_address_an_app_gave_is_not_remembered_for_the_one_it_equals() -> None:
    """("h", 80.0) == ("h", 80): remembered, the app's float port would be logged for every
    later client at that address; looked up, it would be logged as the server's."""
    literals = Literals()
    assert literals.address(("203.0.113.7", 8080.0)) == (b'"203.0.113.7"', b"null")
    assert literals.address(("203.0.113.7", True)) == (b'"203.0.113.7"', b"null")
    assert literals.address(("203.0.113.7", 8080)) == (b'"203.0.113.7"', b"8080")
    # Nor found as the server's, once that is remembered.
    assert literals.address(("203.0.113.7", 8080.0)) == (b'"203.0.113.7"', b"null")


def test_a_connections_lines_follow_what_each_of_its_requests_came_with() -> None:
    """The fields from the client to the User-Agent are rendered once per connection and kept
    by its peer: every request whose values differ in any way (a proxy's connection carrying
    other clients, another User-Agent, an app's values that equal the server's but are written
    otherwise) must be written as if nothing had been kept."""
    peer = ("127.0.0.1", 4321)
    agent = [(b"host", b"a.example:8443"), (b"user-agent", b"curl/8")]
    varied: list[dict[str, Any]] = [
        {},
        {},
        {"headers": [(b"host", b"a.example:8443"), (b"user-agent", b"curl/9")]},
        {"headers": [(b"host", b"b.example"), (b"user-agent", b"curl/9")]},
        {"headers": [(b"host", b"b.example")]},
        {"client": ("198.51.100.2", 8080)},
        {"client": ("198.51.100.2", 8080.0)},  # equal to the one before, written otherwise
        {"client": ("198.51.100.2", 8080)},
        {"client": ("198.51.100.2", True), "headers": [(b"host", bytearray(b"b.example"))]},
        {"client": ("198.51.100.2", 1)},
        {"client": ["198.51.100.2", 7]},
        {"client": None},
        {"started_as": ("GET", "http")},
        {"http_version": "2"},
        {"http_version": ["1.1"]},
        {"headers": [(b"host", b"a.example:8443"), (b"user-agent", b'"}\n{"forged":1')]},
        {},
    ]
    for schema in range(len(SCHEMAS)):
        kept = Literals()
        for changes in varied:
            values = {"headers": agent, "client": ("203.0.113.7", 0), "peer": peer, **changes}
            rec = record(**values)
            line = render_request(rec, NEW_YEAR, b"1", kept, schema)
            assert line == render_request(rec, NEW_YEAR, b"1", Literals(), schema), changes
            json.loads(line)
        assert len(kept.origins) == 1  # one peer


def test_origin_fields_kept_are_bounded() -> None:
    literals = Literals()
    for port in range(MAX_LITERALS + 10):
        render_request(record(peer=("127.0.0.1", port + 1)), NEW_YEAR, b"1", literals)
    assert 0 < len(literals.origins) <= MAX_LITERALS
    long_agent = [(b"user-agent", b"x" * MAX_ORIGIN_LENGTH)]
    line = render_request(
        record(headers=long_agent, peer=("10.0.0.9", 1)), NEW_YEAR, b"1", literals
    )
    assert json.loads(line)["user_agent"] == "x" * MAX_ORIGIN_LENGTH
    assert ("10.0.0.9", 1) not in literals.origins
    assert all(len(memo.fields) <= MAX_ORIGIN_LENGTH for memo in literals.origins.values())


def test_values_an_app_put_in_the_scope_are_still_logged() -> None:
    """Middleware may replace scope values with other types: the line is still written."""
    literals = Literals()
    rec = record(
        headers=[(b"host", bytearray(b"h.example")), (b"user-agent", memoryview(b"ua"))],
        query_string=bytearray(b"a=1"),
        method=None,
        scheme=7,
        started_as=("GET", "https"),  # as the request started: the server's
    )
    line = json.loads(render_request(rec, NEW_YEAR, b"1", literals))
    assert (line["host"], line["user_agent"], line["query"]) == ("h.example", "ua", "a=1")
    assert (line["method"], line["scheme"]) == ("GET", "https")


class HeaderName(bytes):
    pass


def released() -> memoryview:
    view = memoryview(b"host")
    view.release()
    return view


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([[b"host", b"h.example"], [b"user-agent", b"ua"]], id="lists"),
        pytest.param(((b"host", b"h.example"), (b"user-agent", b"ua")), id="a-tuple-of-pairs"),
        pytest.param(
            [(bytearray(b"host"), b"h.example"), (memoryview(b"user-agent"), b"ua")],
            id="bytearray-names",
        ),
        pytest.param(
            [(HeaderName(b"host"), b"h.example"), (b"user-agent", b"ua")], id="a-bytes-subclass"
        ),
        pytest.param(
            [("host", b"other"), (b"host", b"h.example"), (b"user-agent", b"ua")],
            id="a-str-name-is-not-a-field",
        ),
        pytest.param(
            [(released(), b"other"), (b"host", b"h.example"), (b"user-agent", b"ua")],
            id="a-released-memoryview-is-not-a-field",
        ),
    ],
)
def test_header_fields_an_app_reshaped_are_still_found(headers: Any) -> None:
    """ASGI allows any iterable of two-item iterables; ours are a list of tuples."""
    fields = request_fields(record(headers=headers))
    assert (fields["host"], fields["user_agent"], fields["referer"]) == ("h.example", "ua", None)


def test_header_fields_from_a_generator_are_found() -> None:
    generated = record()
    generated.scope["headers"] = (pair for pair in [(b"host", b"g.example")])
    assert request_fields(generated)["host"] == "g.example"


def test_records_say_what_they_are() -> None:
    """A test that fails on a record prints it: the request, not an object address."""
    failed = record(status=500, outcome="error", error_type="KeyError", path="/items/1")
    assert repr(failed) == "<RequestFinished '/items/1' 500 GET error KeyError 0.012346s id=rid-1>"


@pytest.mark.parametrize(
    "request_id",
    ["0af7651916cd43dd8448eb211c80319c", 'a"b', "a\\b", '\\"}{', "~!#$%&'()*+,-./:;<=>?@[]^_`{|}"],
)
def test_request_ids_are_json_whatever_visible_ascii_they_hold(request_id: str) -> None:
    """A trusted proxy's id may hold any visible ASCII (valid_request_id): quotes and
    backslashes are escaped, the rest written as it is."""
    fields = request_fields(record(request_id=request_id))
    assert fields["request_id"] == request_id
    assert request_fields(record(request_id=None))["request_id"] is None


@pytest.mark.parametrize("status", [100, 204, 599, 999])
def test_statuses_are_written_as_numbers(status: int) -> None:
    assert request_fields(record(status=status))["status"] == status
    # The app failed before it started a response: no status was sent, and none is made up.
    assert request_fields(record(status=0, outcome="error"))["status"] == 0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, b"0.000000"),
        (0.0123456789, b"0.012346"),
        (0.0000004, b"0.000000"),
        (0.0000005, b"0.000001"),
        (0.9999996, b"1.000000"),
        (0.000999, b"0.000999"),
        (0.001, b"0.001000"),
        (3.010203, b"3.010203"),
        (61.25, b"61.250000"),
        (999.9999996, b"1000.000000"),
        (86400.5, b"86400.500000"),
    ],
)
def test_durations_have_six_decimals(seconds: float, text: bytes) -> None:
    whole, millis, micros = seconds_pieces(seconds)
    assert b"%s.%s%s" % (whole, millis, micros) == text  # as the line's templates join them
    assert json.loads(text) == pytest.approx(seconds, abs=5e-7)


@pytest.mark.parametrize("number", [0, 7, 99, 100, 999, 1000, 16_384, 10**12, -1])
def test_numbers_are_written_as_their_digits(number: int) -> None:
    assert number_text(number) == str(number).encode()  # looked up below 1000, else formatted


def test_an_error_is_logged_at_level_error() -> None:
    stream = io.BytesIO()
    AccessLog(LineBuffer(stream)).request(record(status=500, outcome="error"), ENDED)
    assert json.loads(stream.getvalue())["level"] == "error"


def test_timestamps_are_rfc3339_utc() -> None:
    stamps = Timestamps()
    # As the templates join them.
    first, second = (b"%s%s%sZ" % stamps.at(time.time_ns()) for _ in range(2))
    for stamp in (first, second):
        assert TIMESTAMP.fullmatch(stamp.decode()), stamp
        parsed = datetime.fromisoformat(stamp.decode())
        assert parsed.utcoffset() == timedelta(0)
        assert abs(parsed - datetime.now(UTC)) < timedelta(minutes=1)
    assert first <= second


def test_a_line_is_stamped_when_its_request_ended_not_when_it_is_written() -> None:
    stream = io.BytesIO()
    stamps = Timestamps()
    log = AccessLog(LineBuffer(stream))
    log.request(record(), ENDED)
    log.request(record(), ENDED + 2_000_000_000)  # two seconds on: a new date part
    log.request(record(), ENDED - 86_400_000_000_000)  # the day before: and back
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["timestamp"] for line in lines] == [
        "2026-01-01T00:00:00.123456Z",
        "2026-01-01T00:00:02.123456Z",
        "2025-12-31T00:00:00.123456Z",
    ]
    assert b"%s%s%sZ" % stamps.at(ENDED + 999) == b"2026-01-01T00:00:00.123457Z"


# -- the line buffer ----------------------------------------------------------------------------


def test_without_a_loop_every_write_goes_out() -> None:
    stream = io.BytesIO()
    buffer = LineBuffer(stream)
    buffer.write(b"one\n")
    assert stream.getvalue() == b"one\n"


def test_with_a_loop_lines_go_out_at_the_end_of_the_turn() -> None:
    stream = io.BytesIO()
    buffer = LineBuffer(stream)

    async def main() -> list[bytes]:
        buffer.attach(asyncio.get_running_loop())
        seen = []
        buffer.write(b"one\n")
        buffer.write(b"two\n")
        seen.append(stream.getvalue())  # still in this turn: nothing written yet
        await asyncio.sleep(0)
        seen.append(stream.getvalue())
        buffer.write(b"big" * FLUSH_THRESHOLD + b"\n")  # past the threshold: at once
        seen.append(stream.getvalue()[-4:])
        buffer.write(b"last\n")
        buffer.close()  # what is left goes out
        seen.append(stream.getvalue()[-5:])
        return seen

    assert asyncio.run(main()) == [b"", b"one\ntwo\n", b"big\n", b"last\n"]


def test_finished_requests_are_tallied_and_logged_together_in_the_next_turn() -> None:
    stream = io.BytesIO()
    metrics = HttpMetrics()
    embedders = Recorder()
    # No loop attached to the output: a line rendered is a line in the stream at once.
    observers = Observers(metrics, AccessLog(LineBuffer(stream)), embedders)

    def tallied() -> int:
        return sum(sum(series.duration) for series in snapshot_of(metrics).series.values())

    def paths() -> list[str]:
        return [json.loads(line)["path"] for line in stream.getvalue().splitlines()]

    async def main() -> list[Any]:
        seen: list[Any] = []
        for path in ("/a", "/b", "/c"):
            observers.request_finished(record(path=path))
            time.sleep(0.002)  # apart, as their timestamps must be
        seen.append((len(embedders.requests), tallied(), paths()))  # the embedder's at once
        await asyncio.sleep(0)  # the next turn
        seen.append((tallied(), paths()))
        observers.request_finished(record(path="/d"))
        # A request the server answered itself is logged at once: the batch before it first.
        observers.request_rejected(record(path="/bad", status=400, outcome="rejected"), "400")
        seen.append((tallied(), paths()[-2:]))
        observers.request_finished(record(path="/e"))
        observers.observe_finished()  # as the server does before it exits
        seen.append((tallied(), paths()[-1]))
        return seen

    started = datetime.now(UTC)
    at_once, next_turn, rejected, at_exit = asyncio.run(main())
    assert at_once == (3, 0, [])
    assert next_turn == (3, ["/a", "/b", "/c"])
    assert rejected == (4, ["/d", "/bad"])
    assert at_exit == (5, "/e")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    stamps = [datetime.fromisoformat(line["timestamp"]) for line in lines]
    assert started <= stamps[0] < stamps[1] < stamps[2]  # each its own request's end
    assert stamps == sorted(stamps)


REQUEST_VARIABLE: ContextVar[str] = ContextVar("REQUEST_VARIABLE")


class ContextNoting(io.BytesIO):
    """A stream that notes the request variable's value in the context each write ran in."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[str | None] = []

    def write(self, data: Any) -> int:
        self.seen.append(REQUEST_VARIABLE.get(None))
        return super().write(data)


def test_a_batch_is_observed_in_a_context_of_its_own_not_the_first_requests() -> None:
    stream = ContextNoting()
    observers = Observers(None, AccessLog(LineBuffer(stream)))

    async def request() -> None:  # as the app's Task, whose send() finishes the request
        REQUEST_VARIABLE.set("the first request's")
        observers.request_finished(record())

    async def main() -> None:
        await asyncio.create_task(request())
        await asyncio.sleep(0)

    asyncio.run(main())
    assert stream.seen == [None]


class NotingHandler:
    """The access logger's filters and handlers (observe/access_logger.py), noting the
    context they ran in."""

    def __init__(self) -> None:
        self.seen: list[str | None] = []

    def request(self, record: RequestFinished, line: bytes) -> None:
        self.seen.append(REQUEST_VARIABLE.get(None))


def test_through_logging_each_request_is_observed_as_it_finishes_in_its_own_context() -> None:
    handler = NotingHandler()
    observers = Observers(HttpMetrics(), AccessLog(LineBuffer(io.BytesIO()), through=handler))
    assert not observers.batched

    async def request(name: str) -> list[str | None]:
        REQUEST_VARIABLE.set(name)
        observers.request_finished(record())
        return handler.seen[:]  # at once, not a turn later

    async def main() -> list[list[str | None]]:
        return [await asyncio.create_task(request(name)) for name in ("one", "two")]

    assert asyncio.run(main()) == [["one"], ["one", "two"]]


def test_held_lines_go_out_together_at_release_not_a_turn_later() -> None:
    stream = io.BytesIO()
    buffer = LineBuffer(stream)

    async def main() -> list[bytes]:
        buffer.attach(asyncio.get_running_loop())
        buffer.hold()
        buffer.write(b"one\n")
        buffer.write(b"two\n")
        seen = [stream.getvalue()]
        buffer.release()  # one write, now
        seen.append(stream.getvalue())
        buffer.write(b"three\n")  # not held: the end of the turn, as ever
        seen.append(stream.getvalue())
        await asyncio.sleep(0)
        seen.append(stream.getvalue())
        return seen

    assert asyncio.run(main()) == [b"", b"one\ntwo\n", b"one\ntwo\n", b"one\ntwo\nthree\n"]


def test_structlog_lines_from_another_thread_go_out_at_once() -> None:
    # An app's structlog logger in a thread pool (FastAPI's sync endpoints): the buffer and
    # the loop's call_soon are the loop thread's alone, so such a line is written then and
    # there, not left for a flush scheduled from the wrong thread.
    stream = io.BytesIO()
    buffer = LineBuffer(stream)
    writer = observe_logging._TextOutput(buffer)

    async def main() -> tuple[bytes, bytes]:
        buffer.attach(asyncio.get_running_loop())
        writer.write("from the loop\n")  # waits for this turn's end
        thread = threading.Thread(target=writer.write, args=("from a thread\n",))
        thread.start()
        thread.join()  # the loop does not turn meanwhile, as when it is busy
        written_meanwhile = stream.getvalue()
        await asyncio.sleep(0)
        return written_meanwhile, stream.getvalue()

    meanwhile, after = asyncio.run(main())
    assert meanwhile == b"from a thread\n"
    assert after == b"from a thread\nfrom the loop\n"


def test_a_closed_reader_does_not_crash_the_writer() -> None:
    class Broken(io.BytesIO):
        def write(self, data: Any) -> int:
            raise BrokenPipeError

    buffer = LineBuffer(Broken())
    buffer.write(b"lost\n")  # dropped, not raised
    buffer.write(b"also lost\n")


# -- the logging setup --------------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging() is process-wide: put back what it replaces."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    output = observe_logging._output
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        observe_logging._output = output
        structlog.reset_defaults()


class Exchange:
    """An exchange being served, as the log output sees one."""

    def __init__(self, request_id: str | None, trace: TraceContext | None = None) -> None:
        self.request_id = request_id
        self.trace = trace

    def secret_fields(self) -> list[tuple[bytes, bytes]]:
        return []


TRACE = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")


@pytest.mark.parametrize(
    ("exchange", "added"),
    [
        pytest.param(None, {}, id="outside-a-request"),
        pytest.param(Exchange("abc"), {"request_id": "abc"}, id="request-id"),
        pytest.param(
            Exchange(None, TRACE), {"trace_id": TRACE[0], "span_id": TRACE[1]}, id="trace"
        ),
    ],
)
def test_add_request_context(exchange: Exchange | None, added: dict[str, str]) -> None:
    token = current_exchange.set(exchange)
    try:
        assert add_request_context(None, "info", {"event": "x"}) == {"event": "x", **added}
    finally:
        current_exchange.reset(token)


@pytest.mark.usefixtures("restore_logging")
def test_stdlib_records_become_json_lines_with_the_request_context() -> None:
    stream = io.BytesIO()
    configure_logging("info", "json", output=LineBuffer(stream))
    logger = logging.getLogger("some.app")
    logger.info("outside")
    token = current_exchange.set(Exchange("rid-42", TRACE))
    try:
        logger.warning("inside %s", "a request", extra={"order_id": 7, "user": "ada"})
        try:
            raise ValueError("bad\nvalue")
        except ValueError:
            logger.exception("failed")
    finally:
        current_exchange.reset(token)
    logger.debug("filtered out at info")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["outside", "inside a request", "failed"]
    assert "request_id" not in lines[0]
    assert lines[1]["request_id"] == lines[2]["request_id"] == "rid-42"
    assert lines[1]["trace_id"] == lines[2]["trace_id"] == TRACE[0]
    assert (lines[1]["order_id"], lines[1]["user"]) == (7, "ada")  # extra= fields are kept
    assert lines[1]["logger"] == "some.app"
    assert lines[1]["level"] == "warning"
    assert lines[1]["timestamp"].endswith("Z")
    assert "ValueError: bad\nvalue" in lines[2]["exception"]


@pytest.mark.usefixtures("restore_logging")
def test_console_format_is_not_json() -> None:
    stream = io.BytesIO()
    configure_logging("info", "console", output=LineBuffer(stream))
    logging.getLogger("some.app").info("hello %s", "console")
    (line,) = stream.getvalue().decode().splitlines()
    assert "hello console" in line
    with pytest.raises(ValueError):
        json.loads(line)


@pytest.mark.usefixtures("restore_logging")
def test_server_logs_go_through_structlog_too() -> None:
    stream = io.BytesIO()
    configure_logging("info", "json", output=LineBuffer(stream))
    structlog.get_logger("monoceros.test").info("structured", answer=42)
    structlog.get_logger().info("nameless")
    first, second = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert (first["event"], first["answer"], first["level"]) == ("structured", 42, "info")
    assert first["logger"] == "monoceros.test"  # structlog loggers keep their name
    assert "logger" not in second
    line = first
    assert time.time() - datetime.fromisoformat(line["timestamp"]).timestamp() < 60
