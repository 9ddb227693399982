"""The access log and the process's other log lines, read from a real `monoceros` process.

Every line the process writes must parse with `json.loads` (`json_lines` fails the test on
the first one that does not). A request's access line is found by its request id, which the
server returns in the `x-request-id` response header.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.helpers import TIMEOUT
from tests.integration.observe_app import STREAM_CHUNK, STREAM_CHUNKS
from tests.integration.observe_helpers import (
    ACCESS_LOGGER,
    APP,
    access_lines,
    eventually,
    json_lines,
    scrape,
    start,
    wait_for_access,
)
from tests.integration.test_transports import has_ipv6_loopback
from tests.utils import REPO, ServerProcess, read_until_closed

GENERATED_ID = re.compile(r"[0-9a-f]{32}")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
ACCESS_FIELDS = {
    *("timestamp", "level", "logger", "event", "method", "path", "query", "status", "outcome"),
    *("duration", "body_bytes_received", "body_bytes_sent", "client", "client_port", "peer"),
    *("peer_port", "scheme", "host", "http_version", "user_agent", "referer", "request_id"),
    *("trace_id", "span_id", "error_type", "pid"),
}
# A synchronisation pause for a request sent from another thread; never asserted on.
SETTLE = 0.3


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[ServerProcess, str]]:
    with start() as process:
        url = process.wait_listening(TIMEOUT)
        yield process, url
        process.signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0, process.output
        json_lines(process)  # the shutdown lines too


def line_for(process: ServerProcess, rid: str) -> dict[str, Any]:
    """The one access line of request `rid` (waiting for it to be written)."""

    def probe() -> list[dict[str, Any]] | None:
        found = [line for line in access_lines(process) if line["request_id"] == rid]
        return found or None

    found = eventually(probe, what=f"the access line of {rid} in\n{process.output}")
    time.sleep(0.05)  # would a second line for the same request follow?
    found = [line for line in access_lines(process) if line["request_id"] == rid]
    assert len(found) == 1, found
    return found[0]


def generated_line_for(process: ServerProcess, response: httpx.Response) -> dict[str, Any]:
    """The access line of `response`, whose request id the server generated."""
    rid = response.headers["x-request-id"]
    assert GENERATED_ID.fullmatch(rid)
    return line_for(process, rid)


def raw_exchange(port: int, data: bytes) -> tuple[int, dict[str, str]]:
    """Send one raw request (with `connection: close`); the status and the response headers."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        response = read_until_closed(sock, TIMEOUT)
    head = response.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(head[0].split(" ")[1]), headers


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def get_with_request_id(url: str, given: bytes) -> tuple[int, dict[str, str]]:
    """A raw `GET /` sending `X-Request-ID: <given>`; the status and the response headers."""
    return raw_exchange(
        port_of(url),
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Request-ID: " + given + b"\r\n\r\n",
    )


# -- the fields, by outcome -----------------------------------------------------------------------


def test_fields_of_a_200(server: tuple[ServerProcess, str]) -> None:
    process, url = server
    before = time.time()
    response = httpx.get(
        url + "/?a=1&b=two",
        headers={"user-agent": "tester/1.0", "referer": "http://ref.example/page"},
        timeout=TIMEOUT,
    )
    line = generated_line_for(process, response)
    assert set(line) >= ACCESS_FIELDS
    assert TIMESTAMP.fullmatch(line["timestamp"]), line["timestamp"]
    stamp = datetime.fromisoformat(line["timestamp"])
    assert stamp.utcoffset() == timedelta(0)
    assert abs(stamp - datetime.fromtimestamp(before, UTC)) < timedelta(minutes=5)
    port = port_of(url)
    assert line["level"] == "info"
    assert line["logger"] == ACCESS_LOGGER
    assert line["event"] == "request"
    assert line["method"] == "GET"
    assert line["path"] == "/"
    assert line["query"] == "a=1&b=two"
    assert line["status"] == 200
    assert line["outcome"] == "complete"
    assert isinstance(line["duration"], float) and line["duration"] >= 0
    assert line["body_bytes_received"] == 0
    assert line["body_bytes_sent"] == 2
    assert line["client"] == "127.0.0.1" and line["client_port"] > 0
    assert (line["peer"], line["peer_port"]) == (line["client"], line["client_port"])
    assert line["trace_id"] is line["span_id"] is line["error_type"] is None
    assert line["scheme"] == "http"
    assert line["host"] == f"127.0.0.1:{port}"
    assert line["http_version"] == "1.1"
    assert line["user_agent"] == "tester/1.0"
    assert line["referer"] == "http://ref.example/page"
    assert line["pid"] == process.process.pid


