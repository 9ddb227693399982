"""What a fuzz harness believes about the bytes an HTTP/2 server wrote, given the bytes its
client sent: every frame parsed by hyperframe (the h2 project's frame layer), every header
block decoded by hpack, and each stream's frames in an order RFC 9113 allows. Anything else is
an `AssertionError`: a finding. No monoceros import (see tests/fuzz/run.py).

The client's bytes are arbitrary (a fuzzer's), and the server may stop reading them anywhere:
what is taken from them (the streams it opened, the windows and the largest frame it allowed)
is an upper bound, so the checks that use it stay sound whatever the server made of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import hpack
from hyperframe.exceptions import HyperframeError
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# RFC 9113 section 6.5.2.
HEADER_TABLE_SIZE, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE = 0x1, 0x4, 0x5
DEFAULT_WINDOW = 65535
DEFAULT_FRAME_SIZE = 16384
DEFAULT_TABLE_SIZE = 4096
MAX_WINDOW = 2**31 - 1
NO_ERROR = 0x0
# RFC 9113 section 8.2.2: fields a message over HTTP/2 must not carry.
CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
SERVER_FRAMES = (
    DataFrame,
    HeadersFrame,
    RstStreamFrame,
    SettingsFrame,
    PingFrame,
    GoAwayFrame,
    WindowUpdateFrame,
    ContinuationFrame,
)


@dataclass
class ClientFacts:
    """What the client's bytes allow the server, at most (see the module's docstring)."""

    opened: set[int] = field(default_factory=set)  # streams it sent HEADERS on
    reset: set[int] = field(default_factory=set)  # streams it sent RST_STREAM on
    named: set[int] = field(default_factory=set)  # streams it sent any frame on
    max_frame_size: int = DEFAULT_FRAME_SIZE
    table_size: int = DEFAULT_TABLE_SIZE
    initial_window: int = DEFAULT_WINDOW
    stream_credit: dict[int, int] = field(default_factory=dict)  # WINDOW_UPDATE increments
    connection_credit: int = 0
    settings: int = 0  # SETTINGS frames that want an ACK
    pings: set[bytes] = field(default_factory=set)  # payloads of PINGs that want an ACK


def client_facts(sent: bytes) -> ClientFacts:
    """Walk the client's frame headers (after the preface): whatever zttp made of a frame,
    it can only have read it on these boundaries, or stopped."""
    facts = ClientFacts()
    data = sent[len(PREFACE) :] if sent.startswith(PREFACE) else b""
    start = 0
    while len(data) - start >= 9:
        length = int.from_bytes(data[start : start + 3], "big")
        kind, flags = data[start + 3], data[start + 4]
        stream_id = int.from_bytes(data[start + 5 : start + 9], "big") & 0x7FFFFFFF
        payload = data[start + 9 : start + 9 + length]
        start += 9 + length
        facts.named.add(stream_id)
        if kind == 0x1 and stream_id:  # HEADERS
            facts.opened.add(stream_id)
        elif kind == 0x3:  # RST_STREAM
            facts.reset.add(stream_id)
        elif kind == 0x4 and not flags & 0x1:  # SETTINGS, not an ACK
            facts.settings += 1
            for index in range(0, len(payload) - 5, 6):
                key = int.from_bytes(payload[index : index + 2], "big")
                value = int.from_bytes(payload[index + 2 : index + 6], "big")
                if key == MAX_FRAME_SIZE and DEFAULT_FRAME_SIZE <= value < 2**24:
                    facts.max_frame_size = max(facts.max_frame_size, value)
                elif key == INITIAL_WINDOW_SIZE and value <= MAX_WINDOW:
                    facts.initial_window = max(facts.initial_window, value)
                elif key == HEADER_TABLE_SIZE:
                    facts.table_size = max(facts.table_size, value)
        elif kind == 0x6 and not flags & 0x1 and len(payload) == 8:  # PING
            facts.pings.add(payload)
        elif kind == 0x8 and len(payload) == 4:  # WINDOW_UPDATE
            increment = int.from_bytes(payload, "big") & 0x7FFFFFFF
            if stream_id:
                facts.stream_credit[stream_id] = facts.stream_credit.get(stream_id, 0) + increment
            else:
                facts.connection_credit += increment
    return facts


@dataclass
class StreamSeen:
    """One stream, as the server's frames tell it."""

    final_status: int = 0
    content_length: int | None = None
    data: int = 0  # flow-controlled DATA bytes (padding included)
    ended: bool = False  # END_STREAM sent
    reset: bool = False  # RST_STREAM sent
    trailers: bool = False


