"""Trusted-proxy resolution: the real client, scheme, host and prefix behind proxies we trust.

Pure: headers and the direct peer in; client, scheme, Host, server and root_path out. No I/O,
no clock, no logging. The server builds one `ProxyResolver` from the settings; a connection
asks it `trusts_peer()` once, and only for a trusted peer resolves each request's scope before
the app sees it: `resolve()` with the proxy fields the HTTP/1 reader noted while parsing (most
requests carry none, and then nothing is called), `resolve_scope()` over a scope's headers
(HTTP/2). What a set of fields says depends on nothing else, so the resolver remembers it
(bounded): a client's next request through the same proxy costs a lookup.

The rules (docs/proxy.md):

- A list of hops (`X-Forwarded-For`, or the elements of RFC 7239 `Forwarded`; several header
  lines are one list) is walked from the right, skipping trusted proxies: the first address
  that is not trusted is the client; if every hop is trusted, the leftmost one. Entries left
  of the client were written by the client and are never read. uvicorn's
  `middleware/proxy_headers.py` walks the same way; daphne takes the leftmost (forgeable) one.
- A hop the proxy hid (`unknown`, or an RFC 7239 obfuscated `_identifier`) makes the client
  unknown: `scope["client"]` becomes None rather than the proxy's address.
- A malformed hop (garbage where an address should be) makes the whole header ignored: the
  client stays the peer. A request is never failed over a proxy header.
- `X-Forwarded-Proto`, `-Host`, `-Port` and `-Prefix` are single values: the rightmost one
  counts (the one the nearest proxy set). In `Forwarded`, proto= and host= come from the
  element chosen for the client (what the proxy that met the client saw). by= and extension
  parameters are accepted and not used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final, final
from urllib.parse import unquote

from monoceros.addresses import Address, Client, TrustedProxies, ipv4_value, parse_ip
from monoceros.config import ProxySettings
from monoceros.grammar import TOKEN_PATTERN
from monoceros.types import ServerScope

# One entry of a forwarding chain: (client, address); client None: the proxy hid the address.
# A plain tuple, not a NamedTuple: it is built per hop per request, and NamedTuple.__new__ is
# Python code.
Hop = tuple[Client | None, Address | None]
HIDDEN: Final[Hop] = (None, None)

_OBFUSCATED = re.compile(r"_[A-Za-z0-9._-]+\Z")  # RFC 7239 section 6.3
_DIGITS = re.compile(r"[0-9]{1,5}\Z")


def parse_node(text: str) -> Hop | None:
    """One X-Forwarded-For entry or Forwarded for= value (already unquoted): `1.2.3.4`,
    `1.2.3.4:80`, `::1`, `[::1]`, `[::1]:80`, `unknown`, `_hidden`, `[::1]:_port`.
    None when it is none of these."""
    if ":" not in text:  # the common case: a bare IPv4 address
        value = ipv4_value(text)
        if value >= 0:
            return (text, 0), (4, value)
        if text.lower() == "unknown" or _OBFUSCATED.match(text):
            return HIDDEN
        return None
    if len(text) > 64:
        return None
    port: int | None = 0
    if text[:1] == "[":
        host, bracket, rest = text[1:].partition("]")
        if not bracket or ":" not in host:
            return None
        if rest:
            port = _node_port(rest[1:]) if rest[0] == ":" else None
    elif text.count(":") == 1:
        host, _, rest = text.partition(":")
        port = _node_port(rest)
        if port is not None and (host.lower() == "unknown" or _OBFUSCATED.match(host)):
            return HIDDEN
    else:
        host = text
    parsed = parse_ip(host)
    if parsed is None or port is None:
        return None
    return (parsed[0], port), parsed[1]


def _node_port(text: str) -> int | None:
    if _OBFUSCATED.match(text):
        return 0
    return _port(text)


def _port(text: str) -> int | None:
    if not _DIGITS.match(text):
        return None
    port = int(text)
    return port if 0 < port <= 65535 else None


def _walk(hops: list[str], trusted: TrustedProxies) -> Hop | None:
    """The client among `hops`: right to left, the first hop that is not trusted, else the
    leftmost. None if a hop that had to be read is malformed."""
    hop = None
    for index in range(len(hops) - 1, -1, -1):
        hop = parse_node(hops[index].strip())
        if hop is None or not trusted.trusts(hop[1]):
            return hop
    return hop


# -- RFC 7239 Forwarded ----------------------------------------------------------------------

_QUOTED = r'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_PAIR = re.compile(rf"[ \t]*({TOKEN_PATTERN})=({TOKEN_PATTERN}|{_QUOTED})[ \t]*")
_QUOTED_PAIR = re.compile(r"\\(.)")


def parse_forwarded(lines: Iterable[str]) -> list[dict[str, str]] | None:
    """All elements of all `Forwarded` lines, left to right, parameter names lowercased and
    values unquoted; None if any line is malformed.

    A repeated parameter keeps its first value rather than spoiling the line: nginx's
    Forwarded recipe (docker/nginx) appends to any syntactically valid header, repeats
    included, and a line we refused would let a client drop the element nginx added."""
    elements: list[dict[str, str]] = []
    for line in lines:
        element: dict[str, str] = {}
        position, end = 0, len(line)
        while True:
            pair = _PAIR.match(line, position)
            if pair is not None:
                name = pair[1].lower()
                value = pair[2]
                if value[:1] == '"':
                    value = _QUOTED_PAIR.sub(r"\1", value[1:-1])
                element.setdefault(name, value)
                position = pair.end()
            else:
                while position < end and line[position] in " \t":
                    position += 1
            if position == end or line[position] == ",":
                if element:
                    elements.append(element)
                    element = {}
                if position == end:
                    break
            elif line[position] != ";":
                return None
            position += 1
    return elements


def _forwarded_client(
    lines: list[str], trusted: TrustedProxies
) -> tuple[Client | None, dict[str, str]] | None:
    """The element naming the client (the same walk as X-Forwarded-For) and that client; an
    element without for= hides the client. None when the header is malformed or empty."""
    elements = parse_forwarded(lines)
    if not elements:
        return None
    hops = [element.get("for", "unknown") for element in elements]
    for index in range(len(hops) - 1, -1, -1):
        hop = parse_node(hops[index])
        if hop is None:
            return None
        if index == 0 or not trusted.trusts(hop[1]):
            return hop[0], elements[index]
    raise AssertionError("unreachable")  # pragma: no cover


# -- resolution ------------------------------------------------------------------------------

PROXY_HEADERS: Final = frozenset(
    (
        b"forwarded",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-port",
        b"x-forwarded-prefix",
    )
)
_PROTOS = frozenset(("http", "https", "ws", "wss"))
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(?::[0-9]{1,5})?\Z")
_PREFIX = re.compile(r"/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*\Z")  # RFC 3986 path characters


# Resolutions remembered, by the proxy fields they came from (then it starts over: clients
# churn, and hostile values may). Only small sets of fields are remembered, so that the memory
# stays small whatever a client sends through its proxy: nginx's recipes send two to six.
MAX_REMEMBERED_RESOLUTIONS: Final = 4096
MAX_REMEMBERED_FIELDS: Final = 8
MAX_REMEMBERED_FIELD_BYTES: Final = 256  # names and values, all the fields together

FieldsKey = tuple[tuple[bytes, bytes], ...]


@final
class Resolution:
    """What one request's proxy fields say, before it is applied to a scope. A function of the
    fields and the settings alone, so the same fields always resolve the same way."""

    __slots__ = ("client", "host", "host_field", "port", "prefix", "replaces_client", "secure")

    def __init__(
        self,
        replaces_client: bool,
        client: Client | None,
        secure: bool | None,
        host: str | None,
        port: int | None,
        prefix: str | None,
    ) -> None:
        self.replaces_client = replaces_client  # False: the client stays the peer
        self.client = client  # None when replacing it: a proxy hid the client
        self.secure = secure  # the forwarded scheme's; None: the scheme is kept
        self.host = host  # valid, and only with --proxy-forwarded-host
        self.host_field = None if host is None else host.encode("ascii")
        self.port = port  # only with --proxy-forwarded-port
        self.prefix = prefix  # only with --proxy-forwarded-prefix


@final
class ProxyResolver:
    """`ProxySettings` made ready for the hot path: the trust list parsed, the choices kept
    (fixed: what it remembers was resolved with them), and the resolutions of the fields seen
    lately, since a client's requests through its proxy carry the same fields."""

    def __init__(
        self,
        trusted: TrustedProxies,
        family: str,  # "x-forwarded", "forwarded" or "both"
        forwarded_host: bool,
        forwarded_port: bool,
        forwarded_prefix: bool,
    ) -> None:
        self.trusted: Final = trusted
        self.family: Final = family
        self.forwarded_host: Final = forwarded_host
        self.forwarded_port: Final = forwarded_port
        self.forwarded_prefix: Final = forwarded_prefix
        self._resolutions: dict[FieldsKey, Resolution] = {}

    @classmethod
    def from_settings(cls, settings: ProxySettings) -> ProxyResolver | None:
        """None with --no-proxy-headers: then no peer is trusted and nothing is resolved."""
        if not settings.enabled:
            return None
        return cls(
            TrustedProxies.parse(settings.forwarded_allow_ips),
            settings.family,
            settings.forwarded_host,
            settings.forwarded_port,
            settings.forwarded_prefix,
        )

    def trusts_peer(self, peer: Client | None) -> bool:
        return self.trusted.trusts_peer(peer)

    def resolve_scope(self, scope: ServerScope) -> None:
        """Apply the proxy headers among a request scope's headers, its peer already trusted
        by the caller (HTTP/2: a stream's fields arrive as one list)."""
        fields = [(name, value) for name, value in scope["headers"] if name in PROXY_HEADERS]
        if fields:
            self.resolve(scope, fields)

    def resolve(self, scope: ServerScope, fields: list[tuple[bytes, bytes]]) -> bytes | None:
        """Apply `fields` (the proxy headers among the scope's, in order: the HTTP/1 reader
        notes them as it parses) to a request scope whose peer the caller already trusts.
        Returns the Host it put in the scope's headers, if it put one there."""
        if not _rememberable(fields):
            return _apply(self.resolution_of(fields), scope)
        key = tuple(fields)
        resolution = self._resolutions.get(key)
        if resolution is None:
            resolution = self.resolution_of(fields)
            if len(self._resolutions) >= MAX_REMEMBERED_RESOLUTIONS:
                self._resolutions.clear()
            self._resolutions[key] = resolution
        return _apply(resolution, scope)

    def resolution_of(self, fields: list[tuple[bytes, bytes]]) -> Resolution:
        """What `fields` say: the client, scheme, host, port and prefix they name."""
        found = ProxyFields(fields)
        replaces_client = False
        client: Client | None = None
        proto = host = None
        chosen = None
        if self.family != "x-forwarded" and found.forwarded:
            chosen = _forwarded_client(found.forwarded, self.trusted)
        if chosen is not None:
            replaces_client = True
            client, element = chosen
            proto = element.get("proto")
            host = element.get("host")
        elif self.family != "forwarded":
            lines = found.forwarded_for
            if lines:
                hops = lines[0] if len(lines) == 1 else ",".join(lines)
                hop = _walk(hops.split(","), self.trusted)
                if hop is not None:
                    replaces_client = True
                    client = hop[0]
            proto = _last(found.proto)
            host = _last(found.host)
        if not self.forwarded_host or host is None or not _HOST.match(host):
            host = None
        port = _port(_last(found.port) or "") if self.forwarded_port else None
        prefix = _prefix(_last(found.prefix)) if self.forwarded_prefix else None
        secure = None if proto is None else _secure(proto)
        return Resolution(replaces_client, client, secure, host, port, prefix)


