"""W3C trace context, read from a real `monoceros` process: a request's traceparent reaches its
access line, the log records the app writes while it is served, and, as an exemplar, the
duration histogram of an OpenMetrics scrape; nothing is made up unless --trace-id-generate
asks. Request ids are W3C-shaped."""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.integration.helpers import TIMEOUT
from tests.integration.observe_helpers import (
    ACCESS_LOGGER,
    OPENMETRICS,
    admin_url,
    eventually,
    json_lines,
    scrape,
    start,
)
from tests.utils import ServerProcess

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"
HEX32 = re.compile(r"[0-9a-f]{32}")
HEX16 = re.compile(r"[0-9a-f]{16}")


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[ServerProcess, str, str]]:
    with start("--http2") as process:
        url = process.wait_listening(TIMEOUT)
        yield process, url, admin_url(process)
        process.signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0, process.output


def lines_of(process: ServerProcess, rid: str, count: int = 1) -> list[dict[str, Any]]:
    """The lines carrying request id `rid` (the access line and the app's), once there are
    `count` (/log's request has three: its two records, then the access line, written when
    the response is complete)."""

    def probe() -> list[dict[str, Any]] | None:
        found = [line for line in json_lines(process) if line.get("request_id") == rid]
        return found if len(found) >= count else None

    return eventually(probe, what=f"{count} lines of {rid} in\n{process.output}")


def test_traceparent_reaches_the_access_line_and_the_app_s_records(
    server: tuple[ServerProcess, str, str],
) -> None:
    process, url, _ = server
    response = httpx.get(url + "/log", headers={"traceparent": TRACEPARENT}, timeout=TIMEOUT)
    lines = lines_of(process, response.headers["x-request-id"], count=3)
    (access,) = [line for line in lines if line["logger"] == ACCESS_LOGGER]
    (record,) = [line for line in lines if line["event"] == "inside a request"]
    for line in (access, record):
        assert (line["trace_id"], line["span_id"]) == (TRACE_ID, SPAN_ID)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="absent"),
        pytest.param({"traceparent": TRACEPARENT.upper()}, id="uppercase"),
        pytest.param({"traceparent": f"00-{'0' * 32}-{SPAN_ID}-01"}, id="zero-trace-id"),
        pytest.param({"traceparent": f"00-{TRACE_ID}-{'0' * 16}-01"}, id="zero-span-id"),
        pytest.param({"traceparent": f"ff-{TRACE_ID}-{SPAN_ID}-01"}, id="version-ff"),
        pytest.param({"traceparent": TRACEPARENT + "-more"}, id="version-00-with-more"),
        pytest.param({"traceparent": "garbage"}, id="garbage"),
    ],
)
def test_no_valid_traceparent_no_trace(
    server: tuple[ServerProcess, str, str], headers: dict[str, str]
) -> None:
    process, url, _ = server
    response = httpx.get(url + "/log", headers=headers, timeout=TIMEOUT)
    for line in lines_of(process, response.headers["x-request-id"], count=3):
        assert line.get("trace_id") is None and line.get("span_id") is None, line


def test_two_traceparent_headers_are_none(server: tuple[ServerProcess, str, str]) -> None:
    process, url, _ = server
    headers = [("traceparent", TRACEPARENT), ("traceparent", TRACEPARENT)]
    response = httpx.get(url + "/", headers=headers, timeout=TIMEOUT)
    (line,) = lines_of(process, response.headers["x-request-id"])
    assert line["trace_id"] is None


def test_a_later_version_is_read_as_far_as_version_00_goes(
    server: tuple[ServerProcess, str, str],
) -> None:
    process, url, _ = server
    headers = {"traceparent": f"01-{TRACE_ID}-{SPAN_ID}-01-what-comes-later"}
    response = httpx.get(url + "/", headers=headers, timeout=TIMEOUT)
    (line,) = lines_of(process, response.headers["x-request-id"])
    assert (line["trace_id"], line["span_id"]) == (TRACE_ID, SPAN_ID)