def test_fields_of_a_post_count_bytes_both_ways(server: tuple[ServerProcess, str]) -> None:
    process, url = server
    response = httpx.post(url + "/echo", content=b"z" * 1000, timeout=TIMEOUT)
    line = line_for(process, response.headers["x-request-id"])
    assert (line["method"], line["status"]) == ("POST", 200)
    assert line["body_bytes_received"] == 1000
    assert line["body_bytes_sent"] == 1000
    assert line["user_agent"].startswith("python-httpx/")
    assert line["referer"] is None


def test_fields_of_a_404(server: tuple[ServerProcess, str]) -> None:
    process, url = server
    response = httpx.get(url + "/missing", timeout=TIMEOUT)
    assert response.status_code == 404
    line = line_for(process, response.headers["x-request-id"])
    assert (line["path"], line["status"], line["outcome"], line["level"]) == (
        "/missing",
        404,
        "complete",
        "info",
    )
    assert line["body_bytes_sent"] == len(b"not found")
    assert line["error_type"] is None  # a client error, not a failure


def test_fields_of_a_500_and_its_error_record(server: tuple[ServerProcess, str]) -> None:
    process, url = server
    response = httpx.get(url + "/boom", timeout=TIMEOUT)
    assert response.status_code == 500
    assert "boom" not in response.text  # no traceback for the client
    rid = response.headers["x-request-id"]
    line = line_for(process, rid)
    assert (line["status"], line["outcome"], line["level"]) == (500, "error", "error")
    assert line["body_bytes_sent"] == len(response.content)
    assert line["error_type"] == "RuntimeError"
    # The traceback is logged once, as one JSON line carrying the same request id.
    (error,) = [
        record
        for record in json_lines(process)
        if record.get("request_id") == rid and record.get("logger") != ACCESS_LOGGER
    ]
    assert error["level"] == "error"
    assert error["event"] == "Exception in ASGI application"
    assert "RuntimeError: boom from the app" in error["exception"]


