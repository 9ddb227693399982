"""What a request's cycle may ask of the connection it came on, and nothing more.

`RequestCycle` (cycle.py) writes its response, waits for the transport, and says when it is
done through a `ResponseChannel`; it never sees the connection's parser, queue or deadlines.
HttpProtocol is one; an HTTP/2 stream (h2_stream.py) is another. A base class rather than a
typing Protocol: mypyc then calls these methods natively (a Protocol-typed call is a dynamic
one), and the cycle runs once per request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Final

from monoceros.protocols.flow_control import FlowControl

FILE_CHUNK: Final = 256 * 1024


class ResponseChannel:
    # Set by the connection once it has its transport and peer.
    flow: FlowControl
    peer: tuple[str, int] | None  # the direct TCP peer (proxy headers aside)

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def write_body(self, parts: tuple[bytes, ...], more: bool) -> None:
        """A piece of a response body with its head or framing, `parts` in a row. A channel
        that gathers them (writev) spares copying a large body in with its framing; with
        `more` (the response goes on) it may hold them until the loop's turn ends, to write
        them with the pieces that follow."""
        self.write(b"".join(parts))

    async def send_file(self, file: IO[bytes], size: int) -> None:
        raise NotImplementedError

    def keep_alive_allowed(self) -> bool:
        """False once the connection must close after the current response (shutdown)."""
        raise NotImplementedError

    def response_complete(self, keep_alive: bool) -> None:
        """The last byte of the current response is written; `keep_alive`: the exchange
        allows the connection to be reused."""
        raise NotImplementedError

    def abort(self) -> None:
        """Cut the connection: the only honest signal once a response is broken mid-way."""
        raise NotImplementedError


async def copy_file(
    file: IO[bytes], size: int, write: Callable[[bytes], None], flow: FlowControl
) -> None:
    """`size` bytes of `file`, read and written a chunk at a time, waiting while the peer
    is slow: a large file never sits in memory whole."""
    remaining = size
    while remaining > 0:
        chunk = file.read(min(FILE_CHUNK, remaining))
        if not chunk:
            raise RuntimeError("file shrank while it was being sent")
        remaining -= len(chunk)
        write(chunk)
        if flow.writing_paused:
            await flow.drain()
