"""The wire layer's state machines, driven directly over an in-memory transport, in the manner
of h11's test_state.py: a connection's `ConnectionState`, the response's `ResponseState`
transitions (every pair of state and message), and a WebSocket session's close bookkeeping.
Each row of a table is one transition; the socket-level tests (test_http.py, test_websocket.py)
cover the same ground from the outside."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import uvloop
from websockets.frames import Close, Frame, Opcode

from monoceros.config import WebSocketSettings
from monoceros.protocols.context import ConnectionContext
from monoceros.protocols.cycle import _TRANSITIONS, ResponseState
from monoceros.protocols.head import DefaultHeaders
from monoceros.protocols.http import ConnectionState, HttpProtocol
from monoceros.protocols.state import ServerState
from monoceros.protocols.websocket import Session, WebSocketProtocol
from monoceros.types import Message, Receive, Scope, Send
from tests.memory import MemoryTransport
from tests.utils import Recorder

GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class Held:
    """An app that hands each request's receive and send to the test, and holds on."""

    def __init__(self) -> None:
        self.calls: asyncio.Queue[tuple[Scope, Receive, Send]] = asyncio.Queue()
        self.release = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.calls.put((scope, receive, send))
        await self.release.wait()


class Connection:
    """HttpProtocol over a MemoryTransport, with its state and observer at hand."""

    def __init__(self, app: Any, **context: Any) -> None:
        self.state = ServerState()
        self.recorder = Recorder()
        context.setdefault("default_headers", DefaultHeaders(server=False, date=False))
        self.context = ConnectionContext(observer=self.recorder, **context)
        self.transport = MemoryTransport()
        self.protocol = HttpProtocol(app, self.context, self.state)
        self.transport.protocol = self.protocol
        self.protocol.connection_made(self.transport)  # type: ignore[arg-type]

    async def feed(self, data: bytes) -> None:
        self.transport.protocol.data_received(data)
        await settle()

    async def expire(self) -> None:
        """The server's housekeeping tick, once the connection's deadline has passed."""
        self.state.tick(self.protocol.deadline + 1)
        await settle()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


# -- ConnectionState -------------------------------------------------------------------------