@dataclass
class ServerOutput:
    frames: list[Frame]
    streams: dict[int, StreamSeen]
    goaway: list[tuple[int, int]]  # (last stream id, error code), in order


def _head(stream_id: int, seen: StreamSeen, fields: list[tuple[bytes, bytes]], end: bool) -> None:
    """A header block the server sent on a stream: a response head (interim or final) or,
    after the final one, trailers."""
    where = f"stream {stream_id}"
    assert not seen.ended and not seen.reset, f"HEADERS on {where} after its end"
    for name, _value in fields:
        assert name == name.lower(), f"uppercase field name {name!r} on {where}"
        assert name not in CONNECTION_SPECIFIC, f"connection-specific {name!r} on {where}"
    pseudo = [name for name, _ in fields if name.startswith(b":")]
    if seen.final_status:  # trailers: the stream's last frame, no pseudo-fields
        assert end, f"a second header block on {where} that does not end it"
        assert not pseudo, f"pseudo-fields in trailers on {where}: {fields}"
        seen.trailers = True
        return
    assert pseudo == [b":status"] and fields[0][0] == b":status", f"bad head on {where}: {fields}"
    value = fields[0][1]
    assert len(value) == 3 and value.isdigit(), f"bad :status {value!r} on {where}"
    status = int(value)
    assert 100 <= status < 600 and status != 101, f":status {status} on {where}"
    if status < 200:
        assert not end, f"an interim response ends {where}"
        return
    seen.final_status = status
    lengths = [v for n, v in fields if n == b"content-length"]
    assert len(lengths) <= 1, f"repeated content-length on {where}"
    if lengths:
        assert lengths[0].isdigit(), f"bad content-length {lengths[0]!r} on {where}"
        seen.content_length = int(lengths[0])


def read_frames(written: bytes, facts: ClientFacts) -> ServerOutput:
    """The server's frames, each checked on its own and against the stream it belongs to."""
    decoder = hpack.Decoder()
    decoder.max_allowed_table_size = facts.table_size
    frames: list[Frame] = []
    streams: dict[int, StreamSeen] = {}
    goaway: list[tuple[int, int]] = []
    block: list[Frame] = []  # a header block not yet ended (HEADERS, then CONTINUATION)
    view = memoryview(written)
    start = 0
    while start < len(written):
        assert len(written) - start >= 9, f"a frame header cut short at byte {start}"
        try:
            frame, length = Frame.parse_frame_header(view[start : start + 9])
        except HyperframeError as exc:
            raise AssertionError(f"bad frame header at byte {start}: {exc}") from None
        assert length <= facts.max_frame_size, f"a {length}-byte frame (max {facts.max_frame_size})"
        body = view[start + 9 : start + 9 + length]
        assert len(body) == length, f"a frame cut short at byte {start}: {frame}"
        try:
            frame.parse_body(body)
        except HyperframeError as exc:
            raise AssertionError(f"malformed {type(frame).__name__} ({exc}) at {start}") from None
        start += 9 + length
        assert isinstance(frame, SERVER_FRAMES), f"a server does not send {frame}"
        if not frames:
            assert isinstance(frame, SettingsFrame) and "ACK" not in frame.flags, (
                f"the server's preface is not SETTINGS: {frame}"
            )
        frames.append(frame)
        if block:
            assert isinstance(frame, ContinuationFrame), f"{frame} inside a header block"
            assert frame.stream_id == block[0].stream_id, f"{frame} on another stream"
        elif isinstance(frame, ContinuationFrame):
            raise AssertionError(f"CONTINUATION outside a header block: {frame}")
        stream_id = frame.stream_id
        parts: list[Frame] = []  # a whole header block, once its last frame came
        if isinstance(frame, HeadersFrame | ContinuationFrame):
            block.append(frame)
            if "END_HEADERS" not in frame.flags:
                continue
            parts, block = block, []
        if isinstance(frame, SettingsFrame | PingFrame | GoAwayFrame):
            assert stream_id == 0, f"{frame} on a stream"
            if isinstance(frame, GoAwayFrame):
                goaway.append((frame.last_stream_id, frame.error_code))
            continue
        if isinstance(frame, WindowUpdateFrame):
            continue
        if isinstance(frame, RstStreamFrame):
            # zttp answers a frame on a stream that is not open (even an idle one, which RFC
            # 9113 section 5.1 makes a connection error) with RST_STREAM: on a stream the
            # client named, that is its answer.
            assert stream_id in facts.named, f"{frame} on a stream the client never named"
            streams.setdefault(stream_id, StreamSeen()).reset = True
            continue
        assert stream_id % 2 == 1, f"{frame} on a stream the client cannot have opened"
        assert stream_id in facts.opened, f"{frame} on stream {stream_id}, never opened"
        seen = streams.setdefault(stream_id, StreamSeen())
        if parts:
            data = b"".join(bytes(part.data) for part in parts)  # type: ignore[attr-defined]
            try:
                fields = [(bytes(n), bytes(v)) for n, v in decoder.decode(data, raw=True)]
            except (hpack.HPACKError, IndexError, ValueError) as exc:
                raise AssertionError(f"undecodable header block on {stream_id}: {exc}") from None
            end = "END_STREAM" in parts[0].flags
            _head(stream_id, seen, fields, end)
            seen.ended = seen.ended or end
        else:
            assert isinstance(frame, DataFrame)
            assert not seen.ended and not seen.reset, f"DATA on stream {stream_id} after its end"
            assert seen.final_status, f"DATA on stream {stream_id} before a response head"
            assert not seen.trailers
            seen.data += frame.flow_controlled_length
            seen.ended = "END_STREAM" in frame.flags
    assert not block, f"the output ends inside a header block: {block}"
    return ServerOutput(frames, streams, goaway)


