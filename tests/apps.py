"""Small ASGI apps the tests drive, each doing one thing."""

from __future__ import annotations

from typing import Any

from monoceros.types import Message, Receive, Scope, Send


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"hello"})


async def echo_scope(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with the scope as JSON (bytes shown as latin-1 strings)."""
    import json

    assert scope["type"] == "http"

    def plain(value: Any) -> Any:
        if isinstance(value, bytes):
            return value.decode("latin-1")
        if isinstance(value, list | tuple):
            return [plain(item) for item in value]
        if isinstance(value, dict):
            return {key: plain(item) for key, item in value.items()}
        return value

    body = json.dumps(plain(dict(scope))).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message: Message = await receive()
        assert message["type"] == "http.request", message
        body += message["body"]
        if not message.get("more_body"):
            return body


async def echo_body(scope: Scope, receive: Receive, send: Send) -> None:
    body = await read_body(receive)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