def test_client_gone_before_the_response_is_499(server: tuple[ServerProcess, str]) -> None:
    process, url = server
    marker = uuid.uuid4().hex
    with socket.create_connection(("127.0.0.1", port_of(url)), timeout=TIMEOUT) as sock:
        sock.sendall(f"GET /hang?{marker} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        time.sleep(SETTLE)
    line = eventually(
        lambda: next((x for x in access_lines(process) if x["query"] == marker), None),
        what="the access line of the abandoned request",
    )
    assert (line["status"], line["outcome"]) == (499, "disconnected")
    assert line["body_bytes_sent"] == 0
    assert GENERATED_ID.fullmatch(line["request_id"])


def test_client_gone_mid_response_is_recorded_as_disconnected(
    server: tuple[ServerProcess, str],
) -> None:
    process, url = server
    with httpx.stream("GET", url + "/stream", timeout=TIMEOUT) as response:
        rid = response.headers["x-request-id"]
        next(response.iter_raw())  # the first chunk, then hang up
    line = line_for(process, rid)
    # The head (200) was on the wire; the outcome says the client did not wait for the rest.
    assert line["outcome"] == "disconnected"
    assert line["status"] == 200
    assert len(STREAM_CHUNK) <= line["body_bytes_sent"] < STREAM_CHUNKS * len(STREAM_CHUNK)


def test_the_line_is_written_when_the_response_completes(
    server: tuple[ServerProcess, str],
) -> None:
    process, url = server
    marker = uuid.uuid4().hex
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(httpx.get, f"{url}/slow?seconds=1&m={marker}", timeout=TIMEOUT)
        time.sleep(SETTLE)
        assert not future.done()
        assert not [x for x in access_lines(process) if marker in x["query"]]
        response = future.result(TIMEOUT)
    line = line_for(process, response.headers["x-request-id"])
    assert line["query"] == f"seconds=1&m={marker}"
    # The whole exchange (the app slept 1 s), not the time to the first byte; with a margin,
    # as uvloop's timers may fire a millisecond early.
    assert line["duration"] >= 0.9


# -- log injection --------------------------------------------------------------------------------


def in_path(target: bytes, logged: str, id: str) -> Any:
    """An injection case whose client value is the request path, `logged` once decoded."""
    return pytest.param(target, b"", {}, {"path": logged}, id=id)


def in_header(name: bytes, value: bytes, id: str) -> Any:
    """An injection case whose client value is request header `name`, logged as sent (its
    field is the header's name with `_` for `-`)."""
    field = name.decode().replace("-", "_")
    return pytest.param(b"/", b"", {name: value}, {field: value.decode("latin-1")}, id=id)


INJECTIONS = [
    in_path(b'/a%0a{"forged":true}', '/a\n{"forged":true}', "newline-in-path"),
    in_path(
        b"/%22%2C%22status%22%3A200%2C%22forged%22%3A%22",
        '/","status":200,"forged":"',
        "quotes-in-path",
    ),
    in_path(b"/%0d%0a%00%1b[31m%5c", "/\r\n\x00\x1b[31m\\", "controls-in-path"),
    in_path(b'/a"b\\c', '/a"b\\c', "raw-quote-in-path"),
    pytest.param(
        b"/",
        b'q=%0a%22}&x="},{"forged":1}',
        {},
        {"query": 'q=%0a%22}&x="},{"forged":1}'},
        id="query",
    ),
    in_header(b"user-agent", b'evil"}\t{"forged": true, "x": "', "user-agent"),
    in_header(b"user-agent", b"caf\xe9 \\u000a", "user-agent-obs-text"),
    in_header(b"referer", b'"},"status":200,"x":"', "referer"),
]


@pytest.mark.parametrize(("path", "query", "headers", "expected"), INJECTIONS)
def test_client_values_cannot_break_or_forge_a_line(
    server: tuple[ServerProcess, str],
    path: bytes,
    query: bytes,
    headers: dict[bytes, bytes],
    expected: dict[str, str],
) -> None:
    process, url = server
    before = len(access_lines(process))
    target = path + (b"?" + query if query else b"")
    head = b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers.items())
    status, response_headers = raw_exchange(port_of(url), head + b"\r\n")
    assert status == 200
    line = line_for(process, response_headers["x-request-id"])
    for field, value in expected.items():
        assert line[field] == value, field
    assert "forged" not in line
    assert line["status"] == 200
    # Exactly one new line for one request, and every line still parses.
    assert len(access_lines(process)) == before + 1


# -- the request id in other log records ----------------------------------------------------------


def test_app_log_records_carry_the_request_id_inside_a_request_only(
    server: tuple[ServerProcess, str],
) -> None:
    process, url = server
    response = httpx.get(url + "/log", timeout=TIMEOUT)
    rid = response.headers["x-request-id"]
    line_for(process, rid)  # written in the same loop turn as the app's record, or later
    records = json_lines(process)
    (inside,) = [
        r for r in records if r.get("event") == "inside a request" and r.get("request_id") == rid
    ]
    assert inside["logger"] == "observe_app"
    assert inside["level"] == "warning"
    assert inside["pid"] == process.process.pid
    assert TIMESTAMP.fullmatch(inside["timestamp"]) or inside["timestamp"].endswith("Z")
    (outside,) = [r for r in records if r.get("event") == "outside any request"]
    assert "request_id" not in outside
    # Server records outside requests carry none either.
    listening = next(r for r in records if str(r.get("event", "")).startswith("Listening on"))
    assert "request_id" not in listening


