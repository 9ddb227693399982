"""The seed corpus of each fuzz target, built from the hand-written tests: `python -m
tests.fuzz.corpus DIRECTORY` writes DIRECTORY/<target>/<sha1> files (`make fuzz` does).

HTTP: every request the hostile tests send as bytes (tests/protocol/test_hostile.py and
test_fuzz_findings.py: their case tables and byte constants, and the bytes literals in their
source), under each app of the target. Proxy: the rows of tests/unit/test_proxy.py's resolver
table. WebSocket: frames a client may send (text, binary, fragments, ping, close), masked.
The seeds are where libFuzzer starts; the tests stay the regression suite.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import inspect
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _pytest.mark.structures import ParameterSet

HOSTILE_MODULES = ("tests.protocol.test_hostile", "tests.protocol.test_fuzz_findings")
METHODS = (b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"CONNECT", b"OPTIONS", b"PRI")


def _bytes_in(value: Any) -> Iterator[bytes]:
    if isinstance(value, bytes):
        yield value
    elif isinstance(value, ParameterSet):
        for item in value.values:
            yield from _bytes_in(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _bytes_in(item)


def http_streams() -> list[bytes]:
    """What the hostile tests send: evaluated module-level values (their case tables, built
    requests), and bytes literals of their source that begin like a request."""
    found: dict[bytes, None] = {}
    for name in HOSTILE_MODULES:
        module = importlib.import_module(name)
        for value in vars(module).values():
            for data in _bytes_in(value):
                found.setdefault(data)
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            if isinstance(node, ast.Constant) and isinstance(node.value, bytes):
                found.setdefault(node.value)
    return [data for data in found if data.startswith(METHODS) and len(data) < 64 * 1024]


# A response larger than what a stalled client's transport takes, on a connection that closes
# after it: the server closes with the buffer full.
STALLED_CLOSE = (
    b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 3000\r\n\r\n"
    + b"x" * 3000
)


def http_seeds() -> Iterator[bytes]:
    from tests.fuzz.http_target import APPS

    yield bytes((1 | 4, 0)) + STALLED_CLOSE
    for stream in http_streams():
        for app in range(len(APPS)):
            yield bytes((app, 0)) + stream  # read sizes from seed 0
        yield bytes((1 | 4, 7)) + stream  # echo, a client that stops reading, other cuts
        yield bytes((2 | 4 | 8, 3)) + stream  # a slow reader, and a client that reads again
        yield bytes((3 | 16, 5)) + stream  # a graceful shutdown after the first read


def proxy_seeds() -> Iterator[bytes]:
    from tests.fuzz.proxy_target import encode
    from tests.unit.test_proxy import PEER, RESOLVE_CASES

    for case in RESOLVE_CASES:
        options, headers, _ = case.values
        yield encode(options, PEER[0], headers)
        yield encode(options, "10.1.2.3", headers)


def _frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """One masked client frame (RFC 6455 section 5.2); the mask is all zeros, so the payload
    reads as itself in the corpus."""
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", first, 0x80 | size)
    elif size < 1 << 16:
        head = struct.pack("!BBH", first, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, size)
    return head + b"\0\0\0\0" + payload


WEBSOCKET_STREAMS = (
    _frame(1, b"hello"),
    _frame(2, bytes(range(256))),
    _frame(1, b"hel", fin=False) + _frame(0, b"lo"),
    _frame(9, b"ping") + _frame(1, b"after"),
    _frame(10, b"unsolicited pong"),
    _frame(8, struct.pack("!H", 1000) + b"bye"),
    _frame(8, b""),
    _frame(1, "é".encode() * 100),
    _frame(2, b"x" * 70000),
    _frame(1, b"\xff\xfe"),  # not UTF-8: 1007
    _frame(8, struct.pack("!H", 999)),  # an invalid close code
)


def websocket_seeds() -> Iterator[bytes]:
    for stream in WEBSOCKET_STREAMS:
        for flags in range(4):
            yield bytes((flags, 0)) + stream


SEEDS = {"http": http_seeds, "proxy": proxy_seeds, "websocket": websocket_seeds}


def main() -> None:
    root = Path(sys.argv[1])
    for target, seeds in SEEDS.items():
        directory = root / target
        directory.mkdir(parents=True, exist_ok=True)
        count = 0
        for seed in seeds():
            (directory / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
            count += 1
        print(f"{directory}: {count} seeds")


if __name__ == "__main__":
    main()
