"""proxy.py: trust parsing, the resolver and RFC 7239 parsing as tables, then properties.

Each table row is one case; the resolver rows list only what should differ from a request
the proxy headers did not change."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import asdict
from typing import Any, NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monoceros.addresses import TrustedProxies, parse_ip
from monoceros.config import Config, ProxySettings
from monoceros.proxy import (
    HIDDEN,
    MAX_REMEMBERED_FIELD_BYTES,
    MAX_REMEMBERED_FIELDS,
    MAX_REMEMBERED_RESOLUTIONS,
    ProxyResolver,
    parse_forwarded,
    parse_node,
)

TRUST = "127.0.0.1,10.0.0.0/8,2001:db8:1::/48,unix:"
PEER = ("127.0.0.1", 40000)
SERVER = ("127.0.0.1", 8000)


def proxy(**options: Any) -> ProxySettings:
    options.setdefault("forwarded_allow_ips", TRUST)
    return ProxySettings(**options)


class Resolved(NamedTuple):
    """What the app sees of one request: the scope fields proxy headers may change."""

    client: tuple[str, int] | None
    scheme: str
    host: str | None  # the Host header the app sees instead of the one received; None: kept
    server: tuple[str, int] | None
    root_path: str
    peer: tuple[str, int] | None  # the direct TCP peer, unchanged


def resolver(settings: ProxySettings) -> ProxyResolver:
    """The resolver built from `settings`, even with --no-proxy-headers."""
    enabled = ProxyResolver.from_settings(ProxySettings(**{**asdict(settings), "enabled": True}))
    assert enabled is not None
    return enabled


def resolve_scope(scope: dict[str, Any], settings: ProxySettings) -> None:
    resolver(settings).resolve_scope(scope)


def resolve(
    headers: list[tuple[bytes, bytes]],
    peer: tuple[str, int] | None,
    scheme: str,
    server: tuple[str, int] | None,
    root_path: str,
    settings: ProxySettings,
) -> Resolved:
    """What the protocol makes of a request from `peer`: resolved only if it trusts the peer."""
    scope: dict[str, Any] = {
        "type": "http",
        "client": peer,
        "server": server,
        "scheme": scheme,
        "root_path": root_path,
        "path": root_path + "/users",
        "headers": list(headers),
    }
    proxy = ProxyResolver.from_settings(settings)
    if proxy is not None and proxy.trusts_peer(peer):
        proxy.resolve_scope(scope)
    hosts = [value for name, value in scope["headers"] if name == b"host"]
    received = [value for name, value in headers if name == b"host"]
    host = hosts[0].decode("latin-1") if hosts[:1] != received[:1] else None
    return Resolved(
        scope["client"], scope["scheme"], host, scope["server"], scope["root_path"], peer
    )


# -- --forwarded-allow-ips -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "peer", "trusted"),
    [
        pytest.param("127.0.0.1", "127.0.0.1", True, id="ip"),
        pytest.param("127.0.0.1", "127.0.0.2", False, id="other-ip"),
        pytest.param("127.0.0.1,::1", "::1", True, id="default-ipv6"),
        pytest.param(" 127.0.0.1 , ::1 ", "::1", True, id="spaces"),
        pytest.param("10.0.0.0/8", "10.1.2.3", True, id="cidr-v4"),
        pytest.param("10.0.0.0/8", "11.0.0.1", False, id="cidr-v4-outside"),
        pytest.param("2001:db8::/32", "2001:db8:ffff::1", True, id="cidr-v6"),
        pytest.param("2001:db8::/32", "2001:db9::1", False, id="cidr-v6-outside"),
        pytest.param("2001:0DB8::0001", "2001:db8::1", True, id="ipv6-spelled-differently"),
        pytest.param("::/0", "10.0.0.1", False, id="v6-any-is-not-v4"),
        pytest.param("0.0.0.0/0", "::1", False, id="v4-any-is-not-v6"),
        pytest.param("10.0.0.1", "::ffff:10.0.0.1", True, id="v4-mapped-peer"),
        pytest.param("::ffff:10.0.0.1", "10.0.0.1", True, id="v4-mapped-entry"),
        pytest.param("::ffff:10.0.0.0/104", "10.9.9.9", True, id="v4-mapped-network"),
        pytest.param("fe80::1", "fe80::1%eth0", True, id="zone-of-peer-ignored"),
        pytest.param("*", "203.0.113.9", True, id="star"),
        pytest.param("*", None, True, id="star-unix"),
        pytest.param("unix:", None, True, id="unix"),
        pytest.param("unix:", "127.0.0.1", False, id="unix-is-not-tcp"),
        pytest.param("127.0.0.1", None, False, id="unix-not-listed"),
        pytest.param("", "127.0.0.1", False, id="empty-trusts-nobody"),
        pytest.param("127.0.0.1,", "127.0.0.1", True, id="trailing-comma"),
        pytest.param("127.0.0.1", "not-an-ip", False, id="odd-peer"),
    ],
)
def test_trust(spec: str, peer: str | None, trusted: bool) -> None:
    proxies = TrustedProxies.parse(spec)
    assert proxies.trusts_peer(None if peer is None else (peer, 1)) is trusted


def test_trust_from_a_list() -> None:
    proxies = TrustedProxies.parse(["10.0.0.0/8", "unix:"])
    assert proxies.trusts_peer(("10.0.0.1", 1)) and proxies.trusts_peer(None)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        pytest.param("localhost", "not an IP address", id="hostname"),
        pytest.param("10.0.0.1/8", "did you mean 10.0.0.0/8", id="host-bits"),
        pytest.param("10.0.0.0/33", "not a CIDR network", id="prefix-too-long"),
        pytest.param("300.1.1.1", "not an IP address", id="octet"),
        pytest.param("unix", "write 'unix:' alone", id="unix-without-colon"),
        pytest.param("unix:/run/app.sock", "write 'unix:' alone", id="unix-path"),
        pytest.param("[::1]", "not an IP address", id="brackets"),
        pytest.param("1.2.3.4:80", "not an IP address", id="port"),
        pytest.param("**", "not an IP address", id="stars"),
    ],
)
def test_invalid_trust_entry_is_named(entry: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        Config.from_options("mod:app", forwarded_allow_ips=f"127.0.0.1,{entry}")
    text = str(info.value)
    assert text.startswith("--forwarded-allow-ips") and repr(entry) in text and message in text


# -- hops: X-Forwarded-For entries and Forwarded for= values --------------------------------


@pytest.mark.parametrize(
    ("text", "client"),
    [
        pytest.param("203.0.113.7", ("203.0.113.7", 0), id="v4"),
        pytest.param("203.0.113.7:4711", ("203.0.113.7", 4711), id="v4-port"),
        pytest.param("2001:db8::7", ("2001:db8::7", 0), id="v6"),
        pytest.param("2001:DB8:0::7", ("2001:db8::7", 0), id="v6-canonical"),
        pytest.param("[2001:db8::7]", ("2001:db8::7", 0), id="v6-brackets"),
        pytest.param("[2001:db8::7]:4711", ("2001:db8::7", 4711), id="v6-port"),
        pytest.param("[2001:db8::7]:_p", ("2001:db8::7", 0), id="v6-obfuscated-port"),
        pytest.param("203.0.113.7:_p", ("203.0.113.7", 0), id="v4-obfuscated-port"),
        pytest.param("unknown", None, id="unknown"),
        pytest.param("UNKNOWN", None, id="unknown-case"),
        pytest.param("unknown:4711", None, id="unknown-port"),
        pytest.param("_hidden", None, id="obfuscated"),
        pytest.param("_hidden:_port", None, id="obfuscated-port"),
    ],
)
def test_parse_node(text: str, client: tuple[str, int] | None) -> None:
    hop = parse_node(text)
    assert hop is not None
    assert hop[0] == client


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("example.com", id="hostname"),
        pytest.param("010.0.0.1", id="leading-zero"),
        pytest.param("1.2.3", id="short-v4"),
        pytest.param("203.0.113.7:0", id="port-zero"),
        pytest.param("203.0.113.7:99999", id="port-range"),
        pytest.param("203.0.113.7:", id="port-empty"),
        pytest.param("[203.0.113.7]", id="v4-in-brackets"),
        pytest.param("[2001:db8::7", id="unclosed-bracket"),
        pytest.param("[2001:db8::7]4711", id="no-colon-before-port"),
        pytest.param("2001:db8::7%eth0", id="zone"),
        pytest.param("_", id="bare-underscore"),
        pytest.param("_a b", id="obfuscated-space"),
        pytest.param("1.2.3.4\x00", id="nul"),
        pytest.param("\uff11.\uff12.\uff13.\uff14", id="fullwidth-digits"),
        pytest.param("[" + "1:" * 40 + "]", id="long"),
    ],
)
def test_parse_node_refuses(text: str) -> None:
    assert parse_node(text) is None


def inet_pton_v4(text: str) -> int | None:
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except (OSError, UnicodeError, ValueError):
        return None


@settings(max_examples=2000, deadline=None)
@given(
    text=st.one_of(
        st.ip_addresses(v=4).map(str),
        st.text(alphabet="0123456789.", max_size=20),
        st.text(alphabet="0123456789. +-x:\uff11\u0660\x00", max_size=20),
        st.lists(st.integers(0, 999).map(str), min_size=1, max_size=6).map(".".join),
    )
)
def test_an_ipv4_hop_is_read_as_inet_pton_reads_it(text: str) -> None:
    """addresses.ipv4_value reads dotted quads for parse_ip and parse_node (a call to inet_pton
    and int.from_bytes cost 2,100 instructions a request): strict like inet_pton, no leading
    zeros, 0 to 255."""
    if ":" in text:
        return  # the IPv6 and port forms are parse_node's other path
    expected = inet_pton_v4(text)
    hop = parse_node(text)
    if expected is not None:
        assert hop == ((text, 0), (4, expected))
        assert parse_ip(text) == (text, (4, expected))
    else:
        assert hop is None or hop == HIDDEN
        assert parse_ip(text) is None


# -- RFC 7239 syntax -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "elements"),
    [
        pytest.param(["for=192.0.2.60"], [{"for": "192.0.2.60"}], id="one"),
        pytest.param(
            ["for=192.0.2.60;proto=http;by=203.0.113.43"],
            [{"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"}],
            id="rfc-example-pairs",
        ),
        pytest.param(['for="_gazonk"'], [{"for": "_gazonk"}], id="rfc-example-quoted-obfuscated"),
        pytest.param(
            ['For="[2001:db8:cafe::17]:4711"'],
            [{"for": "[2001:db8:cafe::17]:4711"}],
            id="rfc-example-v6",
        ),
        pytest.param(
            ["for=192.0.2.43, for=198.51.100.17"],
            [{"for": "192.0.2.43"}, {"for": "198.51.100.17"}],
            id="rfc-example-two-elements",
        ),
        pytest.param(
            ["for=192.0.2.43", "for=198.51.100.17;proto=https"],
            [{"for": "192.0.2.43"}, {"for": "198.51.100.17", "proto": "https"}],
            id="two-lines",
        ),
        pytest.param(['host="a\\"b\\\\c"'], [{"host": 'a"b\\c'}], id="quoted-pair-unescaped"),
        pytest.param(['host="a,b;c"'], [{"host": "a,b;c"}], id="separators-in-quotes"),
        pytest.param(
            [" for=a ; proto=b , , for=c "],
            [{"for": "a", "proto": "b"}, {"for": "c"}],
            id="whitespace-and-empty-elements",
        ),
        pytest.param(["for=a;;"], [{"for": "a"}], id="empty-pairs"),
        pytest.param(["for=a;for=b"], [{"for": "a"}], id="repeated-parameter-first-wins"),
        pytest.param([""], [], id="empty-line"),
        pytest.param(["secret=x;FOR=a"], [{"secret": "x", "for": "a"}], id="extension-case"),
    ],
)
def test_parse_forwarded(lines: list[str], elements: list[dict[str, str]]) -> None:
    assert parse_forwarded(lines) == elements


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("for", id="no-value"),
        pytest.param("for=", id="empty-value"),
        pytest.param('for="unterminated', id="unterminated-quote"),
        pytest.param("for=a b", id="space-in-token"),
        pytest.param("for=[::1]", id="unquoted-brackets"),
        pytest.param("=a", id="no-name"),
        pytest.param('for="a"b', id="junk-after-quote"),
        pytest.param("garbage", id="garbage"),
    ],
)
def test_parse_forwarded_refuses(line: str) -> None:
    assert parse_forwarded([line]) is None
    assert parse_forwarded(["for=192.0.2.1", line]) is None  # one bad line spoils the header


# -- the resolver ----------------------------------------------------------------------------

H = list[tuple[str, str]]

RESOLVE_CASES = [
    # X-Forwarded-For
    pytest.param({}, [], {}, id="no-headers"),
    pytest.param({}, [("x-forwarded-for", "203.0.113.7")], {"client": ("203.0.113.7", 0)},
                 id="xff-one"),
    pytest.param({}, [("x-forwarded-for", "203.0.113.7, 10.0.0.2, 10.0.0.3")],
                 {"client": ("203.0.113.7", 0)}, id="xff-skips-trusted-proxies"),
    pytest.param({}, [("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.2")],
                 {"client": ("203.0.113.7", 0)}, id="xff-spoofed-left-part-ignored"),
    pytest.param({}, [("x-forwarded-for", "10.0.0.9, 10.0.0.2")], {"client": ("10.0.0.9", 0)},
                 id="xff-all-trusted-leftmost"),
    pytest.param({}, [("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "203.0.113.7")],
                 {"client": ("203.0.113.7", 0)}, id="xff-lines-are-one-list"),
    pytest.param({}, [("x-forwarded-for", "203.0.113.7"), ("x-forwarded-for", "10.0.0.2")],
                 {"client": ("203.0.113.7", 0)}, id="xff-lines-walked-across"),
    pytest.param({}, [("x-forwarded-for", "203.0.113.7:4711")],
                 {"client": ("203.0.113.7", 4711)}, id="xff-v4-port"),
    pytest.param({}, [("x-forwarded-for", "2001:db8::7")], {"client": ("2001:db8::7", 0)},
                 id="xff-v6"),
    pytest.param({}, [("x-forwarded-for", "[2001:db8::7]:4711, 2001:db8:1::5")],
                 {"client": ("2001:db8::7", 4711)}, id="xff-v6-brackets-behind-v6-proxy"),
    pytest.param({}, [("x-forwarded-for", "203.0.113.7, ::ffff:10.0.0.2")],
                 {"client": ("203.0.113.7", 0)}, id="xff-v4-mapped-proxy-trusted"),
    pytest.param({}, [("x-forwarded-for", " 203.0.113.7 ,10.0.0.2 ")],
                 {"client": ("203.0.113.7", 0)}, id="xff-whitespace"),
    pytest.param({}, [("x-forwarded-for", "garbage, 203.0.113.7")],
                 {"client": ("203.0.113.7", 0)}, id="xff-garbage-left-of-client-unread"),
    pytest.param({}, [("x-forwarded-for", "203.0.113.7, garbage")], {},
                 id="xff-garbage-in-walk-ignores-header"),
    pytest.param({}, [("x-forwarded-for", "203.0.113.7, , 10.0.0.2")], {},
                 id="xff-empty-entry-ignores-header"),
    pytest.param({}, [("x-forwarded-for", "")], {}, id="xff-empty"),
    pytest.param({}, [("x-forwarded-for", "example.com")], {}, id="xff-hostname"),
    pytest.param({}, [("x-forwarded-for", "203.0.113.7:99999")], {}, id="xff-bad-port"),
    pytest.param({}, [("x-forwarded-for", "unknown, 10.0.0.2")], {"client": None},
                 id="xff-unknown-hides-client"),
    pytest.param({"forwarded_allow_ips": "*"}, [("x-forwarded-for", "6.6.6.6, 203.0.113.7")],
                 {"client": ("6.6.6.6", 0)}, id="xff-star-trusts-every-hop"),
    pytest.param({"forwarded_allow_ips": "127.0.0.1"},
                 [("x-forwarded-for", "203.0.113.7, 10.0.0.2")],
                 {"client": ("10.0.0.2", 0)}, id="xff-untrusted-proxy-is-the-client"),
    # X-Forwarded-Proto
    pytest.param({}, [("x-forwarded-proto", "https")], {"scheme": "https"}, id="xfp"),
    pytest.param({}, [("x-forwarded-proto", "HTTPS")], {"scheme": "https"}, id="xfp-case"),
    pytest.param({}, [("x-forwarded-proto", "http, https")], {"scheme": "https"},
                 id="xfp-rightmost"),
    pytest.param({}, [("x-forwarded-proto", "https"), ("x-forwarded-proto", "http")], {},
                 id="xfp-last-line"),
    pytest.param({}, [("x-forwarded-proto", "ftp")], {}, id="xfp-unknown-scheme"),
    pytest.param({}, [("x-forwarded-proto", "wss")], {"scheme": "https"},
                 id="xfp-wss-on-http-scope"),
    pytest.param({"scheme": "ws"}, [("x-forwarded-proto", "https")], {"scheme": "wss"},
                 id="xfp-websocket-scope-gets-wss"),
    pytest.param({"scheme": "ws"}, [("x-forwarded-proto", "http")], {}, id="xfp-websocket-ws"),
    pytest.param({"scheme": "https"}, [("x-forwarded-proto", "http")], {"scheme": "http"},
                 id="xfp-tls-listener-behind-plain-proxy"),
    # X-Forwarded-Host (opt-in)
    pytest.param({}, [("x-forwarded-host", "example.com")], {}, id="xfh-off-by-default"),
    pytest.param({"forwarded_host": True}, [("x-forwarded-host", "example.com")],
                 {"host": "example.com"}, id="xfh"),
    pytest.param({"forwarded_host": True}, [("x-forwarded-host", "example.com:8443")],
                 {"host": "example.com:8443"}, id="xfh-port"),
    pytest.param({"forwarded_host": True}, [("x-forwarded-host", "[2001:db8::1]:443")],
                 {"host": "[2001:db8::1]:443"}, id="xfh-v6"),
    pytest.param({"forwarded_host": True}, [("x-forwarded-host", "a.example, b.example")],
                 {"host": "b.example"}, id="xfh-rightmost"),
    pytest.param({"forwarded_host": True}, [("x-forwarded-host", "evil.example/path")], {},
                 id="xfh-path-refused"),
    pytest.param({"forwarded_host": True}, [("x-forwarded-host", "a b")], {},
                 id="xfh-space-refused"),
    pytest.param({"forwarded_host": True}, [("x-forwarded-host", "")], {}, id="xfh-empty"),
    # X-Forwarded-Port (opt-in)
    pytest.param({}, [("x-forwarded-port", "443")], {}, id="xfport-off-by-default"),
    pytest.param({"forwarded_port": True}, [("x-forwarded-port", "443")],
                 {"server": ("127.0.0.1", 443)}, id="xfport"),
    pytest.param({"forwarded_port": True}, [("x-forwarded-port", "0")], {}, id="xfport-zero"),
    pytest.param({"forwarded_port": True}, [("x-forwarded-port", "https")], {},
                 id="xfport-name"),
    pytest.param({"forwarded_port": True, "server": None},
                 [("host", "example.com:8080"), ("x-forwarded-port", "443")],
                 {"server": ("example.com", 443)}, id="xfport-unix-socket-uses-host"),
    pytest.param({"forwarded_port": True, "forwarded_host": True, "server": None},
                 [("x-forwarded-host", "[2001:db8::1]"), ("x-forwarded-port", "443")],
                 {"server": ("2001:db8::1", 443), "host": "[2001:db8::1]"},
                 id="xfport-unix-socket-uses-forwarded-host"),
    pytest.param({"forwarded_port": True, "server": None}, [("x-forwarded-port", "443")], {},
                 id="xfport-unix-socket-no-host"),
    # X-Forwarded-Prefix (opt-in)
    pytest.param({}, [("x-forwarded-prefix", "/api")], {}, id="prefix-off-by-default"),
    pytest.param({"forwarded_prefix": True}, [("x-forwarded-prefix", "/api")],
                 {"root_path": "/api"}, id="prefix"),
    pytest.param({"forwarded_prefix": True}, [("x-forwarded-prefix", "/api/")],
                 {"root_path": "/api"}, id="prefix-trailing-slash"),
    pytest.param({"forwarded_prefix": True, "root_path": "/static"},
                 [("x-forwarded-prefix", "/")], {"root_path": ""}, id="prefix-root"),
    pytest.param({"forwarded_prefix": True, "root_path": "/static"},
                 [("x-forwarded-prefix", "/api")], {"root_path": "/api"},
                 id="prefix-replaces-root-path"),
    pytest.param({"forwarded_prefix": True}, [("x-forwarded-prefix", "/a%20b")],
                 {"root_path": "/a b"}, id="prefix-decoded"),
    pytest.param({"forwarded_prefix": True}, [("x-forwarded-prefix", "/a, /b")],
                 {"root_path": "/b"}, id="prefix-rightmost"),
    pytest.param({"forwarded_prefix": True}, [("x-forwarded-prefix", "api")], {},
                 id="prefix-relative"),
    pytest.param({"forwarded_prefix": True}, [("x-forwarded-prefix", "//evil.example")], {},
                 id="prefix-protocol-relative"),
    pytest.param({"forwarded_prefix": True}, [("x-forwarded-prefix", "/%2Fevil.example")], {},
                 id="prefix-encoded-protocol-relative"),
    pytest.param({"forwarded_prefix": True}, [("x-forwarded-prefix", "/a%0d%0ab")], {},
                 id="prefix-encoded-crlf"),
    pytest.param({"forwarded_prefix": True}, [("x-forwarded-prefix", "/a?b")], {},
                 id="prefix-query"),
    # Forwarded (RFC 7239)
    pytest.param({}, [("forwarded", "for=203.0.113.7;proto=https")], {},
                 id="fwd-ignored-by-default"),
    pytest.param({"family": "forwarded"}, [("forwarded", "for=203.0.113.7")],
                 {"client": ("203.0.113.7", 0)}, id="fwd"),
    pytest.param({"family": "forwarded"}, [("forwarded", 'for="[2001:db8::7]:4711"')],
                 {"client": ("2001:db8::7", 4711)}, id="fwd-v6-port"),
    pytest.param({"family": "forwarded"}, [("forwarded", 'for="2001:db8::7"')],
                 {"client": ("2001:db8::7", 0)}, id="fwd-v6-without-brackets"),
    pytest.param({"family": "forwarded"},
                 [("forwarded", "for=203.0.113.7;proto=https, for=10.0.0.2;proto=http")],
                 {"client": ("203.0.113.7", 0), "scheme": "https"},
                 id="fwd-proto-from-the-clients-element"),
    pytest.param({"family": "forwarded"},
                 [("forwarded", "for=6.6.6.6;proto=https, for=203.0.113.7, for=10.0.0.2")],
                 {"client": ("203.0.113.7", 0)}, id="fwd-spoofed-left-part-ignored"),
    pytest.param({"family": "forwarded"},
                 [("forwarded", "for=203.0.113.7"), ("forwarded", "for=10.0.0.2")],
                 {"client": ("203.0.113.7", 0)}, id="fwd-lines-are-one-list"),
    pytest.param({"family": "forwarded"},
                 [("forwarded", "for=10.0.0.9;proto=https, for=10.0.0.2")],
                 {"client": ("10.0.0.9", 0), "scheme": "https"}, id="fwd-all-trusted-leftmost"),
    pytest.param({"family": "forwarded"}, [("forwarded", 'for="_hidden";proto=https')],
                 {"client": None, "scheme": "https"}, id="fwd-obfuscated"),
    pytest.param({"family": "forwarded"}, [("forwarded", "for=unknown")], {"client": None},
                 id="fwd-unknown"),
    pytest.param({"family": "forwarded"}, [("forwarded", "proto=https")],
                 {"client": None, "scheme": "https"}, id="fwd-without-for-hides-client"),
    pytest.param({"family": "forwarded"}, [("forwarded", "For=203.0.113.7;PROTO=https")],
                 {"client": ("203.0.113.7", 0), "scheme": "https"}, id="fwd-names-any-case"),
    pytest.param({"family": "forwarded"},
                 [("forwarded", "for=203.0.113.7;by=10.0.0.1;secret=x")],
                 {"client": ("203.0.113.7", 0)}, id="fwd-by-and-extensions-accepted"),
    pytest.param({"family": "forwarded"}, [("forwarded", 'for=203.0.113.7;host="ex.com:8443"')],
                 {"client": ("203.0.113.7", 0)}, id="fwd-host-off-by-default"),
    pytest.param({"family": "forwarded", "forwarded_host": True},
                 [("forwarded", 'for=203.0.113.7;host="ex.com:8443"')],
                 {"client": ("203.0.113.7", 0), "host": "ex.com:8443"}, id="fwd-host"),
    pytest.param({"family": "forwarded"},
                 [("forwarded", "for=6.6.6.6;for=6.6.6.7, for=203.0.113.7;proto=https")],
                 {"client": ("203.0.113.7", 0), "scheme": "https"},
                 id="fwd-repeated-parameter-cannot-spoil-the-header"),
    pytest.param({"family": "forwarded"}, [("forwarded", 'for="203.0.113.7')], {},
                 id="fwd-unterminated"),
    pytest.param({"family": "forwarded"}, [("forwarded", "for=example.com")], {},
                 id="fwd-hostname"),
    pytest.param({"family": "forwarded"}, [("forwarded", "for=203.0.113.7;proto=ftp")],
                 {"client": ("203.0.113.7", 0)}, id="fwd-unknown-proto"),
    pytest.param({"family": "forwarded"}, [("x-forwarded-for", "203.0.113.7")], {},
                 id="fwd-family-ignores-xff"),
    pytest.param({"family": "forwarded", "forwarded_prefix": True},
                 [("x-forwarded-prefix", "/api")], {"root_path": "/api"},
                 id="fwd-family-still-reads-prefix"),
    # both: Forwarded when the request has a valid one, else X-Forwarded-*
    pytest.param({"family": "both"},
                 [("forwarded", "for=203.0.113.7"), ("x-forwarded-for", "198.51.100.9")],
                 {"client": ("203.0.113.7", 0)}, id="both-forwarded-wins"),
    pytest.param({"family": "both"},
                 [("forwarded", "for=203.0.113.7"), ("x-forwarded-proto", "https")],
                 {"client": ("203.0.113.7", 0)}, id="both-no-mixing"),
    pytest.param({"family": "both"},
                 [("x-forwarded-for", "198.51.100.9"), ("x-forwarded-proto", "https")],
                 {"client": ("198.51.100.9", 0), "scheme": "https"}, id="both-falls-back"),
    pytest.param({"family": "both"},
                 [("forwarded", "garbage"), ("x-forwarded-for", "198.51.100.9")],
                 {"client": ("198.51.100.9", 0)}, id="both-malformed-forwarded-falls-back"),
    # trust
    pytest.param({"peer": ("198.51.100.1", 1)}, [("x-forwarded-for", "203.0.113.7")], {},
                 id="untrusted-peer"),
    pytest.param({"enabled": False}, [("x-forwarded-for", "203.0.113.7")], {},
                 id="no-proxy-headers"),
    pytest.param({"peer": None}, [("x-forwarded-for", "203.0.113.7")],
                 {"client": ("203.0.113.7", 0)}, id="unix-peer-trusted"),
    pytest.param({"peer": None, "forwarded_allow_ips": "127.0.0.1"},
                 [("x-forwarded-for", "203.0.113.7")], {}, id="unix-peer-not-listed"),
]  # fmt: skip


@pytest.mark.parametrize(("options", "headers", "changes"), RESOLVE_CASES)
def test_resolve(options: dict[str, Any], headers: H, changes: dict[str, Any]) -> None:
    options = dict(options)
    peer = options.pop("peer", PEER)
    scheme = options.pop("scheme", "http")
    server = options.pop("server", SERVER)
    root_path = options.pop("root_path", "")
    raw = [(name.encode(), value.encode("latin-1")) for name, value in headers]
    resolved = resolve(raw, peer, scheme, server, root_path, proxy(**options))
    unchanged = {
        "client": peer,
        "scheme": scheme,
        "host": None,
        "server": server,
        "root_path": root_path,
        "peer": peer,
    }
    assert resolved._asdict() == {**unchanged, **changes}


def scope_for(headers: H, *, root_path: str = "", path: str = "/users") -> dict[str, Any]:
    return {
        "type": "http",
        "client": PEER,
        "server": SERVER,
        "scheme": "http",
        "root_path": root_path,
        "path": root_path + path,
        "headers": [(name.encode(), value.encode()) for name, value in headers],
    }


def test_resolve_scope_keeps_the_path_convention() -> None:
    scope = scope_for([("x-forwarded-prefix", "/api")], root_path="/old")
    resolve_scope(scope, proxy(forwarded_prefix=True))
    assert (scope["root_path"], scope["path"]) == ("/api", "/api/users")


def test_resolve_scope_replaces_the_host_header() -> None:
    scope = scope_for([("host", "internal:8000"), ("x-forwarded-host", "example.com")])
    resolve_scope(scope, proxy(forwarded_host=True))
    assert scope["headers"] == [(b"host", b"example.com"), (b"x-forwarded-host", b"example.com")]


def test_resolve_scope_adds_a_missing_host_header() -> None:
    scope = scope_for([("x-forwarded-host", "example.com")])  # HTTP/1.0 without Host
    resolve_scope(scope, proxy(forwarded_host=True))
    assert (b"host", b"example.com") in scope["headers"]


def test_resolve_scope_sets_client_scheme_server() -> None:
    headers = [("x-forwarded-for", "203.0.113.7"), ("x-forwarded-proto", "https")]
    scope = scope_for([*headers, ("x-forwarded-port", "443")])
    resolve_scope(scope, proxy(forwarded_port=True))
    assert scope["client"] == ("203.0.113.7", 0)
    assert scope["scheme"] == "https"
    assert scope["server"] == ("127.0.0.1", 443)
    assert (scope["root_path"], scope["path"]) == ("", "/users")


# -- properties ------------------------------------------------------------------------------

PROPERTY_TRUST = "10.0.0.0/8,192.168.1.1,2001:db8:1::/48"
_TRUSTED_NETS = [ipaddress.ip_network(entry) for entry in PROPERTY_TRUST.split(",")]


def _is_trusted(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in _TRUSTED_NETS)


trusted_ips = st.one_of(
    st.ip_addresses(network="10.0.0.0/8"),
    st.just(ipaddress.ip_address("192.168.1.1")),
    st.ip_addresses(network="2001:db8:1::/48"),
).map(str)
untrusted_ips = st.ip_addresses().map(str).filter(lambda ip: not _is_trusted(ip))
header_names = st.sampled_from(
    [
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "host",
        "x-other",
    ]
)
# Values as httptools delivers them: any bytes except CR, LF and NUL; plus near-misses built
# from the characters these grammars use.
header_values = st.one_of(
    st.binary(max_size=200).map(lambda b: b.translate(None, b"\r\n\0")),
    st.text(alphabet='0123456789abcdef:.[]_,;="\\ fortunknwph/%', max_size=80).map(
        lambda s: s.encode()
    ),
)
any_headers = st.lists(st.tuples(header_names.map(str.encode), header_values), max_size=8)
any_peers = st.one_of(
    st.none(),
    st.tuples(st.ip_addresses().map(str), st.integers(0, 65535)),
    st.tuples(st.text(max_size=20), st.integers(0, 65535)),
)
all_settings = st.builds(
    ProxySettings,
    enabled=st.booleans(),
    forwarded_allow_ips=st.sampled_from([PROPERTY_TRUST, "*", "unix:", "127.0.0.1,::1"]),
    family=st.sampled_from(["x-forwarded", "forwarded", "both"]),
    forwarded_host=st.booleans(),
    forwarded_port=st.booleans(),
    forwarded_prefix=st.booleans(),
)
fuzz = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fuzz
@given(headers=any_headers, peer=any_peers, options=all_settings, websocket=st.booleans())
def test_any_headers_any_peer_never_raise(
    headers: list[tuple[bytes, bytes]],
    peer: tuple[str, int] | None,
    options: ProxySettings,
    websocket: bool,
) -> None:
    scheme = "ws" if websocket else "http"
    resolved = resolve(headers, peer, scheme, SERVER, "", options)
    assert resolved.peer == peer
    assert resolved.scheme in (("ws", "wss") if websocket else ("http", "https"))
    assert resolved.root_path == "" or resolved.root_path.startswith("/")
    scope = scope_for([])
    scope["headers"] = list(headers)
    scope["client"] = peer
    resolve_scope(scope, options)  # the protocol's path; must not raise either
    assert scope["path"].startswith(scope["root_path"])


@fuzz
@given(headers=any_headers, peer=untrusted_ips, port=st.integers(1, 65535), options=all_settings)
def test_an_untrusted_peer_changes_nothing(
    headers: list[tuple[bytes, bytes]], peer: str, port: int, options: ProxySettings
) -> None:
    if TrustedProxies.parse(options.forwarded_allow_ips).trusts_peer((peer, port)):
        # `*`, or a loopback peer under the default list: untrusted only by PROPERTY_TRUST.
        options = ProxySettings(forwarded_allow_ips=PROPERTY_TRUST)
    resolved = resolve(headers, (peer, port), "http", SERVER, "/root", options)
    assert resolved == ((peer, port), "http", None, SERVER, "/root", (peer, port))


# -- remembered resolutions ----------------------------------------------------------------

# Values each field's grammar takes, and near misses: fuzzed bytes almost never spell `https`
# or a valid prefix, so they would leave the scheme, port and prefix unexercised.
proxy_fields = st.lists(
    st.one_of(
        st.tuples(
            st.just(b"x-forwarded-for"),
            st.sampled_from([b"203.0.113.7", b"10.0.0.1, 198.51.100.2", b"unknown", b"x y"]),
        ),
        st.tuples(
            st.just(b"x-forwarded-proto"),
            st.sampled_from([b"https", b"http", b"wss", b"ws", b"HTTPS", b"ftp"]),
        ),
        st.tuples(
            st.just(b"x-forwarded-host"),
            st.sampled_from([b"example.com", b"example.com:8443", b"[::1]:8080", b"bad host"]),
        ),
        st.tuples(st.just(b"x-forwarded-port"), st.sampled_from([b"443", b"8443", b"0", b"x"])),
        st.tuples(
            st.just(b"x-forwarded-prefix"),
            st.sampled_from([b"/api", b"/old", b"/a%20b/", b"//evil", b""]),
        ),
        st.tuples(
            st.just(b"forwarded"),
            st.sampled_from(
                [
                    b"for=203.0.113.7;proto=https;host=ex.com",
                    b'for="[2001:db8::1]:1";proto=ws',
                    b"for=_hidden",
                    b"for=10.0.0.1, for=198.51.100.9;proto=http",
                ]
            ),
        ),
    ),
    min_size=1,
    max_size=5,
)
proxy_options = st.builds(
    ProxySettings,
    forwarded_allow_ips=st.just(TRUST),
    family=st.sampled_from(["x-forwarded", "forwarded", "both"]),
    forwarded_host=st.booleans(),
    forwarded_port=st.booleans(),
    forwarded_prefix=st.booleans(),
)


class Shape(NamedTuple):
    """What a request's scope holds besides its proxy fields, that a resolution applies to."""

    scheme: str
    server: tuple[str, int] | None  # None: a unix socket
    root_path: str
    host: bytes | None  # the Host header received; None: none
    raw_path: bool


