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

# The sequence behind the ids: 60 bits, so that every value is a native int to mypyc (below
# 2**62: no big-integer arithmetic per request).
_BITS: Final = 60
_MASK: Final = (1 << _BITS) - 1
_HEX_PAD: Final = 1 << _BITS
# 2**60 divided by the golden ratio, made odd: adding it modulo 2**60 visits every value once
# (a Weyl sequence) in an order that looks random, at the cost of an addition.
_STEP: Final = 0x9E3779B97F4A7C1


class RequestIds:
    """Request ids shaped as W3C trace ids (32 lowercase hex digits, not a counter's zeros):
    17 random per process, then 15 of a sequence that repeats no value in 2**60 steps; and
    span ids (16 digits) for --trace-id-generate.

    Unique across processes and restarts without a random draw per request (`os.urandom`
    plus `hex()` costs several times more, on the hot path)."""

    __slots__ = ("_prefix", "_state")

    def __init__(self) -> None:
        random = os.urandom(16).hex()
        self._prefix = random[:17]
        self._state = int(random[17:], 16) & _MASK

    def _step(self) -> str:
        self._state = (self._state + _STEP) & _MASK
        # hex() of 2**60 + n is "0x1" and then exactly 15 digits (n, zero-padded): a quarter
        # of the cost of a `:015x` format spec.
        return hex(_HEX_PAD + self._state)[3:]

    def next(self) -> str:
        return self._prefix + self._step()

    def trace(self) -> TraceContext:
        """A fresh trace: a trace id like a request id, and a span id (unique in the trace)."""
        step = self._step()
        return self._prefix + step, self._prefix[:1] + step


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
