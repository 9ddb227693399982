"""What every connection of one listener is told, once: a `ConnectionContext` the server builds
from its `Config` before it accepts a connection, and never changes.

Connections read their limits, headers and helpers from here instead of from the Config (which
knows everything) or from copies of its fields. Mutable helpers in it (the request-id counter,
the request limit, the Date line of the default headers) are shared by design; the context's
own fields never change.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from monoceros.addresses import TrustedProxies
from monoceros.config import Config, Http2Settings, HttpLimits, WebSocketSettings
from monoceros.protocols.head import DefaultHeaders
from monoceros.protocols.observer import Observer
from monoceros.proxy import ProxyResolver

_HEX_PAD: Final = 1 << 64


class RequestIds:
    """Request ids as 32 hex digits, like a UUID's: 16 random per process, then a counter.

    Unique across processes and restarts without a random draw per request (`os.urandom`
    plus `hex()` costs several times more, on the hot path)."""

    __slots__ = ("_count", "_prefix")

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._count = 0

    def next(self) -> str:
        self._count += 1
        # hex() of 2**64 + count is "0x1" and then exactly 16 digits (the count, zero-padded):
        # a quarter of the cost of a `:016x` format spec.
        return self._prefix + hex(_HEX_PAD + self._count)[3:]


class RequestLimit:
    """`--limit-max-requests`: counts requests as they start, and calls `reached` once."""

    __slots__ = ("_left", "_reached")

    def __init__(self, limit: int, reached: Callable[[], None]) -> None:
        self._left = limit
        self._reached = reached

    def count(self) -> None:
        self._left -= 1
        if self._left == 0:
            self._reached()


@dataclass(frozen=True, slots=True)
class ConnectionContext:
    default_headers: DefaultHeaders  # server, date and --header lines of every response
    # Who is told what happens; None: nobody (then no record is even built).
    observer: Observer | None = None
    limits: HttpLimits = field(default_factory=HttpLimits)
    root_path: str = ""
    # WebSockets: None answers upgrade requests as plain HTTP (--ws none, the admin listener).
    ws: WebSocketSettings | None = None
    # Lowercased request/response header carrying the request id; empty: no request ids.
    request_id_header: bytes = b""
    request_ids: RequestIds = field(default_factory=RequestIds)
    # Proxy headers: None believes none (--no-proxy-headers, the admin listener).
    proxy: ProxyResolver | None = None
    # --proxy-protocol: the peers that must open with a PROXY header (others must not send
    # one); None when the option is off.
    proxy_protocol: TrustedProxies | None = None
    limit_concurrency: int | None = None
    # HTTP/2 beside HTTP/1.1 on the same listener; None: HTTP/1.1 only.
    http2: Http2Settings | None = None
    request_limit: RequestLimit | None = None
    # Lifespan state: each request scope gets a shallow copy (ASGI lifespan "state").
    app_state: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_application(
        cls,
        config: Config,
        observer: Observer | None,
        request_limit: RequestLimit | None = None,
    ) -> ConnectionContext:
        """The application listener's context."""
        return cls(
            default_headers=DefaultHeaders(
                server=config.server_header, date=config.date_header, extra=config.headers
            ),
            observer=observer,
            limits=config.limits,
            root_path=config.root_path,
            ws=config.ws if config.ws.enabled else None,
            request_id_header=config.observe.request_id_header.lower().encode("ascii"),
            proxy=ProxyResolver.from_settings(config.proxy),
            proxy_protocol=(
                TrustedProxies.parse(config.proxy.forwarded_allow_ips)
                if config.proxy.proxy_protocol
                else None
            ),
            limit_concurrency=config.limit_concurrency,
            http2=config.http2 if config.http2.enabled else None,
            request_limit=request_limit,
        )
