"""W3C traceparent parsing (protocols/tracecontext.py) as a table, and the ids the server makes
(protocols/context.py): request ids and generated traces."""

from __future__ import annotations

import re

import pytest

from monoceros.protocols.context import ConnectionContext, RequestIds
from monoceros.protocols.head import DefaultHeaders
from monoceros.protocols.tracecontext import parse_traceparent

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(f"00-{TRACE}-{SPAN}-01", (TRACE, SPAN), id="sampled"),
        pytest.param(f"00-{TRACE}-{SPAN}-00", (TRACE, SPAN), id="not-sampled"),
        pytest.param(f" 00-{TRACE}-{SPAN}-01\t", (TRACE, SPAN), id="whitespace-around"),
        pytest.param(f"cc-{TRACE}-{SPAN}-01-more", (TRACE, SPAN), id="later-version"),
        pytest.param(f"cc-{TRACE}-{SPAN}-01", (TRACE, SPAN), id="later-version-alone"),
        pytest.param(f"00-{TRACE}-{SPAN}-01-more", None, id="version-00-longer"),
        pytest.param(f"cc-{TRACE}-{SPAN}-01more", None, id="later-version-no-dash"),
        pytest.param(f"ff-{TRACE}-{SPAN}-01", None, id="version-ff"),
        pytest.param(f"00-{TRACE.upper()}-{SPAN}-01", None, id="uppercase"),
        pytest.param(f"00-{'0' * 32}-{SPAN}-01", None, id="zero-trace"),
        pytest.param(f"00-{TRACE}-{'0' * 16}-01", None, id="zero-span"),
        pytest.param(f"00-{TRACE[:-1]}g-{SPAN}-01", None, id="not-hex"),
        pytest.param(f"00-{TRACE}-{SPAN}-0x", None, id="flags-not-hex"),
        pytest.param(f"00_{TRACE}-{SPAN}-01", None, id="separator"),
        pytest.param(f"00-{TRACE}{SPAN}--01", None, id="dash-moved"),
        pytest.param(f"00-{TRACE}-{SPAN}-1", None, id="short"),
        pytest.param("", None, id="empty"),
        pytest.param("-" * 55, None, id="dashes"),
        pytest.param(f" 00-{TRACE}-{SPAN}-0", None, id="55-bytes-after-a-space"),
        pytest.param(f"00-{TRACE[:-1]}\xe9-{SPAN}-01", None, id="not-ascii"),
        pytest.param(f"00-{TRACE}-{SPAN}-01\x00", None, id="nul-after"),
    ],
)
def test_parse_traceparent(value: str, expected: tuple[str, str] | None) -> None:
    assert parse_traceparent(value.encode("latin-1")) == expected


def test_request_ids_are_w3c_trace_ids_that_do_not_repeat() -> None:
    ids = RequestIds()
    made = [ids.next() for _ in range(10_000)]  # across many blocks of random digits
    assert len(set(made)) == len(made)
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in made)
    # Random throughout, not a counter or a fixed prefix: every position takes many digits.
    assert all(len({rid[i] for rid in made}) == 16 for i in range(32))
    assert RequestIds().next() not in made  # another process's


def test_traces_take_their_own_digits() -> None:
    ids = RequestIds()
    traces = [ids.trace() for _ in range(1_000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", trace) for trace, _ in traces)
    assert all(re.fullmatch(r"[0-9a-f]{16}", span) for _, span in traces)
    digits = [trace for trace, _ in traces] + [span for _, span in traces]
    assert len(set(digits)) == len(digits)


def test_trace_for_a_request() -> None:
    headers = DefaultHeaders(server=True, date=True)
    plain = ConnectionContext(default_headers=headers)
    generating = ConnectionContext(default_headers=headers, generate_traces=True)
    given = f"00-{TRACE}-{SPAN}-01".encode()
    assert plain.trace_for(given) == generating.trace_for(given) == (TRACE, SPAN)
    assert plain.trace_for(None) is None and plain.trace_for(b"") is None
    made = [generating.trace_for(None), generating.trace_for(b"bad")]
    for trace in made:
        assert trace is not None
        assert re.fullmatch(r"[0-9a-f]{32}", trace[0]) and re.fullmatch(r"[0-9a-f]{16}", trace[1])
    assert made[0] != made[1]