shapes = st.builds(
    Shape,
    scheme=st.sampled_from(["http", "https", "ws", "wss"]),
    server=st.sampled_from([SERVER, None]),
    root_path=st.sampled_from(["", "/api", "/old"]),
    host=st.sampled_from([b"internal:8000", b"[::2]:9", b"", None]),
    raw_path=st.booleans(),
)
PLAIN_SHAPE = Shape("http", SERVER, "", b"internal", True)


def shaped_scope(fields: list[tuple[bytes, bytes]], shape: Shape) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "websocket" if shape.scheme in ("ws", "wss") else "http",
        "client": PEER,
        "server": shape.server,
        "scheme": shape.scheme,
        "root_path": shape.root_path,
        "path": shape.root_path + "/users",
        "headers": ([] if shape.host is None else [(b"host", shape.host)]) + list(fields),
    }
    if shape.raw_path:
        scope["raw_path"] = shape.root_path.encode() + b"/users"
    return scope


def fresh_resolution(
    fields: list[tuple[bytes, bytes]], shape: Shape, settings: ProxySettings
) -> tuple[bytes | None, dict[str, Any]]:
    """What a resolver that never saw `fields` returns and makes of a scope of `shape`."""
    scope = shaped_scope(fields, shape)
    return resolver(settings).resolve(scope, list(fields)), scope


