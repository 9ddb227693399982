"""103 Early Hints (`http.response.early_hint`) and response trailers
(`http.response.trailers`) over HTTP/1.1, seen on the wire by a raw client parsed with h11 and
by curl; an HTTP/1.0 client and a client without `TE: trailers` get neither."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import h11
import pytest

from monoceros.types import Receive, Scope, Send
from tests.utils import RunningServer, raw_request, run_server
from tests.wire import TIMEOUT, request, wire

LINKS = [b"</style.css>; rel=preload; as=style", b"</app.js>; rel=preload; as=script"]
SEEN: dict[str, Any] = {}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    path = scope["path"]
    SEEN[path] = sorted(scope["extensions"])
    if path == "/hints":
        await send({"type": "http.response.early_hint", "links": LINKS})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"page"})
    elif path == "/bad-hint":
        await send({"type": "http.response.early_hint", "links": [b"</x>\r\nset-cookie: a=b"]})
    elif path in ("/trailers", "/trailers-sized"):
        headers = [(b"trailer", b"x-checksum, x-count")]
        if path == "/trailers-sized":
            headers.append((b"content-length", b"10"))
        await send(
            {"type": "http.response.start", "status": 200, "headers": headers, "trailers": True}
        )
        await send({"type": "http.response.body", "body": b"hello", "more_body": True})
        await send({"type": "http.response.body", "body": b"world"})
        await send(
            {
                "type": "http.response.trailers",
                "headers": [(b"x-checksum", b"abc")],
                "more_trailers": True,
            }
        )
        await send({"type": "http.response.trailers", "headers": [(b"x-count", b"2")]})
    elif path == "/bad-trailer":
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
        await send({"type": "http.response.body", "body": b"x"})
        await send({"type": "http.response.trailers", "headers": [(b"content-length", b"9")]})


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with run_server(app, lifespan="off") as running:
        yield running


def events(data: bytes, method: str = "GET") -> list[Any]:
    """What h11 makes of `data`, all the server sent before it closed, as the answer to one
    request."""
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(data)
    client.receive_data(b"")  # the close (an HTTP/1.0 body ends there)
    found = []
    while True:
        event = client.next_event()
        if event in (h11.NEED_DATA, h11.PAUSED):
            return found
        found.append(event)
        if isinstance(event, h11.EndOfMessage):
            return found


def exchange(server: RunningServer, data: bytes) -> bytes:
    """Everything the server sends for `data` (a request that closes the connection)."""
    return raw_request(server.port, data, timeout=TIMEOUT)


# -- 103 Early Hints -------------------------------------------------------------------------


def test_early_hints_come_first(server: RunningServer) -> None:
    found = events(exchange(server, request("/hints", "Connection: close")))
    hint, response = found[0], found[1]
    assert isinstance(hint, h11.InformationalResponse) and hint.status_code == 103
    assert [v for n, v in hint.headers if n == b"link"] == LINKS
    assert isinstance(response, h11.Response) and response.status_code == 200
    assert "http.response.early_hint" in SEEN["/hints"]


def test_no_early_hints_for_http_10(server: RunningServer) -> None:
    data = exchange(server, request("/hints", version="1.0", host=False))
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")  # the first bytes are the response
    assert b" 103 " not in data


def test_an_early_hint_cannot_split_the_response(server: RunningServer) -> None:
    with wire(server) as connection:
        connection.send(request("/bad-hint"))
        assert connection.response().status == 500
    assert b"set-cookie" not in connection.raw


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("curl")
    assert binary is not None, "curl is needed (Debian's curl package)"
    return subprocess.run(
        [binary, "--silent", "--show-error", *args], capture_output=True, text=True, timeout=10
    )


def test_curl_shows_the_103(server: RunningServer) -> None:
    result = curl("-v", server.url + "/hints")
    assert result.returncode == 0, result.stderr
    assert "< HTTP/1.1 103 Early Hints" in result.stderr
    assert "< link: </style.css>; rel=preload; as=style" in result.stderr
    assert result.stdout == "page"


# -- trailers --------------------------------------------------------------------------------


def test_trailers_after_the_last_chunk(server: RunningServer) -> None:
    with wire(server) as connection:
        connection.send(request("/trailers", "TE: trailers"))
        connection.expect_response()
        assert isinstance(response := connection.next_event(), h11.Response)
        assert dict(response.headers)[b"transfer-encoding"] == b"chunked"
        body = b""
        while isinstance(event := connection.next_event(), h11.Data):
            body += event.data
        assert isinstance(event, h11.EndOfMessage)
        assert list(event.headers) == [(b"x-checksum", b"abc"), (b"x-count", b"2")]
        assert body == b"helloworld"
        connection.send(request("/hints"))  # the connection goes on
        assert connection.response().body == b"page"
    assert "http.response.trailers" in SEEN["/trailers"]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(request("/trailers", "Connection: close"), id="no-te"),
        pytest.param(request("/trailers", "TE: gzip", "Connection: close"), id="te-not-trailers"),
        pytest.param(request("/trailers", "TE: trailers", version="1.0"), id="http-10"),
    ],
)
def test_trailers_the_client_does_not_take_are_dropped(server: RunningServer, data: bytes) -> None:
    found = events(exchange(server, data))
    assert found, "no response"
    end = found[-1]
    assert isinstance(end, h11.EndOfMessage) and list(end.headers) == []
    assert b"".join(e.data for e in found if isinstance(e, h11.Data)) == b"helloworld"
    assert "http.response.trailers" not in SEEN["/trailers"]


def test_a_content_length_wins_over_trailers(server: RunningServer) -> None:
    with wire(server) as connection:
        connection.send(request("/trailers-sized", "TE: trailers"))
        response = connection.response()
    assert response.header(b"content-length") == b"10"
    assert response.body == b"helloworld"


def test_a_framing_field_is_refused_in_trailers(server: RunningServer) -> None:
    with wire(server) as connection:
        connection.send(request("/bad-trailer", "TE: trailers"))
        connection.expect_response()
        connection.next_event()  # the head went out with the body
        with pytest.raises((AssertionError, h11.RemoteProtocolError)):
            while not isinstance(connection.next_event(), h11.EndOfMessage):
                pass  # the connection is cut: no last chunk


def test_curl_reads_the_trailers(server: RunningServer) -> None:
    result = curl("-v", "--raw", "-H", "TE: trailers", server.url + "/trailers")
    assert result.returncode == 0, result.stderr
    assert "x-checksum: abc" in result.stdout  # --raw shows the chunked body and its trailer
