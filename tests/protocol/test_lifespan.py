"""The ASGI lifespan protocol, in-process: what the app is told, when, and what the server does
when the app does not take part or fails."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from monoceros.types import Message, Receive, Scope, Send
from tests.utils import run_server

TIMEOUT = 5.0


class Recorder:
    """An app that records every event in order and answers HTTP with its lifespan state."""

    def __init__(self, *, on_startup: Message | None = None, on_shutdown: Message | None = None):
        self.events: list[str] = []
        self.on_startup = on_startup or {"type": "lifespan.startup.complete"}
        self.on_shutdown = on_shutdown or {"type": "lifespan.shutdown.complete"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            assert scope["asgi"]["version"] == "3.0"
            while True:
                message = await receive()
                self.events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    scope["state"]["connection"] = "open"
                    scope["state"]["calls"] = 0
                    await send(self.on_startup)
                else:
                    await send(self.on_shutdown)
                    return
        self.events.append("http " + scope["path"])
        body = repr(sorted(scope["state"].items())).encode()
        scope["state"]["calls"] = 99  # the copy given to this request only
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


def get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=TIMEOUT)


@pytest.mark.parametrize("mode", ["on", "auto"])
def test_startup_and_shutdown_in_order(mode: str) -> None:
    app = Recorder()
    with run_server(app, lifespan=mode) as running:
        assert app.events == ["lifespan.startup"]  # before the first request is served
        assert get(running.url + "/a").status_code == 200
        assert running.stop() == 0
    assert app.events == ["lifespan.startup", "http /a", "lifespan.shutdown"]


def test_state_is_shared_into_request_scopes() -> None:
    app = Recorder()
    with run_server(app, lifespan="on") as running:
        first = get(running.url + "/").text
        second = get(running.url + "/").text
    assert first == second == "[('calls', 0), ('connection', 'open')]"


def test_off_never_sends_lifespan_events() -> None:
    app = Recorder()
    with run_server(app, lifespan="off") as running:
        assert get(running.url + "/").text == "[]"
        assert running.stop() == 0
    assert app.events == ["http /"]


async def raises_on_lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        raise ValueError(f"unsupported scope type {scope['type']}")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"served"})


async def returns_on_lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await raises_on_lifespan(scope, receive, send)


@pytest.mark.parametrize("app", [raises_on_lifespan, returns_on_lifespan])
def test_auto_serves_an_app_without_lifespan_support(
    app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.INFO, logger="monoceros.error"),
        run_server(app, lifespan="auto") as running,
    ):
        assert get(running.url + "/").text == "served"
        assert running.stop() == 0
    messages = [record.getMessage() for record in caplog.records]
    assert "ASGI 'lifespan' protocol appears unsupported." in messages
    assert not any(record.levelno >= logging.ERROR for record in caplog.records), messages


def startup_fails(app: Any, caplog: pytest.LogCaptureFixture) -> str:
    """Start a server that must fail its lifespan startup; return what it logged."""
    with (
        caplog.at_level(logging.INFO, logger="monoceros.error"),
        pytest.raises(RuntimeError, match=r"exited during startup with code \[3\]"),
        run_server(app, lifespan="on"),
    ):
        pass
    return "\n".join(record.getMessage() for record in caplog.records)


def test_startup_failed_message(caplog: pytest.LogCaptureFixture) -> None:
    app = Recorder(on_startup={"type": "lifespan.startup.failed", "message": "no database"})
    assert "Application startup failed: no database" in startup_fails(app, caplog)


def test_startup_failed_without_message(caplog: pytest.LogCaptureFixture) -> None:
    app = Recorder(on_startup={"type": "lifespan.startup.failed"})
    assert "Application startup failed: lifespan.startup.failed" in startup_fails(app, caplog)


@pytest.mark.parametrize(
    ("app", "reason"),
    [
        pytest.param(
            raises_on_lifespan, "ValueError: unsupported scope type lifespan", id="raises"
        ),
        pytest.param(returns_on_lifespan, "the app returned before completing", id="returns"),
        pytest.param(
            Recorder(on_startup={"type": "lifespan.bogus"}),
            "RuntimeError: Unexpected lifespan message 'lifespan.bogus'",
            id="unknown-message",
        ),
    ],
)
def test_on_requires_lifespan_support(
    app: Any, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert reason in startup_fails(app, caplog)


def test_shutdown_failed_is_logged_and_the_server_still_exits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Recorder(on_shutdown={"type": "lifespan.shutdown.failed", "message": "flush failed"})
    with (
        caplog.at_level(logging.INFO, logger="monoceros.error"),
        run_server(app, lifespan="on") as running,
    ):
        assert running.stop() == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == ["Application shutdown failed: flush failed"]


def test_exception_during_shutdown_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "lifespan"
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        raise RuntimeError("shutdown exploded")

    with (
        caplog.at_level(logging.INFO, logger="monoceros.error"),
        run_server(app, lifespan="on") as running,
    ):
        assert running.stop() == 0
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "Exception in 'lifespan' protocol",
        "Application shutdown failed: RuntimeError: shutdown exploded",
    ]
    assert errors[0].exc_info is not None