@fuzz
@given(fields=proxy_fields, settings=proxy_options, first=shapes, second=shapes)
def test_a_remembered_resolution_applies_as_a_fresh_one(
    fields: list[tuple[bytes, bytes]], settings: ProxySettings, first: Shape, second: Shape
) -> None:
    """A resolver remembers what fields say, not what it did to the scope they came in: the
    same fields in another request (another scheme, a unix socket, another root path or Host)
    change it as a resolver that never saw them would."""
    remembering = resolver(settings)
    remembering.resolve(shaped_scope(fields, first), list(fields))
    (kept,) = remembering._resolutions.values()
    scope = shaped_scope(fields, second)
    returned = remembering.resolve(scope, list(fields))
    assert list(remembering._resolutions.values()) == [kept]  # found, not resolved again
    assert (returned, scope) == fresh_resolution(fields, second, settings)


@fuzz
@given(settings=proxy_options, requests=st.lists(st.tuples(proxy_fields, shapes), max_size=8))
def test_one_resolver_answers_a_sequence_as_fresh_ones_do(
    settings: ProxySettings, requests: list[tuple[list[tuple[bytes, bytes]], Shape]]
) -> None:
    remembering = resolver(settings)
    for fields, shape in requests:
        scope = shaped_scope(fields, shape)
        returned = remembering.resolve(scope, list(fields))
        assert (returned, scope) == fresh_resolution(fields, shape, settings)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(
            [(b"x-forwarded-host", b"203.0.113.7")],
            [(b"x-forwarded-for", b"203.0.113.7")],
            id="same-value-other-name",
        ),
        pytest.param(  # the last one counts
            [(b"x-forwarded-proto", b"https"), (b"x-forwarded-proto", b"http")],
            [(b"x-forwarded-proto", b"http"), (b"x-forwarded-proto", b"https")],
            id="same-values-other-order",
        ),
        pytest.param(
            [(b"x-forwarded-proto", b"https"), (b"x-forwarded-for", b"203.0.113.7")],
            [(b"x-forwarded-for", b"203.0.113.7")],
            id="same-last-field",
        ),
        pytest.param(
            [(b"x-forwarded-host", b"443")], [(b"x-forwarded-port", b"443")], id="host-or-port"
        ),
    ],
)
def test_fields_alike_are_not_taken_for_each_other(
    first: list[tuple[bytes, bytes]], second: list[tuple[bytes, bytes]]
) -> None:
    settings = proxy(family="both", forwarded_host=True, forwarded_port=True)
    remembering = resolver(settings)
    remembering.resolve(shaped_scope(first, PLAIN_SHAPE), list(first))
    scope = shaped_scope(second, PLAIN_SHAPE)
    returned = remembering.resolve(scope, list(second))
    assert (returned, scope) == fresh_resolution(second, PLAIN_SHAPE, settings)
    assert scope != shaped_scope(second, PLAIN_SHAPE)  # the fields did change something