def test_concurrent_requests_keep_their_own_request_ids(
    server: tuple[ServerProcess, str],
) -> None:
    process, url = server
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda _: httpx.get(url + "/log", timeout=TIMEOUT), range(16)))
    ids = {response.headers["x-request-id"] for response in responses}
    assert len(ids) == 16
    for rid in ids:
        line_for(process, rid)
    records = json_lines(process)
    logged = [r["request_id"] for r in records if r.get("event") == "inside a request"]
    assert ids <= set(logged)


# -- request ids from a trusted proxy ----------------------------------------------------------


@pytest.fixture(scope="module")
def behind_proxy() -> Iterator[tuple[ServerProcess, str]]:
    """The server behind a proxy at 127.0.0.1 (where the test's requests come from)."""
    with start("--proxy-headers", "--forwarded-allow-ips", "127.0.0.1") as process:
        yield process, process.wait_listening(TIMEOUT)


def test_request_behind_a_trusted_proxy(behind_proxy: tuple[ServerProcess, str]) -> None:
    process, url = behind_proxy
    response = httpx.get(
        url + "/",
        headers={
            "x-request-id": "edge-4f2a.9_Z",
            "x-forwarded-for": "203.0.113.7",
            "x-forwarded-proto": "https",
        },
        timeout=TIMEOUT,
    )
    assert response.headers["x-request-id"] == "edge-4f2a.9_Z"
    line = line_for(process, "edge-4f2a.9_Z")
    assert (line["client"], line["client_port"]) == ("203.0.113.7", None)  # none was named
    assert line["peer"] == "127.0.0.1" and line["peer_port"] > 0
    assert line["scheme"] == "https"
    assert line["status"] == 200


@pytest.mark.parametrize(
    "given",
    [
        pytest.param(b"has spaces in it", id="spaces"),
        pytest.param(b"x" * 201, id="too-long"),
        pytest.param(b"caf\xe9", id="not-ascii"),
        pytest.param(b"tab\there", id="tab"),
        pytest.param(b"", id="empty"),
    ],
)
def test_a_malformed_request_id_is_replaced(
    behind_proxy: tuple[ServerProcess, str], given: bytes
) -> None:
    process, url = behind_proxy
    status, headers = get_with_request_id(url, given)
    assert status == 200
    rid = headers["x-request-id"]
    assert GENERATED_ID.fullmatch(rid), rid
    assert line_for(process, rid)["request_id"] == rid


def test_a_request_id_with_quotes_round_trips(behind_proxy: tuple[ServerProcess, str]) -> None:
    process, url = behind_proxy
    given = 'abc"},{"forged":"\\'
    before = len(access_lines(process))
    status, headers = get_with_request_id(url, given.encode())
    assert status == 200
    assert headers["x-request-id"] == given
    line = line_for(process, given)
    assert "forged" not in line
    assert len(access_lines(process)) == before + 1


def test_each_request_on_a_connection_logs_its_own_host_user_agent_and_referer(
    behind_proxy: tuple[ServerProcess, str],
) -> None:
    """The reader notes the three as it parses, and hands on a connection's earlier Host and
    User-Agent objects when they repeat: a value that changes, even to one of the same
    length, or goes missing, must be logged as this request sent it."""
    process, url = behind_proxy
    sent = [
        (b"one.example", b"agent/1.0", b"https://a.example/"),
        (b"one.example", b"agent/1.0", b"https://b.example/"),
        (b"two.example", b"agent/2.0", None),  # same lengths, other bytes
        (b"one.example", None, b"https://a.example/"),
        (b"one.example:8080", b"agent/1.0 (longer)", None),
    ]
    tag = uuid.uuid4().hex
    requests = b""
    for index, (host, agent, referer) in enumerate(sent):
        fields = [b"Host: " + host, b"X-Request-ID: %s-%d" % (tag.encode(), index)]
        if agent is not None:
            fields.append(b"User-Agent: " + agent)
        if referer is not None:
            fields.append(b"Referer: " + referer)
        if index == len(sent) - 1:
            fields.append(b"Connection: close")
        requests += b"GET / HTTP/1.1\r\n" + b"\r\n".join(fields) + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port_of(url)), timeout=TIMEOUT) as sock:
        sock.sendall(requests)
        assert read_until_closed(sock, TIMEOUT).count(b"HTTP/1.1 200 ") == len(sent)
    for index, (host, agent, referer) in enumerate(sent):
        line = line_for(process, f"{tag}-{index}")
        logged = (line["host"], line["user_agent"], line["referer"])
        assert logged == tuple(None if v is None else v.decode() for v in (host, agent, referer))


