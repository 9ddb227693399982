"""IP addresses, and the list of peers whose proxy headers are believed (`--forwarded-allow-ips`).

Pure and small: `config.py` parses the option with it when the settings are validated, and
`proxy.py` asks it, per connection and per forwarding hop, whom to trust.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from socket import AF_INET6, inet_ntop, inet_pton
from typing import Final

ANY: Final = "*"
# Peers on a unix socket have no address; this entry trusts them (filesystem permissions on
# the socket are the access control).
UNIX_PEERS: Final = "unix:"

Client = tuple[str, int]
# (4 or 6, the address as an integer); IPv4-mapped IPv6 addresses count as IPv4.
Address = tuple[int, int]


# Peers whose trust TrustedProxies remembers (then it starts over: client addresses churn).
MAX_REMEMBERED_PEERS: Final = 4096


class TrustedProxies:
    """`--forwarded-allow-ips`, parsed once: IPs, CIDR networks, `*` and `unix:`."""

    __slots__ = ("_peers", "everything", "hosts", "networks", "unix")

    def __init__(
        self,
        *,
        everything: bool = False,
        unix: bool = False,
        hosts: frozenset[Address] = frozenset(),
        networks: tuple[tuple[int, int, int], ...] = (),  # (family, network, mask)
    ) -> None:
        self.everything = everything
        self.unix = unix
        self.hosts = hosts
        self.networks = networks
        # The verdict per peer host: a connection asks once, and balancers, proxies and
        # returning clients come from few addresses (parsing one costs ~6k instructions).
        self._peers: dict[str, bool] = {}

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
        family, value = address
        for network_family, network, mask in self.networks:
            if network_family == family and value & mask == network:
                return True
        return False

    def trusts_peer(self, peer: Client | None) -> bool:
        """The direct peer: an (ip, port) pair, or None on a unix socket."""
        if peer is None:
            return self.unix or self.everything
        host = peer[0]
        verdict = self._peers.get(host)
        if verdict is None:
            parsed = parse_ip(host.partition("%")[0])  # a link-local peer has a zone: %eth0
            verdict = self.trusts(parsed[1] if parsed else None)
            if len(self._peers) >= MAX_REMEMBERED_PEERS:
                self._peers.clear()
            self._peers[host] = verdict
        return verdict


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


_MAPPED_PREFIX: Final = 0xFFFF << 32


def parse_ip(text: str) -> tuple[str, Address] | None:
    """An IPv4 or IPv6 literal (no brackets, no zone) -> (canonical text, address); else None.
    Strict, as inet_pton is (no leading zeros, no short forms), and ~15x faster than
    ipaddress: IPv4 read by `ipv4_value`, IPv6 by inet_pton."""
    if ":" not in text:
        value = ipv4_value(text)
        return (text, (4, value)) if value >= 0 else None
    try:
        packed = inet_pton(AF_INET6, text)
    except (OSError, ValueError):  # ValueError: an embedded NUL
        return None
    value = int.from_bytes(packed, "big")
    if value >> 32 == 0xFFFF:
        return inet_ntop(AF_INET6, packed), (4, value ^ _MAPPED_PREFIX)
    return inet_ntop(AF_INET6, packed), (6, value)


def ipv4_value(text: str) -> int:
    """A dotted quad as inet_pton reads one (four decimal parts of 0 to 255, no leading
    zeros, nothing else), as an integer; -1 when `text` is not one. Read here: calling
    inet_pton and int.from_bytes cost 2,100 instructions, a tenth of resolving a proxy's
    fields, where a client's address is read at every request."""
    value = 0
    part = -1  # the current part's value; -1 before its first digit
    dots = 0
    for char in text:
        digit = ord(char) - 48
        if 0 <= digit <= 9:
            if part == 0:
                return -1  # a leading zero
            part = digit if part < 0 else part * 10 + digit
            if part > 255:
                return -1
        elif char == "." and part >= 0 and dots < 3:
            value = value << 8 | part
            part = -1
            dots += 1
        else:
            return -1
    if dots < 3 or part < 0:
        return -1
    return value << 8 | part
