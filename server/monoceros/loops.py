"""Which event loop runs a server or a supervisor (`--loop`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from monoceros.errors import StartupError


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop for `auto` where uvloop is installed, and for `uvloop` (and uvicorn's
    `zuvloop`); None (asyncio's own) for `asyncio`, uvicorn's `none`, or `auto` without uvloop;
    for `module:attribute`, that callable, which returns a new loop (as uvicorn takes it)."""
    if name in ("asyncio", "none"):
        return None
    if ":" in name:
        return _custom_factory(name)
    try:
        import uvloop
    except ImportError:
        if name in ("uvloop", "zuvloop"):
            raise StartupError(f"--loop {name}: uvloop is not installed") from None
        return None
    factory: Callable[[], Any] = uvloop.new_event_loop
    return factory


def _custom_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    from monoceros.importer import import_from_string

    try:
        factory = import_from_string(name)
    except StartupError as exc:
        raise StartupError(f"--loop {name}: {exc}") from None
    if not callable(factory):
        raise StartupError(f"--loop {name}: not callable (it is {type(factory).__name__})")
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = factory
    return loop_factory
