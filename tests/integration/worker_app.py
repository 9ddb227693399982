"""The app the worker tests serve, as `tests.integration.worker_app:app`: every response
names the process that served it.

/slow?seconds=   sleeps (at most 10 s), then answers with the pid
anything else    the pid, at once
"""

from __future__ import annotations

import asyncio
import os
from typing import Any
from urllib.parse import parse_qs

from tests.apps import run_lifespan, send_text


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await run_lifespan(receive, send)
        return
    if scope["path"] == "/slow":
        query = parse_qs(scope["query_string"].decode())
        await asyncio.sleep(min(float(query.get("seconds", ["1"])[0]), 10.0))
    await send_text(send, str(os.getpid()).encode())
