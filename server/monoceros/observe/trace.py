"""`--log-level trace`: what uvicorn's TRACE level shows, for debugging a client or an app.

- `TracedProtocol` wraps each connection's protocol and logs it opening, being handed to a
  WebSocket session, and closing, with the peer's address;
- `MessageLog` wraps the app and logs each ASGI call: its scope, every message received and
  sent (bodies as their size), and how it ended.

Both are put in place by the server only when TRACE is enabled: below it, connections and the
app are the same objects as ever, and the hot path pays nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

from monoceros.observe.logging import TRACE
from monoceros.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("monoceros.error")


def trace_enabled() -> bool:
    return logger.isEnabledFor(TRACE)


class TracedProtocol(asyncio.Protocol):
    """Delegates everything to `inner`, logging the connection's life at TRACE."""

    def __init__(self, inner: asyncio.Protocol, kind: str = "HTTP") -> None:
        self.inner = inner
        self.kind = kind
        self.peer = "-"
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.peer = _address(transport.get_extra_info("peername"))
        logger.log(TRACE, "%s - %s connection made", self.peer, self.kind)
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)
        transport = self.transport
        if transport is None or transport.get_protocol() is self:
            return
        # The connection was handed on (an upgrade to WebSocket): trace its new owner.
        logger.log(TRACE, "%s - Upgrading to WebSocket", self.peer)
        traced = TracedProtocol(transport.get_protocol(), "WebSocket")  # type: ignore[arg-type]
        traced.transport, traced.peer = transport, self.peer
        transport.set_protocol(traced)
        self.transport = None

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        logger.log(TRACE, "%s - %s connection lost", self.peer, self.kind)
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class MessageLog:
    """The app, with each ASGI call and message logged at TRACE, numbered per call."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._numbers = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        number = next(self._numbers)
        logger.log(TRACE, "ASGI [%d] Started scope=%s", number, _shown(scope))

        async def traced_receive() -> Message:
            message = await receive()
            logger.log(TRACE, "ASGI [%d] Receive %s", number, _shown(message))
            return message

        async def traced_send(message: Message) -> None:
            logger.log(TRACE, "ASGI [%d] Send %s", number, _shown(message))
            await send(message)

        try:
            await self.app(scope, traced_receive, traced_send)
        except BaseException:
            logger.log(TRACE, "ASGI [%d] Raised exception", number)
            raise
        logger.log(TRACE, "ASGI [%d] Completed", number)


def _shown(message: Any) -> dict[str, Any]:
    """A scope or message for the log: bytes bodies as their size, state left out."""
    shown = {}
    for key, value in message.items():
        if key in ("body", "bytes") and isinstance(value, bytes | bytearray):
            shown[key] = f"<{len(value)} bytes>"
        elif key not in ("state", "extensions"):
            shown[key] = value
    return shown


def _address(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer) if peer else "-"
