"""PROXY protocol headers from raw bytes: a table of v1 and v2 cases (addresses, LOCAL,
UNKNOWN, TLVs, truncation, junk, bounds), then any bytes at all."""

from __future__ import annotations

import socket
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monoceros.protocols.proxy_header import (
    V2_MAX,
    V2_SIGNATURE,
    InvalidProxyHeader,
    ProxyHeader,
    parse_proxy_header,
    starts_like_a_proxy_header,
)

INET, INET6, UNIX = 0x1, 0x2, 0x3
STREAM, DGRAM = 0x1, 0x2


def tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!BH", kind, len(value)) + value


def v2(
    command: int = 1,
    family: int = INET,
    transport: int = STREAM,
    source: tuple[str, int] = ("203.0.113.7", 51000),
    destination: tuple[str, int] = ("10.0.0.5", 8000),
    tlvs: bytes = b"",
    version: int = 2,
    length: int | None = None,
) -> bytes:
    """A v2 header as a balancer writes it."""
    if family == INET:
        af = socket.AF_INET
    elif family == INET6:
        af = socket.AF_INET6
    if family in (INET, INET6):
        block = (
            socket.inet_pton(af, source[0])
            + socket.inet_pton(af, destination[0])
            + struct.pack("!HH", source[1], destination[1])
        )
    elif family == UNIX:
        block = b"/run/client.sock".ljust(108, b"\0") + b"/run/lb.sock".ljust(108, b"\0")
    else:
        block = b""
    block += tlvs
    size = len(block) if length is None else length
    return (
        V2_SIGNATURE
        + bytes(((version << 4) | command, (family << 4) | transport))
        + struct.pack("!H", size)
        + block
    )


def parsed(data: bytes) -> ProxyHeader:
    header = parse_proxy_header(data)
    assert header is not None
    return header


AWS_VPCE = tlv(0xEA, b"\x01vpce-08d2bf15fac5001c9")
SSL = tlv(
    0x20,
    b"\x01" + b"\0\0\0\0" + tlv(0x21, b"TLSv1.3") + tlv(0x22, b"client.example") + tlv(0x23, b"X"),
)

ACCEPTED = [
    # (bytes, source, destination, extension info)
    pytest.param(
        b"PROXY TCP4 203.0.113.7 10.0.0.5 51000 8000\r\n",
        ("203.0.113.7", 51000),
        ("10.0.0.5", 8000),
        {"version": 1},
        id="v1-tcp4",
    ),
    pytest.param(
        b"PROXY TCP6 2001:db8::7 2001:db8::5 51000 443\r\n",
        ("2001:db8::7", 51000),
        ("2001:db8::5", 443),
        {"version": 1},
        id="v1-tcp6",
    ),
    pytest.param(b"PROXY UNKNOWN\r\n", None, None, {"version": 1}, id="v1-unknown"),
    pytest.param(
        b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
        None,
        None,
        {"version": 1},
        id="v1-unknown-with-fields",
    ),
    pytest.param(v2(), ("203.0.113.7", 51000), ("10.0.0.5", 8000), {"version": 2}, id="v2-inet"),
    pytest.param(
        v2(family=INET6, source=("2001:db8::7", 1), destination=("::1", 2)),
        ("2001:db8::7", 1),
        ("::1", 2),
        {"version": 2},
        id="v2-inet6",
    ),
    pytest.param(v2(command=0), None, None, {"version": 2}, id="v2-local"),
    pytest.param(v2(command=0, family=0, transport=0), None, None, {}, id="v2-local-unspec"),
    pytest.param(v2(family=0, transport=0), None, None, {}, id="v2-proxy-unspec"),
    pytest.param(
        v2(family=UNIX),
        None,
        None,
        {"source": "/run/client.sock", "destination": "/run/lb.sock"},
        id="v2-unix",
    ),
    pytest.param(
        v2(tlvs=AWS_VPCE),
        ("203.0.113.7", 51000),
        None,
        {"aws_vpce_id": "vpce-08d2bf15fac5001c9"},
        id="v2-aws-vpc-endpoint",
    ),
    pytest.param(
        v2(tlvs=SSL),
        ("203.0.113.7", 51000),
        None,
        {
            "ssl": {
                "tls": True,
                "client_cert_verified": True,
                "version": "TLSv1.3",
                "cn": "client.example",
                "cipher": "X",
            }
        },
        id="v2-ssl",
    ),
    pytest.param(
        v2(tlvs=tlv(0x01, b"h2") + tlv(0x02, b"example.com") + tlv(0x05, b"\x01\x02")),
        ("203.0.113.7", 51000),
        None,
        {"alpn": "h2", "authority": "example.com", "unique_id": "0102"},
        id="v2-alpn-authority-unique-id",
    ),
    pytest.param(
        v2(tlvs=tlv(0x04, b"\0" * 10) + tlv(0xE0, b"gcp") + tlv(0x03, b"\0\0\0\0")),
        ("203.0.113.7", 51000),
        None,
        {},
        id="v2-tlvs-not-used",
    ),
]


@pytest.mark.parametrize(("data", "source", "destination", "info"), ACCEPTED)
def test_accepted(
    data: bytes,
    source: tuple[str, int] | None,
    destination: tuple[str, int] | None,
    info: dict[str, Any],
) -> None:
    header = parsed(data + b"GET / HTTP/1.1\r\n")  # what follows is left alone
    assert header.length == len(data)
    assert header.source == source
    if destination is not None:
        assert header.destination == destination
    for key, value in info.items():
        assert header.info[key] == value
    assert header.local == (source is None and "source" not in info)


