"""Request header names, lowercased and classified once (protocols/request_fields.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from monoceros.protocols import request_fields
from monoceros.protocols.request_fields import (
    CONNECTION,
    CONTENT_LENGTH,
    HOST,
    NAME_LENGTH_LIMIT,
    NAMES_LIMIT,
    PLAIN,
    PROXY,
    TRACEPARENT,
    classify,
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (b"Host", (b"host", HOST)),
        (b"HOST", (b"host", HOST)),
        (b"Content-Length", (b"content-length", CONTENT_LENGTH)),
        (b"Proxy-Connection", (b"proxy-connection", CONNECTION)),
        (b"X-Forwarded-For", (b"x-forwarded-for", PROXY)),
        (b"Traceparent", (b"traceparent", TRACEPARENT)),
        (b"User-Agent", (b"user-agent", PLAIN)),
        (b"Hostname", (b"hostname", PLAIN)),  # a prefix of nothing special
    ],
)
def test_names_are_lowercased_and_classified_the_same_each_time(
    name: bytes, expected: tuple[bytes, int]
) -> None:
    assert classify(name) == expected
    assert classify(bytes(name)) == expected  # a fresh object, as the parser hands each one


@pytest.fixture
def names_seen() -> Iterator[dict[bytes, tuple[bytes, int]]]:
    """The module's own table (a static under mypyc: emptied and refilled, not replaced), as
    it was before the test."""
    seen = request_fields._SEEN
    before = dict(seen)
    seen.clear()
    yield seen
    seen.clear()
    seen.update(before)


def test_the_names_remembered_are_bounded(names_seen: dict[bytes, tuple[bytes, int]]) -> None:
    for number in range(NAMES_LIMIT + 100):  # a client sending a new name with every field
        assert classify(b"X-Random-%d" % number) == (b"x-random-%d" % number, PLAIN)
    long_name = b"X-" + b"a" * NAME_LENGTH_LIMIT
    assert classify(long_name) == (long_name.lower(), PLAIN)
    assert len(names_seen) == NAMES_LIMIT
    assert long_name not in names_seen
    assert all(len(name) <= NAME_LENGTH_LIMIT for name in names_seen)
