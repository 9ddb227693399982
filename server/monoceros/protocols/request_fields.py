"""Request header names as the reader sees them: lowercased and classified once per spelling.

Clients send the same few names again and again ("Host", "User-Agent", "Accept"), most of
them capitalised. Each spelling is lowercased and sorted by what it means to the server once,
then found again among the spellings of its length: a length and a few `memcmp`s, where a dict
would hash the parser's new bytes object for every field (about 450 instructions each, most of
a field's classifying). Bounded: only names up to NAME_LENGTH_LIMIT long, and at most
SPELLINGS_PER_LENGTH of each length, first come (a client sending a new name with every field
fills one length's list once; after that, new names of that length are classified each time,
as every name was before). The kinds are the reader's own: head.py has kinds of response
fields, with other numbers.
"""

from __future__ import annotations

from typing import Final, final

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
USER_AGENT: Final = 10  # noted for the access log, with Host and Referer
REFERER: Final = 11

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
    b"user-agent": USER_AGENT,
    b"referer": REFERER,
    **{name: PROXY for name in PROXY_HEADERS},
}

NAME_LENGTH_LIMIT: Final = 64
SPELLINGS_PER_LENGTH: Final = 16


@final
class FieldName:
    """A name as a client spelled it, lowercased, and what it means to the reader."""

    def __init__(self, spelling: bytes) -> None:
        self.spelling: Final = spelling
        self.name: Final = spelling.lower()
        self.kind: Final = _KINDS.get(self.name, PLAIN)


# The spellings seen, by their length (a list per length: mypyc reads both lists natively).
_SPELLINGS: Final[list[list[FieldName]]] = [[] for _ in range(NAME_LENGTH_LIMIT + 1)]


def classify(spelling: bytes) -> FieldName:
    """A field name as received: lowercased, and what it means (PLAIN, HOST, ...)."""
    length = len(spelling)
    if length > NAME_LENGTH_LIMIT:
        return FieldName(spelling)
    seen = _SPELLINGS[length]
    for field in seen:
        if field.spelling == spelling:
            return field
    field = FieldName(spelling)
    if len(seen) < SPELLINGS_PER_LENGTH:
        seen.append(field)
    return field
