"""Pipelined requests split at random points, through the real HttpProtocol over an in-memory
transport: every request is answered once, in order, with its whole body, and at most
MAX_QUEUED parsed requests ever wait behind the one being answered.

Hypothesis draws the requests (methods, Content-Length or chunked bodies, `Expect`, ignored
`Upgrade: h2c`) and where the byte stream is cut into reads; h11 parses what the server wrote.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monoceros.protocols.context import ConnectionContext
from monoceros.protocols.head import DefaultHeaders
from monoceros.protocols.http import HttpProtocol
from monoceros.protocols.reader import MAX_QUEUED
from monoceros.protocols.state import ServerState
from monoceros.types import Receive, Scope, Send
from tests.memory import MemoryTransport


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers `METHOD PATH BODY`, reading the body in whatever pieces it comes."""
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message["body"]
        if not message.get("more_body"):
            break
    answer = b"%s %s %s" % (scope["method"].encode(), scope["path"].encode(), body)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": answer})


def encode(method: str, path: str, body: bytes, chunked: bool, extra: list[str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: x", *extra]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        pieces = [body[i : i + 7] for i in range(0, len(body), 7)]
        content = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    else:
        lines.append(f"Content-Length: {len(body)}")
        content = body
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + content


MALFORMED = "X-A: a\rb"  # a bare CR in a field value: the parser refuses the request
REQUEST = st.tuples(
    st.sampled_from(["GET", "POST", "PUT", "HEAD"]),
    st.from_regex(r"/[a-z0-9]{0,8}", fullmatch=True),
    st.binary(max_size=40),
    st.booleans(),
    st.sampled_from(
        [[], ["Expect: 100-continue"], ["Connection: Upgrade", "Upgrade: h2c"], [MALFORMED]]
    ),
)


async def serve(stream: bytes, cuts: list[int]) -> tuple[bytes, int]:
    """Deliver `stream` in reads cut at `cuts`, honouring pause_reading; return what the
    server wrote and the most parsed requests ever seen waiting."""
    context = ConnectionContext(default_headers=DefaultHeaders(server=False, date=False))
    transport = MemoryTransport()
    protocol = HttpProtocol(echo, context, ServerState())
    transport.protocol = protocol
    protocol.connection_made(transport)  # type: ignore[arg-type]
    reads = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    most_queued = 0
    for data in reads:
        for _ in range(200):  # bounded: a reader that never resumes fails below
            if transport.reading or transport.closed:
                break
            await asyncio.sleep(0)
        if transport.closed:
            break
        assert transport.reading, "reading stayed paused with requests unanswered"
        protocol.data_received(data)
        most_queued = max(most_queued, len(protocol.reader.queue))
        await asyncio.sleep(0)
    for _ in range(200):
        await asyncio.sleep(0)
    return bytes(transport.written), most_queued


def responses(written: bytes, methods: list[str]) -> list[bytes]:
    """The bodies of the responses in `written`, parsed by h11 as answers to `methods`."""
    client = h11.Connection(h11.CLIENT)
    client.receive_data(written)
    bodies = []
    for method in methods:
        if client.our_state is h11.DONE and client.their_state is h11.DONE:
            client.start_next_cycle()
        client.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
        client.send(h11.EndOfMessage())
        body = b""
        while True:
            event = client.next_event()
            assert event is not h11.NEED_DATA, f"response to {method} incomplete: {written!r}"
            if isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.Response):
                assert event.status_code == 200, event
        bodies.append(body)
    return bodies


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests=st.lists(REQUEST, min_size=1, max_size=8), data=st.data())
def test_pipelined_requests_split_anywhere(requests: list[Any], data: st.DataObject) -> None:
    # A malformed request ends the stream: a 400 after the answers to the ones before it.
    cut_at = next((i for i, r in enumerate(requests) if r[4] == [MALFORMED]), len(requests))
    sent = requests[: cut_at + 1]
    stream = b"".join(encode(*r) for r in sent)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(stream) - 1)), max_size=6)))
    cuts = [c for c in cuts if 0 < c < len(stream)]
    written, most_queued = asyncio.run(serve(stream, cuts))

    answered = sent[:cut_at]
    expected = [
        b"" if m == "HEAD" else b"%s %s %s" % (m.encode(), p.encode(), b)
        for m, p, b, _, _ in answered
    ]
    assert most_queued <= MAX_QUEUED
    if cut_at < len(requests):
        # The requests before the malformed one are answered, then its 400, then nothing.
        head, _, _ = written.rpartition(b"HTTP/1.1 400 Bad Request\r\n")
        assert responses(head, [m for m, *_ in answered]) == expected
        refused_method = sent[cut_at][0]
        assert written.endswith(b"\r\n\r\n" if refused_method == "HEAD" else b"Bad Request")
    else:
        assert responses(written, [m for m, *_ in answered]) == expected
