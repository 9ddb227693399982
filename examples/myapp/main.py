"""A stand-in for your own app: Starlette routes, served by the monoceros image it is built on.

examples/myapp/Dockerfile builds it FROM the monoceros image, and examples/compose.override.yaml
puts it in the Compose stack in place of the example app. Starlette names the matched route, so
the metrics show `/items/{item_id}`, not every item's path.
"""

from __future__ import annotations

import sys

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse("Hello from myapp\n")


async def item(request: Request) -> JSONResponse:
    python = ".".join(map(str, sys.version_info[:2]))
    return JSONResponse({"item_id": request.path_params["item_id"], "python": python})


app = Starlette(routes=[Route("/", home), Route("/items/{item_id}", item)])