def _rememberable(fields: list[tuple[bytes, bytes]]) -> bool:
    if len(fields) > MAX_REMEMBERED_FIELDS:
        return False
    size = 0
    for name, value in fields:
        size += len(name) + len(value)
    return size <= MAX_REMEMBERED_FIELD_BYTES


def _apply(resolution: Resolution, scope: ServerScope) -> bytes | None:
    """Put `resolution` in a request's scope. `path` keeps the ASGI convention `path ==
    root_path + <path received>` when a forwarded prefix replaces root_path; the Host header
    the app sees is replaced (or added) only with --proxy-forwarded-host."""
    if resolution.replaces_client:
        scope["client"] = resolution.client
    secure = resolution.secure
    if secure is not None:
        if scope["scheme"] in ("ws", "wss"):  # a WebSocket scope keeps ws/wss
            scope["scheme"] = "wss" if secure else "ws"
        else:
            scope["scheme"] = "https" if secure else "http"
    host = resolution.host
    port = resolution.port
    if port is not None:
        server = scope["server"]
        if server is not None:
            scope["server"] = (server[0], port)
        else:  # a unix socket: name the host the client asked for
            asked = host or _received_host(scope["headers"])
            if asked:
                scope["server"] = (_hostname(asked), port)
    prefix = resolution.prefix
    if prefix is not None:
        root_path = scope["root_path"]
        if prefix != root_path:
            scope["path"] = prefix + scope["path"][len(root_path) :]
            raw_path = scope.get("raw_path")  # none in a rejected request's scope
            if raw_path is not None:
                scope["raw_path"] = prefix.encode() + raw_path[len(root_path.encode()) :]
            scope["root_path"] = prefix
    host_field = resolution.host_field
    if host_field is not None:
        _replace_host(scope["headers"], host_field)
    return host_field


