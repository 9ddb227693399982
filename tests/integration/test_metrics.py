"""/metrics on a real server, parsed with prometheus_client's parsers.

The servers run in-process (on ephemeral ports); every check compares two scrapes, so tests
sharing a module-scoped server only ever look at what they sent themselves.
"""

from __future__ import annotations

import random
import string
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

import monoceros
from tests.integration.helpers import TIMEOUT
from tests.integration.observe_app import app, starlette_app
from tests.integration.observe_helpers import (
    OPENMETRICS,
    Scrape,
    eventually,
    require_tool,
    running_admin_url,
    scrape,
)
from tests.utils import RunningServer, raw_request, run_server

DURATION = "http_server_request_duration_seconds"
COUNT = DURATION + "_count"
HTTP_LABELS = {
    "http_request_method",
    "http_response_status_code",
    "http_route",
    "url_scheme",
    "network_protocol_version",
    "error_type",
}
# Methods with their own label value; any other is labelled "_OTHER".
KNOWN_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"]
OTHER_METHODS = ["PROPFIND", "PURGE", "MKCOL", "SEARCH"]
OTEL_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]
REJECTED = "monoceros_requests_rejected_total"
REASONS = {
    "bad_request",
    "header_timeout",
    "body_too_large",
    "uri_too_long",
    "headers_too_large",
    "unsupported_coding",
    "overload",
    "body_timeout",
}
LIMITS = {
    "limit_request_line": 1024,
    "limit_request_header_size": 4096,
    "limit_request_body": 1024,
    "timeout_request_header": 0.5,
    "timeout_request_body": 0.5,
}


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with run_server(app, **LIMITS) as running:
        yield running


@pytest.fixture(scope="module")
def admin(server: RunningServer) -> str:
    return running_admin_url(server)


@pytest.fixture(scope="module")
def starlette_server() -> Iterator[RunningServer]:
    with run_server(starlette_app) as running:
        yield running


def random_path() -> str:
    return "/" + "".join(random.choices(string.ascii_letters + string.digits, k=16))


# -- the request duration histogram ---------------------------------------------------------------


def test_request_count_increases_by_exactly_n(server: RunningServer, admin: str) -> None:
    before = scrape(admin)
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        for _ in range(17):
            assert client.get("/").status_code == 200
        for _ in range(5):
            assert client.get("/missing").status_code == 404
        for _ in range(3):
            assert client.post("/echo", content=b"x" * 100).status_code == 200
    after = scrape(admin)
    assert after.value(COUNT) - before.value(COUNT) == 25
    ok = {"http_request_method": "GET", "http_response_status_code": "200", "url_scheme": "http"}
    assert after.value(COUNT, **ok) - before.value(COUNT, **ok) == 17
    assert (
        after.value(COUNT, http_response_status_code="404")
        - before.value(COUNT, http_response_status_code="404")
        == 5
    )
    posts = {"http_request_method": "POST"}
    assert after.value(COUNT, **posts) - before.value(COUNT, **posts) == 3
    # Body sizes: three 100-byte request bodies echoed; "ok" 17 times, "not found" 5 times.
    body_sum = "http_server_request_body_size_bytes_sum"
    assert after.value(body_sum) - before.value(body_sum) == 300
    sent_sum = "http_server_response_body_size_bytes_sum"
    assert after.value(sent_sum) - before.value(sent_sum) == 17 * 2 + 5 * 9 + 3 * 100
    # Scraping is not application traffic.
    assert scrape(admin).value(COUNT) == after.value(COUNT)


def test_histogram_buckets_and_labels_follow_opentelemetry(
    server: RunningServer, admin: str
) -> None:
    httpx.get(server.url + "/", timeout=TIMEOUT)
    metrics = scrape(admin)
    family = metrics.families[DURATION]
    assert family.type == "histogram"
    assert family.unit == "seconds" or family.name.endswith("_seconds")
    buckets = metrics.samples(DURATION + "_bucket")
    series = {tuple(sorted((k, v) for k, v in s.labels.items() if k != "le")) for s in buckets}
    for labels in series:
        assert {name for name, _ in labels} == HTTP_LABELS
        bounds = [
            s.labels["le"]
            for s in buckets
            if tuple(sorted((k, v) for k, v in s.labels.items() if k != "le")) == labels
        ]
        assert [float(b) for b in bounds] == [*OTEL_BUCKETS, float("inf")]
        counts = [
            s.value
            for s in buckets
            if tuple(sorted((k, v) for k, v in s.labels.items() if k != "le")) == labels
        ]
        assert counts == sorted(counts), "buckets are cumulative"
        assert counts[-1] == metrics.value(COUNT, **dict(labels))
    for name in ("http_server_request_body_size_bytes", "http_server_response_body_size_bytes"):
        assert metrics.families[name].type == "histogram"
        assert {k for s in metrics.samples(name + "_count") for k in s.labels} == HTTP_LABELS


