"""The seed corpus of each fuzz target, built from the hand-written tests: `python -m
tests.fuzz.corpus DIRECTORY` writes DIRECTORY/<target>/<sha1> files (`make fuzz` does).

HTTP: every request the hostile tests send as bytes (tests/protocol/test_hostile.py and
test_fuzz_findings.py: their case tables and byte constants, and the bytes literals in their
source), under each app of the target. Proxy: the rows of tests/unit/test_proxy.py's resolver
table. WebSocket: frames a client may send (text, binary, fragments, ping, close), masked.
HTTP/2: connections a client may open (a GET, a POST with a body, trailers, a WebSocket by
extended CONNECT, windows and settings of its own), and every hostile case of
tests/protocol/test_http2_hostile.py that is bytes (rapid reset, CONTINUATION flood, HPACK
bomb, control-frame floods, malformed frames), with the limits and overflows beside them.
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
        for flags in (0, 1, 2, 3, 8, 10):  # websockets, wsproto, with deflate; auto (8)
            yield bytes((flags, 0)) + stream


def _block(encoder: Any, path: str, method: str = "GET", *extra: tuple[str, str]) -> bytes:
    """A request's header block: `encoder` is the connection's, its dynamic table shared."""
    pseudo = [(":method", method), (":scheme", "http"), (":authority", "x"), (":path", path)]
    return bytes(encoder.encode([*pseudo, *extra]))


def _settings(*pairs: tuple[int, int]) -> bytes:
    from tests.h2client import SETTINGS, frame

    return frame(SETTINGS, 0, 0, b"".join(struct.pack("!HI", key, value) for key, value in pairs))


def http2_streams() -> Iterator[tuple[bool, bytes]]:
    """A client's bytes after the preface's magic, and whether they begin with the client's
    own SETTINGS (else the target sends an empty one first)."""
    import hpack

    from monoceros.protocols.flow_control import HIGH_WATER
    from monoceros.protocols.http2 import MAX_CONTROL_FRAMES_PER_SECOND
    from tests.h2client import (
        CANCEL,
        DATA,
        END_HEADERS,
        END_STREAM,
        GOAWAY,
        HEADERS,
        PING,
        RST_STREAM,
        SETTINGS,
        WINDOW_UPDATE,
        frame,
    )
    from tests.protocol import test_http2_hostile as hostile

    both, head = END_STREAM | END_HEADERS, END_HEADERS
    new = hpack.Encoder

    def get(stream: int = 1, path: str = "/", encoder: Any = None) -> bytes:
        return frame(HEADERS, both, stream, _block(encoder or new(), path))

    def window(stream: int, increment: int) -> bytes:
        return frame(WINDOW_UPDATE, 0, stream, struct.pack("!I", increment))

    # What clients send: requests, bodies, trailers, several streams, a WebSocket.
    yield False, get()
    yield False, frame(HEADERS, head, 1, _block(new(), "/up", "POST", ("content-length", "11")))
    yield (
        False,
        (
            frame(HEADERS, head, 1, _block(new(), "/up", "POST"))
            + frame(DATA, 0, 1, b"hello ")
            + frame(DATA, END_STREAM, 1, b"world")
        ),
    )
    yield (
        False,
        (
            frame(HEADERS, head, 1, _block(new(), "/trailers", "POST", ("te", "trailers")))
            + frame(DATA, 0, 1, b"body")
            + frame(HEADERS, both, 1, bytes(new().encode([("x-checksum", "abc")])))
        ),
    )
    yield (
        False,
        (
            frame(HEADERS, head, 1, _block(new(), "/continue", "POST", ("expect", "100-continue")))
            + frame(DATA, END_STREAM, 1, b"hello")
        ),
    )
    yield False, frame(HEADERS, both, 1, _block(new(), "/", "HEAD"))
    shared = new()
    yield False, b"".join(get(stream, f"/{stream}", shared) for stream in range(1, 12, 2))
    yield (
        False,
        (
            frame(HEADERS, head, 1, _block(new(), "/up", "POST"))
            + frame(DATA, 0, 1, b"abc")
            + frame(RST_STREAM, 0, 1, struct.pack("!I", CANCEL))
            + get(3)
        ),
    )
    for size in (HIGH_WATER + 2048, HIGH_WATER + 6144):  # a paused stream; past the limit
        body = b"".join(frame(DATA, 0, 1, b"b" * 16384) for _ in range(size // 16384))
        yield (
            False,
            (
                frame(HEADERS, head, 1, _block(new(), "/big", "POST"))
                + body
                + frame(DATA, END_STREAM, 1, b"b" * (size % 16384))
            ),
        )
    websocket = bytes(
        new().encode(
            [
                (":method", "CONNECT"),
                (":protocol", "websocket"),
                (":scheme", "http"),
                (":authority", "x"),
                (":path", "/chat"),
                ("sec-websocket-version", "13"),
            ]
        )
    )
    messages = [_frame(1, b"hello"), _frame(2, bytes(range(256))), _frame(9, b"ping")]
    session = frame(HEADERS, head, 1, websocket) + b"".join(
        frame(DATA, 0, 1, message) for message in messages
    )
    yield False, session
    yield (
        False,
        session
        + frame(DATA, 0, 1, _frame(8, struct.pack("!H", 1000)))
        + frame(DATA, END_STREAM, 1, b""),
    )
    yield False, session + get(3) + frame(RST_STREAM, 0, 1, struct.pack("!I", CANCEL))
    # The client's own settings and control frames.
    yield True, _settings((0x4, 0)) + get() + window(1, 100_000) + window(0, 100_000)
    yield True, _settings((0x4, 0)) + get()  # a window kept shut
    # A body past HIGH_WATER behind a shut window, then the WINDOW_UPDATE that opens it.
    big = b"".join(frame(DATA, 0, 1, b"b" * 16384) for _ in range(4)) + frame(DATA, 0, 1, b"b")
    upload = frame(HEADERS, head, 1, _block(new(), "/big", "POST")) + big
    yield True, _settings((0x4, 0)) + upload + window(1, 1000)
    yield True, _settings((0x5, 32768), (0x4, 1 << 20)) + window(0, 1 << 20) + get()
    yield True, _settings((0x1, 0), (0x3, 1)) + get(1) + get(3)  # no dynamic table
    yield True, get()  # no SETTINGS first
    yield (
        False,
        (
            get()
            + frame(PING, 0, 0, b"12345678")
            + frame(SETTINGS, 0x1, 0)
            + frame(0x2, 0, 3, b"\x00\x00\x00\x01\x10")  # PRIORITY
            + frame(GOAWAY, 0, 0, struct.pack("!II", 1, 0))
        ),
    )
    # The hostile tests' cases.
    yield False, hostile.rapid_reset(300)
    yield False, hostile.UNENDED_HEADERS + hostile.JUNK_CONTINUATION * 60
    yield False, hostile.UNENDED_HEADERS + frame(0x9, 0, 1, b"") * 100  # empty CONTINUATIONs
    yield False, hostile.hpack_bomb()
    floods = MAX_CONTROL_FRAMES_PER_SECOND + 1
    for flood in _bytes_in(hostile.CONTROL_FLOODS):
        yield False, flood * floods
        yield False, get() + flood * floods
    for bad in _bytes_in(hostile.MALFORMED_FRAMES):
        yield False, bad
        yield False, get() + bad
    yield False, hostile.UPPERCASE_FIELD_NAME
    # Past the server's limits, and flow-control windows past 2^31 - 1.
    yield False, get(path="/" + "a" * 300)  # 414
    yield False, frame(HEADERS, both, 1, _block(new(), "/", "GET", *[("x-f", "v")] * 13))
    yield False, frame(HEADERS, both, 1, _block(new(), "/", "GET", ("x-big", "v" * 2000)))
    yield False, frame(HEADERS, head, 1, _block(new(), "/", "POST", ("content-length", "99999")))
    yield False, window(0, 0x7FFFFFFF) * 2
    yield False, get() + window(1, 0x7FFFFFFF) * 2
    yield True, _settings((0x4, 0x80000000)) + get()
    yield True, _settings((0x5, 100)) + get()


def http2_seeds() -> Iterator[bytes]:
    """Each stream under each app, and with each of the client's manners (http2_target.py)."""
    for raw, stream in http2_streams():
        own = 32 if raw else 0
        for app in range(4):
            yield bytes((own | app, 0, 0)) + stream  # read sizes from seed 0
        yield bytes((own | 2 | 4, 7, 0)) + stream  # a streamer, a client that stops reading
        yield bytes((own | 1 | 4 | 8, 3, 0)) + stream  # a slow reader; the client reads again
        yield bytes((own | 3 | 16, 5, 0)) + stream  # a graceful shutdown after the first read
        yield bytes((own | 2 | 64, 0, 0)) + stream  # one stream at a time
        yield bytes((own | 1 | 128, 1, 1 << 3 | 2)) + stream  # the client hangs up part-way
        yield bytes((own | 2, 1, 4)) + stream  # a second passes between two reads


SEEDS = {
    "http": http_seeds,
    "proxy": proxy_seeds,
    "websocket": websocket_seeds,
    "http2": http2_seeds,
}


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
