"""Trusted-proxy resolution: the real client, scheme, host and prefix behind proxies we trust.

Pure: headers and the direct peer in; client, scheme, Host, server and root_path out. No I/O,
no clock, no logging. `--forwarded-allow-ips` is parsed once into `TrustedProxies`; the
protocol asks `trusts_peer()` once per connection and, only for a trusted peer, calls
`resolve_scope()` on each request's scope before the app sees it.

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

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from socket import AF_INET, AF_INET6, inet_ntop, inet_pton
from typing import TYPE_CHECKING, Final, NamedTuple
from urllib.parse import unquote

if TYPE_CHECKING:
    from monoceros.config import ProxySettings
    from monoceros.types import Scope

ANY = "*"
# Peers on a unix socket have no address; this entry trusts them (filesystem permissions on
# the socket are the access control).
UNIX_PEERS = "unix:"

Client = tuple[str, int]
# (4 or 6, the address as an integer); IPv4-mapped IPv6 addresses count as IPv4.
Address = tuple[int, int]


# One entry of a forwarding chain: (client, address); client None: the proxy hid the address.
# A plain tuple, not a NamedTuple: it is built per hop per request, and NamedTuple.__new__ is
# Python code.
Hop = tuple[Client | None, Address | None]
HIDDEN: Hop = (None, None)


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    """`--forwarded-allow-ips`, parsed once: IPs, CIDR networks, `*` and `unix:`."""

    entries: tuple[str, ...] = ()
    everything: bool = False
    unix: bool = False
    hosts: frozenset[Address] = frozenset()
    networks: tuple[tuple[int, int, int], ...] = ()  # (family, network, mask)

    @classmethod
    def parse(cls, spec: str | Iterable[str]) -> TrustedProxies:
        """Comma-separated (or a list). An entry that is none of the above raises ValueError
        naming it: uvicorn quietly keeps a typo as a literal that never matches."""
        items = spec.split(",") if isinstance(spec, str) else list(spec)
        entries = tuple(item.strip() for item in items if item.strip())
        hosts: set[Address] = set()
        networks: list[tuple[int, int, int]] = []
        for entry in entries:
            if entry in (ANY, UNIX_PEERS):
                continue
            if entry.lower().startswith("unix"):
                raise ValueError(
                    f"{entry!r}: write {UNIX_PEERS!r} alone to trust every unix-socket peer"
                )
            if "/" in entry:
                networks.append(_parse_network(entry))
                continue
            address = _address_of(_parse_ip_entry(entry))
            hosts.add(address)
        return cls(
            entries,
            everything=ANY in entries,
            unix=UNIX_PEERS in entries,
            hosts=frozenset(hosts),
            networks=tuple(networks),
        )

    def trusts(self, address: Address | None) -> bool:
        if self.everything:
            return True
        if address is None:
            return False
        if address in self.hosts:
            return True
        if not self.networks:
            return False
        family, value = address
        return any(f == family and value & mask == net for f, net, mask in self.networks)

    def trusts_peer(self, peer: Client | None) -> bool:
        """The direct peer: an (ip, port) pair, or None on a unix socket."""
        if peer is None:
            return self.unix or self.everything
        host = peer[0].partition("%")[0]  # a link-local peer carries its zone: fe80::1%eth0
        parsed = parse_ip(host)
        return self.trusts(parsed[1] if parsed else None)


def _parse_ip_entry(entry: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(entry)
    except ValueError:
        raise ValueError(
            f"{entry!r} is not an IP address, a CIDR network, {ANY!r} or {UNIX_PEERS!r} "
            "(host names are not resolved)"
        ) from None


def _parse_network(entry: str) -> tuple[int, int, int]:
    try:
        network = ipaddress.ip_network(entry)
    except ValueError:
        try:
            loose = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"{entry!r} is not a CIDR network") from None
        raise ValueError(f"{entry!r} has host bits set: did you mean {loose}?") from None
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:  # ::ffff:10.0.0.0/104 is 10.0.0.0/8
            network = ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    family = network.version
    return family, int(network.network_address), int(network.netmask)


def _address_of(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Address:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return 4, int(ip.ipv4_mapped)
    return ip.version, int(ip)


_MAPPED_PREFIX = 0xFFFF << 32


def parse_ip(text: str) -> tuple[str, Address] | None:
    """An IPv4 or IPv6 literal (no brackets, no zone) -> (canonical text, address); else None.
    inet_pton is strict (no leading zeros, no short forms) and ~15x faster than ipaddress."""
    try:
        if ":" not in text:
            return text, (4, int.from_bytes(inet_pton(AF_INET, text), "big"))
        packed = inet_pton(AF_INET6, text)
    except (OSError, ValueError):  # ValueError: an embedded NUL
        return None
    value = int.from_bytes(packed, "big")
    if value >> 32 == 0xFFFF:
        return inet_ntop(AF_INET6, packed), (4, value ^ _MAPPED_PREFIX)
    return inet_ntop(AF_INET6, packed), (6, value)


_OBFUSCATED = re.compile(r"_[A-Za-z0-9._-]+\Z")  # RFC 7239 section 6.3
_DIGITS = re.compile(r"[0-9]{1,5}\Z")


def parse_node(text: str) -> Hop | None:
    """One X-Forwarded-For entry or Forwarded for= value (already unquoted): `1.2.3.4`,
    `1.2.3.4:80`, `::1`, `[::1]`, `[::1]:80`, `unknown`, `_hidden`, `[::1]:_port`.
    None when it is none of these."""
    if ":" not in text:  # the common case: a bare IPv4 address
        try:
            return (text, 0), (4, int.from_bytes(inet_pton(AF_INET, text), "big"))
        except (OSError, ValueError):
            pass
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

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_PAIR = re.compile(rf"[ \t]*({_TOKEN})=({_TOKEN}|{_QUOTED})[ \t]*")
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


class Resolved(NamedTuple):
    client: Client | None
    scheme: str
    host: str | None  # the Host header the app sees instead of the one received; None: keep
    server: Client | None
    root_path: str
    peer: Client | None  # the direct TCP peer, unchanged


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


def resolve(
    headers: Iterable[tuple[bytes, bytes]],
    peer: Client | None,
    scheme: str,
    server: Client | None,
    root_path: str,
    settings: ProxySettings,
) -> Resolved:
    """What the app should see for one request. Headers count only from a trusted peer."""
    found = None
    if settings.enabled and settings.trusted.trusts_peer(peer):
        found = _resolve_trusted(headers, peer, scheme, server, root_path, settings)
    if found is None:
        return Resolved(peer, scheme, None, server, root_path, peer)
    return Resolved(*found, peer)


def _resolve_trusted(
    headers: Iterable[tuple[bytes, bytes]],
    peer: Client | None,
    scheme: str,
    server: Client | None,
    root_path: str,
    settings: ProxySettings,
) -> tuple[Client | None, str, str | None, Client | None, str] | None:
    """`resolve()` for a peer already trusted; a plain tuple (hot path), or None when the
    request carries no proxy header (most requests to a server with no proxy in front)."""
    found: dict[bytes, list[str]] = {}
    received_host = b""
    for name, value in headers:
        if name in PROXY_HEADERS:
            found.setdefault(name, []).append(value.decode("latin-1"))
        elif name == b"host":
            received_host = value
    if not found:
        return None
    client = peer
    family = settings.family
    proto = host = None
    chosen = None
    if family != "x-forwarded" and b"forwarded" in found:
        chosen = _forwarded_client(found[b"forwarded"], settings.trusted)
    if chosen is not None:
        client, element = chosen
        proto = element.get("proto")
        host = element.get("host")
    elif family != "forwarded":
        lines = found.get(b"x-forwarded-for")
        if lines:
            hop = _walk(",".join(lines).split(","), settings.trusted)
            if hop is not None:
                client = hop[0]
        proto = _last(found.get(b"x-forwarded-proto"))
        host = _last(found.get(b"x-forwarded-host"))
    if proto is not None:
        scheme = _scheme(proto, scheme)
    if not settings.forwarded_host or host is None or not _HOST.match(host):
        host = None
    if settings.forwarded_port:
        port = _port(_last(found.get(b"x-forwarded-port")) or "")
        if port is not None:
            if server is not None:
                server = (server[0], port)
            elif host or received_host:  # a unix socket: name the host the client asked for
                server = (_hostname(host or received_host.decode("latin-1")), port)
    if settings.forwarded_prefix:
        prefix = _prefix(_last(found.get(b"x-forwarded-prefix")))
        if prefix is not None:
            root_path = prefix
    return client, scheme, host, server, root_path


def _last(lines: list[str] | None) -> str | None:
    """The rightmost value of a single-valued X-Forwarded-* header (None if absent)."""
    if not lines:
        return None
    return lines[-1].rpartition(",")[2].strip()


def _scheme(proto: str, current: str) -> str:
    """http/https/ws/wss only; a WebSocket scope keeps ws/wss, an HTTP scope http/https."""
    proto = proto.lower()
    if proto not in _PROTOS:
        return current
    secure = proto in ("https", "wss")
    if current in ("ws", "wss"):
        return "wss" if secure else "ws"
    return "https" if secure else "http"


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


def resolve_scope(scope: Scope, settings: ProxySettings) -> None:
    """Apply proxy headers to a request scope whose peer the caller already trusts.

    `path` keeps the ASGI convention `path == root_path + <path received>` when a forwarded
    prefix replaces root_path."""
    root_path = scope["root_path"]
    found = _resolve_trusted(
        scope["headers"], scope["client"], scope["scheme"], scope["server"], root_path, settings
    )
    if found is None:
        return  # nothing from a proxy: the scope stands as the connection made it
    client, scheme, host, server, new_root_path = found
    scope["client"] = client
    scope["scheme"] = scheme
    scope["server"] = server
    if new_root_path != root_path:
        scope["path"] = new_root_path + scope["path"][len(root_path) :]
        scope["root_path"] = new_root_path
    if host is not None:
        headers = scope["headers"]
        value = host.encode("ascii")
        for index, (name, _) in enumerate(headers):
            if name == b"host":
                headers[index] = (b"host", value)
                break
        else:
            headers.append((b"host", value))
