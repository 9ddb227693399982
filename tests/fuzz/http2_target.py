"""Fuzz target: one HTTP/2 connection of the real `Http2Protocol`, in memory.

The connection starts as the server starts it: an `HttpProtocol` with --http2 sniffs the
client's preface and hands the transport over. An input is the client's bytes after the
preface's magic; its first three bytes are the harness's choices:

- byte 0, flags: the app (bits 0-1: a trivial responder, a slow reader, a streamer, an echo;
  each also answers extended CONNECT WebSockets, RFC 8441: a denial, a slow echo, a large
  message then echo, an echo); a client that stops reading the server's bytes (4), for good or
  until its next read (8); a graceful shutdown after the first read (16); the input brings its
  own SETTINGS frame (32; else the harness sends an empty one after the magic); one concurrent
  stream allowed (64; else 4); the client hangs up part-way (128, where byte 2 says);
- byte 1 seeds where the stream is cut into reads (1 byte to 64 KiB, as http_target.py);
- byte 2: after which read the client hangs up (bits 3-7), how many loop turns the apps get
  before it does (bits 0-1), and whether a second passes between two reads (bit 2; else the
  clock stands still until the reads are done).

The reads are delivered as a client would send them, honouring pause_reading; then time
passes until every deadline has fired, and the client hangs up. Invariants (any failure is a
finding):

- no exception escapes `data_received`, a deadline or `connection_lost`, and the loop's
  exception handler and the server's error log stay silent;
- what the server wrote is well-formed HTTP/2 for what the client sent (h2_oracle.py: frames
  by hyperframe, header blocks by hpack, each stream's frames in order, within the client's
  frame size and flow-control windows, GOAWAY honoured, a graceful close ends every stream);
- bounded state: live streams at most --http2-max-concurrent-streams; a stream's unread body
  under HIGH_WATER plus one read and one frame (zttp holds a frame until it is whole, then
  hands it over in one piece); what zttp parks for want of window, one app send at most;
  a WebSocket session's queue at most --ws-max-queue (plus the disconnect);
- reading is never paused with nothing left to resume it, and once every deadline has passed
  only WebSocket sessions (which have none here) may still run;
- once the client is gone and the loop drained, nothing is left: no connection or session in
  the ServerState, no task, and the observer's events paired (every request the app saw
  finished once, every session ended, the connection opened and closed once).
"""

from __future__ import annotations

import asyncio
import contextlib

from monoceros.config import Http2Settings, HttpLimits, WebSocketSettings
from monoceros.errors import ClientDisconnected
from monoceros.protocols.context import ConnectionContext
from monoceros.protocols.flow_control import HIGH_WATER
from monoceros.protocols.h2_websocket import StreamTransport
from monoceros.protocols.head import DefaultHeaders
from monoceros.protocols.http import HttpProtocol
from monoceros.protocols.http2 import Http2Protocol
from monoceros.protocols.state import ServerState
from monoceros.types import Receive, Scope, Send
from tests.apps import echo_messages, read_all
from tests.fuzz.h2_oracle import PREFACE, check_connection
from tests.fuzz.http_target import HOUR, TURNS, Tally, reads_of, run_checked, settle
from tests.memory import MemoryTransport

# Small limits, so that inputs reach them; the body limit just above HIGH_WATER, so that a
# slow reader's stream pauses reading, and a little more is refused.
LIMITS = HttpLimits(
    max_request_line=256,
    max_header_count=12,
    max_header_bytes=1024,
    max_body_bytes=HIGH_WATER + 4096,
    header_timeout=10.0,
    keep_alive_timeout=5.0,
    body_timeout=8.0,
    send_timeout=8.0,
)
MAX_QUEUE = 4
WS = WebSocketSettings(
    max_size=64 * 1024,
    max_queue=MAX_QUEUE,
    ping_interval=None,  # real-time timers: not in a fuzz run
    ping_timeout=None,
)
STREAMS = {False: 4, True: 1}  # --http2-max-concurrent-streams, by flag 64
EMPTY_SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
MAX_FRAME = 16384  # the largest frame zttp accepts (its SETTINGS_MAX_FRAME_SIZE)
STALL_AFTER = 4096  # a client that stops reading stops once the server wrote this much
# The apps' sends: a streamed response is CHUNKS chunks of CHUNK bytes (past the default
# 64 KiB window), a WebSocket session's first message BIG bytes.
CHUNK = 24 * 1024
CHUNKS = 3
BIG = 70 * 1024
LARGEST_SEND = BIG + 16  # a WebSocket frame's header included


# -- the apps: each answers a request, and a WebSocket session ------------------------------


