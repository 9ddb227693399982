"""encode_head without a server: the app's (name, value) pairs in, the wire head out."""

from __future__ import annotations

from typing import Any

import pytest

from monoceros.protocols import head
from monoceros.protocols.head import DefaultHeaders, InvalidResponseHead, encode_head

DEFAULTS = DefaultHeaders(server=True, date=False)


def encode(headers: list[tuple[Any, Any]], **options: Any) -> tuple[bytes, int | None, bool, bool]:
    arguments: dict[str, Any] = {
        "http10": False,
        "keep_alive": True,
        "body_length": None,
        "send_body": True,
    }
    arguments.update(options)
    return encode_head(200, headers, DEFAULTS, **arguments)


@pytest.mark.parametrize("case", [str.lower, str.upper, str.title], ids=["lower", "upper", "title"])
def test_framing_headers_are_recognised_in_any_case(case: Any) -> None:
    def name(text: str) -> bytes:
        return case(text).encode()

    wire, length, chunked, keep_alive = encode(
        [
            (name("content-length"), b"5"),
            (name("connection"), b"Close"),
            (name("server"), b"app"),
            (name("x-plain"), b"1"),
        ]
    )
    assert (length, chunked, keep_alive) == (5, False, False)
    lines = wire.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK"
    assert name("server") + b": app" in lines
    assert b"server: monoceros" not in lines  # the app's own server header replaces ours
    assert sum(line.lower().startswith(b"connection:") for line in lines) == 1
    assert b"connection: close" in lines

    wire, length, chunked, _ = encode([(name("transfer-encoding"), b"chunked")])
    assert (length, chunked) == (None, True)
    assert wire.lower().count(b"transfer-encoding") == 1  # ours, not the app's too


@pytest.mark.parametrize("bad", [b"bad name", b"x:y", b"", "x-str", 42, None])
def test_an_invalid_name_is_refused_every_time(bad: Any) -> None:
    for _ in range(2):  # not remembered as valid after the first refusal
        with pytest.raises(InvalidResponseHead, match="invalid header name"):
            encode([(bad, b"v")])


@pytest.mark.parametrize(
    "value",
    [b"a\rb", b"a\nb", b"\0", b"ok\r\nset-cookie: a=b", bytearray(b"a\r\nb"), b"x" * 300 + b"\n"],
    ids=["cr", "lf", "nul", "split", "bytearray", "long"],
)
def test_a_value_that_would_split_the_head_is_refused(value: Any) -> None:
    with pytest.raises(InvalidResponseHead, match="CR, LF or NUL in a response header"):
        encode([(b"x-ok", b"1"), (b"x-bad", value)])


@pytest.mark.parametrize("value", ["text", 42, None])
def test_a_value_that_is_not_bytes_is_refused(value: Any) -> None:
    with pytest.raises(InvalidResponseHead, match="header names and values must be bytes"):
        encode([(b"x-bad", value)])


def test_pairs_given_as_lists_read_as_tuples_do() -> None:
    pairs: Any = [[b"x-a", b"one"], (b"x-b", b"two"), [b"content-length", b"3"]]
    wire, length, *_ = encode(pairs)
    assert b"\r\nx-a: one\r\nx-b: two\r\ncontent-length: 3\r\n" in wire
    assert length == 3


@pytest.mark.parametrize("name", [b"connection", b"transfer-encoding"])
def test_a_split_value_is_refused_in_the_fields_the_server_rewrites(name: bytes) -> None:
    # Neither value reaches the wire as given, but an app that sends one is as broken as any.
    with pytest.raises(InvalidResponseHead, match="CR, LF or NUL in a response header"):
        encode([(name, b"close\r\nx-forged: 1")])


def test_bytes_like_values_are_taken_as_uvicorn_takes_them() -> None:
    wire, *_ = encode([(b"x-a", bytearray(b"one")), (b"x-b", memoryview(b"two"))])
    assert b"\r\nx-a: one\r\nx-b: two\r\n" in wire


