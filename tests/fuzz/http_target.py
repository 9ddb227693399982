"""Fuzz target: one HTTP/1.1 connection of the real `HttpProtocol`, in memory.

An input is one client's bytes: its first byte picks the app and the client's manners (one
that stops reading the responses, for good or until its next read; a graceful shutdown after
the first read), its second seeds where the stream is cut into reads (1 byte to 64 KiB), and
the rest is the stream.
The reads are delivered as a client would send them, honouring pause_reading; then time
passes until every deadline has fired, and the client hangs up. Invariants (any failure is a
finding):

- no exception escapes `data_received`, a deadline or `connection_lost`, and the loop's
  exception handler and the server's error log stay silent;
- what the server wrote is well-formed HTTP/1.1 (h11 as the client: wire_oracle.py), one
  response per request the app saw plus at most one the server answered itself, which is last
  and closes the connection;
- buffered input stays bounded: at most MAX_QUEUED parsed requests wait, the body held for
  the app stays under HIGH_WATER plus one read, a head under the reader's budget plus one read;
- no connection outlives its deadlines, and once closed nothing is left: no connection in
  the ServerState, no task, and the observer's events paired.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from monoceros.config import HttpLimits
from monoceros.errors import ClientDisconnected
from monoceros.protocols.context import ConnectionContext
from monoceros.protocols.events import RequestFinished, SessionFinished
from monoceros.protocols.flow_control import HIGH_WATER
from monoceros.protocols.head import DefaultHeaders
from monoceros.protocols.http import HttpProtocol
from monoceros.protocols.reader import MAX_QUEUED
from monoceros.protocols.state import ServerState
from monoceros.types import Message, Receive, Scope, Send
from tests.apps import read_all
from tests.fuzz.wire_oracle import check_exchange
from tests.memory import MemoryTransport

# Small limits, so that inputs reach them.
LIMITS = HttpLimits(
    max_request_line=256,
    max_header_count=12,
    max_header_bytes=1024,
    max_body_bytes=4096,
    header_timeout=10.0,
    keep_alive_timeout=5.0,
)
READ_SIZES = (1, 2, 3, 5, 8, 13, 64, 512, 4096, 65536)
TURNS = 64  # loop turns a step may take to settle: the apps need a handful
STALL_AFTER = 2048  # a client that stops reading stops once the server wrote this much
HOUR = 3600.0


@dataclass
class Tally:
    """An observer that checks the pairing the Observer port promises."""

    opened: int = 0
    closed: int = 0
    started: int = 0
    finished: int = 0
    sessions: int = 0
    records: list[RequestFinished] = field(default_factory=list)

    def connection_opened(self) -> None:
        self.opened += 1

    def connection_closed(self) -> None:
        self.closed += 1

    def request_started(self, scope: Scope, reused: bool) -> None:
        self.started += 1

    def request_finished(self, record: RequestFinished) -> None:
        self.finished += 1
        self.records.append(record)

    def request_rejected(self, record: RequestFinished | None, reason: str) -> None:
        pass

    def session_started(self) -> None:
        self.sessions += 1

    def session_finished(self, record: SessionFinished) -> None:
        self.sessions -= 1


# -- the apps: each records the method of every request that reaches it ----------------------


App = Callable[[Scope, Receive, Send, list[str]], Awaitable[None]]


def _start(scope: Scope) -> Message:
    status = 405 if scope["method"] == "CONNECT" else 200  # a 2xx to CONNECT opens a tunnel
    return {"type": "http.response.start", "status": status, "headers": []}


async def _respond(send: Send, scope: Scope, body: bytes, more: bytes | None = None) -> None:
    await send(_start(scope))
    await send({"type": "http.response.body", "body": body, "more_body": more is not None})
    if more is not None:
        await send({"type": "http.response.body", "body": more})


async def answer(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers without reading the body."""
    await _respond(send, scope, b"ok")


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    body = await read_all(receive)
    if body is not None:
        await _respond(send, scope, body)


async def slow_echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the body slowly, and streams its answer in two parts."""
    body = await read_all(receive, pause=5)
    if body is not None:
        await _respond(send, scope, body[:10], body[10:])


async def stream_then_read(scope: Scope, receive: Receive, send: Send) -> None:
    """Starts its response before it reads the body."""
    await send(_start(scope))
    await send({"type": "http.response.body", "body": b"first", "more_body": True})
    body = await read_all(receive, pause=1)
    if body is not None:
        await send({"type": "http.response.body", "body": body})


APPS = (answer, echo, slow_echo, stream_then_read)


class ErrorLog(logging.Handler):
    """The server's error log, kept: any record at ERROR or above is a finding."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


