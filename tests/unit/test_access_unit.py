"""The access-log line, its timestamps, the line buffer and the logging setup, without a
server: RequestFinished records in, bytes out."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog

from monoceros.observe import logging as observe_logging
from monoceros.observe.access import (
    MAX_LITERAL_LENGTH,
    MAX_LITERALS,
    AccessLog,
    Literals,
    Timestamps,
    render_request,
    seconds_text,
)
from monoceros.observe.logging import add_request_id, configure_logging
from monoceros.observe.output import FLUSH_THRESHOLD, LineBuffer
from monoceros.protocols.events import RequestFinished, current_exchange

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


def record(
    headers: list[tuple[bytes, bytes]] | None = None,
    status: int = 200,
    outcome: str = "complete",
    client: tuple[str, int] | None = ("203.0.113.7", 0),
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
    return RequestFinished(
        full_scope, status, outcome, 0.0123456789, 10, 20, ("127.0.0.1", 4321), "rid-1"
    )


# -- fields -------------------------------------------------------------------------------------


def request_fields(record: Any) -> dict[str, Any]:
    """The request's own fields: the line minus what every log line carries."""
    rendered = render_request(record, b"2026-01-01T00:00:00.000000Z", 4242, Literals())
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
        "bytes_received": 10,
        "bytes_sent": 20,
        "client": "203.0.113.7:0",
        "peer": "127.0.0.1:4321",
        "scheme": "https",
        "host": "example.com",
        "http_version": "1.1",
        "user_agent": "caf\xe9",
        "referer": "http://r/",
        "request_id": "rid-1",
    }


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
    assert fields["client"] is None


# -- the JSON line ------------------------------------------------------------------------------


def test_access_log_writes_one_escaped_json_line() -> None:
    stream = io.BytesIO()
    log = AccessLog(LineBuffer(stream), "json")
    hostile = '"}\n{"forged": true, "x": "\r\x00\x1b'
    log.request(
        record(
            headers=[(b"user-agent", hostile.encode("latin-1"))],
            path=hostile,
            query_string=hostile.encode("latin-1"),
        )
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
    rec = record(headers=[(b"host", b"a.example"), (b"user-agent", hostile)], query_string=hostile)
    first, second = (render_request(rec, b"t", 1, literals) for _ in range(2))
    assert first == second
    line = json.loads(first)
    assert line["user_agent"] == line["query"] == hostile.decode("latin-1")
    assert line["host"] == "a.example"


def test_unicode_and_long_values_round_trip() -> None:
    literals = Literals()
    long_agent = b"x" * (MAX_LITERAL_LENGTH * 4)
    rec = record(headers=[(b"user-agent", long_agent)], path="/caf\u00e9/\u2603")
    for _ in range(2):
        line = json.loads(render_request(rec, b"t", 1, literals))
        assert line["path"] == "/caf\u00e9/\u2603"
        assert line["user_agent"] == long_agent.decode()


def test_literals_are_bounded() -> None:
    literals = Literals()
    for number in range(MAX_LITERALS + 10):
        assert literals.header(b"agent-%d" % number) == b'"agent-%d"' % number
        assert literals.text(f"m-{number}") == b'"m-%d"' % number
        assert literals.address(("10.0.0.1", number)) == b'"10.0.0.1:%d"' % number
    long_host = "h" * MAX_LITERAL_LENGTH
    assert literals.address((long_host, 1)) == b'"%s:1"' % long_host.encode()
    for cache in (literals._headers, literals._texts, literals._addresses):
        assert 0 < len(cache) <= MAX_LITERALS
        assert all(len(literal) <= MAX_LITERAL_LENGTH for literal in cache.values())
    assert literals.header(None) == literals.address(None) == b"null"


def test_values_an_app_put_in_the_scope_are_still_logged() -> None:
    """Middleware may replace scope values with other types: the line is still written."""
    literals = Literals()
    rec = record(
        headers=[(b"host", bytearray(b"h.example")), (b"user-agent", memoryview(b"ua"))],
        query_string=bytearray(b"a=1"),
        method=None,
        scheme=7,
    )
    line = json.loads(render_request(rec, b"t", 1, literals))
    assert (line["host"], line["user_agent"], line["query"]) == ("h.example", "ua", "a=1")
    assert (line["method"], line["scheme"]) == (None, 7)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, b"0.000000"),
        (0.0123456789, b"0.012346"),
        (0.0000004, b"0.000000"),
        (0.0000005, b"0.000001"),
        (0.9999996, b"1.000000"),
        (61.25, b"61.250000"),
    ],
)
def test_durations_have_six_decimals(seconds: float, text: bytes) -> None:
    assert seconds_text(seconds) == text
    assert json.loads(text) == pytest.approx(seconds, abs=5e-7)


def test_an_error_is_logged_at_level_error() -> None:
    stream = io.BytesIO()
    AccessLog(LineBuffer(stream), "json").request(record(status=500, outcome="error"))
    assert json.loads(stream.getvalue())["level"] == "error"


def test_timestamps_are_rfc3339_utc() -> None:
    stamps = Timestamps()
    first = stamps.now().decode()
    second = stamps.now().decode()
    for stamp in (first, second):
        assert TIMESTAMP.fullmatch(stamp), stamp
        parsed = datetime.fromisoformat(stamp)
        assert parsed.utcoffset() == timedelta(0)
        assert abs(parsed - datetime.now(UTC)) < timedelta(minutes=1)
    assert first <= second


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


class Served:
    """An exchange being served, as the log output sees one."""

    def __init__(self, request_id: str | None) -> None:
        self.request_id = request_id

    def secret_fields(self) -> list[tuple[bytes, bytes]]:
        return []


def test_add_request_id_inside_a_request_only() -> None:
    assert add_request_id(None, "info", {"event": "x"}) == {"event": "x"}
    token = current_exchange.set(Served("abc"))
    try:
        assert add_request_id(None, "info", {"event": "x"}) == {"event": "x", "request_id": "abc"}
    finally:
        current_exchange.reset(token)
    token = current_exchange.set(Served(None))  # request ids off
    try:
        assert add_request_id(None, "info", {"event": "x"}) == {"event": "x"}
    finally:
        current_exchange.reset(token)


@pytest.mark.usefixtures("restore_logging")
def test_stdlib_records_become_json_lines_with_the_request_id() -> None:
    stream = io.BytesIO()
    configure_logging("info", "json", output=LineBuffer(stream))
    logger = logging.getLogger("some.app")
    logger.info("outside")
    token = current_exchange.set(Served("rid-42"))
    try:
        logger.warning("inside %s", "a request", extra={"ignored": 1})
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
    (line,) = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert (line["event"], line["answer"], line["level"]) == ("structured", 42, "info")
    assert time.time() - datetime.fromisoformat(line["timestamp"]).timestamp() < 60
