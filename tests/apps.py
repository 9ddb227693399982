"""Small ASGI apps the tests drive, each doing one thing."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from monoceros.protocols.events import current_request_id
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


def plain(value: Any) -> Any:
    """A scope value as JSON can show it: bytes as latin-1 strings, tuples as lists."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


async def run_lifespan(receive: Receive, send: Send) -> None:
    """A lifespan whose startup and shutdown complete at once; returns after the shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def send_text(send: Send, body: bytes, status: int = 200) -> None:
    """A whole text/plain response, with its content-length."""
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def echo_scope(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with the scope as JSON (bytes shown as latin-1 strings)."""
    assert scope["type"] == "http"
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


async def read_all(receive: Receive, pause: int = 0) -> bytes | None:
    """The whole request body, or None if the client (or the server, refusing the rest of the
    request) ended it first; `pause` loop turns between two messages (an app that reads
    slowly)."""
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message["body"]
        if not message.get("more_body"):
            return body
        for _ in range(pause):
            await asyncio.sleep(0)


async def answer_with_body_size(
    path: str, receive: Receive, send: Send, seen: dict[str, Any]
) -> None:
    """Read the request body, keeping it in `seen[path]` (None: it never came whole), and
    answer with its size; at /stream-then-read the response starts before the body is read,
    at /trailers-then-read all but its trailers (the body's size) go out before."""
    if path == "/stream-then-read":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
    elif path == "/trailers-then-read":
        start = {"type": "http.response.start", "status": 200, "headers": [], "trailers": True}
        await send(start)
        await send({"type": "http.response.body", "body": b"first"})
    body = seen[path] = await read_all(receive)
    if body is None:
        return
    if path == "/stream-then-read":
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/trailers-then-read":
        size = b"%d" % len(body)
        await send({"type": "http.response.trailers", "headers": [(b"x-size", size)]})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"%d bytes" % len(body)})


async def echo_body(scope: Scope, receive: Receive, send: Send) -> None:
    body = await read_body(receive)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


# How each websocket_echo session ended, as the app saw it: (path, (code, reason)). The app
# runs in the server's thread; a test reads this with wait_for_close().
WEBSOCKET_CLOSES: list[tuple[str, tuple[int, str]]] = []
FLOOD_SENT: list[int] = []


async def echo_messages(receive: Receive, send: Send, pause: int = 0, first: bytes = b"") -> None:
    """Accept a WebSocket, send `first` (if any), then echo every message, yielding to the
    loop `pause` times before each echo (the fuzz targets' sessions)."""
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    if first:
        await send({"type": "websocket.send", "bytes": first})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        for _ in range(pause):
            await asyncio.sleep(0)
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def websocket_echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Echoes WebSocket messages; answers plain HTTP with the scope type.

    By path, before accepting: /reject closes (403), /boom raises (500), /split accepts with a
    header holding CRLF (500), /deny sends a 401 denial response, /slow-accept waits 0.3 s.
    After: /stall waits before reading, /scope first sends the scope (the parts a test asks
    about) and the request id as JSON, /flood sends 64 messages of 1 MiB, counting each
    completed send in FLOOD_SENT. A text message `close:CODE` makes the app close with CODE
    and reason "bye"."""
    if scope["type"] != "websocket":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["type"].encode()})
        return
    path = scope["path"]
    assert (await receive())["type"] == "websocket.connect"
    if path == "/reject":
        await send({"type": "websocket.close"})
        return
    if path == "/boom":
        raise RuntimeError("before accept")
    if path == "/split":
        await send({"type": "websocket.accept", "headers": [(b"x-a", b"1\r\nx-b: 2")]})
    if path == "/deny":
        headers = [(b"content-type", b"text/plain"), (b"x-why", b"no")]
        await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": b"go away", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"!"})
        return
    if path == "/slow-accept":
        await asyncio.sleep(0.3)
    subprotocol = scope["subprotocols"][0] if scope["subprotocols"] else None
    await send(
        {"type": "websocket.accept", "subprotocol": subprotocol, "headers": [(b"x-hello", b"1")]}
    )
    if path == "/stall":
        await asyncio.sleep(0.3)  # messages pile up meanwhile: reading must pause
    if path == "/scope":
        fields = ("path", "raw_path", "query_string", "scheme", "root_path", "subprotocols")
        seen = {name: plain(scope[name]) for name in fields}
        seen["client"] = plain(scope["client"])
        seen["extensions"] = plain(scope["extensions"])
        seen["request_id"] = current_request_id()
        await send({"type": "websocket.send", "text": json.dumps(seen)})
    if path == "/flood":
        for _ in range(64):
            await send({"type": "websocket.send", "bytes": b"x" * 1024 * 1024})
            FLOOD_SENT.append(1)
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            WEBSOCKET_CLOSES.append((path, (message["code"], message.get("reason", ""))))
            return
        text = message.get("text")
        if text is not None and text.startswith("close:"):
            await send({"type": "websocket.close", "code": int(text[6:]), "reason": "bye"})
            continue
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


def wait_for_close(path: str, timeout: float = 5.0) -> tuple[int, str]:
    """The (code, reason) a websocket_echo session at `path` ended with, taken off the list."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, value in WEBSOCKET_CLOSES:
            if name == path:
                WEBSOCKET_CLOSES.remove((name, value))
                return value
        time.sleep(0.01)
    raise AssertionError(f"no websocket_echo session at {path} has ended")