def test_remembered_resolutions_are_bounded() -> None:
    """Each client a proxy names is remembered until there are too many (then it starts over);
    fields too many or too long to keep are resolved each time."""
    remembering = resolver(proxy(forwarded_host=True))
    for number in range(MAX_REMEMBERED_RESOLUTIONS + 10):
        client = f"198.51.{number // 256}.{number % 256}"
        scope = scope_for([("x-forwarded-for", client), ("x-forwarded-proto", "https")])
        remembering.resolve_scope(scope)
        assert (scope["client"], scope["scheme"]) == ((client, 0), "https")
        assert 0 < len(remembering._resolutions) <= MAX_REMEMBERED_RESOLUTIONS

    def remembers(fields: list[tuple[bytes, bytes]]) -> bool:
        remembering._resolutions.clear()
        scope = shaped_scope(fields, PLAIN_SHAPE)
        returned = remembering.resolve(scope, list(fields))
        assert (returned, scope) == fresh_resolution(
            fields, PLAIN_SHAPE, proxy(forwarded_host=True)
        )
        return bool(remembering._resolutions)

    name = b"x-forwarded-host"
    at_limit = [(name, b"h" * (MAX_REMEMBERED_FIELD_BYTES - len(name)))]
    assert remembers(at_limit)
    assert not remembers([(name, at_limit[0][1] + b"h")])
    proto = b"x-forwarded-proto"
    split = [
        (name, b"a" * 100),
        (proto, b"h" * (MAX_REMEMBERED_FIELD_BYTES - 100 - len(name + proto))),
    ]
    assert remembers(split)  # every field counts, names included
    assert not remembers([split[0], (split[1][0], split[1][1] + b"h")])
    assert remembers([(b"x-forwarded-proto", b"https")] * MAX_REMEMBERED_FIELDS)
    assert not remembers([(b"x-forwarded-proto", b"https")] * (MAX_REMEMBERED_FIELDS + 1))


