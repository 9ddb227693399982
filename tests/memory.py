"""A transport in memory, for driving the real protocol objects without sockets: what they
write is collected, and reading pauses and resumes as they ask."""

from __future__ import annotations

import asyncio
from typing import Any


class MemoryTransport:
    """What HttpProtocol needs of a transport, in memory: writes are collected, and reading
    pauses and resumes as the protocol asks."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.reading = True
        self.closed = False
        self.protocol: Any = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.written += data

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    abort = close

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol
