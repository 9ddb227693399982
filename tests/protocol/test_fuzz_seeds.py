"""The fuzz targets' invariants (tests/fuzz/), checked on their seed corpus by pytest: so
`make pytest-compiled` holds the compiled build to them too (the fuzzer itself needs the plain
build, whose branches it can see). And the oracle that judges the server's output is shown to
fail on output that is wrong: a check that cannot fail would find nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.fuzz import http_target, proxy_target, websocket_target
from tests.fuzz.corpus import SEEDS
from tests.fuzz.wire_oracle import check_exchange

TARGETS: dict[str, Callable[[bytes], None]] = {
    "http": http_target.check,
    "proxy": proxy_target.check,
    "websocket": websocket_target.check,
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
