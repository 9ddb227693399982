"""An observer that fails is the server's problem, not the app's: a request finishes inside the
app's last `send()`, so an exception from what observes it would surface there, in the app,
after its response went out. It is logged instead (with its traceback, naming the record), and
the connection goes on serving."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosedOK
from websockets.sync.client import connect

from monoceros.observe import Observers
from monoceros.observe.access import AccessLog
from monoceros.observe.metrics import HttpMetrics
from monoceros.observe.output import LineBuffer
from monoceros.protocols.events import RequestFinished, SessionFinished
from monoceros.protocols.observer import Unobserved
from monoceros.types import Receive, Scope, Send
from tests.utils import Recorder, RunningServer, run_server

TIMEOUT = 10.0
SENDS: list[str] = []  # what each of the app's send() calls came to


class Failing(Unobserved):
    """An embedder's observer with a bug."""

    def request_finished(self, record: RequestFinished) -> None:
        raise RuntimeError("the embedder's observer broke")

    def session_finished(self, record: SessionFinished) -> None:
        raise RuntimeError("the embedder's observer broke")


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    try:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 1000})
        else:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"answered"})
        SENDS.append("sent")
    except Exception as exc:
        SENDS.append(f"send raised {exc!r}")
        raise


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with run_server(app, lifespan="off", observer=Failing()) as running:
        yield running


def failures_logged(caplog: pytest.LogCaptureFixture, count: int) -> list[logging.LogRecord]:
    """The records of the observer's failures, once there are `count` (logged on the server's
    thread, maybe a little after the response)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        found = [r for r in caplog.records if "The embedder's observer failed" in r.getMessage()]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.01)


def test_a_request_whose_observer_fails(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    SENDS.clear()
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        first = client.get("/first")
        second = client.get("/second")  # on the same connection
    assert [(r.status_code, r.text) for r in (first, second)] == [(200, "answered")] * 2
    assert SENDS == ["sent", "sent"]
    logged = failures_logged(caplog, 2)
    assert len(logged) == 2
    assert all(r.levelno == logging.ERROR and r.exc_info for r in logged)
    assert "/first" in logged[0].getMessage()
    assert "the embedder's observer broke" in str(logged[0].exc_info[1])  # type: ignore[index]


def test_a_websocket_session_whose_observer_fails(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    SENDS.clear()
    url = server.url.replace("http://", "ws://") + "/chat"
    with connect(url, open_timeout=TIMEOUT) as websocket, pytest.raises(ConnectionClosedOK):
        websocket.recv(timeout=TIMEOUT)  # the app closes at once
    (logged,) = failures_logged(caplog, 1)
    assert "SessionFinished" in logged.getMessage()
    assert SENDS == ["sent"]


class BrokenHandler:
    """What --log-config's access logger hands each line to (observe/access_logger.py), with a
    bug."""

    def request(self, record: RequestFinished, line: bytes) -> None:
        raise RuntimeError("the access log's handler broke")


def broken_route_finder(scope: object) -> str:
    raise RuntimeError("the route finder broke")


def test_each_observer_hears_of_a_request_whatever_the_one_before_it_did(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = HttpMetrics()
    metrics.find_route = broken_route_finder  # asked for each unrouted request's label
    recorder = Recorder()
    observers = Observers(
        metrics, AccessLog(LineBuffer(io.BytesIO()), through=BrokenHandler()), recorder
    )
    scope = {"type": "http", "method": "GET", "scheme": "http", "path": "/", "http_version": "1.1"}
    record = RequestFinished(
        scope, "GET", "http", 200, "complete", 0.001, 0, 2, None, "rid", None, None
    )
    with caplog.at_level(logging.ERROR, logger="monoceros.error"):
        observers.request_finished(record)  # raises nothing
    assert recorder.requests == [record]
    failed = [r.getMessage().split(" failed on ")[0] for r in caplog.records]
    assert failed == ["The metrics", "The access log"]
    assert all(r.exc_info for r in caplog.records)
