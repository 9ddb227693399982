"""The PROXY protocol header (HAProxy's specification, version 1 text and version 2 binary):
where a TCP load balancer received a connection, sent before the connection's first byte by
AWS and GCP network load balancers, HAProxy (`send-proxy`, `send-proxy-v2`) and nginx's
stream module (`proxy_protocol on`).

Pure: bytes in; a `ProxyHeader`, None (not all of it yet), or `InvalidProxyHeader` out. Every
length is checked before it is used, so no input raises anything else.

Written here rather than taken from PyPI: the one maintained parser (`proxy-protocol`, 0.11)
lets short address blocks through to `struct.error` and undecodable UNIX paths to
`UnicodeDecodeError`, builds `ipaddress` objects per connection, and brings an asyncio
server, DNSBL lookups and `typing_extensions` with it.
"""

from __future__ import annotations

from socket import AF_INET, AF_INET6, inet_ntop, inet_pton
from typing import Final

Address = tuple[str, int]

V1_PREFIX: Final = b"PROXY "
V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
# Version 1: the specification's worst case, "PROXY UNKNOWN" with two IPv6 addresses and
# ports, is 107 bytes with its CRLF.
V1_MAX: Final = 107
# Version 2: 16 bytes of header, then up to 65535 bytes of addresses and TLVs. Balancers send
# at most a few hundred (AWS: the VPC endpoint id; HAProxy: the SSL TLV with the client's
# certificate CN); more than this is refused rather than buffered.
V2_MAX: Final = 16 + 4096

# Version 2 TLV types (section 2.2), and the custom ones cloud balancers use (0xE0-0xEF).
PP2_TYPE_ALPN: Final = 0x01
PP2_TYPE_AUTHORITY: Final = 0x02
PP2_TYPE_UNIQUE_ID: Final = 0x05
PP2_TYPE_SSL: Final = 0x20
PP2_SUBTYPE_SSL_VERSION: Final = 0x21
PP2_SUBTYPE_SSL_CN: Final = 0x22
PP2_SUBTYPE_SSL_CIPHER: Final = 0x23
PP2_SUBTYPE_SSL_SIG_ALG: Final = 0x24
PP2_SUBTYPE_SSL_KEY_ALG: Final = 0x25
PP2_CLIENT_SSL: Final = 0x01
PP2_TYPE_AWS: Final = 0xEA  # AWS NLB and PrivateLink
PP2_SUBTYPE_AWS_VPCE_ID: Final = 0x01

_SSL_FIELDS: Final = {
    PP2_SUBTYPE_SSL_VERSION: "version",
    PP2_SUBTYPE_SSL_CN: "cn",
    PP2_SUBTYPE_SSL_CIPHER: "cipher",
    PP2_SUBTYPE_SSL_SIG_ALG: "sig_alg",
    PP2_SUBTYPE_SSL_KEY_ALG: "key_alg",
}


class InvalidProxyHeader(ValueError):
    """Not a PROXY protocol header we accept; the message says why, for the log."""


class ProxyHeader:
    """One parsed header: its length on the wire, and what it says. `source` is None when the
    balancer says nothing of the client (v1 UNKNOWN, v2 LOCAL or UNSPEC: health checks), or
    when the client came over a unix socket (`info` then has its path)."""

    __slots__ = ("destination", "info", "length", "source")

    def __init__(
        self,
        length: int,
        source: Address | None,
        destination: Address | None,
        info: dict[str, object],
    ) -> None:
        self.length = length
        self.source = source
        self.destination = destination
        # scope["extensions"]["monoceros.proxy_protocol"]: the version, the addresses, and
        # what the TLVs said (ssl, alpn, authority, unique_id, aws_vpce_id).
        self.info = info

    @property
    def local(self) -> bool:
        """The header names no client (a health check): the socket's addresses stand."""
        return "source" not in self.info

    @property
    def tls(self) -> bool:
        """The client connected to the balancer over TLS (the SSL TLV's client flag)."""
        ssl = self.info.get("ssl")
        return isinstance(ssl, dict) and bool(ssl.get("tls"))


