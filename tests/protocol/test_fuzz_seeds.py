"""The fuzz targets' invariants (tests/fuzz/), checked on their seed corpus by pytest: so
`make pytest-compiled` holds the compiled build to them too (the fuzzer itself needs the plain
build, whose branches it can see). And the oracle that judges the server's output is shown to
fail on output that is wrong: a check that cannot fail would find nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import hpack
import pytest

from tests.fuzz import http2_target, http_target, proxy_target, websocket_target
from tests.fuzz.corpus import SEEDS
from tests.fuzz.h2_oracle import PREFACE, check_connection
from tests.fuzz.wire_oracle import check_exchange
from tests.h2client import (
    DATA,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    PING,
    SETTINGS,
    frame,
    request_block,
)

TARGETS: dict[str, Callable[[bytes], None]] = {
    "http": http_target.check,
    "proxy": proxy_target.check,
    "websocket": websocket_target.check,
    "http2": http2_target.check,
}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_the_seed_corpus_holds_every_invariant(target: str) -> None:
    seeds: Iterator[bytes] = SEEDS[target]()
    count = 0
    for seed in seeds:
        TARGETS[target](seed)
        count += 1
    assert count >= 40, f"only {count} seeds for {target}"


OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
BAD = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 11\r\nconnection: close\r\n\r\nBad Request"


@pytest.mark.parametrize(
    ("written", "methods", "closed", "aborted", "complaint"),
    [
        pytest.param(OK + b"HTTP/1.1 20", ["GET"], True, False, "malformed", id="garbage"),
        pytest.param(OK[:-1], ["GET"], True, False, "malformed", id="cut-short-no-abort"),
        pytest.param(BAD + OK, [], True, False, "bytes after", id="after-400"),
        pytest.param(BAD, [], False, False, "stayed open", id="400-left-open"),
        pytest.param(OK, ["GET", "GET"], True, False, "malformed", id="unanswered"),
        pytest.param(b"HTTP/1.1 200 OK\r\n\r\n", [], True, False, "unasked", id="unasked"),
        pytest.param(b"HTTP/1.1 200 OK\r\nX: \x00\r\n\r\n", ["GET"], True, False, "malformed"),
    ],
)
def test_the_oracle_refuses_wrong_output(
    written: bytes, methods: list[str], closed: bool, aborted: bool, complaint: str
) -> None:
    with pytest.raises(AssertionError, match=complaint):
        check_exchange(written, methods, closed=closed, aborted=aborted)


def test_the_oracle_accepts_right_output() -> None:
    check_exchange(OK + BAD, ["GET"], closed=True, aborted=False)
    check_exchange(OK + OK[:-1], ["GET", "GET"], closed=True, aborted=True)


# -- the HTTP/2 oracle (h2_oracle.py): a client that sent one GET on stream 1 ------------------

GET = (
    PREFACE
    + frame(SETTINGS, 0, 0)
    + frame(HEADERS, END_STREAM | END_HEADERS, 1, request_block("/"))
)
PREAMBLE = frame(SETTINGS, 0, 0, b"\x00\x03\x00\x00\x00\x80") + frame(SETTINGS, 0x1, 0)


def head(status: int, flags: int = END_HEADERS, stream: int = 1, *fields: tuple[str, str]) -> bytes:
    block = bytes(hpack.Encoder().encode([(":status", str(status)), *fields]))
    return frame(HEADERS, flags, stream, block)


ANSWER = head(200) + frame(DATA, END_STREAM, 1, b"ok")


@pytest.mark.parametrize(
    ("written", "closed", "complaint"),
    [
        pytest.param(ANSWER, True, "preface", id="no-settings-first"),
        pytest.param(PREAMBLE + ANSWER[:-1], True, "cut short", id="cut-short"),
        pytest.param(PREAMBLE + frame(DATA, END_STREAM, 1, b"ok"), True, "before", id="no-head"),
        pytest.param(PREAMBLE + head(200, END_HEADERS, 3), True, "never opened", id="stream-3"),
        pytest.param(PREAMBLE + ANSWER + frame(DATA, 0, 1, b"x"), True, "after its end"),
        pytest.param(PREAMBLE + head(200) + head(408), True, "second header block"),
        pytest.param(PREAMBLE + head(100, END_HEADERS | END_STREAM), True, "interim"),
        pytest.param(PREAMBLE + head(200) + frame(DATA, 0, 1, b"x" * 16385), True, "max 16384"),
        pytest.param(
            PREAMBLE + head(200) + frame(DATA, 0, 1, b"x" * 16384) * 4 + frame(DATA, 0, 1, b"x"),
            True,
            "window",
            id="past-the-window",
        ),
        pytest.param(
            PREAMBLE + head(200, END_HEADERS, 1, ("content-length", "5")) + ANSWER[-11:],
            True,
            "content-length 5",
            id="short-body",
        ),
        pytest.param(
            PREAMBLE + head(200, END_HEADERS, 1, ("connection", "close")) + ANSWER[-11:],
            True,
            "connection-specific",
        ),
        pytest.param(PREAMBLE + frame(HEADERS, END_HEADERS, 1, b"\xff\xff\xff"), True, "undecod"),
        pytest.param(PREAMBLE + frame(PING, 0x1, 0, b"12345678"), True, "no PING"),
        pytest.param(
            PREAMBLE + frame(GOAWAY, 0, 0, bytes(8)) + ANSWER, True, "above GOAWAY", id="goaway"
        ),
        pytest.param(PREAMBLE + head(200), True, "under way", id="closed-mid-response"),
    ],
)
def test_the_http2_oracle_refuses_wrong_output(
    written: bytes, closed: bool, complaint: str
) -> None:
    with pytest.raises(AssertionError, match=complaint):
        check_connection(written, GET, closed=closed, aborted=False)


def test_the_http2_oracle_accepts_right_output() -> None:
    check_connection(PREAMBLE + ANSWER, GET, closed=True, aborted=False)
    check_connection(PREAMBLE + head(200), GET, closed=True, aborted=True)  # cut by an abort
    trailers = frame(
        HEADERS, END_HEADERS | END_STREAM, 1, bytes(hpack.Encoder().encode([("x", "1")]))
    )
    check_connection(PREAMBLE + head(103) + head(200) + trailers, GET, closed=False, aborted=False)