def test_the_host_a_trusted_proxy_forwards_is_the_one_logged() -> None:
    """With --proxy-forwarded-host the app sees X-Forwarded-Host as its Host, and so does the
    log (the reader noted the client's Host before the proxy's fields were resolved)."""
    options = ("--proxy-headers", "--forwarded-allow-ips", "127.0.0.1", "--proxy-forwarded-host")
    with start(*options) as process:
        url = process.wait_listening(TIMEOUT)
        for forwarded, expected in [("shop.example", "shop.example"), (None, "direct.example")]:
            headers = {"host": "direct.example", "x-request-id": f"fh-{expected}"}
            if forwarded is not None:
                headers["x-forwarded-host"] = forwarded
            assert httpx.get(url + "/", headers=headers, timeout=TIMEOUT).status_code == 200
            assert line_for(process, f"fh-{expected}")["host"] == expected


def test_an_untrusted_peer_cannot_set_the_request_id() -> None:
    with start("--proxy-headers", "--forwarded-allow-ips", "10.1.2.3") as process:
        url = process.wait_listening(TIMEOUT)
        response = httpx.get(
            url + "/",
            headers={"x-request-id": "chosen-by-client", "x-forwarded-for": "203.0.113.7"},
            timeout=TIMEOUT,
        )
        line = generated_line_for(process, response)
    assert (line["client"], line["client_port"]) == (line["peer"], line["peer_port"])
    assert line["client"] == "127.0.0.1"


def test_custom_request_id_header() -> None:
    with start("--request-id-header", "X-Trace", "--forwarded-allow-ips", "127.0.0.1") as process:
        url = process.wait_listening(TIMEOUT)
        response = httpx.get(url + "/", headers={"x-trace": "trace-1"}, timeout=TIMEOUT)
        assert response.headers["x-trace"] == "trace-1"
        assert "x-request-id" not in response.headers
        assert line_for(process, "trace-1")["status"] == 200


# -- options and shutdown ---------------------------------------------------------------------


def test_no_access_log_writes_no_access_lines() -> None:
    with start("--no-access-log") as process:
        url = process.wait_listening(TIMEOUT)
        with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
            for _ in range(5):
                assert client.get("/log").status_code == 200
        process.signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0
    records = json_lines(process)
    assert not [r for r in records if r.get("logger") == ACCESS_LOGGER]
    assert len([r for r in records if r.get("event") == "inside a request"]) == 5


def test_console_format_is_readable_text() -> None:
    with start("--log-format", "console") as process:
        url = process.wait_listening(TIMEOUT)
        response = httpx.get(url + "/missing?x=1", timeout=TIMEOUT)
        httpx.get(url + "/log", timeout=TIMEOUT)
        assert response.status_code == 404
        eventually(lambda: True if "/log" in process.output else None, what="the access lines")
        process.signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0
    assert process.lines
    for line in process.lines:
        with pytest.raises(ValueError):
            json.loads(line)
    (access,) = [line for line in process.lines if "/missing" in line]
    assert re.search(r"\[info +\] GET /missing\?x=1 404 \d+(\.\d)?ms$", access), access
    assert any("inside a request" in line for line in process.lines)
    assert any("Listening on" in line for line in process.lines)


