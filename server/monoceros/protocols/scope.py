"""ASGI scopes from what a request said, filled the same way by every protocol of ours: the
target split and decoded, the connection's addresses, root_path, lifespan state, extensions.

Pure: no I/O and no parser. `ConnectionFacts` is built once per connection; `request_scope` once
per request, on the hot path.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import unquote

import httptools

from monoceros.types import ServerScope

Address = tuple[str, int]

METHODS: Final[dict[bytes, str]] = {
    method.encode(): method
    for method in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT")
}


_ASGI: Final = {"version": "3.0", "spec_version": "2.4"}


class InvalidTarget(ValueError):
    """A request target that is no origin-form, absolute-form or `*`."""


class ConnectionFacts:
    """What every scope of one connection says about it: the client and server addresses, the
    scheme, and the extensions every request of it advertises: `monoceros.peer` (the direct
    peer, whatever proxy headers say) and, behind a PROXY-protocol balancer,
    `monoceros.proxy_protocol` (what its header said)."""

    __slots__ = ("client", "extensions", "scheme", "scope_template", "server")

    def __init__(
        self,
        client: Address | None,
        server: Address | None,
        scheme: str,
        peer: Address | None,
        trusted: bool,
        proxy_protocol: dict[str, object] | None = None,
    ) -> None:
        self.client = client
        self.server = server
        self.scheme = scheme
        # Copied into each request's scope; the values are shared, and empty but for ours.
        self.extensions: dict[str, object] = {
            "http.response.pathsend": {},
            "http.response.early_hint": {},
            "monoceros.peer": {"address": peer, "trusted": trusted},
        }
        if proxy_protocol is not None:
            self.extensions["monoceros.proxy_protocol"] = proxy_protocol
        # Every HTTP scope's keys, in order, with this connection's values and the commonest
        # request values (HTTP/1.1, no root_path): `request_scope` copies it (one block copy;
        # a dict display stores its keys one by one, at 180 instructions each) and stores only
        # what differs.
        self.scope_template: dict[str, Any] = {
            "type": "http",
            "asgi": None,
            "http_version": "1.1",
            "server": server,
            "client": client,
            "scheme": scheme,
            "method": "",
            "root_path": "",
            "path": "",
            "raw_path": b"",
            "query_string": b"",
            "headers": None,
            "state": None,
            "extensions": None,
        }


def request_scope(
    facts: ConnectionFacts,
    method: str,
    http_version: str,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    root_path: str,
    app_state: dict[str, Any],
) -> ServerScope:
    """An HTTP scope; raises InvalidTarget."""
    raw_path, query = split_target(target)
    path = raw_path.decode("ascii")
    if "%" in path:
        path = unquote(path)
    scope = facts.scope_template.copy()
    scope["asgi"] = _ASGI.copy()  # the app's own: a third of the cost of building one
    if http_version != "1.1":
        scope["http_version"] = http_version
    scope["method"] = method
    if root_path:
        # Both carry root_path, as uvicorn's do: apps strip it from either.
        scope["root_path"] = root_path
        path = root_path + path
        raw_path = root_path.encode() + raw_path
    scope["path"] = path
    scope["raw_path"] = raw_path
    scope["query_string"] = query
    scope["headers"] = headers
    scope["state"] = app_state.copy()
    scope["extensions"] = facts.extensions.copy()
    return scope


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """(raw path, query): origin-form (`/path?query`) directly, absolute-form and `*` through
    httptools; raises InvalidTarget."""
    if target[:1] == b"/":  # origin-form, nearly every request
        if 63 not in target:  # no "?": a third of a partition's cost
            return target, b""
        raw_path, _, query = target.partition(b"?")
        return raw_path, query
    if target == b"*":
        return target, b""
    try:
        # Any: httptools gives None for a missing part where its stubs say bytes, and the
        # compiled build (setup.py) checks values against the types it knows.
        url: Any = httptools.parse_url(target)
    except httptools.HttpParserInvalidURLError:
        raise InvalidTarget(target) from None
    return url.path or b"/", url.query or b""


def websocket_scope(scope: ServerScope) -> ServerScope:
    """An upgrade request's HTTP scope, as ASGI's websocket scope."""
    del scope["method"]
    scope["type"] = "websocket"
    scope["scheme"] = "wss" if scope["scheme"] == "https" else "ws"
    extensions: dict[str, object] = {"websocket.http.response": {}}
    for name, value in scope["extensions"].items():
        if name.startswith("monoceros."):
            extensions[name] = value
    scope["extensions"] = extensions
    return scope


def rejected_scope(
    facts: ConnectionFacts,
    method: str,
    http_version: str,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
) -> ServerScope:
    """What is known of a request the server answered itself (400, 408, 413, ...), for the
    access log: the target as received, undecoded, as nginx shows it."""
    text = target.decode("latin-1")
    path, _, query = text.partition("?")
    return {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query.encode("latin-1"),
        "headers": headers,
        "client": facts.client,
        "scheme": facts.scheme,
        "http_version": http_version,
    }


def valid_request_id(value: bytes) -> bool:
    """At most 200 visible ASCII characters: safe to log and to echo in a header."""
    return 0 < len(value) <= 200 and value.isascii() and value.translate(None, _ID_DELETE) == value


_ID_DELETE: Final = bytes(range(0x21)) + b"\x7f"
