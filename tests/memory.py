"""A transport in memory, for driving the real protocol objects without sockets: what they
write is collected, and reading pauses and resumes as they ask. The in-memory tests
(tests/protocol/test_pipelining.py, test_state_machines.py, test_h11_differential.py) and the
fuzz targets (tests/fuzz/) use it.

It imports nothing of monoceros, so a fuzz target can import it before it instruments the
server's modules.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


class MemoryTransport:
    """What HttpProtocol needs of a transport, in memory: writes are collected, reading pauses
    and resumes as the protocol asks, and closing schedules `connection_lost` as a real
    transport does: at once, or, while a client that stopped reading leaves the buffer full,
    once it reads again (`drained`) or the connection is aborted. `close()` and `abort()` are
    told apart: a response cut short is only allowed after an abort."""

    def __init__(self, peer: tuple[str, int] = ("127.0.0.1", 50000)) -> None:
        self.written = bytearray()
        self.reading = True
        self.closed = False
        self.aborted = False
        self.lost = False  # connection_lost is scheduled
        self.gone = False  # the client hung up (the protocol learns it from connection_lost)
        self.protocol: Any = None
        self.peer = peer
        # A client that stops reading: past this many bytes written, the transport's buffer
        # is full for good (pause_writing, and never resume_writing).
        self.stall_after: int | None = None
        self.writing_paused = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": self.peer, "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def writelines(self, parts: Iterable[bytes]) -> None:
        self.write(b"".join(parts))

    def write(self, data: bytes) -> None:
        if self.gone:
            return  # to a client that hung up: the protocol has yet to hear (as a socket drops it)
        assert not self.closed, "write after close"
        self.written += data
        stall = self.stall_after
        if stall is not None and len(self.written) > stall and not self.writing_paused:
            self.writing_paused = True
            self.protocol.pause_writing()  # as a real transport does, from inside write()

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closed or self.gone

    def close(self) -> None:
        self.closed = True
        if not self.writing_paused:  # else the buffer must be read first
            self._lose()

    def abort(self) -> None:
        self.aborted = not self.closed or self.aborted
        self.closed = True
        self._lose()

    def hang_up(self) -> None:
        """The client closes its end: writes go nowhere until the protocol hears of it."""
        self.gone = True
        self._lose()

    def drained(self) -> None:
        """The client read everything buffered."""
        self.writing_paused = False
        if self.closed:
            self._lose()
        else:
            self.protocol.resume_writing()

    def _lose(self) -> None:
        if not self.lost:
            self.lost = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol
