"""The HTTP/1 reader notes a trusted proxy's fields as it parses them and resolves only those
(proxy.py `ProxyResolver.resolve`); HTTP/2 and the unit tables go through `resolve_scope`,
which finds them among all of a scope's headers. Both must make the same scope of the same
request: drawn by Hypothesis, fields spelled in any case, repeated and interleaved with others,
through the real HttpProtocol in memory. The reader notes the Host, User-Agent and Referer for
the access log too; they must be what the log would find in that scope.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monoceros.config import ProxySettings
from monoceros.observe.access import named_headers
from monoceros.protocols.context import ConnectionContext
from monoceros.protocols.head import DefaultHeaders
from monoceros.protocols.http import HttpProtocol
from monoceros.protocols.state import ServerState
from monoceros.proxy import ProxyResolver
from monoceros.types import Receive, Scope, Send
from tests.memory import MemoryTransport
from tests.utils import Recorder

PEER = ("10.0.0.2", 50000)  # a trusted proxy in every setting below
FIELDS = (
    "Forwarded",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    "X-Forwarded-Port",
    "X-Forwarded-Prefix",
    "X-Real-IP",  # not one of ours: passed on, never read
    "Accept",
    "User-Agent",
    "Referer",
)
# Values httptools passes whole: no CR, LF or NUL, no whitespace at either end.
VALUE = st.text(alphabet='0123456789abcdef:.[]_,;="\\fortunknwph/%-', min_size=1, max_size=40)
ADDRESS = st.sampled_from(["203.0.113.7", "10.0.0.9", "2001:db8::7", "[2001:db8::7]:80", "x"])
FIELD = st.tuples(
    st.sampled_from(FIELDS).flatmap(
        lambda name: st.sampled_from([name, name.lower(), name.upper()])
    ),
    st.one_of(VALUE, ADDRESS, st.lists(ADDRESS, min_size=2, max_size=4).map(", ".join)),
)
SETTINGS = st.builds(
    ProxySettings,
    forwarded_allow_ips=st.sampled_from(["10.0.0.0/8", "*", "10.0.0.2,2001:db8::/32"]),
    family=st.sampled_from(["x-forwarded", "forwarded", "both"]),
    forwarded_host=st.booleans(),
    forwarded_port=st.booleans(),
    forwarded_prefix=st.booleans(),
)
SEEN = ("client", "scheme", "server", "root_path", "path", "raw_path", "headers")


async def served_scope(request: bytes, proxy: ProxyResolver | None) -> dict[str, Any]:
    """The scope the app is given for `request`, from PEER, and the Host, User-Agent and
    Referer the reader noted for the access log (as "named_fields")."""
    scopes: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scopes.append(scope)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    recorder = Recorder()
    context = ConnectionContext(
        default_headers=DefaultHeaders(server=False, date=False), proxy=proxy, observer=recorder
    )
    transport = MemoryTransport(peer=PEER)
    protocol = HttpProtocol(app, context, ServerState())
    transport.protocol = protocol
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.data_received(request)
    for _ in range(50):  # bounded: the app answers within a few turns of the loop
        if recorder.requests:
            break
        await asyncio.sleep(0)
    assert scopes and recorder.requests, f"no exchange: {bytes(transport.written)!r}"
    return {
        **{key: scopes[0].get(key) for key in SEEN},
        "named_fields": recorder.requests[0].named_fields,
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=st.lists(FIELD, max_size=8), options=SETTINGS)
def test_the_fields_noted_while_parsing_resolve_as_all_headers_do(
    fields: list[tuple[str, str]], options: ProxySettings
) -> None:
    lines = "".join(f"{name}: {value}\r\n" for name, value in fields)
    request = f"GET /users?id=1 HTTP/1.1\r\nHost: app.test:8000\r\n{lines}\r\n".encode()
    resolver = ProxyResolver.from_settings(options)
    assert resolver is not None and resolver.trusts_peer(PEER)

    noted = asyncio.run(served_scope(request, resolver))

    expected = asyncio.run(served_scope(request, None))  # as parsed, nothing resolved
    expected["headers"] = list(expected["headers"])
    resolver.resolve_scope(expected)
    expected["named_fields"] = named_headers(expected)  # what the log finds in that scope
    assert noted == expected


def test_a_browser_request_through_nginx() -> None:
    """The common case, stated: the fields the reader notes change the scope."""
    request = (
        b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Real-IP: 203.0.113.7\r\n"
        b"x-forwarded-for: 198.51.100.1, 203.0.113.7\r\nX-Forwarded-Proto: https\r\n"
        b"User-Agent: Mozilla/5.0\r\n\r\n"
    )
    resolver = ProxyResolver.from_settings(ProxySettings(forwarded_allow_ips="10.0.0.0/8"))
    scope = asyncio.run(served_scope(request, resolver))
    assert scope["client"] == ("203.0.113.7", 0)
    assert scope["scheme"] == "https"
    assert scope["headers"][2] == (b"x-forwarded-for", b"198.51.100.1, 203.0.113.7")