def test_http2_requests_carry_their_trace_too(server: tuple[ServerProcess, str, str]) -> None:
    process, url, _ = server
    with httpx.Client(http1=False, http2=True, timeout=TIMEOUT) as client:
        response = client.get(url + "/", headers={"traceparent": TRACEPARENT})
    assert response.http_version == "HTTP/2"
    (line,) = lines_of(process, response.headers["x-request-id"])
    assert (line["http_version"], line["trace_id"]) == ("2", TRACE_ID)


def test_the_duration_histogram_has_the_trace_as_exemplar_in_openmetrics_only(
    server: tuple[ServerProcess, str, str],
) -> None:
    _, url, admin = server
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    httpx.get(url + "/slow?seconds=0.2", headers={"traceparent": f"00-{trace_id}-{SPAN_ID}-01"})
    metrics = scrape(admin, accept=OPENMETRICS)
    exemplars = [
        sample.exemplar
        for sample in metrics.samples("http_server_request_duration_seconds_bucket")
        if sample.exemplar is not None and sample.exemplar.labels["trace_id"] == trace_id
    ]
    assert len(exemplars) == 1, metrics.text
    assert exemplars[0].labels == {"trace_id": trace_id, "span_id": SPAN_ID}
    assert 0.19 <= exemplars[0].value < 5  # the loop may wake a timer up to its clock tick early
    assert trace_id not in scrape(admin).text  # the Prometheus text format has no exemplars


def test_request_ids_are_w3c_shaped(server: tuple[ServerProcess, str, str]) -> None:
    _, url, _ = server
    ids = [httpx.get(url + "/", timeout=TIMEOUT).headers["x-request-id"] for _ in range(5)]
    assert all(HEX32.fullmatch(rid) for rid in ids), ids
    assert len(set(ids)) == 5
    # Not a counter: the digits after the process's own prefix differ throughout.
    tails = [rid[17:] for rid in ids]
    assert all(a[:8] != b[:8] and a[-4:] != b[-4:] for a, b in pairwise(tails)), ids


def test_a_websocket_session_line_carries_the_trace() -> None:
    with start(app="examples.app:app") as process:
        url = process.wait_listening(TIMEOUT).replace("http://", "ws://") + "/ws"

        async def talk() -> None:
            headers = {"traceparent": TRACEPARENT}
            async with connect(url, additional_headers=headers, open_timeout=TIMEOUT) as ws:
                await ws.send("hi")
                await ws.recv()

        asyncio.run(talk())
        session = eventually(
            lambda: next((x for x in json_lines(process) if x.get("event") == "websocket"), None)
        )
    assert (session["trace_id"], session["span_id"]) == (TRACE_ID, SPAN_ID)


def test_trace_id_generate_gives_every_request_a_trace_of_its_own() -> None:
    with start("--trace-id-generate") as process:
        url = process.wait_listening(TIMEOUT)
        given = httpx.get(url + "/log", headers={"traceparent": TRACEPARENT}, timeout=TIMEOUT)
        made = [httpx.get(url + "/log", timeout=TIMEOUT) for _ in range(2)]
        kept = lines_of(process, given.headers["x-request-id"], count=3)
        generated = [lines_of(process, r.headers["x-request-id"], count=3) for r in made]
    assert {(line["trace_id"], line["span_id"]) for line in kept} == {(TRACE_ID, SPAN_ID)}
    traces = []
    for lines in generated:
        pairs = {(line["trace_id"], line["span_id"]) for line in lines}
        assert len(pairs) == 1, lines  # the access line and the app's record: one trace
        ((trace_id, span_id),) = pairs
        assert HEX32.fullmatch(trace_id) and HEX16.fullmatch(span_id)
        traces.append(trace_id)
    assert traces[0] != traces[1]