ERRORS = ErrorLog()
LOOP_ERRORS: list[dict[str, object]] = []
LOOP = asyncio.new_event_loop()
LOOP.set_exception_handler(lambda loop, context: LOOP_ERRORS.append(context))


def reads_of(seed: int, stream: bytes) -> list[bytes]:
    rng = random.Random(seed)
    reads, start = [], 0
    while start < len(stream):
        size = rng.choice(READ_SIZES)
        reads.append(stream[start : start + size])
        start += size
    return reads


async def settle(state: ServerState) -> None:
    """Let the app tasks and callbacks run until nothing is left to do (bounded)."""
    for _ in range(TURNS):
        await asyncio.sleep(0)
        if not state.tasks:
            await asyncio.sleep(0)  # callbacks a finished task scheduled (connection_lost)
            return


async def drive(data: bytes) -> None:
    if len(data) < 2:
        return
    flags, seed, stream = data[0], data[1], data[2:]
    app = APPS[flags & 3]
    stalls = bool(flags & 4)  # the client stops reading the responses ...
    reads_again = bool(flags & 8)  # ... until it sends its next read
    shuts_down = bool(flags & 16)  # the server begins a graceful shutdown after the first read
    methods: list[str] = []

    async def recording(scope: Scope, receive: Receive, send: Send) -> None:
        methods.append(scope["method"])
        with contextlib.suppress(ClientDisconnected):  # the app may let it propagate
            await app(scope, receive, send)

    state = ServerState(now=1000.0)
    tally = Tally()
    context = ConnectionContext(
        default_headers=DefaultHeaders(server=False, date=False), observer=tally, limits=LIMITS
    )
    transport = MemoryTransport()
    protocol = HttpProtocol(recording, context, state)
    transport.protocol = protocol
    if stalls:
        transport.stall_after = STALL_AFTER
    protocol.connection_made(transport)  # type: ignore[arg-type]
    budget = LIMITS.max_request_line + LIMITS.max_header_bytes + 4096
    for number, read in enumerate(reads_of(seed, stream)):
        await settle(state)
        if transport.closed:
            break
        if reads_again and transport.writing_paused:
            transport.drained()
            await settle(state)
        if shuts_down and number == 1:
            state.draining = True
            protocol.shutdown()
            await settle(state)
            if transport.closed:
                break
        if not transport.reading:
            # Paused with nothing in flight, nothing will resume it: the connection hangs.
            assert state.tasks or protocol.flow.writing_paused, "reading paused for nothing"
            break
        protocol.data_received(read)
        reader = protocol.reader
        assert len(reader.queue) <= MAX_QUEUED + 1, f"{len(reader.queue)} requests queued"
        for cycle in (protocol.cycle, reader.message):
            if cycle is not None:
                assert cycle.buffered <= HIGH_WATER + len(read), f"{cycle.buffered} buffered"
        assert reader._section_fed <= budget + len(read), f"{reader._section_fed} of a head"
    await settle(state)
    # Time passes: every deadline fires (a second tick: a deadline may arm another).
    for hour in (1, 2, 3):
        state.tick(state.now + hour * HOUR)
        await settle(state)
    closed_by_server, aborted = transport.closed, transport.aborted
    assert closed_by_server or not state.tasks, "an app still runs after every deadline"
    written = bytes(transport.written)
    if not closed_by_server:
        transport.hang_up()
        await settle(state)
    for _ in range(TURNS):  # bounded: cancelled apps unwind
        if not state.tasks:
            break
        await asyncio.sleep(0)
    assert not state.tasks, f"{len(state.tasks)} tasks left after the connection closed"
    assert not state.connections, "the connection is still in the ServerState"
    assert tally.opened == tally.closed == 1, tally
    assert tally.started == tally.finished == len(methods), (tally, methods)
    check_exchange(written, methods, closed=closed_by_server, aborted=aborted)


def run_checked(drive: Callable[[bytes], Awaitable[None]], data: bytes) -> None:
    """Run one input on the shared loop, with the server's error log kept (and not printed);
    raises on a finding."""
    ERRORS.records.clear()
    LOOP_ERRORS.clear()
    server_log = logging.getLogger("monoceros")
    server_log.addHandler(ERRORS)
    propagate, server_log.propagate = server_log.propagate, False
    try:
        LOOP.run_until_complete(drive(data))
    finally:
        server_log.removeHandler(ERRORS)
        server_log.propagate = propagate
    assert not LOOP_ERRORS, LOOP_ERRORS
    assert not ERRORS.records, [r.getMessage() for r in ERRORS.records]


def check(data: bytes) -> None:
    """One input; raises on a finding."""
    run_checked(drive, data)
