"""The endpoints of examples/app.py, written with Starlette.

    monoceros examples.starlette_app:app

/              13-byte plaintext ("Hello, World!")
/json          a 1 KB JSON document
/echo          POST: echoes the request body
/stream        a 1 MiB response streamed in 64 KiB chunks
/slow?seconds= sleeps, then answers (graceful-shutdown demos)

The bodies are byte-for-byte those of examples/app.py, so the two can be benchmarked side by
side; the difference is the framework.
"""

import asyncio
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from examples.app import JSON_DOCUMENT, PLAINTEXT, STREAM_CHUNK, STREAM_CHUNKS


async def plaintext(request: Request) -> Response:
    return PlainTextResponse(PLAINTEXT)


async def json_document(request: Request) -> Response:
    # The document is encoded once, at import: JSONResponse would re-encode it per request.
    return Response(JSON_DOCUMENT, media_type="application/json")


async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/octet-stream")


async def stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(STREAM_CHUNKS):
            yield STREAM_CHUNK

    return StreamingResponse(chunks(), media_type="application/octet-stream")


async def slow(request: Request) -> Response:
    await asyncio.sleep(float(request.query_params.get("seconds", "1")))
    return PlainTextResponse("slept")


app = Starlette(
    routes=[
        Route("/", plaintext),
        Route("/plaintext", plaintext),
        Route("/json", json_document),
        Route("/echo", echo, methods=["POST"]),
        Route("/stream", stream),
        Route("/slow", slow),
    ]
)