@pytest.mark.parametrize(
    "value",
    [
        b"-1",
        b"1.5",
        b"",
        b" 5",
        b"0x10",
        b"\xd9\xa1",
        b"5\r\nx-forged: 1",
        b"5\0",
        b"1" * 19 + b"\n",
    ],
)
def test_an_invalid_content_length_is_refused(value: bytes) -> None:
    # Digits only: a CR, LF or NUL in it is refused as a length before it could split the head.
    with pytest.raises(InvalidResponseHead, match="invalid content-length"):
        encode([(b"content-length", value)])


@pytest.mark.parametrize(
    "value", [b"0", b"5", b"0005", b"123456789012345678", b"1234567890123456789", b"9" * 40]
)
def test_a_content_length_is_read_as_int_reads_it(value: bytes) -> None:
    # Up to 18 digits read one by one, longer ones by int(): the same number either way.
    wire, length, *_ = encode([(b"content-length", value)])
    assert length == int(value)
    assert b"\r\ncontent-length: %s\r\n" % value in wire


def test_names_beyond_the_remembered_limit_are_still_checked() -> None:
    head._NAME_KINDS.clear()  # the same dict the (possibly compiled) module uses
    names = [b"x-name-%d" % number for number in range(head._NAME_KINDS_LIMIT + 10)]
    wire, *_ = encode([(name, b"1") for name in names])
    assert wire.count(b"x-name-") == len(names)
    assert len(head._NAME_KINDS) == head._NAME_KINDS_LIMIT
    with pytest.raises(InvalidResponseHead):
        encode([(b"bad name", b"v")])


# Every weekday and month, leap days, the turn of a year and of the 32-bit epoch.
DATES = [
    0,
    951_782_400,  # 2000-02-29
    1_104_537_599,  # 2004-12-31 23:59:59
    2_147_483_648,  # 2038-01-19 03:14:08
    *(1_700_000_000 + day * 86_400 + day * 3_607 for day in range(0, 400, 9)),
]


@pytest.mark.parametrize("seconds", DATES)
def test_the_date_header_is_the_imf_fixdate_email_utils_writes(seconds: int) -> None:
    from email.utils import formatdate

    assert head.http_date(seconds) == formatdate(seconds, usegmt=True).encode("ascii")


@pytest.mark.parametrize(
    ("status", "line"),
    [
        (100, b"HTTP/1.1 100 Continue\r\n"),
        (200, b"HTTP/1.1 200 OK\r\n"),
        (299, b"HTTP/1.1 299 \r\n"),  # no phrase of its own: none is made up
        (599, b"HTTP/1.1 599 \r\n"),
        (600, b"HTTP/1.1 600 \r\n"),  # past the table of known codes
        (999, b"HTTP/1.1 999 \r\n"),
    ],
)
def test_status_lines_at_the_edges_of_the_table(status: int, line: bytes) -> None:
    data = encode_head(status, [], DEFAULTS, http10=False, keep_alive=True, body_length=0,
                       send_body=True)[0]  # fmt: skip
    assert data.startswith(line)


@pytest.mark.parametrize("status", [99, 1000, -200, True])
def test_statuses_out_of_range_are_refused(status: Any) -> None:
    with pytest.raises(InvalidResponseHead):
        encode_head(status, [], DEFAULTS, http10=False, keep_alive=True, body_length=0,
                    send_body=True)  # fmt: skip


# Up to 8 fields are formatted one onto another, the rest listed and joined (encode_head).
@pytest.mark.parametrize("count", [0, 1, 2, 7, 8, 9, 10, 30])
def test_fields_come_out_in_order_whatever_their_number(count: int) -> None:
    fields = [(b"x-field-%d" % number, b"value %d" % number) for number in range(count)]
    data, _, _, _ = encode(
        fields, body_length=5, request_id_header=b"x-request-id", request_id=b"abc"
    )
    lines = data.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 200 OK"
    assert lines[1 : 1 + count] == [b"%s: %s" % field for field in fields]
    assert lines[1 + count :] == [
        b"server: monoceros",
        b"x-request-id: abc",
        b"content-length: 5",
        b"",
        b"",
    ]


def test_no_request_id_line_without_a_request_id() -> None:
    data, _, _, _ = encode([], body_length=0, request_id_header=b"x-request-id")
    assert data.split(b"\r\n")[1:] == [b"server: monoceros", b"content-length: 0", b"", b""]
