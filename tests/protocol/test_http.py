"""Normal HTTP/1.1 behaviour against a real server over real sockets.

Ordinary traffic goes through httpx; wire-level checks (framing, keep-alive, pipelining,
`Expect: 100-continue`, flow control) send raw bytes and parse what comes back with h11. One
module-scoped server serves most cases; options that change responses get their own server.
The app runs in the server's thread: it reports what it saw through `RECORDS`, and waits on
`GATES` where a test needs it to hold still.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import h11
import httpx
import pytest

from monoceros.protocols.cycle import GATHER_FROM
from monoceros.protocols.flow_control import HIGH_WATER
from monoceros.protocols.http import HttpProtocol
from monoceros.protocols.scope import InvalidTarget, split_target
from monoceros.protocols.write_batch import HELD_BYTES
from monoceros.types import Message, Receive, Scope, Send
from tests.apps import plain
from tests.utils import RunningServer, raw_request, read_until_closed, run_server
from tests.wire import Response, protocol_for, request, wire

TIMEOUT = 5.0
MiB = 1024 * 1024

# -- the app ---------------------------------------------------------------------------------------

# What the app saw, by key; written in the server's thread, read by tests with `wait_for`.
RECORDS: dict[str, Any] = {}
# Events the app waits for before it goes on (set by the test).
GATES: dict[str, threading.Event] = {}
FIXED_BODY = b"a fixed body"


def gate(name: str) -> threading.Event:
    return GATES.setdefault(name, threading.Event())


async def wait_gate(name: str) -> None:
    event = gate(name)
    deadline = time.monotonic() + TIMEOUT
    while not event.is_set() and time.monotonic() < deadline:
        await asyncio.sleep(0.005)


def query(scope: Scope) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(scope["query_string"].decode()).items()}


async def respond(
    send: Send, body: bytes, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or []})
    await send({"type": "http.response.body", "body": body})


async def scope_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with the scope as JSON; keeps the scope itself in RECORDS["scope"]."""
    RECORDS["scope"] = dict(scope)
    shown = plain(dict(scope))
    if query(scope).get("mutate"):
        scope["state"]["greeting"] = "changed"
        scope["state"]["added"] = True
    await respond(
        send, json.dumps(shown).encode(), headers=[(b"content-type", b"application/json")]
    )


async def body_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with the `http.request` messages it got: [[length, more_body], ...] and the body."""
    messages = []
    body = b""
    while True:
        message = await receive()
        assert message["type"] == "http.request", message
        messages.append([len(message["body"]), message["more_body"]])
        body += message["body"]
        if not message["more_body"]:
            break
    document = {"messages": messages, "body": body.decode("latin-1")}
    await respond(send, json.dumps(document).encode())


async def fixed_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    await respond(send, FIXED_BODY, headers=[(b"content-type", b"text/plain")])


def stream_chunks(count: int) -> list[bytes]:
    return [b"chunk-%d;" % i for i in range(count)]


async def stream_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for chunk in stream_chunks(int(query(scope).get("chunks", "3"))):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def status_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    # The app even tries to send a body: the server must not put it on the wire.
    await respond(send, b"not allowed here", status=int(query(scope)["code"]))


async def own_headers_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    headers = [(b"server", b"custom/1.0"), (b"date", b"Tue, 01 Jan 2030 00:00:00 GMT")]
    await respond(send, b"own", headers=headers)


async def slow_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    await asyncio.sleep(float(query(scope).get("seconds", "0.2")))
    await respond(send, b"slept")


async def gated_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    """Waits for its gate, then reads the whole body and answers with its length."""
    name = query(scope)["gate"]
    RECORDS[name] = "waiting"
    await wait_gate(name)
    RECORDS[name] = "reading"
    length = 0
    more_body = True
    while more_body:
        message = await receive()
        length += len(message.get("body", b""))
        more_body = message.get("more_body", False)
    await respond(send, b"%d" % length)


async def answer_without_reading_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    await respond(send, b"did not read")


async def disconnect_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the body, starts a response, then waits in receive() for what comes next."""
    message = await receive()
    assert message == {"type": "http.request", "body": b"abc", "more_body": False}, message
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    RECORDS["disconnect"] = "waiting"
    message = await receive()
    RECORDS["disconnect"] = message["type"]
    if query(scope).get("raise"):
        raise ValueError("failed after the client left")


BIG_CHUNK = 256 * 1024
BIG_CHUNKS = 64  # 16 MiB in all