def check_connection(written: bytes, sent: bytes, *, closed: bool, aborted: bool) -> ServerOutput:
    """The invariants of one HTTP/2 connection's output `written`, the client having sent
    `sent` (the preface included). `closed`: the server closed the connection; `aborted`: it
    cut it.

    - every byte belongs to a well-formed frame no larger than the client allowed, parsed by
      hyperframe; header blocks are contiguous and decode (hpack); the first frame is the
      server's SETTINGS;
    - on each stream: frames only on a stream the client opened; interim heads, one final
      head, DATA, optional trailers, in that order, nothing after END_STREAM or RST_STREAM;
      the DATA adds up to the content-length when it ends the stream; no body on 204 or 304;
    - DATA within the windows the client granted (an upper bound: its largest initial window
      and every WINDOW_UPDATE), per stream and for the connection;
    - SETTINGS and PING are acknowledged no more than asked, a PING's ACK with its payload;
    - no stream above a GOAWAY's last stream id was answered (the client would retry a
      request that was served);
    - a server that closed gracefully (GOAWAY NO_ERROR, or none) ended every stream it began
      that the client did not reset."""
    facts = client_facts(sent)
    output = read_frames(written, facts)
    acks = [f for f in output.frames if isinstance(f, SettingsFrame) and "ACK" in f.flags]
    assert len(acks) <= facts.settings, f"{len(acks)} SETTINGS ACKs, {facts.settings} asked"
    for frame in output.frames:
        if isinstance(frame, PingFrame) and "ACK" in frame.flags:
            assert bytes(frame.opaque_data) in facts.pings, f"an ACK to no PING: {frame}"
    connection_data = 0
    for stream_id, seen in output.streams.items():
        where = f"stream {stream_id}"
        credit = facts.initial_window + facts.stream_credit.get(stream_id, 0)
        assert seen.data <= credit, f"{seen.data} bytes of DATA on {where}, window {credit}"
        connection_data += seen.data
        if seen.ended and not seen.reset and seen.data and seen.content_length is not None:
            assert seen.data == seen.content_length, (
                f"{seen.data} bytes on {where}, content-length {seen.content_length}"
            )
        if seen.final_status in (204, 304):
            assert not seen.data, f"a body on {where}'s {seen.final_status}"
    window = DEFAULT_WINDOW + facts.connection_credit
    assert connection_data <= window, f"{connection_data} bytes of DATA, connection window {window}"
    # RFC 9113 section 6.8 says the last stream id never grows; zttp's own GOAWAY on a protocol
    # error carries the highest stream id it has seen, even after ours gave a lower one (the
    # streams between were refused, REFUSED_STREAM). What a client relies on is checked: no
    # stream above the lowest id it was given was answered.
    if output.goaway:
        last = min(last_stream_id for last_stream_id, _code in output.goaway)
        answered = [s for s, seen in output.streams.items() if seen.final_status and s > last]
        assert not answered, f"streams {answered} answered above GOAWAY's last stream id {last}"
    graceful = all(code == NO_ERROR for _, code in output.goaway)
    if closed and not aborted and graceful:
        open_ = [
            stream_id
            for stream_id, seen in output.streams.items()
            if not (seen.ended or seen.reset or stream_id in facts.reset)
        ]
        assert not open_, f"closed with streams {open_} under way and no error"
    return output
