"""W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` request header
read into the (trace id, span id) the logs and metrics exemplars carry. Pure; compiled.

    traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
                 version-trace id (32 hex)-parent id (16 hex)-flags

What is refused, as the recommendation says: anything but lowercase hex in its four fields, an
all-zero trace or parent id, version ff, a version-00 header with anything after the flags,
and a later version without a dash after them. A request with two traceparent headers has
none (the reader passes an empty value for it). `tracestate` is the caller's vendor data: it
reaches the app untouched, and is not logged (no log schema has a field for it).
"""

from __future__ import annotations

from typing import Final

from monoceros.protocols.events import TraceContext

HEADER: Final = b"traceparent"
_LENGTH: Final = 55  # version 00: 2 + 1 + 32 + 1 + 16 + 1 + 2
_HEX: Final = b"0123456789abcdef"
_ZERO_TRACE: Final = b"0" * 32
_ZERO_SPAN: Final = b"0" * 16


def parse_traceparent(value: bytes) -> TraceContext | None:
    """The (trace id, parent id) of a `traceparent` value, or None if it is not valid."""
    value = value.strip(b" \t")
    size = len(value)
    if size < _LENGTH or (size > _LENGTH and (value[:2] == b"00" or value[55:56] != b"-")):
        return None
    head = value[:_LENGTH]
    # Delete the hex digits: a valid head leaves its three dashes, in place.
    if head.translate(None, _HEX) != b"---" or head[2:3] + head[35:36] + head[52:53] != b"---":
        return None
    trace_id = head[3:35]
    span_id = head[36:52]
    if head[:2] == b"ff" or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return (trace_id.decode("ascii"), span_id.decode("ascii"))
