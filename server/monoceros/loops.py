"""Which event loop runs a server or a supervisor (`--loop`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from monoceros.errors import StartupError


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop for `auto` where uvloop is installed, and for `uvloop`; None (asyncio's
    own) for `asyncio`, or for `auto` without uvloop."""
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if name == "uvloop":
            raise StartupError("--loop uvloop: uvloop is not installed") from None
        return None
    factory: Callable[[], Any] = uvloop.new_event_loop
    return factory