def starts_like_a_proxy_header(data: bytes) -> bool | None:
    """Whether `data` begins a PROXY header; None while too few bytes to tell."""
    for prefix in (V1_PREFIX, V2_SIGNATURE):
        if data[: len(prefix)] == prefix:
            return True
        if len(data) < len(prefix) and prefix.startswith(data):
            return None
    return False


def parse_proxy_header(data: bytes) -> ProxyHeader | None:
    """The header at the start of `data`; None if it has not all arrived yet."""
    begins = starts_like_a_proxy_header(data)
    if begins is None:
        return None
    if not begins:
        raise InvalidProxyHeader("no PROXY protocol header")
    if data[:1] == b"P":
        return _parse_v1(data)
    return _parse_v2(data)


# -- version 1 -------------------------------------------------------------------------------


def _parse_v1(data: bytes) -> ProxyHeader | None:
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX or b"\n" in data[:V1_MAX]:
            raise InvalidProxyHeader("v1 header without CRLF in its first 107 bytes")
        return None
    fields = data[len(V1_PREFIX) : end].split(b" ")
    family = fields[0]
    if family == b"UNKNOWN":  # the balancer does not know the client: the peer counts
        return ProxyHeader(end + 2, None, None, {"version": 1})
    if family not in (b"TCP4", b"TCP6") or len(fields) != 5:
        raise InvalidProxyHeader("v1 header is not TCP4, TCP6 or UNKNOWN with four fields")
    version = 4 if family == b"TCP4" else 6
    source = (_v1_address(fields[1], version), _v1_port(fields[3]))
    destination = (_v1_address(fields[2], version), _v1_port(fields[4]))
    info: dict[str, object] = {"version": 1, "source": source, "destination": destination}
    return ProxyHeader(end + 2, source, destination, info)


def _v1_address(text: bytes, version: int) -> str:
    try:
        packed = inet_pton(AF_INET if version == 4 else AF_INET6, text.decode("ascii"))
    except (OSError, UnicodeDecodeError, ValueError):
        raise InvalidProxyHeader(f"v1 address {text!r} is not IPv{version}") from None
    return inet_ntop(AF_INET if version == 4 else AF_INET6, packed)


def _v1_port(text: bytes) -> int:
    # Decimal, 0-65535, no sign and no leading zero (section 2.1).
    if not text.isdigit() or len(text) > 5 or (text[:1] == b"0" and len(text) > 1):
        raise InvalidProxyHeader(f"v1 port {text!r} is not a port number")
    port = int(text)
    if port > 65535:
        raise InvalidProxyHeader(f"v1 port {text!r} is not a port number")
    return port


# -- version 2 -------------------------------------------------------------------------------


def _parse_v2(data: bytes) -> ProxyHeader | None:
    if len(data) < 16:
        return None
    version_command, family_protocol = data[12], data[13]
    if version_command >> 4 != 2:
        raise InvalidProxyHeader(f"v2 header of version {version_command >> 4}")
    command = version_command & 0x0F
    if command > 1:
        raise InvalidProxyHeader(f"v2 command {command} is neither LOCAL nor PROXY")
    length = 16 + int.from_bytes(data[14:16], "big")
    if length > V2_MAX:
        raise InvalidProxyHeader(f"v2 header of {length} bytes: at most {V2_MAX} are accepted")
    if len(data) < length:
        return None
    block = data[16:length]
    family, protocol = family_protocol >> 4, family_protocol & 0x0F
    info: dict[str, object] = {"version": 2}
    if command == 0 or family == 0:
        # LOCAL (the balancer's own health check) or UNSPEC: the connection's own endpoints
        # count; whatever the block holds is skipped, as the specification says.
        return ProxyHeader(length, None, None, info)
    if protocol != 1:
        raise InvalidProxyHeader("v2 header for a datagram or unspecified transport")
    source, destination, rest = _v2_addresses(family, block, info)
    _read_tlvs(rest, info)
    return ProxyHeader(length, source, destination, info)


