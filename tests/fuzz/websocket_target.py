"""Fuzz target: one WebSocket session, after a valid upgrade, fed any bytes as client frames.

An input: its first byte picks the engine (auto, our own framing; websockets; wsproto),
whether permessage-deflate is negotiated, and the app (echo, or one that reads slowly); its
second seeds the read sizes;
the rest follows the handshake on the wire. Invariants (any failure is a finding):

- no exception escapes, and the loop's exception handler and the error log stay silent;
- the server answers 101, and everything after it is well-formed server frames (wsproto's
  frame parser as the client, with the negotiated extension);
- at most --ws-max-queue messages wait for the app (plus the disconnect);
- once the client is gone and the close deadline has passed, nothing is left: no connection,
  no task, and the observer's session and connection events paired.
"""

from __future__ import annotations

import asyncio
import contextlib

import h11
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import FrameProtocol, ParseFailed

from monoceros.config import WebSocketSettings
from monoceros.errors import ClientDisconnected
from monoceros.protocols.context import ConnectionContext
from monoceros.protocols.head import DefaultHeaders
from monoceros.protocols.http import HttpProtocol
from monoceros.protocols.state import ServerState
from monoceros.protocols.websocket import WebSocketProtocol
from monoceros.types import Receive, Scope, Send
from tests.apps import echo_messages
from tests.fuzz.http_target import TURNS, Tally, reads_of, run_checked, settle
from tests.memory import MemoryTransport

HANDSHAKE = (
    b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)
DEFLATE = b"Sec-WebSocket-Extensions: permessage-deflate\r\n"
MAX_QUEUE = 4
SETTINGS = {
    (engine, deflate): WebSocketSettings(
        mode=engine,
        max_size=64 * 1024,
        max_queue=MAX_QUEUE,
        ping_interval=None,  # real-time timers: not in a fuzz run
        ping_timeout=None,
        per_message_deflate=deflate,
    )
    for engine in ("auto", "websockets", "wsproto")
    for deflate in (False, True)
}


def check_frames(written: bytes) -> None:
    """`written` is a 101 response, then frames a client can parse."""
    client = h11.Connection(h11.CLIENT)
    upgrade = [("host", "x"), ("upgrade", "websocket"), ("connection", "upgrade")]
    client.send(h11.Request(method="GET", target="/", headers=upgrade))
    client.send(h11.EndOfMessage())
    client.receive_data(written)
    event = client.next_event()
    assert isinstance(event, h11.InformationalResponse), (event, written)
    assert event.status_code == 101, written
    extensions = []
    for name, value in event.headers:  # names lowercased
        if name == b"sec-websocket-extensions":
            deflate = PerMessageDeflate()
            deflate.finalize(value.decode("ascii"))
            extensions.append(deflate)
    frames = FrameProtocol(client=True, extensions=extensions)
    frames.receive_bytes(close_1014_as_1011(client.trailing_data[0]))
    try:
        for _ in frames.received_frames():
            pass
    except ParseFailed as exc:
        raise AssertionError(f"malformed frame from the server ({exc}): {written!r}") from None


def close_1014_as_1011(data: bytes) -> bytes:
    """`data` (server frames) with close code 1014 read as 1011. 1014 is registered (IANA's
    WebSocket close code registry) and the server echoes a client's 1014, as websockets does;
    wsproto 1.3 predates it and refuses it. Only the frame headers are walked: wsproto still
    judges everything else."""
    frames = bytearray(data)
    at = 0
    while at + 2 <= len(data):
        length = data[at + 1] & 0x7F
        start = at + 2
        if length >= 126:
            width = 2 if length == 126 else 8
            length = int.from_bytes(data[start : start + width], "big")
            start += width
        if data[at] & 0x0F == 0x8 and data[start : start + 2] == (1014).to_bytes(2, "big"):
            frames[start : start + 2] = (1011).to_bytes(2, "big")
        at = start + length
    return bytes(frames)


async def drive(data: bytes) -> None:
    if len(data) < 2:
        return
    flags, seed, stream = data[0], data[1], data[2:]
    engine = "auto" if flags & 8 else "wsproto" if flags & 1 else "websockets"
    deflate = bool(flags & 2)
    pause = 3 if flags & 4 else 0

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        with contextlib.suppress(ClientDisconnected):
            await echo_messages(receive, send, pause)

    state = ServerState(now=1000.0)
    tally = Tally()
    context = ConnectionContext(
        default_headers=DefaultHeaders(server=False, date=False),
        observer=tally,
        ws=SETTINGS[engine, deflate],
    )
    transport = MemoryTransport()
    protocol = HttpProtocol(app, context, state)
    transport.protocol = protocol
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.data_received(HANDSHAKE + (DEFLATE if deflate else b"") + b"\r\n")
    await settle(state)
    session = transport.protocol
    assert isinstance(session, WebSocketProtocol), "the upgrade was not taken"
    for read in reads_of(seed, stream):
        await settle(state)
        if transport.closed or not transport.reading:
            break  # closed, or the app holds max_queue messages and reads no more
        session.data_received(read)
        assert len(session._queue) <= MAX_QUEUE + 1, f"{len(session._queue)} messages queued"
    await settle(state)
    state.tick(state.now + 3600.0)  # the close deadline, if a close was sent
    await settle(state)
    written = bytes(transport.written)
    if not transport.closed:
        transport.hang_up()
    for _ in range(TURNS):
        await asyncio.sleep(0)
        if not state.tasks:
            break
    assert not state.tasks, f"{len(state.tasks)} tasks left after the connection closed"
    assert not state.connections, "the session is still in the ServerState"
    assert tally.opened == tally.closed == 1, tally
    assert tally.sessions == 0, tally
    check_frames(written)


def check(data: bytes) -> None:
    """One input; raises on a finding."""
    run_checked(drive, data)
