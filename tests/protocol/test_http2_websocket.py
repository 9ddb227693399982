"""WebSockets over HTTP/2 (RFC 8441): the extended CONNECT a browser sends on an HTTP/2
connection when the server's SETTINGS allow it. The session is the HTTP/1.1 one (same ASGI
events, same frames), on a stream: 200 accepts, END_STREAM ends, RST_STREAM aborts, and the
connection's other streams go on beside it."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from monoceros.errors import ClientDisconnected
from monoceros.protocols.events import SessionFinished
from monoceros.types import Receive, Scope, Send
from tests.h2client import CANCEL, H2Client
from tests.utils import Recorder, RunningServer, run_server

ENABLE_CONNECT_PROTOCOL = 0x8
SEEN: list[dict[str, object]] = []
SHORT = 0.5  # --timeout-send where a test sets it
SESSION_MARKERS = itertools.count()  # each session's x-test-session header


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"plain"})
        return
    SEEN.append(
        {
            "path": scope["path"],
            "http_version": scope["http_version"],
            "scheme": scope["scheme"],
            "subprotocols": scope["subprotocols"],
        }
    )
    assert (await receive())["type"] == "websocket.connect"
    if scope["path"] == "/deny":
        await send({"type": "websocket.close"})
        return
    if scope["path"] == "/teapot":
        await send(
            {"type": "websocket.http.response.start", "status": 418, "headers": [(b"x-a", b"b")]}
        )
        await send({"type": "websocket.http.response.body", "body": b"short and stout"})
        return
    subprotocol = scope["subprotocols"][0] if scope["subprotocols"] else None
    await send(
        {"type": "websocket.accept", "subprotocol": subprotocol, "headers": [(b"x-ws", b"1")]}
    )
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            SEEN.append({"disconnect": message["code"]})
            return
        if message.get("text") == "close":
            await send({"type": "websocket.close", "code": 4000})
            continue
        if message.get("text") == "flood":  # 1 MiB: far more than a window holds
            try:
                for _ in range(64):
                    await send({"type": "websocket.send", "bytes": b"x" * 16384})
            except ClientDisconnected:
                SEEN.append({"flood": "send failed"})
            continue
        await send({"type": "websocket.send", "text": "echo " + (message.get("text") or "")})


RECORDER = Recorder()


@pytest.fixture(scope="module", params=["auto", "websockets", "wsproto"])
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    with run_server(
        app, lifespan="off", http2=True, ws=request.param, observer=RECORDER
    ) as running:
        yield running


class WsOverH2:
    """One WebSocket session on a stream of `client`'s connection."""

    def __init__(self, client: H2Client, path: str, headers: list[tuple[str, str]]) -> None:
        client.read(lambda: ENABLE_CONNECT_PROTOCOL in client.remote_settings)
        assert client.remote_settings[ENABLE_CONNECT_PROTOCOL] == 1
        self.client = client
        self.marker = str(next(SESSION_MARKERS))
        self.stream = client.request(
            path,
            method="CONNECT",
            extra_pseudo=[(":protocol", "websocket")],
            headers=[*headers, ("x-test-session", self.marker)],
            end=False,
        )
        self.frames = ClientProtocol(parse_uri("ws://127.0.0.1/"), state=State.OPEN)
        self._read = 0

    @property
    def response(self):  # type: ignore[no-untyped-def]
        return self.client.responses[self.stream]

    def wait_status(self) -> int:
        self.client.read(lambda: self.response.status != 0 or self.response.reset is not None)
        return self.response.status

    def send_text(self, text: str) -> None:
        self.frames.send_text(text.encode())
        self.client.send_body(self.stream, b"".join(self.frames.data_to_send()), end=False)

    def receive(self) -> Frame:
        found: list[Frame] = []

        def arrived() -> bool:
            body = self.response.body
            if len(body) > self._read:
                self.frames.receive_data(body[self._read :])
                self._read = len(body)
                found.extend(e for e in self.frames.events_received() if isinstance(e, Frame))
            return bool(found)

        self.client.read(arrived)
        return found[0]


def sessions_of(session: WsOverH2) -> list[SessionFinished]:
    """The records of `session`, once there is one: the server notes a session's end on its
    own thread. Matched on the session's own header, not the client's address: the kernel
    may hand an earlier test's port to this test's client, and that test's record may be
    noted late."""
    marker = (b"x-test-session", session.marker.encode())
    found: list[SessionFinished] = []

    def recorded() -> bool:
        found[:] = [record for record in RECORDER.sessions if marker in record.scope["headers"]]
        return bool(found)

    deadline = time.monotonic() + 5
    while not recorded():
        assert time.monotonic() < deadline, "the session's end was never recorded"
        time.sleep(0.01)
    return found


def connect(client: H2Client, path: str = "/chat", **extra: str) -> WsOverH2:
    headers = [("sec-websocket-version", "13"), *extra.items()]
    return WsOverH2(client, path, headers)


