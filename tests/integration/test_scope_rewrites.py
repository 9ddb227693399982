"""What an app does to its own scope cannot break the access log or the metrics.

Middleware rewrites scopes: a path with its prefix cut, a client from a proxy header, a key
deleted, a value of another type than the spec's. The server reads the scope again when the
request is over (the access line, the metric labels), so each rewrite below, over HTTP/1.1,
HTTP/2 and WebSocket, must still leave: the response as the app sent it, with no exception
raised into the app, and its connection serving on; one access line for the request, valid
against its JSON schema; the request tallied; a `/metrics` that answers (a label of the wrong
type would break every scrape after it); and no error logged.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.integration.helpers import TIMEOUT
from tests.integration.observe_helpers import (
    ACCESS_LOGGER,
    admin_url,
    eventually,
    json_lines,
    scrape,
    start,
)
from tests.log_schemas import assert_valid
from tests.rewrites import DELETED, KEYS_READ_AFTER, KIND_NAMES
from tests.utils import ServerProcess

APP = "tests.integration.rewrite_app:app"
WEBSOCKET_KEYS = ["path", "query_string", "http_version", "headers", "client", "scheme"]
REQUESTS = "http_server_request_duration_seconds_count"


class Served:
    def __init__(self, process: ServerProcess, url: str, admin: str) -> None:
        self.process = process
        self.url = url
        self.admin = admin
        self.mark = len(process.lines)  # where the current case's lines begin

    def begin(self) -> None:
        self.mark = len(self.process.lines)

    def line_of(self, request_id: str) -> dict[str, Any]:
        """The one access line of `request_id`, once written."""

        def probe() -> list[dict[str, Any]] | None:
            found = [
                line
                for line in json_lines(self.process)
                if line.get("request_id") == request_id and line.get("logger") == ACCESS_LOGGER
            ]
            return found or None

        try:
            (line,) = eventually(probe, what=f"the access line of {request_id}")
        except AssertionError:
            pytest.fail(f"no access line for {request_id}:\n{self.process.output[-4000:]}")
        assert_valid(line, "default")
        return line

    def requests_tallied(self) -> float:
        return scrape(self.admin).value(REQUESTS)

    def assert_nothing_went_wrong(self) -> None:
        failures = [
            line
            for line in json_lines(self.process)[self.mark :]
            if line.get("level") in ("error", "critical", "warning") or "exception" in line
        ]
        assert not failures, failures


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with start("--http2", app=APP) as process:
        url = process.wait_listening(TIMEOUT)
        yield Served(process, url, admin_url(process))
        process.signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0, process.output


def check_request(served: Served, client: httpx.Client, rewrite: str) -> dict[str, Any]:
    before = served.requests_tallied()
    served.begin()
    response = client.get(served.url + "/items/1?q=1", headers={"x-rewrite": rewrite})
    assert (response.status_code, response.text) == (200, "answered")
    line = served.line_of(response.headers["x-request-id"])
    assert (line["status"], line["method"], line["outcome"]) == (200, "GET", "complete")
    assert served.requests_tallied() == before + 1
    served.assert_nothing_went_wrong()
    # The connection serves on (an exception raised into the app's send() left it hanging).
    assert client.get(served.url + "/next").status_code == 200
    return line


@pytest.mark.parametrize("kind", KIND_NAMES)
@pytest.mark.parametrize("key", KEYS_READ_AFTER)
def test_an_http1_request_whose_scope_the_app_rewrote(served: Served, key: str, kind: str) -> None:
    with httpx.Client(timeout=TIMEOUT) as client:
        check_request(served, client, f"{key}={kind}")


@pytest.mark.parametrize("kind", KIND_NAMES)
@pytest.mark.parametrize("key", ["path", "query_string", "http_version", "headers", "client"])
def test_an_http2_request_whose_scope_the_app_rewrote(served: Served, key: str, kind: str) -> None:
    with httpx.Client(http1=False, http2=True, timeout=TIMEOUT) as client:
        line = check_request(served, client, f"{key}={kind}")
    assert line["http_version"] == ("2" if key != "http_version" else line["http_version"])


@pytest.mark.parametrize("kind", KIND_NAMES)
@pytest.mark.parametrize("key", WEBSOCKET_KEYS)
def test_a_websocket_session_whose_scope_the_app_rewrote(
    served: Served, key: str, kind: str
) -> None:
    url = served.url.replace("http://", "ws://") + "/chat"
    served.begin()
    with connect(url, additional_headers={"x-rewrite": f"{key}={kind}"}) as websocket:
        request_id = websocket.response.headers["x-request-id"]
    line = served.line_of(request_id)
    assert (line["event"], line["status"]) == ("websocket", 101)
    scrape(served.admin)  # still answers
    served.assert_nothing_went_wrong()


@pytest.mark.parametrize(
    "root_kind", [DELETED, "none", "bytes", "int", "list", "opaque"], ids=lambda kind: kind
)
def test_a_starlette_route_under_a_rewritten_root_path(served: Served, root_kind: str) -> None:
    """The route label reads root_path and app_root_path to find the Mounts above a route."""
    with httpx.Client(timeout=TIMEOUT) as client:
        check_request(served, client, f"route=route;root_path={root_kind};app_root_path=str")
        check_request(served, client, f"route=route;app_root_path={root_kind}")


def test_a_value_the_app_rewrote_to_another_str_is_what_the_line_shows(served: Served) -> None:
    with httpx.Client(timeout=TIMEOUT) as client:
        assert check_request(served, client, "path=str")["path"] == "rewritten"
        assert check_request(served, client, "path=deleted")["path"] is None
        assert check_request(served, client, "client=none")["client"] is None
