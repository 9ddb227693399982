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
from monoceros.protocols.events import TraceContext
from monoceros.protocols.head import DefaultHeaders
from monoceros.protocols.observer import Observer
from monoceros.protocols.tracecontext import parse_traceparent
from monoceros.proxy import ProxyResolver

# Ids are cut from a block of random hex digits drawn for this many at a time: one
# `os.urandom` and one `hex()` per block instead of per request.
IDS_PER_BLOCK: Final = 256
_ID_DIGITS: Final = 32  # a W3C trace id
_SPAN_DIGITS: Final = 16  # a W3C span id


class RequestIds:
    """Request ids shaped as W3C trace ids: 32 lowercase hex digits, all random (128 bits,
    as the trace context spec asks of trace ids); and span ids (16 digits) for
    --trace-id-generate.

    Random digits are drawn a block at a time and cut into ids: a slice per request on the
    hot path. Each process has its own (workers are spawned, and build their own context), and
    draws its first block at its first id."""

    __slots__ = ("_block", "_next")

    def __init__(self) -> None:
        self._block = ""
        self._next = 0

    def _take(self, digits: int) -> str:
        start = self._next
        end = start + digits
        if end > len(self._block):
            self._block = os.urandom(IDS_PER_BLOCK * _ID_DIGITS // 2).hex()
            start, end = 0, digits
        self._next = end
        return self._block[start:end]

    def next(self) -> str:
        return self._take(_ID_DIGITS)

    def trace(self) -> TraceContext:
        """A fresh trace: a random trace id and span id."""
        return self._take(_ID_DIGITS), self._take(_SPAN_DIGITS)


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
    # --trace-id-generate: a request without a valid traceparent gets a trace of its own.
    generate_traces: bool = False
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

    def trace_for(self, traceparent: bytes | None) -> TraceContext | None:
        """A request's trace context: its traceparent's (None: no valid one), or with
        --trace-id-generate one of its own."""
        trace = parse_traceparent(traceparent) if traceparent is not None else None
        if trace is None and self.generate_traces:
            return self.request_ids.trace()
        return trace

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
            generate_traces=config.observe.trace_id_generate,
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
