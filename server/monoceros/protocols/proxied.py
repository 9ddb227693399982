"""HTTP/1.1 behind a TCP load balancer that speaks the PROXY protocol (`--proxy-protocol`): a
connection's first bytes are the balancer's header (proxy_header.py), then HTTP as usual.

A peer in `--forwarded-allow-ips` must send the header: its source becomes the client and its
destination the server (v1 UNKNOWN and v2 LOCAL, the balancer's health checks, keep the
socket's addresses), and X-Forwarded-* headers are then resolved on top, believed if that
source is trusted. A peer not in the list must not send one. A missing, malformed, oversized
or late header (the header deadline applies) closes the connection, counted by reason; such a
connection never reaches HTTP. Without the option the server uses HttpProtocol itself, so this
costs its connections nothing.
"""

from __future__ import annotations

import asyncio

from monoceros.protocols.context import ConnectionContext
from monoceros.protocols.http import HttpProtocol
from monoceros.protocols.proxy_header import (
    InvalidProxyHeader,
    ProxyHeader,
    parse_proxy_header,
    starts_like_a_proxy_header,
)
from monoceros.protocols.scope import ConnectionFacts
from monoceros.protocols.state import ServerState
from monoceros.types import ASGIApp


class ProxiedHttpProtocol(HttpProtocol):
    def __init__(
        self, app: ASGIApp, context: ConnectionContext, state: ServerState, scheme: str = "http"
    ) -> None:
        super().__init__(app, context, state, scheme)
        self._header_required = False  # the peer is one that must send a header
        self._header_pending = True  # the first bytes have not been judged yet
        self._prelude = b""  # the start of a header not complete yet (bounded by its parser)
        self._turned_away = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        required = self.context.proxy_protocol
        self._header_required = required is not None and required.trusts_peer(self.peer)

    def data_received(self, data: bytes) -> None:
        if not self._header_pending:
            HttpProtocol.data_received(self, data)
            return
        if self._turned_away:
            return
        if self._prelude:
            data = self._prelude + data
            self._prelude = b""
        if self._header_required:
            self._read_header(data)
        else:
            self._refuse_header(data)

    def _read_header(self, data: bytes) -> None:
        try:
            header = parse_proxy_header(data)
        except InvalidProxyHeader:
            begun = starts_like_a_proxy_header(data)
            self._turn_away("proxy_header_invalid" if begun else "proxy_header_missing")
            return
        if header is None:
            self._prelude = data
            return
        self._header_pending = False
        self._adopt(header)
        if len(data) > header.length:
            HttpProtocol.data_received(self, data[header.length :])

    def _refuse_header(self, data: bytes) -> None:
        """A peer not trusted to send a header: HTTP if it sends none."""
        begins = starts_like_a_proxy_header(data)
        if begins is None:
            self._prelude = data
        elif begins:
            self._turn_away("proxy_header_untrusted")
        else:
            self._header_pending = False
            HttpProtocol.data_received(self, data)

    def _adopt(self, header: ProxyHeader) -> None:
        """The balancer's view of the connection replaces the socket's: every request's
        client, server and scheme, and the trust proxy headers get."""
        context = self.context
        facts = self.reader.facts
        client, server = facts.client, facts.server
        if not header.local:
            client, server = header.source, header.destination
        scheme = "https" if header.tls and self.scheme == "http" else self.scheme
        trusted = context.proxy is not None and context.proxy.trusts_peer(client)
        # The reader has read nothing yet: it is told of the new addresses, not replaced.
        reader = self.reader
        reader.facts = ConnectionFacts(client, server, scheme, self.peer, trusted, header.info)
        reader.peer_trusted = trusted

    def check_deadline(self, now: float) -> None:
        if self._header_pending and not self._turned_away:
            self._turn_away("proxy_header_timeout")
            return
        HttpProtocol.check_deadline(self, now)

    def _turn_away(self, reason: str) -> None:
        self._turned_away = True
        self._prelude = b""
        observer = self.context.observer
        if observer is not None:
            observer.connection_rejected(reason)
        self.close()
