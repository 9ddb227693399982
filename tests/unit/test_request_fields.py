"""Request header names, lowercased and classified once per spelling
(protocols/request_fields.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from monoceros.protocols import request_fields
from monoceros.protocols.request_fields import (
    CONNECTION,
    CONTENT_LENGTH,
    HOST,
    NAME_LENGTH_LIMIT,
    PLAIN,
    PROXY,
    REFERER,
    SPELLINGS_PER_LENGTH,
    TRACEPARENT,
    USER_AGENT,
    FieldName,
    classify,
)


def classified(name: bytes) -> tuple[bytes, int]:
    field = classify(name)
    return field.name, field.kind


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (b"Host", (b"host", HOST)),
        (b"HOST", (b"host", HOST)),
        (b"host", (b"host", HOST)),
        (b"Content-Length", (b"content-length", CONTENT_LENGTH)),
        (b"Proxy-Connection", (b"proxy-connection", CONNECTION)),
        (b"X-Forwarded-For", (b"x-forwarded-for", PROXY)),
        (b"Traceparent", (b"traceparent", TRACEPARENT)),
        (b"User-Agent", (b"user-agent", USER_AGENT)),
        (b"referer", (b"referer", REFERER)),
        (b"Accept", (b"accept", PLAIN)),
        (b"Hostname", (b"hostname", PLAIN)),  # a prefix of nothing special
        (b"Hos", (b"hos", PLAIN)),
        (b"X", (b"x", PLAIN)),
    ],
)
def test_names_are_lowercased_and_classified_the_same_each_time(
    name: bytes, expected: tuple[bytes, int]
) -> None:
    assert classified(name) == expected
    assert classified(bytes(name)) == expected  # a fresh object, as the parser hands each one
    assert classified(bytes(name)) == expected  # and once it is remembered


@pytest.fixture
def spellings() -> Iterator[list[list[FieldName]]]:
    """The module's own table (a static under mypyc: emptied and refilled, not replaced), as
    it was before the test."""
    table = request_fields._SPELLINGS
    before = [list(bucket) for bucket in table]
    for bucket in table:
        bucket.clear()
    yield table
    for bucket, kept in zip(table, before, strict=True):
        bucket[:] = kept


def test_the_spellings_remembered_are_bounded(spellings: list[list[FieldName]]) -> None:
    # A client sending a new name of one length (Content-Length's) with every field: each is
    # still classified.
    for number in range(SPELLINGS_PER_LENGTH + 100):
        name = b"X-Random-%05d" % number
        assert classified(name) == (name.lower(), PLAIN)
    assert [len(bucket) for bucket in spellings if bucket] == [SPELLINGS_PER_LENGTH]
    # ...and the names it crowded out are still read right, only not remembered.
    for _ in range(3):
        assert classified(b"Content-Length") == (b"content-length", CONTENT_LENGTH)
    long_name = b"X-" + b"a" * NAME_LENGTH_LIMIT
    assert classified(long_name) == (long_name.lower(), PLAIN)
    assert len(spellings) == NAME_LENGTH_LIMIT + 1  # nothing longer is remembered
    assert sum(len(bucket) for bucket in spellings) == SPELLINGS_PER_LENGTH


def test_each_spelling_of_a_name_is_remembered_apart(spellings: list[list[FieldName]]) -> None:
    for name in (b"Host", b"host", b"HOST", b"hOsT"):
        assert classified(name) == (b"host", HOST)
    assert [field.spelling for field in spellings[4]] == [b"Host", b"host", b"HOST", b"hOsT"]


def test_the_same_length_and_a_different_name_is_not_confused(
    spellings: list[list[FieldName]],
) -> None:
    # "Host" remembered first must not answer for another four-letter name, nor the reverse.
    assert classified(b"Host") == (b"host", HOST)
    assert classified(b"Date") == (b"date", PLAIN)
    assert classified(b"Hosu") == (b"hosu", PLAIN)
    assert classified(b"Host") == (b"host", HOST)