async def respond(app: Held, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    _, _, send = await app.calls.get()
    await send({"type": "http.response.start", "status": 200, "headers": headers or []})
    await send({"type": "http.response.body", "body": b"ok"})
    await settle()


Step = Callable[[Connection, Held], Awaitable[None]]


def feed(data: bytes) -> Step:
    async def step(connection: Connection, app: Held) -> None:
        await connection.feed(data)

    return step


def answer(*headers: tuple[bytes, bytes]) -> Step:
    async def step(connection: Connection, app: Held) -> None:
        await respond(app, list(headers))

    return step


async def expire(connection: Connection, app: Held) -> None:
    await connection.expire()


async def shut_down(connection: Connection, app: Held) -> None:
    connection.protocol.shutdown()
    await settle()


async def stops_reading(connection: Connection, app: Held) -> None:
    """The client reads nothing more: the next write fills the transport's buffer."""
    connection.transport.stall_after = 0


PART_OF_A_BODY = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"


CONNECTION_TRANSITIONS = [
    pytest.param([], ConnectionState.IDLE, id="accepted-waits-for-a-request"),
    pytest.param([feed(GET[:10])], ConnectionState.READING_HEAD, id="part-of-a-head"),
    pytest.param([feed(GET)], ConnectionState.BUSY, id="head-complete-request-started"),
    pytest.param([feed(GET[:10]), feed(GET[10:])], ConnectionState.BUSY, id="head-completed"),
    pytest.param([feed(GET), answer()], ConnectionState.IDLE, id="answered-kept-alive"),
    pytest.param(
        [feed(GET), answer((b"connection", b"close"))], ConnectionState.CLOSED, id="answered-closed"
    ),
    pytest.param([feed(GET), answer(), feed(GET)], ConnectionState.BUSY, id="reused"),
    pytest.param([expire], ConnectionState.CLOSED, id="idle-past-the-deadline"),
    pytest.param([feed(GET[:10]), expire], ConnectionState.CLOSED, id="head-past-its-deadline"),
    pytest.param([feed(GET), answer(), shut_down], ConnectionState.CLOSED, id="shutdown-idle"),
    pytest.param([shut_down], ConnectionState.IDLE, id="shutdown-fresh-gets-a-grace"),
    pytest.param([feed(GET), shut_down], ConnectionState.BUSY, id="shutdown-busy-finishes"),
    pytest.param(
        [feed(GET), shut_down, answer()], ConnectionState.CLOSED, id="shutdown-then-answered"
    ),
    pytest.param([feed(GET), expire], ConnectionState.BUSY, id="slow-app-has-no-deadline"),
    pytest.param([feed(PART_OF_A_BODY)], ConnectionState.BUSY, id="body-arriving"),
    pytest.param([feed(PART_OF_A_BODY), expire], ConnectionState.CLOSED, id="body-stopped"),
    pytest.param(
        [feed(GET), stops_reading, answer((b"connection", b"close"))],
        ConnectionState.CLOSING,
        id="closing-with-the-buffer-full",
    ),
    pytest.param(
        [feed(GET), stops_reading, answer((b"connection", b"close")), expire],
        ConnectionState.CLOSED,
        id="closing-past-the-send-deadline",
    ),
    pytest.param([feed(b"NOT HTTP\r\n\r\n")], ConnectionState.CLOSED, id="refused"),
    pytest.param([feed(UPGRADE)], ConnectionState.CLOSED, id="handed-to-a-websocket-session"),
]


@pytest.mark.parametrize(("steps", "expected"), CONNECTION_TRANSITIONS)
def test_connection_state(steps: list[Step], expected: ConnectionState) -> None:
    async def run() -> None:
        app = Held()
        connection = Connection(app, ws=WebSocketSettings())
        for step in steps:
            await step(connection, app)
        assert connection.protocol.conn_state is expected
        app.release.set()
        await settle()

    asyncio.run(run())


def test_a_fresh_connection_shut_down_gets_a_short_grace() -> None:
    async def run() -> None:
        connection = Connection(Held())
        full = connection.protocol.deadline
        connection.protocol.shutdown()
        assert connection.protocol.deadline < full

    asyncio.run(run())


# -- ResponseState ---------------------------------------------------------------------------

START: Message = {"type": "http.response.start", "status": 200, "headers": []}
START_TRAILERS: Message = {**START, "trailers": True}
MORE: Message = {"type": "http.response.body", "body": b"a", "more_body": True}
LAST: Message = {"type": "http.response.body", "body": b"b"}
HINT: Message = {"type": "http.response.early_hint", "links": [b"</a.css>; rel=preload"]}
TRAILERS: Message = {"type": "http.response.trailers", "headers": [(b"x-sum", b"1")]}
# The messages that bring a response from WAITING_START to each state.
REACH = {
    ResponseState.WAITING_START: [],
    ResponseState.HEAD_PENDING: [START],
    ResponseState.STREAMING: [START, MORE],
    ResponseState.TRAILERS_PENDING: [START_TRAILERS, LAST],
    ResponseState.COMPLETE: [START, LAST],
}
ERROR = None  # the message is refused: RuntimeError, the state stays
KINDS = ("start", "more", "last", "pathsend", "hint", "trailers")


def pathsend(tmp: Path) -> Message:
    path = tmp / "file.txt"
    path.write_bytes(b"file")
    return {"type": "http.response.pathsend", "path": str(path)}


# Every pair not listed is refused.
ALLOWED = {
    (ResponseState.WAITING_START, "start"): ResponseState.HEAD_PENDING,
    (ResponseState.WAITING_START, "hint"): ResponseState.WAITING_START,
    (ResponseState.HEAD_PENDING, "more"): ResponseState.STREAMING,
    (ResponseState.HEAD_PENDING, "last"): ResponseState.COMPLETE,
    (ResponseState.HEAD_PENDING, "pathsend"): ResponseState.COMPLETE,
    (ResponseState.STREAMING, "more"): ResponseState.STREAMING,
    (ResponseState.STREAMING, "last"): ResponseState.COMPLETE,
    (ResponseState.TRAILERS_PENDING, "trailers"): ResponseState.COMPLETE,
}
RESPONSE_TRANSITIONS = [
    (state, kind, ALLOWED.get((state, kind), ERROR)) for state in ResponseState for kind in KINDS
]


def test_the_table_matches_the_cycle() -> None:
    """Every pair the cycle accepts is one this test expects, and no other."""
    kinds = {
        "http.response.start": "start",
        "http.response.body": "body",
        "http.response.pathsend": "pathsend",
        "http.response.early_hint": "hint",
        "http.response.trailers": "trailers",
    }
    accepted = {
        (state, kinds[kind]) for state, handlers in _TRANSITIONS.items() for kind in handlers
    }
    expected = {(state, "body" if k in ("more", "last") else k) for state, k in ALLOWED}
    assert accepted == expected


@pytest.mark.parametrize(
    ("state", "kind", "after"),
    [pytest.param(*row, id=f"{row[0].name}-{row[1]}") for row in RESPONSE_TRANSITIONS],
)
def test_response_transition(
    state: ResponseState, kind: str, after: ResponseState | None, tmp_path: Path
) -> None:
    messages = {
        "start": START,
        "more": MORE,
        "last": LAST,
        "pathsend": pathsend(tmp_path),
        "hint": HINT,
        "trailers": TRAILERS,
    }

    async def run() -> None:
        app = Held()
        connection = Connection(app)
        await connection.feed(GET)
        _, _, send = await app.calls.get()
        cycle = connection.protocol.cycle
        assert cycle is not None
        for message in REACH[state]:
            await send(message)
        assert cycle.response is state
        if after is ERROR:
            with pytest.raises(RuntimeError, match="Unexpected ASGI message"):
                await send(messages[kind])
            assert cycle.response is state
        else:
            await send(messages[kind])
            assert cycle.response is after
        app.release.set()
        await settle()

    # uvloop, as served: its transports take pathsend's bytes through write().
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run())