async def sized_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    """Bodies of the `sizes` asked for (comma-separated): one with its Content-Length, or
    with `stream`, each a chunk."""
    asked = query(scope)
    bodies = sized_bodies(asked["sizes"])
    if "stream" not in asked:
        await respond(send, bodies[0])
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for body in bodies:
        await send({"type": "http.response.body", "body": body, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def pieces_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    """Small pieces in a row (more than a connection holds back at once), a piece after a
    yield to the loop, one before waiting for the test's gate, and the last after it."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for piece in PIECES:
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await asyncio.sleep(0)
    await send({"type": "http.response.body", "body": b"after a yield;", "more_body": True})
    await send({"type": "http.response.body", "body": b"before the gate;", "more_body": True})
    await wait_gate("pieces")
    await send({"type": "http.response.body", "body": b"after the gate"})


PIECES = [b"%03d;" % number for number in range(150)]
PIECES_BODY = b"".join(PIECES) + b"after a yield;before the gate;after the gate"


def sized_bodies(sizes: str) -> list[bytes]:
    """Each body of its own bytes, so a part sent twice or out of place shows."""
    return [bytes([65 + i]) * int(size) for i, size in enumerate(sizes.split(","))]


async def big_stream_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    """Streams BIG_CHUNKS chunks, recording after each send how many went out."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    chunk = b"z" * BIG_CHUNK
    try:
        for sent in range(1, BIG_CHUNKS + 1):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            RECORDS["big-stream"] = sent
        await send({"type": "http.response.body", "body": b""})
    except OSError as exc:
        RECORDS["big-stream"] = exc
        raise
    RECORDS["big-stream"] = "done"


async def file_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.pathsend", "path": query(scope)["path"]})


async def raise_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    raise ValueError("secret-detail")


async def framing_endpoint(scope: Scope, receive: Receive, send: Send) -> Any:
    """Apps that set framing headers themselves, or get the end of the response wrong."""
    kind = query(scope)["kind"]
    if kind == "connection-close":
        await respond(send, b"bye", headers=[(b"connection", b"close")])
    elif kind == "transfer-encoding":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"Transfer-Encoding", b"chunked")],
            }
        )
        await send({"type": "http.response.body", "body": b"one", "more_body": True})
        await send({"type": "http.response.body", "body": b"two"})
    elif kind == "content-length-stream":
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"6")]}
        )
        await send({"type": "http.response.body", "body": b"one", "more_body": True})
        await send({"type": "http.response.body", "body": b"two", "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif kind == "bad-content-length":
        await respond(send, b"x", headers=[(b"content-length", b"1x")])
    elif kind == "shorter-than-content-length":
        await respond(send, b"abc", headers=[(b"content-length", b"10")])
    elif kind == "connection-keep-alive":
        await respond(send, b"kept", headers=[(b"connection", b"keep-alive")])
    elif kind == "status-out-of-range":
        await respond(send, b"x", status=1000)
    elif kind == "incomplete":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    elif kind == "returns-value":
        await respond(send, b"returned")
        return "a value"
    return None


async def receive_after_response_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    """receive() once the response is complete: one already waiting, one called afterwards."""
    message = await receive()
    assert message["more_body"] is False
    waiting = asyncio.ensure_future(receive())
    await asyncio.sleep(0)  # let it start waiting
    await respond(send, b"done")
    RECORDS["receive-after-response"] = [(await waiting)["type"], (await receive())["type"]]


async def unending_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    """Never answers; swallows cancellation if asked to (for the graceful-shutdown timeout)."""
    RECORDS["unending"] = "waiting"
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        RECORDS["unending"] = "cancelled"
        if not query(scope).get("swallow"):
            raise


async def start_then_read_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    """Starts a streamed response, then reads the request body until it ends or breaks."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"started", "more_body": True})
    seen = RECORDS["start-then-read"] = []
    while True:
        message = await receive()
        seen.append(message["type"])
        if message["type"] == "http.disconnect" or not message["more_body"]:
            break


ROUTES: dict[str, Callable[[Scope, Receive, Send], Any]] = {
    "/scope": scope_endpoint,
    "/body": body_endpoint,
    "/fixed": fixed_endpoint,
    "/stream": stream_endpoint,
    "/status": status_endpoint,
    "/own-headers": own_headers_endpoint,
    "/slow": slow_endpoint,
    "/gated": gated_endpoint,
    "/answer-without-reading": answer_without_reading_endpoint,
    "/disconnect": disconnect_endpoint,
    "/big-stream": big_stream_endpoint,
    "/sized": sized_endpoint,
    "/pieces": pieces_endpoint,
    "/file": file_endpoint,
    "/raise": raise_endpoint,
    "/framing": framing_endpoint,
    "/receive-after-response": receive_after_response_endpoint,
    "/unending": unending_endpoint,
    "/start-then-read": start_then_read_endpoint,
    "*": scope_endpoint,
}


async def app(scope: Scope, receive: Receive, send: Send) -> Any:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["greeting"] = "hello"
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    route = scope["path"].removeprefix(scope["root_path"])
    handler = ROUTES.get(route)
    if handler is None and route.startswith("/scope/"):
        handler = scope_endpoint
    if handler is None:
        await respond(send, b"not found", status=404)
    else:
        return await handler(scope, receive, send)


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with run_server(app, lifespan="on") as running:
        yield running


@pytest.fixture(scope="module")
def asyncio_server() -> Iterator[RunningServer]:
    with run_server(app, lifespan="on", loop="asyncio") as running:
        yield running


@pytest.fixture(params=["uvloop", "asyncio"])
def any_loop_server(request: pytest.FixtureRequest) -> RunningServer:
    fixture = "server" if request.param == "uvloop" else "asyncio_server"
    running: RunningServer = request.getfixturevalue(fixture)
    loop_module = type(running.server.loop).__module__
    assert loop_module.startswith(request.param), loop_module
    return running


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as http:
        yield http


def wait_for_log(caplog: pytest.LogCaptureFixture, message: str) -> logging.LogRecord:
    """The record with `message` (it is logged in the server's thread, maybe a little later)."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        for record in caplog.records:
            if record.getMessage() == message:
                return record
        time.sleep(0.005)
    raise AssertionError(f"no log record {message!r} in {[r.getMessage() for r in caplog.records]}")


def wait_for(key: str, done: Callable[[Any], bool]) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        value = RECORDS.get(key)
        if done(value):
            return value
        time.sleep(0.005)
    raise AssertionError(f"app record {key!r}: {RECORDS.get(key)!r}")


# -- raw connections -------------------------------------------------------------------------


def exchange(server: RunningServer, data: bytes) -> Response:
    """The response to `data`, a GET request sent on a connection of its own."""
    with wire(server) as connection:
        connection.send(data)
        return connection.response()


def exchange_then_fixed(server: RunningServer, data: bytes) -> Response:
    """As `exchange`; the connection then serves `/fixed` cleanly (nothing stray was sent)."""
    with wire(server) as connection:
        connection.send(data)
        response = connection.response()
        connection.send(request("/fixed"))
        assert connection.response().body == FIXED_BODY
    return response


def exchange_then_closed(server: RunningServer, data: bytes) -> Response:
    """As `exchange`; the server then closes the connection."""
    with wire(server) as connection:
        connection.send(data)
        response = connection.response()
        assert connection.closed_by_server()
    return response


def raw_exchange_logging(
    server: RunningServer, caplog: pytest.LogCaptureFixture, target: str, message: str
) -> tuple[bytes, bytes]:
    """The head and the body of the raw response to a GET of `target`, once the server has
    logged the error `message`."""
    with caplog.at_level(logging.ERROR, logger="monoceros.error"):
        data = raw_request(server.port, request(target))
        wait_for_log(caplog, message)
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def scope_over_wire(server: RunningServer, data: bytes) -> dict[str, Any]:
    response = exchange(server, data)
    assert response.status == 200, response
    scope: dict[str, Any] = json.loads(response.body)
    return scope


# -- the scope -------------------------------------------------------------------------------------


def test_scope_is_complete(server: RunningServer) -> None:
    with wire(server) as connection:
        connection.send(request("/scope?a=1&b=%20", "User-Agent: t"))
        response = connection.response()
        client_port = connection.port
    scope = json.loads(response.body)
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/scope"
    assert scope["raw_path"] == "/scope"
    assert scope["query_string"] == "a=1&b=%20"
    assert scope["root_path"] == ""
    assert scope["headers"] == [["host", "x"], ["user-agent", "t"]]
    assert scope["client"] == ["127.0.0.1", client_port]
    assert scope["server"] == ["127.0.0.1", server.port]
    assert scope["state"] == {"greeting": "hello"}
    assert "http.response.pathsend" in scope["extensions"]


def test_scope_types(server: RunningServer, client: httpx.Client) -> None:
    """What JSON cannot show: bytes stay bytes, the state is a dict of its own."""
    assert client.get("/scope?y").status_code == 200
    scope = RECORDS["scope"]
    assert type(scope["state"]) is dict
    assert scope["state"] is not server.server.context.app_state
    assert scope["extensions"]["http.response.pathsend"] == {}
    assert isinstance(scope["raw_path"], bytes)
    assert isinstance(scope["query_string"], bytes)
    assert all(isinstance(n, bytes) and isinstance(v, bytes) for n, v in scope["headers"])
    assert isinstance(scope["path"], str) and isinstance(scope["root_path"], str)
    assert isinstance(scope["client"], tuple | list) and isinstance(scope["server"], tuple | list)


@pytest.mark.parametrize(
    ("target", "path", "raw_path", "query_string"),
    [
        pytest.param(
            "/scope/caf%C3%A9%20x?q=%C3%A9",
            "/scope/café x",
            b"/scope/caf%C3%A9%20x",
            b"q=%C3%A9",
            id="utf-8",
        ),
        pytest.param("/scope/a%2Fb", "/scope/a/b", b"/scope/a%2Fb", b"", id="encoded-slash"),
        pytest.param("/scope/x?", "/scope/x", b"/scope/x", b"", id="empty-query"),
        pytest.param("/scope/x?a=1?b", "/scope/x", b"/scope/x", b"a=1?b", id="two-question-marks"),
    ],
)
def test_path_is_percent_decoded_raw_path_is_not(
    server: RunningServer, target: str, path: str, raw_path: bytes, query_string: bytes
) -> None:
    scope_over_wire(server, request(target))
    scope = RECORDS["scope"]
    assert scope["path"] == path
    assert scope["raw_path"] == raw_path
    assert scope["query_string"] == query_string


def test_headers_lowercased_in_order_with_duplicates(server: RunningServer) -> None:
    scope = scope_over_wire(
        server,
        request("/scope", "X-Dup: One", "Content-Type: text/Plain", "x-DUP: two", "X-Empty:"),
    )
    assert scope["headers"] == [
        ["host", "x"],
        ["x-dup", "One"],
        ["content-type", "text/Plain"],
        ["x-dup", "two"],
        ["x-empty", ""],
    ]


def test_absolute_form_target(server: RunningServer) -> None:
    scope = scope_over_wire(server, request("http://example.com/scope?b=1"))
    assert scope["path"] == "/scope"
    assert scope["raw_path"] == "/scope"
    assert scope["query_string"] == "b=1"


def test_options_asterisk(server: RunningServer) -> None:
    with wire(server) as connection:
        connection.send(request("*", method="OPTIONS"))
        assert connection.response("OPTIONS").status == 200
    scope = RECORDS["scope"]
    assert scope["method"] == "OPTIONS"
    assert scope["path"] == "*"
    assert scope["raw_path"] == b"*"
    assert scope["query_string"] == b""


def test_http_10_scope(server: RunningServer) -> None:
    scope = scope_over_wire(server, request("/scope", version="1.0", host=False))
    assert scope["http_version"] == "1.0"
    assert scope["headers"] == []


CONNECTION_FIELDS = [
    pytest.param((), id="none"),
    pytest.param(("Connection: keep-alive",), id="keep-alive"),
    pytest.param(("Connection: Keep-Alive, Upgrade",), id="keep-alive-among-others"),
    pytest.param(("Connection: close",), id="close"),
    pytest.param(("Connection: ",), id="empty"),
    pytest.param(("Connection: x-keep-alive-not",), id="lookalike"),
    pytest.param(("Proxy-Connection: keep-alive",), id="proxy-connection"),
    pytest.param(("Connection: close", "Proxy-Connection: keep-alive"), id="both"),
]


@pytest.mark.parametrize("fields", CONNECTION_FIELDS)
@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_http_version_and_keep_alive_whatever_the_connection_fields(
    server: RunningServer, version: str, fields: tuple[str, ...]
) -> None:
    # The version is read from the parser only where its keep-alive verdict leaves doubt
    # (reader.py): every combination must still come out as the request line said.
    tokens = {token.strip().lower() for field in fields for token in field.split(":")[1].split(",")}
    keep_alive = "close" not in tokens if version == "1.1" else "keep-alive" in tokens
    with wire(server) as connection:
        connection.send(request("/scope", *fields, version=version))
        response = connection.response()
        assert json.loads(response.body)["http_version"] == version
        if keep_alive:
            connection.send(request("/fixed"))
            assert connection.response().body == FIXED_BODY
        else:
            assert connection.closed_by_server()


def test_other_methods(client: httpx.Client) -> None:
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        scope = client.request(method, "/scope").json()
        assert scope["method"] == method


def test_state_is_a_shallow_copy_per_request(client: httpx.Client) -> None:
    first = client.get("/scope", params={"mutate": "1"}).json()
    assert first["state"] == {"greeting": "hello"}
    second = client.get("/scope").json()
    assert second["state"] == {"greeting": "hello"}


# -- request bodies --------------------------------------------------------------------------------


def test_content_length_body(client: httpx.Client) -> None:
    response = client.post("/body", content=b"hello body")
    assert response.json() == {"messages": [[10, False]], "body": "hello body"}


def test_chunked_request_body(server: RunningServer) -> None:
    with wire(server) as connection:
        connection.send(
            request("/body", "Transfer-Encoding: chunked", method="POST")
            + b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-trailer: t\r\n\r\n"
        )
        response = connection.response("POST")
    document = json.loads(response.body)
    assert document["body"] == "hello world"
    assert document["messages"][-1][1] is False


def test_body_arrives_in_several_messages(server: RunningServer) -> None:
    piece = b"p" * 100_000
    with wire(server) as connection:
        connection.send(request("/body", f"Content-Length: {3 * len(piece)}", method="POST"))
        for _ in range(3):
            connection.send(piece)
            time.sleep(0.05)  # the app takes each piece before the next one is sent
        response = connection.response("POST")
    document = json.loads(response.body)
    assert len(document["body"]) == 3 * len(piece)
    messages = document["messages"]
    assert len(messages) > 1
    assert sum(length for length, _ in messages) == 3 * len(piece)
    assert [more for _, more in messages] == [True] * (len(messages) - 1) + [False]


def test_empty_body_is_one_message(client: httpx.Client) -> None:
    assert client.get("/body").json() == {"messages": [[0, False]], "body": ""}
    assert client.post("/body", content=b"").json() == {"messages": [[0, False]], "body": ""}


def test_receive_after_body_waits_for_disconnect(server: RunningServer) -> None:
    RECORDS.pop("disconnect", None)
    with wire(server) as connection:
        connection.send(request("/disconnect", "Content-Length: 3", method="POST", body=b"abc"))
        event = connection.next_event()
        assert isinstance(event, h11.Response) and event.status_code == 200
        wait_for("disconnect", lambda value: value == "waiting")
        # receive() blocks while the client is still there ...
        time.sleep(0.1)
        assert RECORDS["disconnect"] == "waiting"
    # ... and returns http.disconnect once it has gone.
    wait_for("disconnect", lambda value: value == "http.disconnect")


# -- responses -------------------------------------------------------------------------------------


def test_content_length_from_a_single_body(server: RunningServer) -> None:
    response = exchange(server, request("/fixed"))
    assert response.status == 200
    assert response.header(b"content-length") == b"%d" % len(FIXED_BODY)
    assert response.header(b"transfer-encoding") is None
    assert response.body == FIXED_BODY


def test_streamed_response_is_chunked_on_http_11(server: RunningServer) -> None:
    # The connection stays usable: the terminating chunk ended the message.
    response = exchange_then_fixed(server, request("/stream?chunks=4"))
    assert response.header(b"transfer-encoding") == b"chunked"
    assert response.header(b"content-length") is None
    assert response.body == b"".join(stream_chunks(4))
    assert response.chunks == 4


def test_streamed_response_is_close_delimited_on_http_10(server: RunningServer) -> None:
    response = exchange_then_closed(server, request("/stream?chunks=4", version="1.0"))
    assert response.header(b"transfer-encoding") is None
    assert response.header(b"content-length") is None
    assert response.header(b"connection") == b"close"
    assert response.body == b"".join(stream_chunks(4))


# Around GATHER_FROM a body stops being copied in with its head or chunk size, and goes to
# the transport beside them (uvloop: one writev; asyncio: joined).
SIZES_AROUND_GATHERING = [GATHER_FROM - 1, GATHER_FROM, 1024 * 1024]


@pytest.mark.parametrize("size", SIZES_AROUND_GATHERING)
def test_a_body_of_any_size_follows_its_head_whole(
    any_loop_server: RunningServer, size: int
) -> None:
    response = exchange_then_fixed(any_loop_server, request(f"/sized?sizes={size}"))
    assert response.header(b"content-length") == b"%d" % size
    assert response.body == sized_bodies(str(size))[0]


def test_chunks_small_and_large_keep_their_order_and_framing(
    any_loop_server: RunningServer,
) -> None:
    sizes = ",".join(str(size) for size in [1, *SIZES_AROUND_GATHERING, 3, 300_000])
    response = exchange_then_fixed(any_loop_server, request(f"/sized?sizes={sizes}&stream=1"))
    assert response.header(b"transfer-encoding") == b"chunked"
    assert response.chunks == 6
    assert response.body == b"".join(sized_bodies(sizes))


@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_pieces_held_back_are_written_before_the_app_waits(
    any_loop_server: RunningServer, version: str
) -> None:
    # A connection writes the pieces an app sends in a row together (write_batch.py), at the
    # latest when the loop's turn ends: what the app sent before it waits must arrive while it
    # waits, whole, in order, and framed (chunked on HTTP/1.1, up to the close on HTTP/1.0).
    gate("pieces").clear()
    with wire(any_loop_server) as connection:
        connection.send(request("/pieces", version=version))
        while b"before the gate;" not in connection.raw:
            data = connection.sock.recv(65536)
            assert data, f"closed early: {connection.raw!r}"
            connection.raw += data
            connection.h11.receive_data(data)
        assert b"after the gate" not in connection.raw
        gate("pieces").set()
        response = connection.response()
    assert response.body == PIECES_BODY
    if version == "1.1":
        assert response.header(b"transfer-encoding") == b"chunked"
        assert response.chunks == len(PIECES) + 3


@pytest.mark.parametrize("path", ["/fixed", "/stream?chunks=2"])
def test_head_has_get_headers_and_no_body(server: RunningServer, path: str) -> None:
    with wire(server) as connection:
        connection.send(request(path))
        get = connection.response()
        connection.send(request(path, method="HEAD"))
        head = connection.response("HEAD")
        # Nothing but the head came: the next response parses cleanly right after it.
        connection.send(request("/fixed"))
        assert connection.response().body == FIXED_BODY
    assert head.status == get.status == 200
    assert head.body == b""

    def without_date(response: Response) -> list[tuple[bytes, bytes]]:
        # Date may tick over between the two; the request id differs per request.
        return [
            (name, value)
            for name, value in response.headers
            if name not in (b"date", b"x-request-id")
        ]

    if path == "/fixed":
        assert without_date(head) == without_date(get)
        assert head.header(b"content-length") == b"%d" % len(FIXED_BODY)
    else:
        # A streamed body's length is not known up front: no framing header on HEAD.
        assert head.header(b"content-length") is None


def test_head_response_is_only_a_head_on_the_wire(server: RunningServer) -> None:
    data = raw_request(server.port, request("/fixed", "Connection: close", method="HEAD"))
    head, separator, rest = data.partition(b"\r\n\r\n")
    assert separator and rest == b""
    assert b"content-length: %d" % len(FIXED_BODY) in head.split(b"\r\n")


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_statuses(server: RunningServer, code: int) -> None:
    # No stray body bytes: the next response on the connection parses cleanly.
    response = exchange_then_fixed(server, request(f"/status?code={code}"))
    assert response.status == code
    assert response.body == b""
    assert response.header(b"content-length") is None
    assert response.header(b"transfer-encoding") is None


def test_server_and_date_headers(server: RunningServer) -> None:
    response = exchange(server, request("/fixed"))
    assert response.values(b"server") == [b"monoceros"]
    (date,) = response.values(b"date")
    # RFC 7231 section 7.1.1.1: IMF-fixdate.
    assert re.fullmatch(
        rb"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
        rb" \d{4} \d\d:\d\d:\d\d GMT",
        date,
    ), date
    sent = email.utils.parsedate_to_datetime(date.decode()).timestamp()
    assert abs(sent - time.time()) < 5


def test_app_server_and_date_headers_replace_the_defaults(server: RunningServer) -> None:
    response = exchange(server, request("/own-headers"))
    assert response.values(b"server") == [b"custom/1.0"]
    assert response.values(b"date") == [b"Tue, 01 Jan 2030 00:00:00 GMT"]


@pytest.fixture(scope="module")
def options_server() -> Iterator[RunningServer]:
    with run_server(
        app,
        lifespan="on",
        root_path="/api",
        headers=[("X-A", "1"), "x-b: two"],
        server_header=False,
        date_header=False,
        proxy_headers=False,  # the client is not a trusted proxy
    ) as running:
        yield running


def test_default_headers_option(options_server: RunningServer) -> None:
    with wire(options_server) as connection:
        connection.send(request("/fixed"))
        response = connection.response()
    assert response.status == 200
    assert response.values(b"x-a") == [b"1"]
    assert response.values(b"x-b") == [b"two"]
    assert response.values(b"server") == []
    assert response.values(b"date") == []


def test_root_path(options_server: RunningServer) -> None:
    """The proxy in front strips the prefix; the app sees it in root_path and path."""
    scope = httpx.get(options_server.url + "/scope?x=1", timeout=TIMEOUT).json()
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/scope"
    assert scope["raw_path"] == "/api/scope"  # root_path too, as in path (and uvicorn's)
    assert scope["query_string"] == "x=1"


def test_head_and_small_body_go_out_in_one_write(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn writes the head and the body separately; we coalesce them (docs/http.md)."""
    writes: list[bytes] = []

    class CountingTransport:
        def __init__(self, transport: Any) -> None:
            self._transport = transport

        def write(self, data: bytes) -> None:
            writes.append(bytes(data))
            self._transport.write(data)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._transport, name)

    connection_made = HttpProtocol.connection_made

    def counting_connection_made(self: HttpProtocol, transport: Any) -> None:
        connection_made(self, CountingTransport(transport))

    monkeypatch.setattr(HttpProtocol, "connection_made", counting_connection_made)
    response = exchange(server, request("/fixed"))
    assert response.body == FIXED_BODY
    assert len(writes) == 1
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert writes[0].endswith(b"\r\n\r\n" + FIXED_BODY)


# -- keep-alive and pipelining ---------------------------------------------------------------------


def test_keep_alive_reuses_the_connection(server: RunningServer) -> None:
    metrics = server.server.observability.metrics
    assert metrics is not None
    accepted = metrics.connections_accepted
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as http:
        ports = {http.get("/scope").json()["client"][1] for _ in range(3)}
    assert len(ports) == 1
    assert metrics.connections_accepted == accepted + 1


def test_client_connection_close(server: RunningServer) -> None:
    response = exchange_then_closed(server, request("/fixed", "Connection: close"))
    assert response.body == FIXED_BODY
    assert response.header(b"connection") == b"close"


def test_http_10_closes_by_default(server: RunningServer) -> None:
    response = exchange_then_closed(server, request("/fixed", version="1.0", host=False))
    assert response.body == FIXED_BODY
    assert response.header(b"content-length") == b"%d" % len(FIXED_BODY)
    assert response.header(b"connection") == b"close"


def test_http_10_keep_alive(server: RunningServer) -> None:
    with wire(server) as connection:
        connection.send(request("/fixed", "Connection: keep-alive", version="1.0"))
        first = connection.response()
        assert connection.silent_for(0.05)  # still open
        connection.send(request("/fixed", "Connection: keep-alive", version="1.0"))
        second = connection.response()
    assert first.header(b"connection") == second.header(b"connection") == b"keep-alive"
    assert first.body == second.body == FIXED_BODY


def test_pipelined_requests_are_answered_in_order(server: RunningServer) -> None:
    with wire(server) as connection:
        connection.send(
            request("/slow?seconds=0.2") + request("/fixed") + request("/scope", method="HEAD")
        )
        first, second, third = (connection.response(m) for m in ("GET", "GET", "HEAD"))
    assert first.body == b"slept"
    assert second.body == FIXED_BODY
    assert third.status == 200 and third.body == b""


# -- Expect: 100-continue --------------------------------------------------------------------------


def test_100_continue_is_sent_when_the_app_reads(server: RunningServer) -> None:
    name = "continue"
    gate(name).clear()
    with wire(server) as connection:
        connection.send(
            request(
                f"/gated?gate={name}", "Content-Length: 5", "Expect: 100-continue", method="POST"
            )
        )
        wait_for(name, lambda value: value == "waiting")
        assert connection.silent_for(0.1), "100 Continue before the app asked for the body"
        gate(name).set()
        connection.expect_response("POST")
        event = connection.next_event()
        assert isinstance(event, h11.InformationalResponse) and event.status_code == 100
        connection.send(b"hello")
        response = connection.finish_response()
    assert response.status == 200
    assert response.body == b"5"


def test_no_100_continue_when_the_app_answers_without_reading(server: RunningServer) -> None:
    with wire(server) as connection:
        connection.send(
            request(
                "/answer-without-reading",
                "Content-Length: 5",
                "Expect: 100-continue",
                method="POST",
            )
        )
        response = connection.response("POST")
        assert connection.closed_by_server()
    assert response.informational == []
    assert response.status == 200
    assert response.body == b"did not read"
    # The unread body would otherwise be parsed as the next request.
    assert response.header(b"connection") == b"close"


# -- flow control ----------------------------------------------------------------------------------


def test_unread_body_is_not_buffered(server: RunningServer) -> None:
    name = "unread-body"
    gate(name).clear()
    total = 16 * MiB
    piece = b"b" * 65536
    with wire(server) as connection:
        sock = connection.sock
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        connection.send(request(f"/gated?gate={name}", f"Content-Length: {total}", method="POST"))
        wait_for(name, lambda value: value == "waiting")
        sent = 0
        sock.settimeout(0.3)
        with contextlib.suppress(TimeoutError):
            while sent < total:
                sent += sock.send(piece[: total - sent])
        sock.settimeout(TIMEOUT)
        assert sent < total, "the client could send the whole body to an app that reads none"
        protocol = protocol_for(server, connection.port)
        assert protocol.flow.reading_paused
        cycle = protocol.cycle
        assert cycle is not None
        # At most HIGH_WATER plus one read from the socket.
        assert cycle.buffered <= HIGH_WATER + 256 * 1024
        assert cycle.bytes_received <= HIGH_WATER + 256 * 1024
        # Once the app reads, the rest flows.
        gate(name).set()
        while sent < total:
            sent += sock.send(piece[: total - sent])
        response = connection.response("POST")
    assert response.status == 200
    assert response.body == b"%d" % total


def test_slow_reader_makes_send_wait(server: RunningServer) -> None:
    RECORDS.pop("big-stream", None)
    with wire(server, receive_buffer=65536) as connection:
        connection.send(request("/big-stream"))
        # Wait until the app has stopped making progress.
        previous: Any = None
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            time.sleep(0.1)
            current = RECORDS.get("big-stream")
            if current is not None and current == previous:
                break
            previous = current
        stalled_at = RECORDS.get("big-stream")
        assert isinstance(stalled_at, int), stalled_at
        assert stalled_at < BIG_CHUNKS // 2, "send() did not wait for a client that is not reading"
        # What the server holds for it in memory is bounded. A release happens at or below the
        # transport's high-water mark and moves less than HELD_BYTES plus the piece that crossed
        # it (with its chunk framing, and the head with the first piece); past the mark, send()
        # waits, and nothing is held meanwhile.
        protocol = protocol_for(server, connection.port)
        transport = protocol.transport
        held, buffered, high_water = server.on_loop(
            lambda: (
                len(protocol.batch.parts),
                transport.get_write_buffer_size(),
                transport.get_write_buffer_limits()[1],
            )
        )
        assert held == 0, "pieces held back while send() waits"
        framing_and_head = 1024
        assert buffered <= high_water + HELD_BYTES + BIG_CHUNK + framing_and_head, buffered
        response = connection.response()
    assert len(response.body) == BIG_CHUNK * BIG_CHUNKS
    wait_for("big-stream", lambda value: value == "done")


# -- http.response.pathsend ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("files") / "data.bin"
    # Many of the fallback's 256 KiB chunks, and more than the socket buffers hold.
    path.write_bytes(os.urandom(8 * MiB + 123))
    return path


def test_pathsend(any_loop_server: RunningServer, data_file: Path) -> None:
    target = f"/file?path={quote(str(data_file))}"
    # A small receive window: the server has to wait for the client while it sends.
    with wire(any_loop_server, receive_buffer=65536) as connection:
        connection.send(request(target))
        time.sleep(0.05)
        response = connection.response()
        # The connection is reusable after a file.
        connection.send(request(target, method="HEAD"))
        head = connection.response("HEAD")
    expected = data_file.read_bytes()
    assert response.status == 200
    assert response.header(b"content-length") == b"%d" % len(expected)
    assert response.body == expected
    assert head.header(b"content-length") == b"%d" % len(expected)
    assert head.body == b""


def test_pathsend_missing_file_is_500(server: RunningServer, tmp_path: Path) -> None:
    response = httpx.get(
        server.url + "/file", params={"path": str(tmp_path / "missing")}, timeout=TIMEOUT
    )
    assert response.status_code == 500
    assert response.text == "Internal Server Error"


# -- errors ----------------------------------------------------------------------------------------


def test_exception_before_start_is_500_and_logged(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="monoceros.error"):
        with wire(server) as connection:
            connection.send(request("/raise"))
            response = connection.response()
            assert connection.closed_by_server()
        deadline = time.monotonic() + TIMEOUT
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.005)
    assert response.status == 500
    assert response.body == b"Internal Server Error"
    assert response.header(b"connection") == b"close"
    assert b"secret-detail" not in connection.raw and b"Traceback" not in connection.raw
    records = [r for r in caplog.records if r.message == "Exception in ASGI application"]
    assert len(records) == 1
    assert records[0].name == "monoceros.error"
    assert records[0].exc_info is not None
    assert isinstance(records[0].exc_info[1], ValueError)


# -- limit_concurrency -----------------------------------------------------------------------------


def test_limit_concurrency() -> None:
    name = "concurrency"
    gate(name).clear()
    with run_server(app, lifespan="off", limit_concurrency=1) as running:
        with wire(running) as first:
            first.send(request(f"/gated?gate={name}"))
            wait_for(name, lambda value: value == "waiting")
            second = httpx.get(running.url + "/fixed", timeout=TIMEOUT)
            assert second.status_code == 503
            assert second.text == "Service Unavailable"
            assert second.headers["connection"] == "close"
            gate(name).set()
            response = first.response()
        assert response.status == 200
        # Capacity is back once the first request is done.
        assert httpx.get(running.url + "/fixed", timeout=TIMEOUT).status_code == 200


# -- unusual apps and clients ------------------------------------------------------------------


def test_app_connection_close_header(server: RunningServer) -> None:
    response = exchange_then_closed(server, request("/framing?kind=connection-close"))
    assert response.body == b"bye"
    assert response.values(b"connection") == [b"close"]


def test_app_transfer_encoding_header_is_framed_by_the_server(server: RunningServer) -> None:
    response = exchange(server, request("/framing?kind=transfer-encoding"))
    assert response.values(b"transfer-encoding") == [b"chunked"]
    assert response.body == b"onetwo"
    assert response.chunks == 2


def test_app_content_length_on_a_stream(server: RunningServer) -> None:
    response = exchange_then_fixed(server, request("/framing?kind=content-length-stream"))
    assert response.values(b"content-length") == [b"6"]
    assert response.header(b"transfer-encoding") is None
    assert response.body == b"onetwo"


@pytest.mark.parametrize("kind", ["bad-content-length", "status-out-of-range"])
def test_app_invalid_head_is_500(server: RunningServer, kind: str) -> None:
    response = exchange(server, request(f"/framing?kind={kind}"))
    assert response.status == 500
    assert response.body == b"Internal Server Error"


def test_app_connection_keep_alive_header_is_not_repeated(server: RunningServer) -> None:
    response = exchange_then_fixed(
        server,
        request("/framing?kind=connection-keep-alive", "Connection: keep-alive", version="1.0"),
    )
    assert response.values(b"connection") == [b"keep-alive"]
    assert response.body == b"kept"


def test_app_body_shorter_than_its_content_length(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The client would wait for the missing bytes: closing is the only way to end it."""
    head, body = raw_exchange_logging(
        server,
        caplog,
        "/framing?kind=shorter-than-content-length",
        "Response content is shorter than its Content-Length.",
    )
    assert b"content-length: 10" in head.split(b"\r\n")
    assert body == b"abc"


def test_app_returning_a_value_is_logged(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="monoceros.error"):
        response = httpx.get(server.url + "/framing?kind=returns-value", timeout=TIMEOUT)
        wait_for_log(caplog, "ASGI callable returned a value instead of None: 'a value'")
    assert response.text == "returned"


def test_app_returning_mid_response_cuts_the_connection(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    head, body = raw_exchange_logging(
        server,
        caplog,
        "/framing?kind=incomplete",
        "ASGI callable returned without completing the response.",
    )
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert body == b"7\r\npartial\r\n"  # and no terminating chunk


def test_unregistered_status_code(server: RunningServer) -> None:
    with wire(server) as connection:
        connection.send(request("/status?code=599"))
        response = connection.response()
    assert connection.raw.startswith(b"HTTP/1.1 599 \r\n")
    assert response.status == 599
    assert response.body == b"not allowed here"


def test_head_to_a_failing_app_is_500_without_body(server: RunningServer) -> None:
    data = raw_request(server.port, request("/raise", method="HEAD"))
    head, separator, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert b"content-length: 21" in head.split(b"\r\n")
    assert separator and rest == b""


def test_receive_after_the_response_is_disconnect(client: httpx.Client) -> None:
    RECORDS.pop("receive-after-response", None)
    assert client.post("/receive-after-response", content=b"x").text == "done"
    assert wait_for("receive-after-response", bool) == ["http.disconnect", "http.disconnect"]


def test_exception_after_client_disconnect_is_logged(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    RECORDS.pop("disconnect", None)
    with caplog.at_level(logging.ERROR, logger="monoceros.error"):
        with wire(server) as connection:
            connection.send(
                request("/disconnect?raise=1", "Content-Length: 3", method="POST", body=b"abc")
            )
            wait_for("disconnect", lambda value: value == "waiting")
        record = wait_for_log(caplog, "Exception in ASGI application after client disconnected")
    assert record.exc_info is not None


def test_client_leaving_while_send_waits(server: RunningServer) -> None:
    """send() blocked on a client that stopped reading raises once the client has gone."""
    RECORDS.pop("big-stream", None)
    with wire(server, receive_buffer=65536) as connection:
        connection.send(request("/big-stream"))
        wait_for("big-stream", lambda value: isinstance(value, int))
        # The socket closes with unread data: the server sees a reset.
    outcome = wait_for("big-stream", lambda value: isinstance(value, BaseException))
    assert isinstance(outcome, OSError)  # ClientDisconnected, as ASGI 2.4 asks


def test_bad_chunk_after_the_response_started(server: RunningServer) -> None:
    """The body breaks after the app started answering: the app sees a disconnect, the
    connection closes, and no error response is mixed into the one already under way."""
    RECORDS.pop("start-then-read", None)
    with wire(server) as connection:
        connection.send(
            request("/start-then-read", "Transfer-Encoding: chunked", method="POST")
            + b"3\r\nabc\r\n"
        )
        wait_for("start-then-read", lambda value: value == ["http.request"])
        connection.send(b"zz\r\n")
        data = read_until_closed(connection.sock, TIMEOUT)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert body == b"7\r\nstarted\r\n"  # cut off: no last chunk, no 400 after it
    assert wait_for("start-then-read", lambda value: len(value) == 2) == [
        "http.request",
        "http.disconnect",
    ]


def test_bad_request_pipelined_behind_a_slow_one(server: RunningServer) -> None:
    """The 400 waits for the response before it (RFC 9112 section 9.3.2: in order)."""
    with wire(server) as connection:
        connection.send(request("/slow?seconds=0.1") + b"NOT HTTP\r\n\r\n")
        first = connection.response()
        second = connection.response()
        assert connection.closed_by_server()
    assert first.body == b"slept"
    assert second.status == 400
    assert second.header(b"connection") == b"close"


def test_next_request_head_arrives_during_a_response(server: RunningServer) -> None:
    with wire(server) as connection:
        second = request("/fixed")
        connection.send(request("/slow?seconds=0.1") + second[:10])
        first = connection.response()
        connection.send(second[10:])
        assert first.body == b"slept"
        assert connection.response().body == FIXED_BODY


REQUEST_ID = re.compile(rb"[0-9a-f]{32}")


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        pytest.param("chosen-by-proxy.1", True, id="valid"),
        pytest.param("two words", False, id="space"),
        pytest.param("x" * 201, False, id="too-long"),
    ],
)
def test_request_id_from_a_trusted_peer(server: RunningServer, given: str, kept: bool) -> None:
    """127.0.0.1 is in the default --forwarded-allow-ips: its X-Request-ID is believed if sane."""
    with wire(server) as connection:
        connection.send(request("/fixed", f"X-Request-ID: {given}"))
        rid = connection.response().header(b"x-request-id")
    assert rid is not None
    if kept:
        assert rid == given.encode()
    else:
        assert REQUEST_ID.fullmatch(rid), rid


def test_request_id_from_an_untrusted_peer_is_replaced(options_server: RunningServer) -> None:
    with wire(options_server) as connection:
        connection.send(request("/fixed", "X-Request-ID: chosen-by-client"))
        first = connection.response()
        connection.send(request("/fixed"))
        second = connection.response()
    ids = [response.header(b"x-request-id") for response in (first, second)]
    assert all(rid is not None and REQUEST_ID.fullmatch(rid) for rid in ids), ids
    assert ids[0] != ids[1]


def test_request_ids_off() -> None:
    with run_server(app, lifespan="off", request_id_header="") as running:
        response = httpx.get(running.url + "/fixed", timeout=TIMEOUT)
    assert response.text == FIXED_BODY.decode()
    assert "x-request-id" not in response.headers


def test_shutdown_waits_for_an_app_whose_client_left() -> None:
    name = "outlives-client"
    gate(name).clear()
    with run_server(app, lifespan="off") as running:
        with wire(running) as connection:
            connection.send(request(f"/gated?gate={name}"))
            wait_for(name, lambda value: value == "waiting")
        deadline = time.monotonic() + TIMEOUT
        while running.server.state.connections and time.monotonic() < deadline:
            time.sleep(0.005)
        assert not running.server.state.connections
        # The app is still running with no connection left; shutdown waits for it.
        threading.Timer(0.1, gate(name).set).start()
        assert running.stop() == 0
    assert RECORDS[name] == "reading"


@pytest.mark.parametrize("swallow", [False, True], ids=["cancelled", "swallows-cancel"])
def test_graceful_shutdown_timeout_cancels_what_is_left(swallow: bool) -> None:
    RECORDS.pop("unending", None)
    with (
        run_server(app, lifespan="off", timeout_graceful_shutdown=0.1) as running,
        wire(running) as connection,
    ):
        connection.send(request("/unending?swallow=1" if swallow else "/unending"))
        wait_for("unending", lambda value: value == "waiting")
        assert running.stop() == 0
        assert connection.closed_by_server()
        assert connection.raw == b""
    assert RECORDS["unending"] == "cancelled"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        pytest.param(b"/a?b", (b"/a", b"b"), id="origin-form"),
        pytest.param(b"*", (b"*", b""), id="asterisk"),
        pytest.param(b"http://h/p?q=1", (b"/p", b"q=1"), id="absolute-form"),
        pytest.param(b"http://h", (b"/", b""), id="absolute-form-without-path"),
    ],
)
def test_split_target(target: bytes, expected: tuple[bytes, bytes]) -> None:
    assert split_target(target) == expected


@pytest.mark.parametrize("target", [b"http://[::1/", b"example.com:443"])
def test_split_target_rejects(target: bytes) -> None:
    """An invalid URL, and authority-form (CONNECT, which we do not serve), are refused (the
    reader answers 400: test_fuzz_findings.py::test_connect_to_an_authority_is_400)."""
    with pytest.raises(InvalidTarget):
        split_target(target)


# -- Starlette, end to end -------------------------------------------------------------------------


def build_starlette_app(file_path: Path) -> Any:
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.requests import Request
    from starlette.responses import (
        FileResponse,
        JSONResponse,
        PlainTextResponse,
        StreamingResponse,
    )
    from starlette.routing import Route

    async def home(request: Request) -> Response:
        return PlainTextResponse("home")

    async def item(request: Request) -> Response:
        return JSONResponse({"id": request.path_params["id"], "q": request.query_params.get("q")})

    async def echo(request: Request) -> Response:
        return JSONResponse({"length": len(await request.body())})

    async def stream(request: Request) -> Response:
        async def chunks() -> Any:
            for chunk in stream_chunks(3):
                yield chunk

        return StreamingResponse(chunks(), media_type="text/plain")

    async def file(request: Request) -> Response:
        return FileResponse(file_path)

    async def after_response() -> None:
        RECORDS["background"] = "running"
        await wait_gate("background")
        RECORDS["background"] = "done"

    async def background(request: Request) -> Response:
        return PlainTextResponse("sent first", background=BackgroundTask(after_response))

    starlette = Starlette(
        routes=[
            Route("/", home),
            Route("/items/{id:int}", item),
            Route("/echo", echo, methods=["POST"]),
            Route("/stream", stream),
            Route("/file", file),
            Route("/background", background),
        ]
    )

    async def recording(scope: Scope, receive: Receive, send: Send) -> None:
        """Records the message types the framework sends."""
        sent: list[str] = []
        if scope["type"] == "http":
            RECORDS["starlette-sent"] = sent

        async def recording_send(message: Message) -> None:
            sent.append(message["type"])
            await send(message)

        await starlette(scope, receive, recording_send)

    return recording


@pytest.fixture(scope="module")
def starlette_server(data_file: Path) -> Iterator[RunningServer]:
    with run_server(build_starlette_app(data_file), lifespan="on") as running:
        yield running


def test_starlette_app(starlette_server: RunningServer, data_file: Path) -> None:
    with httpx.Client(base_url=starlette_server.url, timeout=TIMEOUT) as http:
        assert http.get("/").text == "home"
        assert http.get("/items/42", params={"q": "x"}).json() == {"id": 42, "q": "x"}
        assert http.get("/missing").status_code == 404
        assert http.post("/echo", content=b"x" * 100_000).json() == {"length": 100_000}
        assert http.get("/echo").status_code == 405

        streamed = http.get("/stream")
        assert streamed.headers["transfer-encoding"] == "chunked"
        assert streamed.content == b"".join(stream_chunks(3))

        file = http.get("/file")
        assert RECORDS["starlette-sent"] == ["http.response.start", "http.response.pathsend"]
        assert file.content == data_file.read_bytes()
        assert file.headers["content-length"] == str(data_file.stat().st_size)
        assert "etag" in file.headers
        head = http.head("/file")
        assert head.headers["content-length"] == str(data_file.stat().st_size)
        assert head.content == b""


def test_starlette_background_task_runs_after_the_response(
    starlette_server: RunningServer,
) -> None:
    gate("background").clear()
    RECORDS.pop("background", None)
    response = httpx.get(starlette_server.url + "/background", timeout=TIMEOUT)
    # The client has its whole response while the background task still waits.
    assert response.text == "sent first"
    wait_for("background", lambda value: value == "running")
    gate("background").set()
    wait_for("background", lambda value: value == "done")


@pytest.mark.parametrize("example", ["examples.app:app", "examples.starlette_app:app"])
def test_example_apps(example: str) -> None:
    from examples import app as plain_app

    with (
        run_server(example, lifespan="on") as running,
        httpx.Client(base_url=running.url, timeout=TIMEOUT) as http,
    ):
        assert http.get("/").content == plain_app.PLAINTEXT
        json_response = http.get("/json")
        assert json_response.headers["content-type"] == "application/json"
        assert json_response.content == plain_app.JSON_DOCUMENT
        assert http.post("/echo", content=b"echo me").content == b"echo me"
        streamed = http.get("/stream")
        assert streamed.content == plain_app.STREAM_CHUNK * plain_app.STREAM_CHUNKS
        assert http.get("/slow", params={"seconds": "0"}).text == "slept"