def test_slow_request_lands_in_its_bucket(server: RunningServer, admin: str) -> None:
    before = scrape(admin)
    assert httpx.get(server.url + "/slow?seconds=0.4", timeout=TIMEOUT).text == "slept"
    after = scrape(admin)

    def fast(metrics: Scrape) -> float:
        return metrics.value(DURATION + "_bucket", le="0.25")

    def slow(metrics: Scrape) -> float:
        return metrics.value(DURATION + "_bucket", le="0.5")

    # The app slept 0.4 s (uvloop's timers may fire a millisecond early, hence the margin):
    # the request is not under 0.25 s, and is counted in the +Inf bucket.
    assert fast(after) == fast(before)
    assert (
        after.value(DURATION + "_bucket", le="+Inf") - before.value(DURATION + "_bucket", le="+Inf")
        == 1
    )
    assert after.value(DURATION + "_sum") - before.value(DURATION + "_sum") >= 0.3
    assert slow(after) - slow(before) in (0, 1)


@pytest.mark.parametrize(
    ("method", "label"),
    [
        *(pytest.param(method, method, id=method) for method in KNOWN_METHODS),
        *(pytest.param(method, "_OTHER", id=method) for method in OTHER_METHODS),
    ],
)
def test_method_label(server: RunningServer, admin: str, method: str, label: str) -> None:
    before = scrape(admin)
    response = raw_request(
        server.port, f"{method} / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    )
    assert response.startswith(b"HTTP/1.1 200 "), response
    after = scrape(admin)
    assert (
        after.value(COUNT, http_request_method=label)
        - before.value(COUNT, http_request_method=label)
        == 1
    )
    methods = {s.labels["http_request_method"] for s in after.samples(COUNT)}
    assert method in methods or label == "_OTHER"
    assert not methods & {"PROPFIND", "PURGE", "MKCOL", "SEARCH"}


def test_starlette_route_template_is_the_route_label(
    starlette_server: RunningServer,
) -> None:
    admin = running_admin_url(starlette_server)
    before = scrape(admin)
    with httpx.Client(base_url=starlette_server.url, timeout=TIMEOUT) as client:
        for item_id in range(40):
            assert client.get(f"/items/{item_id}").text == f"item {item_id}"
        assert client.get("/").text == "home"
        assert client.get("/api/things/7").text == "thing 7"
        assert client.get(random_path()).status_code == 404
    after = scrape(admin)
    template = {"http_route": "/items/{item_id}", "http_response_status_code": "200"}
    assert after.value(COUNT, **template) - before.value(COUNT, **template) == 40
    assert after.value(COUNT, http_route="/") - before.value(COUNT, http_route="/") == 1
    routes = {s.labels["http_route"] for s in after.samples(COUNT)}
    # A route inside a Mount is labelled by a template too; no raw path is ever a label.
    assert any("{thing_id}" in route for route in routes), routes
    assert not any(route.startswith("/items/") and "{" not in route for route in routes)
    assert "/api/things/7" not in routes
    # A path no route matched: the bounded fallback (empty), not the path.
    unmatched = {"http_response_status_code": "404", "http_route": ""}
    assert after.value(COUNT, **unmatched) - before.value(COUNT, **unmatched) == 1


def test_a_scan_of_random_paths_adds_a_handful_of_series_at_most(
    server: RunningServer, admin: str
) -> None:
    before = scrape(admin)
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        for _ in range(10_000):
            client.get(random_path())
    after = scrape(admin)
    assert after.value(COUNT) - before.value(COUNT) == 10_000
    new = after.label_sets(COUNT) - before.label_sets(COUNT)
    assert len(new) <= 3, new
    assert len(after.text) - len(before.text) < 10_000  # a few series, not 10,000 paths


def test_a_scan_of_a_starlette_app_stays_bounded(starlette_server: RunningServer) -> None:
    admin = running_admin_url(starlette_server)
    before = scrape(admin)
    with httpx.Client(base_url=starlette_server.url, timeout=TIMEOUT) as client:
        for number in range(500):
            client.get(random_path() if number % 2 else f"/items/{random_path()[1:]}")
    after = scrape(admin)
    assert after.value(COUNT) - before.value(COUNT) == 500
    assert len(after.label_sets(COUNT) - before.label_sets(COUNT)) <= 2


# -- gauges and server counters -------------------------------------------------------------------


def test_active_requests_counts_in_flight_and_returns_to_zero(
    server: RunningServer, admin: str
) -> None:
    assert scrape(admin).value("http_server_active_requests") == 0
    with ThreadPoolExecutor(max_workers=2) as pool:
        slow = [pool.submit(httpx.get, server.url + "/slow?seconds=1", timeout=TIMEOUT)]
        slow.append(pool.submit(httpx.get, server.url + "/slow?seconds=1", timeout=TIMEOUT))
        eventually(
            lambda: True if scrape(admin).value("http_server_active_requests") == 2 else None,
            what="two active requests",
        )
        assert all(future.result(TIMEOUT).text == "slept" for future in slow)
    assert scrape(admin).value("http_server_active_requests") == 0


def test_active_requests_return_to_zero_after_errors_and_disconnects(
    server: RunningServer, admin: str
) -> None:
    assert httpx.get(server.url + "/boom", timeout=TIMEOUT).status_code == 500
    with httpx.stream("GET", server.url + "/stream", timeout=TIMEOUT) as response:
        next(response.iter_raw())  # the first chunk, then hang up
    eventually(
        lambda: True if scrape(admin).value("http_server_active_requests") == 0 else None,
        what="active requests back to 0",
    )


# Each raw request is answered by the server itself, counted under one reason.
REJECTIONS = [
    pytest.param(b"NOT HTTP AT ALL\r\n\r\n", 400, "bad_request", id="garbage"),
    pytest.param(b"GET / HTTP/1.1\r\n\r\n", 400, "bad_request", id="no-host"),
    pytest.param(
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n",
        431,
        "headers_too_large",
        id="431",
    ),
    pytest.param(
        b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long", id="414"
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n",
        413,
        "body_too_large",
        id="413",
    ),
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n", 408, "header_timeout", id="408"),
    pytest.param(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
        408,
        "body_timeout",
        id="408-body",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
        "unsupported_coding",
        id="501",
    ),
]


@pytest.mark.parametrize(("data", "status", "reason"), REJECTIONS)
def test_rejected_requests_are_counted_by_reason(
    server: RunningServer, admin: str, data: bytes, status: int, reason: str
) -> None:
    before = scrape(admin)
    response = raw_request(server.port, data, timeout=TIMEOUT)
    assert response.startswith(f"HTTP/1.1 {status} ".encode()), response
    after = scrape(admin)
    assert {s.labels["reason"] for s in after.samples(REJECTED)} == REASONS
    for other in REASONS:
        delta = after.value(REJECTED, reason=other) - before.value(REJECTED, reason=other)
        assert delta == (1 if other == reason else 0), other
    # The server answered, not the app: no request reached the duration histogram.
    assert after.value(COUNT) == before.value(COUNT)


def test_overload_is_counted() -> None:
    with run_server(app, limit_concurrency=1) as running:
        admin = running_admin_url(running)
        with ThreadPoolExecutor(max_workers=1) as pool:
            slow = pool.submit(httpx.get, running.url + "/slow?seconds=1", timeout=TIMEOUT)
            eventually(
                lambda: True if scrape(admin).value("http_server_active_requests") else None,
                what="the slow request in flight",
            )
            assert httpx.get(running.url + "/", timeout=TIMEOUT).status_code == 503
            assert slow.result(TIMEOUT).status_code == 200
        metrics = scrape(admin)
    assert metrics.value(REJECTED, reason="overload") == 1
    assert metrics.value(COUNT, http_response_status_code="503") == 1


def no_open_connections(admin: str) -> Scrape | None:
    metrics = scrape(admin)
    return metrics if metrics.value("monoceros_connections_open") == 0 else None


def test_connections_accepted_open_and_keepalive_reuse(server: RunningServer, admin: str) -> None:
    # Connections that earlier tests closed may still be on their way out.
    before = eventually(lambda: no_open_connections(admin), what="no open connections")
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        for _ in range(10):
            assert client.get("/").status_code == 200
        during = scrape(admin)
        assert during.value("monoceros_connections_open") == 1
    assert (
        during.value("monoceros_connections_accepted_total")
        - before.value("monoceros_connections_accepted_total")
        == 1
    )
    assert (
        during.value("monoceros_keepalive_reused_requests_total")
        - before.value("monoceros_keepalive_reused_requests_total")
        == 9
    )
    eventually(lambda: no_open_connections(admin), what="the closed connection to go")
    # Three one-shot connections: three accepted, none reused.
    middle = scrape(admin)
    for _ in range(3):
        httpx.get(server.url + "/", timeout=TIMEOUT)
    after = scrape(admin)
    accepted = "monoceros_connections_accepted_total"
    assert after.value(accepted) - middle.value(accepted) == 3
    reused = "monoceros_keepalive_reused_requests_total"
    assert after.value(reused) == middle.value(reused)


def test_app_exceptions_are_counted(server: RunningServer, admin: str) -> None:
    before = scrape(admin)
    for _ in range(2):
        assert httpx.get(server.url + "/boom", timeout=TIMEOUT).status_code == 500
    after = scrape(admin)
    name = "monoceros_app_exceptions_total"
    assert after.value(name) - before.value(name) == 2
    errors = {"http_response_status_code": "500"}
    assert after.value(COUNT, **errors) - before.value(COUNT, **errors) == 2


def test_lifespan_state_build_info_and_process_metrics(admin: str) -> None:
    metrics = scrape(admin)
    states = {s.labels["state"]: s.value for s in metrics.samples("monoceros_lifespan_state")}
    assert states.pop("started") == 1
    assert set(states.values()) == {0}
    (build,) = metrics.samples("monoceros_build_info")
    assert build.value == 1
    assert build.labels["version"] == monoceros.__version__
    for name in ("process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds"):
        assert metrics.value(name) > 0, name
    assert metrics.samples("process_cpu_seconds_total")
    assert metrics.samples("python_info")


def test_lifespan_state_without_lifespan() -> None:
    with run_server(app, lifespan="off") as running:
        metrics = scrape(running_admin_url(running))
    states = {s.labels["state"]: s.value for s in metrics.samples("monoceros_lifespan_state")}
    assert states["unsupported"] == 1
    assert sum(states.values()) == 1


# -- formats ----------------------------------------------------------------------------------


def test_openmetrics_when_the_scraper_asks(server: RunningServer, admin: str) -> None:
    httpx.get(server.url + "/", timeout=TIMEOUT)
    response = httpx.get(admin + "/metrics", headers={"accept": OPENMETRICS}, timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    metrics = Scrape(response.text, openmetrics=True)
    assert metrics.families[DURATION].type == "histogram"
    assert metrics.value(COUNT) >= 1
    assert metrics.families["monoceros_connections_accepted"].type == "counter"
    assert metrics.families["monoceros_build"].type == "info"
    # And plain text for anyone else.
    plain = httpx.get(admin + "/metrics", timeout=TIMEOUT)
    assert plain.headers["content-type"].startswith("text/plain")
    assert "# EOF" not in plain.text


def test_promtool_check_metrics_passes(server: RunningServer, admin: str) -> None:
    promtool = require_tool("promtool")
    # Some of everything: statuses, an exception, a rejection, an unknown method.
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        client.get("/")
        client.get("/missing")
        client.get("/boom")
        client.request("PROPFIND", "/")
        client.post("/", content=b"body")
    raw_request(server.port, b"NOT HTTP\r\n\r\n")
    body = httpx.get(admin + "/metrics", timeout=TIMEOUT).text
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=body,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", result.stdout  # no lint findings either


def test_scraping_while_serving_is_consistent(server: RunningServer, admin: str) -> None:
    """Scrapes run on the same loop as requests: a scrape during load never sees a count go
    down or a bucket larger than the count."""
    stop = threading.Event()
    errors: list[str] = []

    def load() -> None:
        with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
            deadline = time.monotonic() + 5
            while not stop.is_set() and time.monotonic() < deadline:
                client.get(random_path())

    thread = threading.Thread(target=load)
    thread.start()
    try:
        last = 0.0
        for _ in range(20):
            metrics = scrape(admin)
            count = metrics.value(COUNT)
            if count < last:
                errors.append(f"count went from {last} to {count}")
            if metrics.value(DURATION + "_bucket", le="+Inf") != count:
                errors.append("+Inf bucket differs from the count")
            last = count
    finally:
        stop.set()
        thread.join(TIMEOUT)
    assert not errors, errors