def test_settings_offer_the_extended_connect(server: RunningServer) -> None:
    with H2Client(server.port) as client:
        client.read(lambda: ENABLE_CONNECT_PROTOCOL in client.remote_settings)
    assert client.remote_settings[ENABLE_CONNECT_PROTOCOL] == 1


def test_session_over_a_stream(server: RunningServer) -> None:
    SEEN.clear()
    with H2Client(server.port) as client:
        session = connect(client, **{"sec-websocket-protocol": "chat.v1, chat.v2"})
        assert session.wait_status() == 200
        assert session.response.header(b"sec-websocket-protocol") == b"chat.v1"
        assert session.response.header(b"x-ws") == b"1"
        assert session.response.header(b"sec-websocket-accept") is None  # not in HTTP/2
        session.send_text("hello")
        reply = session.receive()
        # The connection's other streams go on beside the session.
        plain = client.response(client.request("/plain"))
        session.send_text("again")
        second = session.receive()
    assert (reply.opcode, reply.data) == (Opcode.TEXT, b"echo hello")
    assert second.data == b"echo again"
    assert plain.body == b"plain"
    assert SEEN[0] == {
        "path": "/chat",
        "http_version": "2",
        "scheme": "ws",
        "subprotocols": ["chat.v1", "chat.v2"],
    }


def test_server_close_ends_the_stream(server: RunningServer) -> None:
    with H2Client(server.port) as client:
        session = connect(client)
        assert session.wait_status() == 200
        session.send_text("close")
        closing = session.receive()
        assert closing.opcode is Opcode.CLOSE
        assert closing.data[:2] == (4000).to_bytes(2, "big")
        # The client library queued its answer to the close: it goes out, with END_STREAM.
        client.send_body(session.stream, b"".join(session.frames.data_to_send()), end=True)
        client.read(lambda: session.response.ended)
        after = client.response(client.request("/plain"))  # the connection is still good
        records = sessions_of(session)
    assert session.response.ended
    assert after.body == b"plain"
    assert [record.close_code for record in records] == [4000]


def test_client_reset_is_a_disconnect(server: RunningServer) -> None:
    SEEN.clear()
    with H2Client(server.port) as client:
        session = connect(client)
        assert session.wait_status() == 200
        client.reset(session.stream, CANCEL)
        client.read(lambda: any("disconnect" in seen for seen in SEEN))
        (record,) = sessions_of(session)
    assert {"disconnect": 1006} in SEEN
    assert record.status == 200 and record.scope["http_version"] == "2"
    assert record.close_code == 1006


def test_window_kept_shut_resets_the_session() -> None:
    """A client that grants no window for the session's messages: once the stream has been
    stalled for --timeout-send it is reset, and the app, waiting in send(), hears of it."""
    SEEN.clear()
    with (
        run_server(
            app, lifespan="off", http2=True, observer=RECORDER, timeout_send=SHORT
        ) as running,
        H2Client(running.port, auto_window=False) as client,  # no WINDOW_UPDATE, ever
    ):
        session = connect(client)
        assert session.wait_status() == 200
        session.send_text("flood")
        client.read(lambda: session.response.reset is not None)
        (record,) = sessions_of(session)
        client.read(lambda: {"disconnect": 1006} in SEEN)
    assert session.response.reset == CANCEL
    assert {"flood": "send failed"} in SEEN
    assert (record.status, record.close_code) == (200, 1006)


def test_denial_is_an_http_answer_on_the_stream(server: RunningServer) -> None:
    with H2Client(server.port) as client:
        denied = connect(client, "/deny")
        assert denied.wait_status() == 403
        client.read(lambda: denied.response.ended)
        teapot = connect(client, "/teapot")
        assert teapot.wait_status() == 418
        client.read(lambda: teapot.response.ended)
        after = client.response(client.request("/plain"))
    assert teapot.response.body == b"short and stout"
    assert teapot.response.header(b"x-a") == b"b"
    assert after.body == b"plain"


@pytest.mark.parametrize(
    ("version", "status"), [(None, 400), ("8", 426)], ids=["no-version", "version-8"]
)
def test_bad_version_is_refused(server: RunningServer, version: str | None, status: int) -> None:
    SEEN.clear()
    headers = [("sec-websocket-version", version)] if version else []
    with H2Client(server.port) as client:
        session = WsOverH2(client, "/chat", headers)
        assert session.wait_status() == status
    if status == 426:
        assert session.response.header(b"sec-websocket-version") == b"13"
    assert SEEN == []


def test_other_protocols_are_not_implemented(server: RunningServer) -> None:
    with H2Client(server.port) as client:
        client.read(lambda: ENABLE_CONNECT_PROTOCOL in client.remote_settings)
        stream = client.request(
            "/tunnel", method="CONNECT", extra_pseudo=[(":protocol", "connect-udp")], end=False
        )
        response = client.response(stream)
    assert response.status == 501


def test_without_websockets_the_connect_is_not_implemented() -> None:
    with (
        run_server(app, lifespan="off", http2=True, ws="none") as running,
        H2Client(running.port) as client,
    ):
        assert connect(client).wait_status() == 501
