"""What reads a scope after the app has run copes with whatever the app left there.

The access line (each schema, and the console's), the metric labels, the route label and the
log's secrets all read the scope once the exchange is over; middleware may have removed any key
or put a value of any type in it. Each must still give its answer, of the type it promises, and
raise nothing. (Over the wire: tests/integration/test_scope_rewrites.py. Run by the compiled
tests too, where a value of the wrong type would be refused by a native type check.)
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from prometheus_client import generate_latest

from monoceros.observe.access import SCHEMAS, render_request, render_session
from monoceros.observe.console import ConsoleAccessLine
from monoceros.observe.literals import Literals
from monoceros.observe.logging import secrets_in
from monoceros.observe.metrics import HttpMetrics, snapshot_of
from monoceros.observe.routes import route_of
from monoceros.observe.scrape import MetricsCollector, build_registry
from monoceros.protocols.events import RequestFinished, SessionFinished, header_fields
from tests.log_schemas import assert_valid
from tests.rewrites import KEYS_READ_AFTER, KIND_NAMES, rewrite

# A time as Timestamps.at() gives it to the line.
NEW_YEAR = (b"2026-01-01T00:00:00.", b"000", b"000")

REWRITES = [(key, kind) for key in KEYS_READ_AFTER for kind in KIND_NAMES]


def scope_rewritten(key: str, kind: str, kind_of_scope: str = "http") -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": kind_of_scope,
        "asgi": {"version": "3.0"},
        "http_version": "2",  # the access line reads the headers from the scope, as for HTTP/2
        "scheme": "https" if kind_of_scope == "http" else "wss",
        "path": "/items/1",
        "raw_path": b"/items/1",
        "root_path": "",
        "query_string": b"q=1",
        "headers": [
            (b"host", b"example.com:8443"),
            (b"user-agent", b"curl/8"),
            (b"authorization", b"Bearer secret-token-value"),
        ],
        "client": ("203.0.113.7", 50000),
        "server": ("127.0.0.1", 8000),
        "extensions": {},
        "state": {},
    }
    if kind_of_scope == "http":
        scope["method"] = "GET"
    rewrite(scope, key, kind)
    return scope


def request_record(scope: dict[str, Any]) -> RequestFinished:
    return RequestFinished(
        scope, "GET", "https", 200, "complete", 0.001, 0, 8, ("127.0.0.1", 4321), "rid", None, None
    )


def valid(line: bytes, schema: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(line)
    assert_valid(parsed, schema)
    return parsed


@pytest.mark.parametrize(("key", "kind"), REWRITES)
def test_a_request_line_holds_to_each_schema(key: str, kind: str) -> None:
    record = request_record(scope_rewritten(key, kind))
    literals = Literals()
    for index, schema in enumerate(SCHEMAS):
        valid(render_request(record, NEW_YEAR, b"1", literals, index), schema)
    text = ConsoleAccessLine(colors=False).request(record, time.time_ns()).decode()
    assert " 200 " in text


@pytest.mark.parametrize(("key", "kind"), REWRITES)
def test_a_session_line_holds_to_each_schema(key: str, kind: str) -> None:
    scope = scope_rewritten(key, kind, "websocket")
    record = SessionFinished(scope, 101, 1000, 0.5, 1, 1, 2, 2, ("127.0.0.1", 4321), "rid", None)
    literals = Literals()
    for index, schema in enumerate(SCHEMAS):
        valid(render_session(record, NEW_YEAR, b"1", literals, index), schema)
    assert "close 1000" in ConsoleAccessLine(colors=False).session(record, time.time_ns()).decode()


@pytest.mark.parametrize(("key", "kind"), REWRITES)
def test_the_request_is_tallied_and_the_metrics_still_scrape(key: str, kind: str) -> None:
    http = HttpMetrics()
    registry = build_registry(MetricsCollector(http, lambda: "started"), process=False)
    http.request_finished(request_record(scope_rewritten(key, kind)))
    http.request_finished(request_record(scope_rewritten("path", "str")))  # the next, alike
    snapshot = snapshot_of(http)
    assert sum(sum(series.duration) for series in snapshot.series.values()) == 2
    for labels in snapshot.series:
        assert all(type(label) is str for label in labels[:1] + labels[2:]), labels
    assert b"http_server_request_duration_seconds_count" in generate_latest(registry)


@pytest.mark.parametrize(("key", "kind"), REWRITES)
def test_the_route_label_is_a_str(key: str, kind: str) -> None:
    assert type(route_of(scope_rewritten(key, kind))) is str


@pytest.mark.parametrize("root_kind", KIND_NAMES)
@pytest.mark.parametrize("root_key", ["root_path", "app_root_path"])
def test_the_route_label_under_a_rewritten_root_is_a_str(root_key: str, root_kind: str) -> None:
    scope = scope_rewritten("route", "route")
    scope.update(app_root_path="", root_path="/api", path_params={"id": "1"})  # under a Mount
    assert route_of(scope) == "/api/items/{id}"
    rewrite(scope, root_key, root_kind)
    assert type(route_of(scope)) is str


@pytest.mark.parametrize(("key", "kind"), REWRITES)
def test_the_log_still_finds_the_secrets_among_the_fields_left(key: str, kind: str) -> None:
    scope = scope_rewritten(key, kind)
    fields = header_fields(scope)
    assert type(fields) is list
    secrets = secrets_in(fields)
    assert ("secret-token-value" in secrets) == (key != "headers")


@pytest.mark.parametrize(
    "headers",
    [
        [(b"host", b"h"), "not a field", (b"user-agent",), None, [b"referer", b"r"]],
        iter([(b"host", b"h")]),
        {b"host": b"h"},  # a dict iterates its names: not fields
        b"host: h",
        42,
    ],
    ids=["junk-among-fields", "an-iterator", "a-dict", "bytes", "a-number"],
)
def test_header_fields_are_a_list_whatever_the_app_put_there(headers: Any) -> None:
    fields = header_fields({"headers": headers})
    assert type(fields) is list
    literals = Literals()
    record = request_record({**scope_rewritten("path", "str"), "headers": headers})
    valid(render_request(record, NEW_YEAR, b"1", literals), "default")
