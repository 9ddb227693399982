"""Fuzz target: trusted-proxy resolution (`proxy.ProxyResolver.resolve_scope`) with any header
values from any peer.

An input: its first byte picks the settings (`--forwarded-headers`, the host, port and prefix
opt-ins, and whether the scope is a WebSocket's); the rest, read as latin-1, is lines: the
peer's address first (empty: a unix socket), then `name: value` header lines. Invariants (any
failure is a finding): nothing raises; the scope the app gets is one the ASGI spec allows and
the rules promise (docs/proxy.md):

- `client` is None or (a valid IP address as text, a port 0..65535), and is the peer itself
  when the peer is not trusted;
- `scheme` stays in its family (http/https, ws/wss);
- `root_path` is empty or a clean prefix (starts with one /, no control characters), and
  `path` still starts with it (path == root_path + what the client asked for);
- exactly one Host header when the request had one, its value ASCII without CR, LF or NUL;
- `server` is None or (host text, a port 1..65535).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from monoceros.config import ProxySettings
from monoceros.proxy import ProxyResolver

TRUST = "127.0.0.1,10.0.0.0/8,2001:db8:1::/48,unix:"
FAMILIES = ("x-forwarded", "forwarded", "both")
OPTIONS = ("forwarded_host", "forwarded_port", "forwarded_prefix")


def _resolver(flags: int) -> ProxyResolver:
    settings = ProxySettings(
        forwarded_allow_ips=TRUST,
        family=FAMILIES[flags % 3],
        **{name: bool(flags & (4 << index)) for index, name in enumerate(OPTIONS)},
    )
    resolver = ProxyResolver.from_settings(settings)
    assert resolver is not None
    return resolver


RESOLVERS = [_resolver(flags) for flags in range(32)]


def encode(options: dict[str, Any], peer: str, headers: list[tuple[str, str]]) -> bytes:
    """An input from one row of tests/unit/test_proxy.py's resolver table."""
    family = FAMILIES.index(options.get("family", "x-forwarded"))
    flags = family | sum(4 << i for i, name in enumerate(OPTIONS) if options.get(name))
    lines = [peer, *(f"{name}: {value}" for name, value in headers)]
    return bytes((flags,)) + "\n".join(lines).encode("latin-1", "replace")


def _valid_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def check(data: bytes) -> None:
    if not data:
        return
    flags, text = data[0], data[1:].decode("latin-1")
    resolver = RESOLVERS[flags & 31]
    websocket = bool(flags & 32)
    peer_text, *lines = text.split("\n")
    peer = (peer_text, 40000) if _valid_ip(peer_text) else None
    headers = []
    for line in lines:
        name, _, value = line.partition(":")
        headers.append((name.strip().lower().encode("latin-1"), value.strip().encode("latin-1")))
    had_host = sum(name == b"host" for name, _ in headers)
    scheme = "ws" if websocket else "http"
    scope: dict[str, Any] = {
        "type": "websocket" if websocket else "http",
        "client": peer,
        "server": ("127.0.0.1", 8000) if peer is not None else None,
        "scheme": scheme,
        "root_path": "",
        "path": "/users",
        "headers": list(headers),
    }
    if not resolver.trusts_peer(peer):
        return  # the protocol never asks (tests/unit/test_proxy.py checks that it is unchanged)
    resolver.resolve_scope(scope)

    client = scope["client"]
    if client is not None:
        host, port = client
        assert isinstance(host, str) and _valid_ip(host), client
        assert isinstance(port, int) and 0 <= port <= 65535, client
    family = ("ws", "wss") if websocket else ("http", "https")
    assert scope["scheme"] in family, scope["scheme"]
    root_path = scope["root_path"]
    assert root_path == "" or (root_path[0] == "/" and root_path[:2] not in ("//", "/\\"))
    assert not any(c < " " or c == "\x7f" for c in root_path), root_path
    assert scope["path"] == root_path + "/users", (root_path, scope["path"])
    hosts = [value for name, value in scope["headers"] if name == b"host"]
    if had_host:
        assert len(hosts) == had_host, hosts
    received = {value for name, value in headers if name == b"host"}
    for value in hosts:
        if value not in received:  # set from X-Forwarded-Host or Forwarded host=
            assert value.isascii() and not any(c in value for c in b"\r\n\0"), value
    server = scope["server"]
    if server is not None:
        assert isinstance(server[0], str) and isinstance(server[1], int), server
        assert 0 < server[1] <= 65535, server
