"""Back-pressure in both directions, for one connection.

Reading: the protocol pauses the transport while a request body waits, unread, beyond
`HIGH_WATER` bytes. Writing: the transport tells us when its buffer is full; `send()` then
waits in `drain()` until the transport has room again or the connection is lost.
"""

from __future__ import annotations

import asyncio

from monoceros.errors import ClientDisconnected

# Unread request body we hold per connection before we stop reading from the socket.
HIGH_WATER = 65536


class FlowControl:
    __slots__ = ("_transport", "_waiters", "reading_paused", "writing_paused")

    def __init__(self, transport: asyncio.Transport) -> None:
        # None once the connection is lost. (An HTTP/2 stream is its own transport here:
        # letting go of it then frees the pair without the garbage collector.)
        self._transport: asyncio.Transport | None = transport
        self._waiters: list[asyncio.Future[None]] = []
        self.reading_paused = False
        self.writing_paused = False

    def pause_reading(self) -> None:
        transport = self._transport
        if not self.reading_paused and transport is not None:
            self.reading_paused = True
            transport.pause_reading()

    def resume_reading(self) -> None:
        transport = self._transport
        if self.reading_paused and transport is not None:
            self.reading_paused = False
            transport.resume_reading()

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._release(None)

    def connection_lost(self) -> None:
        self._transport = None
        self.writing_paused = False
        if self._waiters:  # (an exception is made only for someone to raise it in)
            self._release(ClientDisconnected("client disconnected"))

    async def drain(self) -> None:
        """Wait until the transport accepts writes again; raise if the client has gone."""
        if self._transport is None:
            raise ClientDisconnected("client disconnected")
        if self.writing_paused:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def _release(self, error: BaseException | None) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(error)
