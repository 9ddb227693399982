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
# Each byte translated to its class: h for a lowercase hex digit, - for a dash, ? otherwise. A
# valid head translates to _SHAPE: one translate and one compare check all 55 bytes.
_CLASSES: Final = bytes(
    ord("h") if chr(byte) in "0123456789abcdef" else ord("-") if byte == 45 else ord("?")
    for byte in range(256)
)
_SHAPE: Final = b"hh-" + b"h" * 32 + b"-" + b"h" * 16 + b"-hh"
_ZERO_TRACE: Final = "0" * 32
_ZERO_SPAN: Final = "0" * 16


def parse_traceparent(value: bytes) -> TraceContext | None:
    """The (trace id, parent id) of a `traceparent` value, or None if it is not valid."""
    if len(value) != _LENGTH:  # the common case, a version-00 header, is exactly this long
        value = value.strip(b" \t")
        size = len(value)
        if size < _LENGTH or (size > _LENGTH and (value[:2] == b"00" or value[55:56] != b"-")):
            return None
        value = value[:_LENGTH]
    if value.translate(_CLASSES) != _SHAPE:
        return None
    text = value.decode("ascii")
    trace_id = text[3:35]
    span_id = text[36:52]
    if text[:2] == "ff" or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return (trace_id, span_id)