# -- a WebSocket session's close bookkeeping ---------------------------------------------------


def frame(opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
    """A client's frame: masked, as RFC 6455 requires."""
    return Frame(opcode, data, fin).serialize(mask=True, extensions=[])


def close_frame(code: int) -> bytes:
    return frame(Opcode.CLOSE, Close(code, "").serialize())


async def accept_then(action: str, receive: Receive, send: Send) -> list[Message]:
    """Accept, then do `action`; returns what the app received until its disconnect."""
    seen = [await receive()]
    await send({"type": "websocket.accept"})
    if action == "app-closes":
        await send({"type": "websocket.close", "code": 4001})
    if action == "app-raises":
        raise RuntimeError("boom")
    while seen[-1]["type"] != "websocket.disconnect":
        seen.append(await receive())
    return seen


SESSION_ENDINGS = [
    # (what the app does, what the client sends after the handshake, lose the transport,
    #  status, close code recorded, code the app's disconnect says, session state after)
    pytest.param("wait", close_frame(1000), False, 101, 1000, 1000, id="client-closes"),
    pytest.param("app-closes", close_frame(4001), False, 101, 4001, 4001, id="app-closes"),
    pytest.param("wait", b"", True, 101, 1006, 1006, id="connection-lost"),
    pytest.param("app-raises", b"", False, 101, 1011, None, id="app-raises"),
    pytest.param(
        "wait", frame(Opcode.TEXT, b"x" * 200), False, 101, 1009, 1009, id="message-too-big"
    ),
    pytest.param("wait", frame(Opcode.TEXT, b"\xff\xfe"), False, 101, 1007, 1007, id="bad-utf8"),
    pytest.param("reject", b"", False, 403, 0, None, id="refused-before-accept"),
]


@pytest.mark.parametrize(
    ("action", "client", "lose", "status", "code", "disconnect"), SESSION_ENDINGS
)
def test_websocket_session_ending(
    action: str, client: bytes, lose: bool, status: int, code: int, disconnect: int | None
) -> None:
    received: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if action == "reject":
            await receive()
            await send({"type": "websocket.close"})
            return
        received.extend(await accept_then(action, receive, send))

    async def run() -> None:
        connection = Connection(app, ws=WebSocketSettings(max_size=100, ping_interval=None))
        await connection.feed(UPGRADE)
        session = connection.transport.protocol
        assert isinstance(session, WebSocketProtocol)
        if client:
            await connection.feed(client)
        if lose:
            session.connection_lost(None)
        await settle()
        if not connection.recorder.sessions:  # our close frame unanswered: its deadline
            connection.state.tick(session.deadline + 1)
            await settle()
        (record,) = connection.recorder.sessions
        assert (record.status, record.close_code) == (status, code)
        assert session.session is Session.CLOSED
        if disconnect is not None:
            last = received[-1]
            assert (last["type"], last["code"]) == ("websocket.disconnect", disconnect)

    asyncio.run(run())