def test_tls_flag() -> None:
    assert parsed(v2(tlvs=SSL)).tls
    assert not parsed(v2()).tls


REFUSED = [
    pytest.param(b"GET / HTTP/1.1\r\n", id="http-not-a-header"),
    pytest.param(b"PROXY TCP4 203.0.113.7 10.0.0.5 51000\r\n", id="v1-three-fields"),
    pytest.param(b"PROXY TCP4 203.0.113.7 10.0.0.5 51000 8000 9\r\n", id="v1-five-fields"),
    pytest.param(b"PROXY TCP4 2001:db8::7 10.0.0.5 1 2\r\n", id="v1-ipv6-in-tcp4"),
    pytest.param(b"PROXY TCP6 203.0.113.7 ::1 1 2\r\n", id="v1-ipv4-in-tcp6"),
    pytest.param(b"PROXY TCP4 203.0.113.7 10.0.0.5 65536 1\r\n", id="v1-port-too-big"),
    pytest.param(b"PROXY TCP4 203.0.113.7 10.0.0.5 080 1\r\n", id="v1-port-leading-zero"),
    pytest.param(b"PROXY TCP4 203.0.113.7 10.0.0.5 -1 1\r\n", id="v1-port-negative"),
    pytest.param(b"PROXY TCP4  203.0.113.7 10.0.0.5 1 1\r\n", id="v1-double-space"),
    pytest.param(b"PROXY UDP4 203.0.113.7 10.0.0.5 1 1\r\n", id="v1-udp"),
    pytest.param(b"PROXY TCP4 203.0.113.7 10.0.0.5 1 1\n", id="v1-bare-lf"),
    pytest.param(b"PROXY " + b"x" * 120, id="v1-no-crlf-in-107-bytes"),
    pytest.param(b"PROXY TCP4 203.0.113.\xff 10.0.0.5 1 1\r\n", id="v1-non-ascii"),
    pytest.param(v2(version=1), id="v2-version-1"),
    pytest.param(v2(command=2), id="v2-command-2"),
    pytest.param(v2(transport=DGRAM), id="v2-datagram"),
    pytest.param(v2(family=4), id="v2-family-4"),
    pytest.param(v2(length=4) + b"\0" * 4, id="v2-inet-block-short"),
    pytest.param(v2(family=UNIX, length=100) + b"\0" * 100, id="v2-unix-block-short"),
    pytest.param(v2(tlvs=b"\x20\x00"), id="v2-tlv-cut-short"),
    pytest.param(v2(tlvs=b"\x05\x00\x09abc"), id="v2-tlv-longer-than-the-header"),
    pytest.param(v2(tlvs=tlv(0x20, b"\x01\0\0")), id="v2-ssl-tlv-short"),
    pytest.param(v2(tlvs=tlv(0x20, b"\x01\0\0\0\0\x21\x00\x09x")), id="v2-ssl-sub-tlv-long"),
    pytest.param(v2(length=V2_MAX), id="v2-longer-than-we-accept"),
]


@pytest.mark.parametrize("data", REFUSED)
def test_refused(data: bytes) -> None:
    with pytest.raises(InvalidProxyHeader):
        parse_proxy_header(data + b"\0" * 200)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="nothing"),
        pytest.param(b"PRO", id="v1-prefix"),
        pytest.param(b"PROXY TCP4 203.0.113.7", id="v1-no-crlf-yet"),
        pytest.param(V2_SIGNATURE[:5], id="v2-signature-prefix"),
        pytest.param(v2()[:15], id="v2-header-cut"),
        pytest.param(v2(tlvs=AWS_VPCE)[:-3], id="v2-tlvs-not-all-here"),
    ],
)
def test_not_all_here_yet(data: bytes) -> None:
    assert parse_proxy_header(data) is None


@pytest.mark.parametrize(
    ("data", "begins"),
    [
        (b"PROXY TCP4", True),
        (V2_SIGNATURE, True),
        (b"PROX", None),
        (b"\r\n\r\n", None),
        (b"GET / HTTP/1.1", False),
        (b"\r\nGET", False),
        (b"PROXYX", False),
    ],
)
def test_starts_like_a_proxy_header(data: bytes, begins: bool | None) -> None:
    assert starts_like_a_proxy_header(data) is begins


def test_every_header_split_anywhere_waits_then_parses() -> None:
    for data in (v2(tlvs=SSL + AWS_VPCE), b"PROXY TCP6 2001:db8::7 2001:db8::5 51000 443\r\n"):
        for cut in range(len(data)):
            assert parse_proxy_header(data[:cut]) is None
        assert parsed(data).length == len(data)


@settings(max_examples=2000, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=300).map(lambda tail: b"PROXY " + tail),
        st.binary(max_size=300).map(lambda tail: V2_SIGNATURE + tail),
        st.builds(
            lambda b, c, size, tail: V2_SIGNATURE + bytes((b, c)) + struct.pack("!H", size) + tail,
            st.integers(0, 255),
            st.integers(0, 255),
            st.integers(0, 400),
            st.binary(max_size=400),
        ),
    )
)
def test_any_bytes_give_a_header_none_or_invalid(data: bytes) -> None:
    """Nothing else escapes, and a header never claims more bytes than it was given."""
    try:
        header = parse_proxy_header(data)
    except InvalidProxyHeader:
        return
    if header is not None:
        assert 0 < header.length <= len(data)
