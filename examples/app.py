"""A plain ASGI app: the endpoints the README, the benchmarks and the tests talk to.

/              13-byte plaintext ("Hello, World!")
/json          a 1 KB JSON document
/echo          POST: echoes the request body
/stream        a 1 MiB response streamed in 64 KiB chunks
/slow?seconds= sleeps, then answers (graceful-shutdown demos)
/ws            WebSocket: echoes every message back
"""

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs

Scope = dict[str, Any]
Message = dict[str, Any]

PLAINTEXT = b"Hello, World!"
JSON_DOCUMENT = json.dumps(
    {"items": [{"id": i, "name": f"item-{i:03d}", "price": i * 1.25} for i in range(22)]}
).encode()
STREAM_CHUNK = b"x" * 65536
STREAM_CHUNKS = 16


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] == "websocket":
        await _echo_messages(receive, send)
        return
    path = scope["path"]
    if path == "/" or path == "/plaintext":
        await _respond(send, 200, b"text/plain", PLAINTEXT)
    elif path == "/json":
        await _respond(send, 200, b"application/json", JSON_DOCUMENT)
    elif path == "/echo":
        body = bytearray()
        more_body = True
        while more_body:
            message = await receive()
            body += message.get("body", b"")
            more_body = message.get("more_body", False)
        await _respond(send, 200, b"application/octet-stream", bytes(body))
    elif path == "/stream":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/octet-stream")],
            }
        )
        for _ in range(STREAM_CHUNKS):
            await send({"type": "http.response.body", "body": STREAM_CHUNK, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/slow":
        query = parse_qs(scope["query_string"].decode())
        await asyncio.sleep(float(query.get("seconds", ["1"])[0]))
        await _respond(send, 200, b"text/plain", b"slept")
    else:
        await _respond(send, 404, b"text/plain", b"Not Found")


async def _respond(send: Any, status: int, content_type: bytes, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _echo_messages(receive: Any, send: Any) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        reply = {"type": "websocket.send", "text": message.get("text")}
        reply["bytes"] = message.get("bytes")
        await send(reply)


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