@pytest.mark.parametrize("buffered", [False, True], ids=["unbuffered", "print-buffered"])
def test_console_lines_and_print_come_out_in_the_order_written(buffered: bool) -> None:
    """People read the console format as it happens: a print() before a log record comes out
    before it, one after it after, whether Python buffers stdout or not."""
    env = {"PYTHONUNBUFFERED": ""} if buffered else None  # empty: unset for Python
    with start("--log-format", "console", env=env) as process:
        url = process.wait_listening(TIMEOUT)
        assert httpx.get(url + "/print", timeout=TIMEOUT).status_code == 200
        process.wait_for_line(r"GET /print 200", TIMEOUT)
    order = [
        next(i for i, line in enumerate(process.lines) if marker in line)
        for marker in ("printed before", "logged between", "printed after", "GET /print 200")
    ]
    assert order == sorted(order), process.output


def test_access_log_exclude_leaves_out_paths_and_prefixes_but_counts_them() -> None:
    args = ("--access-log-exclude", "/healthz", "--access-log-exclude", "/static/*")
    with start(*args) as process:
        url = process.wait_listening(TIMEOUT)
        admin = process.wait_for_line(r"Admin listener on (http://\S+?:\d+)", TIMEOUT).group(1)
        paths = ["/healthz", "/static/app.css", "/static/img/a.png", "/static", "/healthz/x"]
        for path in paths:
            assert httpx.get(url + path, timeout=TIMEOUT).status_code == 200
        lines = wait_for_access(process, 2)
        time.sleep(SETTLE)  # would an excluded one follow?
        counted = scrape(admin).value("http_server_request_duration_seconds_count")
    assert sorted(line["path"] for line in access_lines(process)) == ["/healthz/x", "/static"]
    assert len(lines) == 2
    assert counted == len(paths)


def test_on_a_terminal_the_access_line_is_in_the_console_format_too() -> None:
    """No --log-format on a terminal: every line for people, the access line included (it
    once stayed JSON)."""
    master, replica = pty.openpty()
    env = {**os.environ, "MONOCEROS_METRICS_PORT": "0", "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, "-m", "monoceros", APP, "--port", "0", "--no-use-colors"]
    process = subprocess.Popen(args, cwd=REPO, env=env, stdout=replica, stderr=replica)
    os.close(replica)
    output = b""
    try:
        url = None
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and b" 200 " not in output:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                output += os.read(master, 65536)
            found = re.search(rb"Listening on (http://\S+)", output)
            if found and url is None:
                url = found.group(1).decode()
                httpx.get(url + "/items?page=2", timeout=TIMEOUT)
    finally:
        process.terminate()
        process.wait(TIMEOUT)
        os.close(master)
    text = output.decode()
    (access,) = [line for line in text.splitlines() if "/items" in line]
    assert re.search(r"\[info +\] GET /items\?page=2 200 \d+(\.\d)?ms", access), text
    assert not text.lstrip().startswith("{"), text


def test_ipv6_addresses_are_logged_apart_from_their_ports() -> None:
    if not has_ipv6_loopback():
        if os.environ.get("CI") == "true":
            pytest.fail("CI machines must have an IPv6 loopback (::1)")
        pytest.skip("no IPv6 loopback on this machine")
    args = ("--host", "::1", "--forwarded-allow-ips", "::1")
    with start(*args) as process:
        url = process.wait_listening(TIMEOUT)
        direct = httpx.get(url + "/", timeout=TIMEOUT)
        proxied = httpx.get(url + "/", headers={"x-forwarded-for": "2001:db8::7"}, timeout=TIMEOUT)
        first = line_for(process, direct.headers["x-request-id"])
        second = line_for(process, proxied.headers["x-request-id"])
    assert first["client"] == first["peer"] == "::1"
    assert first["client_port"] == first["peer_port"] > 0
    assert (second["client"], second["client_port"]) == ("2001:db8::7", None)
    assert second["peer"] == "::1" and second["peer_port"] > 0


@pytest.mark.parametrize("disable_existing", [None, False], ids=["minimal", "explicit"])
def test_log_config_dictconfig_is_applied(tmp_path: Path, disable_existing: bool | None) -> None:
    logfile = tmp_path / "app.log"
    config: dict[str, Any] = {
        "version": 1,
        "formatters": {"plain": {"format": "%(name)s|%(levelname)s|%(message)s"}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "filename": str(logfile),
                "formatter": "plain",
            }
        },
        "loggers": {"observe_app": {"handlers": ["file"], "level": "INFO"}},
    }
    if disable_existing is not None:
        config["disable_existing_loggers"] = disable_existing
    path = tmp_path / "logging.json"
    path.write_text(json.dumps(config))
    with start("--log-config", str(path)) as process:
        url = process.wait_listening(TIMEOUT)
        rid = httpx.get(url + "/log", timeout=TIMEOUT).headers["x-request-id"]
        line_for(process, rid)
        process.signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0
    assert "observe_app|WARNING|inside a request" in logfile.read_text()
    # The user's handler is added; our JSON lines carry on: the server's, the access log and
    # the app's (a config that does not say otherwise leaves existing loggers enabled).
    records = json_lines(process)
    assert any(r.get("event") == "inside a request" and r["request_id"] == rid for r in records)
    assert any(str(r.get("event")).startswith("Listening on") for r in records)
    assert any(r.get("event") == "Application shutdown complete." for r in records)
    assert len(access_lines(process)) == 1