def _v2_addresses(
    family: int, block: bytes, info: dict[str, object]
) -> tuple[Address | None, Address | None, bytes]:
    """(source, destination, the TLVs after them) of an INET, INET6 or UNIX block; the
    addresses go into `info` too."""
    if family == 1:
        size, width, af = 12, 4, AF_INET
    elif family == 2:
        size, width, af = 36, 16, AF_INET6
    elif family == 3:
        if len(block) < 216:
            raise InvalidProxyHeader("v2 UNIX address block shorter than 216 bytes")
        # ASGI has no address for a unix-socket client: the paths go into the extension.
        info["source"], info["destination"] = _path(block[:108]), _path(block[108:216])
        return None, None, block[216:]
    else:
        raise InvalidProxyHeader(f"v2 address family {family}")
    if len(block) < size:
        raise InvalidProxyHeader(f"v2 address block shorter than {size} bytes")
    ports = 2 * width
    source = (inet_ntop(af, block[:width]), int.from_bytes(block[ports : ports + 2], "big"))
    destination = (
        inet_ntop(af, block[width:ports]),
        int.from_bytes(block[ports + 2 : ports + 4], "big"),
    )
    info["source"], info["destination"] = source, destination
    return source, destination, block[size:]


def _path(field: bytes) -> str:
    return _text(field.partition(b"\0")[0])


def _tlvs(data: bytes) -> list[tuple[int, bytes]]:
    """(type, value) pairs; every length is checked against what is left."""
    found = []
    position = 0
    while position < len(data):
        if len(data) - position < 3:
            raise InvalidProxyHeader("v2 TLV cut short")
        kind = data[position]
        size = int.from_bytes(data[position + 1 : position + 3], "big")
        start = position + 3
        if start + size > len(data):
            raise InvalidProxyHeader(f"v2 TLV 0x{kind:02x} longer than the header")
        found.append((kind, data[start : start + size]))
        position = start + size
    return found


def _read_tlvs(data: bytes, info: dict[str, object]) -> None:
    for kind, value in _tlvs(data):
        if kind == PP2_TYPE_ALPN:
            info["alpn"] = _text(value)
        elif kind == PP2_TYPE_AUTHORITY:
            info["authority"] = _text(value)
        elif kind == PP2_TYPE_UNIQUE_ID:
            info["unique_id"] = value.hex()
        elif kind == PP2_TYPE_SSL:
            info["ssl"] = _ssl(value)
        elif kind == PP2_TYPE_AWS and value[:1] == bytes((PP2_SUBTYPE_AWS_VPCE_ID,)):
            info["aws_vpce_id"] = _text(value[1:])
        # Others (CRC32C, NOOP, NETNS, other vendors') are accepted and not used.


def _ssl(value: bytes) -> dict[str, object]:
    """The SSL TLV: a client flags byte, a 32-bit verify result (0: the client's certificate
    verified), then sub-TLVs."""
    if len(value) < 5:
        raise InvalidProxyHeader("v2 SSL TLV shorter than 5 bytes")
    ssl: dict[str, object] = {
        "tls": bool(value[0] & PP2_CLIENT_SSL),
        "client_cert_verified": int.from_bytes(value[1:5], "big") == 0,
    }
    for kind, field in _tlvs(value[5:]):
        name = _SSL_FIELDS.get(kind)
        if name is not None:
            ssl[name] = _text(field)
    return ssl


def _text(value: bytes) -> str:
    """TLV text as the balancer sent it; bytes that are not UTF-8 are escaped, not refused."""
    return value.decode("utf-8", "backslashreplace")
