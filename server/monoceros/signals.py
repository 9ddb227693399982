"""Signals, as both the server and the supervisor take them: handlers only record, the loop
acts, and the previous handlers come back afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterable, Iterator


@contextlib.contextmanager
def captured_signals(
    loop: asyncio.AbstractEventLoop,
    signals: Iterable[signal.Signals],
    handler: Callable[[signal.Signals], None],
) -> Iterator[None]:
    """Call `handler(sig)` on `loop` for each of `signals` while the block runs. Outside the
    main thread nothing is installed: the program embedding us owns its signals."""
    installed = []
    for sig in signals:
        try:
            loop.add_signal_handler(sig, handler, sig)
        except (ValueError, RuntimeError, NotImplementedError):
            continue
        installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
