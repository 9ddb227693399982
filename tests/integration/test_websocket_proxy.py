"""WebSockets end to end through a real nginx configured with docker/nginx/ (the Upgrade and
Connection map in monoceros-maps.conf, used by monoceros-proxy.conf): messages both ways, close
codes both ways, the scope the app sees, a rejection, and the session's access-log line.

As in test_proxy_e2e, the client binds 127.0.0.3 and nginx reaches monoceros from 127.0.0.1.
The app is `tests.apps.websocket_echo`, which reports how each session ended through
`WEBSOCKET_CLOSES`. The client is the `websockets` sync client, every wait bounded by TIMEOUT.
Without nginx these tests skip, except under CI=true, where they fail."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from tests.apps import WEBSOCKET_CLOSES, wait_for_close, websocket_echo
from tests.integration.helpers import TIMEOUT, TLSFiles
from tests.integration.test_proxy_e2e import CLIENT, behind_nginx, nginx_binary, nginx_in_front
from tests.utils import ServerProcess

MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def clear_closes() -> None:
    WEBSOCKET_CLOSES.clear()


def ws_url(http_url: str, path: str) -> str:
    """nginx's http:// (https://) URL as ws:// (wss://), with `path`."""
    return "ws" + http_url.removeprefix("http") + path


@contextlib.contextmanager
def proxied(
    tmp_path: Path, tls: TLSFiles | None = None, engine: str = "websockets"
) -> Iterator[str]:
    """websocket_echo (in this process, on `--ws engine`) behind nginx; yields nginx's URL."""
    with behind_nginx(tmp_path, tls=tls, app=websocket_echo, lifespan="off", ws=engine) as url:
        yield url


def from_client(url: str, tls: TLSFiles | None = None, **options: Any) -> ClientConnection:
    """A WebSocket connection from 127.0.0.3; the handshake and the closing are bounded."""
    return connect(
        url,
        ssl=tls.client_context() if tls is not None else None,
        source_address=(CLIENT, 0),
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
        **options,
    )


@pytest.mark.parametrize("engine", ["websockets", "wsproto"])
@pytest.mark.parametrize("compression", ["deflate", None], ids=["deflate", "no-compression"])
def test_text_and_binary_messages_pass_through(
    tmp_path: Path, compression: str | None, engine: str
) -> None:
    big = os.urandom(MiB)  # incompressible: a whole megabyte crosses nginx each way
    with proxied(tmp_path, engine=engine) as url:
        with from_client(ws_url(url, "/echo"), compression=compression, max_size=4 * MiB) as ws:
            ws.send("héllo")
            assert ws.recv(TIMEOUT) == "héllo"
            ws.send(b"\x00\x01\xff")
            assert ws.recv(TIMEOUT) == b"\x00\x01\xff"
            ws.send(big)
            assert ws.recv(TIMEOUT) == big
            ws.send(big.hex())  # two megabytes of text
            assert ws.recv(TIMEOUT) == big.hex()
        assert wait_for_close("/echo") == (1000, "")


@pytest.mark.parametrize("engine", ["websockets", "wsproto"])
def test_close_codes_both_ways(tmp_path: Path, engine: str) -> None:
    with proxied(tmp_path, engine=engine) as url:
        # The client closes: the app's websocket.disconnect carries its code and reason.
        with from_client(ws_url(url, "/echo")) as ws:
            ws.send("hi")
            assert ws.recv(TIMEOUT) == "hi"
            ws.close(4001, "bye")
        assert wait_for_close("/echo") == (4001, "bye")

        # The app closes: the client receives its code and reason.
        with from_client(ws_url(url, "/echo")) as ws:
            ws.send("close:4003")
            with pytest.raises(ConnectionClosed) as caught:
                ws.recv(TIMEOUT)
        received = caught.value.rcvd
        assert received is not None
        assert (received.code, received.reason) == (4003, "bye")
        assert wait_for_close("/echo")[0] == 4003


@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
def test_the_app_sees_the_client_and_nginx_as_peer(tmp_path: Path, secure: bool) -> None:
    """The client from nginx's X-Forwarded-For, the scheme from X-Forwarded-Proto (wss when
    nginx terminates TLS), and nginx itself as the trusted peer."""
    tls = TLSFiles(tmp_path) if secure else None
    with (
        proxied(tmp_path, tls) as url,
        from_client(ws_url(url, "/scope?a=1"), tls, subprotocols=[Subprotocol("chat")]) as ws,
    ):
        assert ws.subprotocol == "chat"
        seen = json.loads(ws.recv(TIMEOUT))
    assert seen["scheme"] == ("wss" if secure else "ws")
    assert seen["client"][0] == CLIENT
    peer = seen["extensions"]["monoceros.peer"]
    assert peer["address"][0] == "127.0.0.1" and peer["trusted"] is True
    assert (seen["path"], seen["query_string"], seen["subprotocols"]) == ("/scope", "a=1", ["chat"])


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        pytest.param("/reject", 403, b"Forbidden\n", id="close-before-accept"),
        pytest.param("/deny", 401, b"go away!", id="denial-response"),
    ],
)
def test_a_rejection_arrives_as_http(tmp_path: Path, path: str, status: int, body: bytes) -> None:
    with (
        proxied(tmp_path) as url,
        pytest.raises(InvalidStatus) as caught,
        from_client(ws_url(url, path)),
    ):
        pass
    response = caught.value.response
    assert (response.status_code, response.body) == (status, body)


def test_access_log_line_of_a_proxied_session(tmp_path: Path) -> None:
    """The CLI's JSON access log: one line per session, with the close code, the client from
    X-Forwarded-For and nginx (the direct TCP peer) as the peer, as for an HTTP request."""
    nginx_binary()
    args = ("--log-format", "json", "--access-log", "--port", "0", "--lifespan", "off")
    with ServerProcess("tests.apps:websocket_echo", *args) as process:
        upstream = int(process.wait_listening(TIMEOUT).rpartition(":")[2])
        with nginx_in_front(tmp_path, upstream) as url:
            with from_client(ws_url(url, "/echo?x=1"), compression=None) as ws:
                ws.send("abc")
                assert ws.recv(TIMEOUT) == "abc"
                ws.close(4001, "bye")
            line = json.loads(process.wait_for_line(r'"event":"websocket"', TIMEOUT).string)
    assert (line["path"], line["query"], line["scheme"]) == ("/echo", "x=1", "ws")
    assert (line["status"], line["close_code"]) == (101, 4001)
    assert (line["messages_received"], line["messages_sent"]) == (1, 1)
    assert (line["client"], line["client_port"]) == (CLIENT, None)  # X-Forwarded-For: no port
    assert line["peer"] == "127.0.0.1"  # nginx, as on an HTTP line