@fuzz
@given(
    client=st.one_of(untrusted_ips, trusted_ips),
    proxies=st.lists(trusted_ips, max_size=5),
    spoofed=st.lists(st.one_of(untrusted_ips, trusted_ips, st.just("garbage")), max_size=3),
    peer=trusted_ips,
)
def test_the_client_is_never_a_trusted_proxy_unless_all_are(
    client: str, proxies: list[str], spoofed: list[str], peer: str
) -> None:
    """A chain as proxies build it: whatever the client claimed, then its real address, then
    each trusted proxy's. The resolved client is the real one, or (everyone trusted) the
    leftmost."""
    hops = [*spoofed, client, *proxies]
    xff = ", ".join(f"[{hop}]" if ":" in hop else hop for hop in hops)
    forwarded = ", ".join(f'for="[{hop}]"' if ":" in hop else f"for={hop}" for hop in hops)
    for family, name, value in (
        ("x-forwarded", b"x-forwarded-for", xff),
        ("forwarded", b"forwarded", forwarded),
    ):
        options = ProxySettings(forwarded_allow_ips=PROPERTY_TRUST, family=family)
        resolved = resolve([(name, value.encode())], (peer, 1), "http", SERVER, "", options)
        assert resolved.client is not None
        if not _is_trusted(client):
            assert ipaddress.ip_address(resolved.client[0]) == ipaddress.ip_address(client)
            assert not _is_trusted(resolved.client[0])
        elif all(hop != "garbage" and _is_trusted(hop) for hop in spoofed):
            leftmost = hops[0]
            assert ipaddress.ip_address(resolved.client[0]) == ipaddress.ip_address(leftmost)
        elif resolved.client != (peer, 1):  # garbage in the walk: header ignored
            assert not _is_trusted(resolved.client[0])


@fuzz
@given(
    elements=st.lists(
        st.fixed_dictionaries(
            {"for": st.one_of(untrusted_ips, trusted_ips)},
            optional={
                "proto": st.sampled_from(["http", "https"]),
                "host": st.text(
                    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20
                ),
            },
        ),
        min_size=1,
        max_size=4,
    )
)
def test_forwarded_round_trip(elements: list[dict[str, str]]) -> None:
    """What a proxy writes (every value quoted and escaped) parses back to the same values."""

    def quote(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    line = ", ".join(
        ";".join(f"{name}={quote(value)}" for name, value in element.items())
        for element in elements
    )
    assert parse_forwarded([line]) == elements