async def _respond(send: Send, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def answer(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers without reading the body; denies a WebSocket (403)."""
    if scope["type"] == "websocket":
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.close"})
        return
    await _respond(send, b"ok")


async def slow_reader(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the body slowly, and answers with its size; a slow WebSocket echo."""
    if scope["type"] == "websocket":
        await echo_messages(receive, send, pause=3)
        return
    body = await read_all(receive, pause=5)
    if body is not None:
        await _respond(send, b"%d bytes" % len(body))


async def streamer(scope: Scope, receive: Receive, send: Send) -> None:
    """Streams its response in chunks, then trailers, before it reads the body (then the
    body's size is the trailer); a WebSocket whose first message is larger than a window."""
    if scope["type"] == "websocket":
        await echo_messages(receive, send, first=b"w" * BIG)
        return
    await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
    for _ in range(CHUNKS):
        await send({"type": "http.response.body", "body": b"s" * CHUNK, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
    body = await read_all(receive, pause=1)
    size = b"gone" if body is None else b"%d" % len(body)
    await send({"type": "http.response.trailers", "headers": [(b"x-body", size)]})


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Echoes the body; a WebSocket echo."""
    if scope["type"] == "websocket":
        await echo_messages(receive, send)
        return
    body = await read_all(receive)
    if body is not None:
        await _respond(send, body)


APPS = (answer, slow_reader, streamer, echo)


# -- the harness -------------------------------------------------------------------------------


def check_bounds(connection: Http2Protocol, read: int) -> None:
    """What the connection holds after a read of `read` bytes."""
    streams = connection.streams
    assert len(streams) <= connection.max_streams, f"{len(streams)} streams open"
    for stream in streams.values():
        cycle = stream.cycle
        if cycle is not None:
            bound = HIGH_WATER + MAX_FRAME + read  # zttp hands over whole frames
            assert cycle.buffered <= bound, f"{cycle.buffered} body bytes unread"
        tunnel = stream.tunnel
        if isinstance(tunnel, StreamTransport) and tunnel.session is not None:
            queued = len(tunnel.session._queue)
            assert queued <= MAX_QUEUE + 1, f"{queued} WebSocket messages queued"
        if not stream.finished:
            parked = connection.connection.stream(stream.stream_id).pending_bytes or 0
            assert parked <= LARGEST_SEND, f"{parked} bytes parked on stream {stream.stream_id}"


async def drive(data: bytes) -> None:
    if len(data) < 3:
        return
    flags, seed, hang = data[0], data[1], data[2]
    app = APPS[flags & 3]
    stalls = bool(flags & 4)  # the client stops reading the server's bytes ...
    reads_again = bool(flags & 8)  # ... until it sends its next read
    shuts_down = bool(flags & 16)  # the server begins a graceful shutdown after the first read
    sent = PREFACE + (b"" if flags & 32 else EMPTY_SETTINGS) + data[3:]
    reads = reads_of(seed, sent)
    hang_up_at = (hang >> 3) % (len(reads) + 1) if flags & 128 else None
    seconds = 1.0 if hang & 4 else 0.0  # the clock, between two reads
    requests: list[str] = []
    sessions: list[str] = []

    async def recording(scope: Scope, receive: Receive, send: Send) -> None:
        (sessions if scope["type"] == "websocket" else requests).append(scope["path"])
        with contextlib.suppress(ClientDisconnected):  # the app may let it propagate
            await app(scope, receive, send)

    state = ServerState(now=1000.0)
    tally = Tally()
    context = ConnectionContext(
        default_headers=DefaultHeaders(server=False, date=False),
        observer=tally,
        limits=LIMITS,
        ws=WS,
        http2=Http2Settings(enabled=True, max_concurrent_streams=STREAMS[bool(flags & 64)]),
    )
    transport = MemoryTransport()
    sniffer = HttpProtocol(recording, context, state)
    transport.protocol = sniffer
    if stalls:
        transport.stall_after = STALL_AFTER
    sniffer.connection_made(transport)  # type: ignore[arg-type]
    delivered = 0
    for number, read in enumerate(reads):
        if number == hang_up_at:
            for _ in range(hang & 3):  # the apps get a few turns, not all they want
                await asyncio.sleep(0)
            transport.hang_up()
            break
        await settle(state)
        if seconds and number:
            state.tick(state.now + seconds)
            await settle(state)
        if transport.closed:
            break
        if reads_again and transport.writing_paused:
            transport.drained()
            await settle(state)
        connection = transport.protocol
        if shuts_down and number == 1 and isinstance(connection, Http2Protocol):
            state.draining = True
            connection.shutdown()
            await settle(state)
            if transport.closed:
                break
        if not transport.reading:
            # Paused with nothing in flight, nothing will resume it: the connection hangs.
            assert state.tasks, "reading paused for nothing"
            break
        transport.protocol.data_received(read)
        delivered += len(read)
        connection = transport.protocol
        if isinstance(connection, Http2Protocol):
            check_bounds(connection, len(read))
    await settle(state)
    connection = transport.protocol
    if delivered >= len(PREFACE) and not transport.gone:
        assert isinstance(connection, Http2Protocol), "the preface was not handed over"
    # Time passes: every deadline fires (a second tick: a deadline may arm another).
    for hours in (1, 2, 3):
        state.tick(state.now + hours * HOUR)
        await settle(state)
    closed_by_server, aborted = transport.closed, transport.aborted
    if not closed_by_server and not transport.gone and isinstance(connection, Http2Protocol):
        tunnels = any(stream.tunnel is not None for stream in connection.streams.values())
        assert tunnels or not state.tasks, "an app still runs after every deadline"
    written = bytes(transport.written)
    if not transport.lost:
        transport.hang_up()
    for _ in range(TURNS):  # bounded: cancelled apps unwind
        await asyncio.sleep(0)
        if not state.tasks:
            break
    await asyncio.sleep(0)  # callbacks a finished task scheduled
    assert not state.tasks, f"{len(state.tasks)} tasks left after the connection closed"
    assert not state.connections, "the connection (or a session) is still in the ServerState"
    assert tally.opened == tally.closed == 1, tally
    assert tally.started == tally.finished == len(requests), (tally, requests)
    assert tally.sessions == 0, tally
    if isinstance(connection, Http2Protocol):
        check_connection(written, sent[:delivered], closed=closed_by_server, aborted=aborted)


def check(data: bytes) -> None:
    """One input; raises on a finding."""
    run_checked(drive, data)
