"""Every line a real process writes, in each --log-schema, is valid against the JSON schema the
log reference publishes (docs/reference/log-schemas/); the lines cover every kind: requests, a
WebSocket session, the server's events, the app's stdlib and structlog records (with their
own fields), a traceback."""

from __future__ import annotations

import asyncio
import signal

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.integration.helpers import TIMEOUT
from tests.integration.observe_helpers import eventually, json_lines, start
from tests.log_schemas import assert_valid

ACCESS_LINES = 5  # the four requests and the WebSocket session
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
# Per schema: where each line says its logger and message, what a traceback is under.
NAMES = {
    "default": ("logger", "event", "exception"),
    "ecs": ("log.logger", "message", "error.stack_trace"),
    "otel": ("scope.name", "body", "exception.stacktrace"),
}


def traffic(url: str) -> None:
    with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        client.get("/?q=1", headers={"traceparent": TRACEPARENT, "referer": "http://r/"})
        client.get("/log")
        client.get("/boom")
        client.post("/echo", content=b"x" * 100)

    async def session() -> None:
        async with connect(url.replace("http", "ws", 1) + "/ws", open_timeout=TIMEOUT) as ws:
            await ws.send("hi")
            await ws.recv()

    asyncio.run(session())


@pytest.mark.parametrize("schema", sorted(NAMES))
def test_every_line_is_valid_against_its_schema(schema: str) -> None:
    logger, message, traceback = NAMES[schema]
    with start("--log-schema", schema, "--trace-id-generate") as process:
        url = process.wait_listening(TIMEOUT)
        traffic(url)

        def access_lines() -> bool | None:
            lines = [line for line in json_lines(process) if line.get(logger) == "monoceros.access"]
            return len(lines) >= ACCESS_LINES or None

        eventually(access_lines, what=f"{ACCESS_LINES} access lines in\n{process.output}")
        process.signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0, process.output
    lines = json_lines(process)
    for line in lines:
        assert_valid(line, schema)
    events = {(line.get(logger), line.get(message)) for line in lines}
    assert ("monoceros.access", "request") in events
    assert ("monoceros.access", "websocket") in events
    assert ("monoceros.error", "Listening on " + url + " (Press CTRL+C to quit)") in events
    (record,) = [line for line in lines if line.get(message) == "inside a request"]
    assert (record[logger], record["order_id"]) == ("observe_app", 7)
    (structured,) = [line for line in lines if line.get(message) == "structured inside"]
    assert (structured[logger], structured["answer"]) == ("observe_app.structured", 42)
    (failed,) = [line for line in lines if traceback in line]
    assert "RuntimeError: boom from the app" in failed[traceback]