@pytest.mark.parametrize(
    "content",
    [
        pytest.param('{"version": 1, "handlers": ', id="not-json"),
        pytest.param("[1, 2]", id="not-a-mapping"),
        pytest.param('{"version": 1, "handlers": {"x": {"class": "no.Such"}}}', id="bad-class"),
    ],
)
def test_a_broken_log_config_is_a_one_line_startup_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "logging.json"
    path.write_text(content)
    with start("--log-config", str(path)) as process:
        assert process.wait(TIMEOUT) == 1
    assert "Traceback" not in process.output
    assert len(process.lines) == 1, process.output
    assert process.lines[0].startswith(f"Error: --log-config {path}:"), process.output


def test_no_line_is_lost_on_a_clean_sigterm() -> None:
    with start() as process:
        url = process.wait_listening(TIMEOUT)
        with ThreadPoolExecutor(max_workers=2) as pool:
            in_flight = [pool.submit(httpx.get, url + "/slow?seconds=1", timeout=TIMEOUT)]
            with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
                for number in range(200):
                    assert client.get(f"/?n={number}").status_code == 200
            in_flight.append(pool.submit(httpx.get, url + "/slow?seconds=1", timeout=TIMEOUT))
            time.sleep(SETTLE)
            process.signal(signal.SIGTERM)
            assert all(future.result(TIMEOUT).status_code == 200 for future in in_flight)
        assert process.wait(TIMEOUT) == 0
    lines = access_lines(process)
    assert len(lines) == 202
    assert sorted(line["query"] for line in lines if line["path"] == "/") == sorted(
        f"n={number}" for number in range(200)
    )
    assert [line["status"] for line in lines if line["path"] == "/slow"] == [200, 200]


def test_access_log_lines_match_requests_under_load() -> None:
    """Eight clients at once: one line per request, each with its own request id."""
    with start() as process:
        url = process.wait_listening(TIMEOUT)

        def client(worker: int) -> list[str]:
            with httpx.Client(base_url=url, timeout=TIMEOUT) as session:
                return [
                    session.get(f"/?w={worker}&n={n}").headers["x-request-id"] for n in range(50)
                ]

        with ThreadPoolExecutor(max_workers=8) as pool:
            ids = [rid for batch in pool.map(client, range(8)) for rid in batch]
        lines = wait_for_access(process, 400)
        process.signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0
    assert len(access_lines(process)) == 400
    assert sorted(line["request_id"] for line in lines) == sorted(ids)
