"""Request header names as the reader sees them: lowercased and classified once each.

Clients send the same few names again and again ("Host", "User-Agent", "Accept"), most of
them capitalised. Each is lowercased and sorted by what it means to the server once, then
found by one dict lookup: less than a `bytes.lower()` and a chain of comparisons per field.
Bounded: only short names are remembered, and at most NAMES_LIMIT of them, first come (a
client sending a new name with every field fills the table once; after that, new names are
classified each time, as every name was before). The kinds are the reader's own: head.py has
kinds of response fields, with other numbers.
"""

from __future__ import annotations

from typing import Final

from monoceros.protocols.tracecontext import HEADER as TRACEPARENT_HEADER
from monoceros.proxy import PROXY_HEADERS

# What a field means to the reader (RequestReader.on_header).
PLAIN: Final = 0
HOST: Final = 1
CONTENT_LENGTH: Final = 2
TRANSFER_ENCODING: Final = 3
EXPECT: Final = 4
UPGRADE: Final = 5
TE: Final = 6
CONNECTION: Final = 7  # `Connection`, or `Proxy-Connection` (llhttp reads both)
TRACEPARENT: Final = 8
PROXY: Final = 9  # one of the proxy headers proxy.py resolves

_KINDS: Final[dict[bytes, int]] = {
    b"host": HOST,
    b"content-length": CONTENT_LENGTH,
    b"transfer-encoding": TRANSFER_ENCODING,
    b"expect": EXPECT,
    b"upgrade": UPGRADE,
    b"te": TE,
    b"connection": CONNECTION,
    b"proxy-connection": CONNECTION,
    TRACEPARENT_HEADER: TRACEPARENT,
    **{name: PROXY for name in PROXY_HEADERS},
}

NAMES_LIMIT: Final = 4096
NAME_LENGTH_LIMIT: Final = 64
_SEEN: Final[dict[bytes, tuple[bytes, int]]] = {}


def classify(name: bytes) -> tuple[bytes, int]:
    """A field name as received: lowercased, and what it means (PLAIN, HOST, ...)."""
    seen = _SEEN.get(name)
    if seen is None:
        lowered = name.lower()
        seen = (lowered, _KINDS.get(lowered, PLAIN))
        if len(name) <= NAME_LENGTH_LIMIT and len(_SEEN) < NAMES_LIMIT:
            _SEEN[name] = seen
    return seen