@final
class ProxyFields:
    """One request's proxy headers by name: the hop lists' lines, and the last line of each
    single-valued header (None when absent; its last value counts)."""

    def __init__(self, fields: list[tuple[bytes, bytes]]) -> None:
        self.forwarded: list[str] = []
        self.forwarded_for: list[str] = []
        self.proto: str | None = None
        self.host: str | None = None
        self.port: str | None = None
        self.prefix: str | None = None
        for name, value in fields:
            line = value.decode("latin-1")
            if name == b"x-forwarded-for":
                self.forwarded_for.append(line)
            elif name == b"x-forwarded-proto":
                self.proto = line
            elif name == b"forwarded":
                self.forwarded.append(line)
            elif name == b"x-forwarded-host":
                self.host = line
            elif name == b"x-forwarded-port":
                self.port = line
            elif name == b"x-forwarded-prefix":
                self.prefix = line


def _received_host(headers: list[tuple[bytes, bytes]]) -> str:
    received = b""
    for name, value in headers:
        if name == b"host":
            received = value
    return received.decode("latin-1")


def _replace_host(headers: list[tuple[bytes, bytes]], value: bytes) -> None:
    for index, (name, _) in enumerate(headers):
        if name == b"host":
            headers[index] = (b"host", value)
            return
    headers.append((b"host", value))


def _last(line: str | None) -> str | None:
    """The rightmost value of a single-valued X-Forwarded-* header's last line (None if
    absent)."""
    if line is None:
        return None
    return line.rpartition(",")[2].strip()


def _secure(proto: str) -> bool | None:
    """Whether a forwarded scheme is a secure one; None unless http, https, ws or wss."""
    # Compared as sent first: lowercasing and a set's hash cost more than these compares.
    if proto == "https" or proto == "wss":
        return True
    if proto == "http" or proto == "ws":
        return False
    proto = proto.lower()
    if proto not in _PROTOS:
        return None
    return proto in ("https", "wss")


def _hostname(host: str) -> str:
    if host[:1] == "[":
        return host[1:].partition("]")[0]
    return host.partition(":")[0]


def _prefix(value: str | None) -> str | None:
    """A path prefix the proxy stripped, as an ASGI root_path (decoded, no trailing slash)."""
    if not value or not _PREFIX.match(value):
        return None
    if "%" in value:
        value = unquote(value)
    if value[:2] in ("//", "/\\") or any(c < " " or c == "\x7f" for c in value):
        return None  # "//evil.example" would make redirects leave the site
    return value.rstrip("/")
