"""HTTP/2 as a browser speaks it: headless Chromium opens a page over TLS from a server with
--http2, chooses h2 by ALPN, and opens the page's WebSocket on the same HTTP/2 connection with
an extended CONNECT (RFC 8441), because the server's SETTINGS allow it. The message goes both
ways, and the server's records say both exchanges were HTTP/2. Without Chromium this test
skips, except under CI=true."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from monoceros.protocols.events import SessionFinished
from monoceros.types import Receive, Scope, Send
from tests.integration.browser import Browser, launch_browser
from tests.integration.helpers import TLSFiles
from tests.utils import Recorder, RunningServer, run_server

PAGE = b"""<!doctype html><html><body><div id="out">pending</div><script>
const ws = new WebSocket("wss://" + location.host + "/echo");
ws.onopen = () => ws.send("hello");
ws.onmessage = (event) => {
  document.getElementById("out").textContent = "received: " + event.data;
  ws.close(1000);
};
ws.onerror = () => { document.getElementById("out").textContent = "error"; };
</script></body></html>"""


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            text = f"{message['text']} (over HTTP/{scope['http_version']})"
            await send({"type": "websocket.send", "text": text})
        return
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]}
    )
    await send({"type": "http.response.body", "body": PAGE})


RECORDER = Recorder()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tls = TLSFiles(tmp_path_factory.mktemp("tls"))
    with run_server(
        app,
        lifespan="off",
        http2=True,
        ssl_certfile=tls.cert,
        ssl_keyfile=tls.key,
        observer=RECORDER,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    with launch_browser(Path(tmp_path_factory.mktemp("chromium-profile"))) as launched:
        yield launched


def test_a_page_and_its_websocket_over_one_http2_connection(
    server: RunningServer, browser: Browser
) -> None:
    browser.open(f"https://127.0.0.1:{server.port}/")
    protocol = browser.evaluate("performance.getEntriesByType('navigation')[0].nextHopProtocol")
    assert protocol == "h2"
    text = browser.wait_for(
        "(t => t.startsWith('received') || t == 'error' ? t : '')"
        "(document.getElementById('out').textContent)"
    )
    assert text == "received: hello (over HTTP/2)"
    page = next(r for r in RECORDER.requests if r.scope["path"] == "/")
    assert page.scope["http_version"] == "2"
    session = _wait_for_session()
    assert session.scope["http_version"] == "2"
    assert (session.status, session.messages_received, session.messages_sent) == (200, 1, 1)
    assert session.close_code == 1000
    assert browser.exceptions() == []


def _wait_for_session() -> SessionFinished:
    """The session's record: it comes when the close handshake is done."""
    deadline = time.monotonic() + 10
    while not RECORDER.sessions:
        assert time.monotonic() < deadline, "the WebSocket session never ended"
        time.sleep(0.05)
    return RECORDER.sessions[-1]
