"""`--proxy-protocol` against a real server, from raw sockets: what the app sees behind a PROXY
header, what the access log and metrics record, and every way a connection is turned away.

Every connection here comes from 127.0.0.1; the `trusted` server trusts it (the default
--forwarded-allow-ips), the `untrusted` one trusts only 10.0.0.0/8."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from monoceros.types import Receive, Scope, Send
from tests.apps import plain, send_text
from tests.unit.test_proxy_header import AWS_VPCE, INET6, SSL, UNIX, v2
from tests.utils import Recorder, RunningServer, read_until_closed, run_server
from tests.wire import TIMEOUT, request, wire

SCOPES: list[dict[str, Any]] = []


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http"
    seen = {name: plain(scope[name]) for name in ("client", "server", "scheme")}
    seen["extensions"] = plain(scope["extensions"])
    SCOPES.append(seen)
    await send_text(send, json.dumps(seen).encode())


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return ProxyRecorder()


class ProxyRecorder(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.refused: list[str] = []

    def connection_rejected(self, reason: str) -> None:
        self.refused.append(reason)


@pytest.fixture(scope="module")
def trusted(recorder: ProxyRecorder) -> Iterator[RunningServer]:
    with run_server(
        app,
        observer=recorder,
        lifespan="off",
        proxy_protocol=True,
        timeout_request_header=0.5,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def untrusted() -> Iterator[RunningServer]:
    with run_server(
        app, lifespan="off", proxy_protocol=True, forwarded_allow_ips="10.0.0.0/8"
    ) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh() -> None:
    SCOPES.clear()


def seen_after(server: RunningServer, header: bytes, *headers: str) -> dict[str, Any]:
    """What the app saw of a request sent after `header` on one connection."""
    with wire(server) as connection:
        connection.send(header + request("/", *headers))
        response = connection.response()
        assert response.status == 200, response
    seen: dict[str, Any] = json.loads(response.body)
    return seen


@pytest.mark.parametrize(
    ("header", "client", "server"),
    [
        pytest.param(
            b"PROXY TCP4 203.0.113.7 10.0.0.5 51000 8000\r\n",
            ["203.0.113.7", 51000],
            ["10.0.0.5", 8000],
            id="v1-tcp4",
        ),
        pytest.param(
            b"PROXY TCP6 2001:db8::7 2001:db8::5 51000 443\r\n",
            ["2001:db8::7", 51000],
            ["2001:db8::5", 443],
            id="v1-tcp6",
        ),
        pytest.param(v2(), ["203.0.113.7", 51000], ["10.0.0.5", 8000], id="v2-inet"),
        pytest.param(
            v2(family=INET6, source=("2001:db8::7", 1), destination=("2001:db8::5", 2)),
            ["2001:db8::7", 1],
            ["2001:db8::5", 2],
            id="v2-inet6",
        ),
        pytest.param(v2(family=UNIX), None, None, id="v2-unix-client"),
    ],
)
def test_the_header_names_client_and_server(
    trusted: RunningServer, header: bytes, client: Any, server: Any
) -> None:
    seen = seen_after(trusted, header)
    assert seen["client"] == client
    assert seen["server"] == server
    peer = seen["extensions"]["monoceros.peer"]["address"]
    assert peer[0] == "127.0.0.1"  # the balancer, as the socket saw it
    assert seen["extensions"]["monoceros.proxy_protocol"]["version"] in (1, 2)


@pytest.mark.parametrize(
    "header", [b"PROXY UNKNOWN\r\n", v2(command=0)], ids=["v1-unknown", "v2-local"]
)
def test_a_health_check_keeps_the_socket_addresses(trusted: RunningServer, header: bytes) -> None:
    seen = seen_after(trusted, header)
    assert seen["client"][0] == "127.0.0.1"
    assert seen["server"] == ["127.0.0.1", trusted.port]


def test_tlvs_are_in_the_scope_and_tls_makes_it_https(trusted: RunningServer) -> None:
    seen = seen_after(trusted, v2(tlvs=SSL + AWS_VPCE))
    info = seen["extensions"]["monoceros.proxy_protocol"]
    assert info["aws_vpce_id"] == "vpce-08d2bf15fac5001c9"
    assert info["ssl"]["cn"] == "client.example"
    assert seen["scheme"] == "https"


def test_x_forwarded_applies_on_top_when_the_source_is_trusted(trusted: RunningServer) -> None:
    # A proxy inside the network (10.0.0.9, not trusted by default) sent it: no XFF belief.
    seen = seen_after(
        trusted,
        b"PROXY TCP4 10.0.0.9 10.0.0.5 1 8000\r\n",
        "X-Forwarded-For: 198.51.100.1",
    )
    assert seen["client"] == ["10.0.0.9", 1]
    # From a trusted source (loopback), X-Forwarded-For names the client.
    seen = seen_after(
        trusted,
        b"PROXY TCP4 127.0.0.1 10.0.0.5 1 8000\r\n",
        "X-Forwarded-For: 198.51.100.1",
    )
    assert seen["client"] == ["198.51.100.1", 0]


def test_every_request_of_the_connection_has_the_client(trusted: RunningServer) -> None:
    with wire(trusted) as connection:
        connection.send(b"PROXY TCP4 203.0.113.7 10.0.0.5 51000 8000\r\n")
        for _ in range(3):
            connection.send(request("/"))
            assert json.loads(connection.response().body)["client"] == ["203.0.113.7", 51000]


def test_a_header_sent_byte_by_byte(trusted: RunningServer) -> None:
    with wire(trusted) as connection:
        for byte in v2(tlvs=AWS_VPCE):
            connection.send(bytes((byte,)))
        connection.send(request("/"))
        assert json.loads(connection.response().body)["client"] == ["203.0.113.7", 51000]


def test_the_access_log_has_the_client_and_the_balancer_as_peer(
    trusted: RunningServer, recorder: ProxyRecorder
) -> None:
    seen_after(trusted, b"PROXY TCP4 203.0.113.7 10.0.0.5 51000 8000\r\n")
    deadline = time.monotonic() + TIMEOUT
    while not recorder.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    record = recorder.requests[-1]
    assert record.scope["client"] == ("203.0.113.7", 51000)
    assert record.peer is not None and record.peer[0] == "127.0.0.1"


def closed_without_a_response(server: RunningServer, data: bytes, pause: float = 0.0) -> bool:
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        if pause:
            time.sleep(pause)
        return read_until_closed(sock, TIMEOUT) == b""


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(request("/"), "proxy_header_missing", id="http-without-a-header"),
        pytest.param(b"PROXY TCP4 junk\r\n" + request("/"), "proxy_header_invalid", id="junk"),
        pytest.param(v2(length=60000) + b"\0" * 100, "proxy_header_invalid", id="oversized"),
        pytest.param(b"PROXY TCP4 203.0.113.7", "proxy_header_timeout", id="slow"),
    ],
)
def test_a_trusted_peer_without_a_valid_header_is_closed(
    trusted: RunningServer, recorder: ProxyRecorder, data: bytes, reason: str
) -> None:
    recorder.refused.clear()
    assert closed_without_a_response(trusted, data)
    deadline = time.monotonic() + TIMEOUT
    while not recorder.refused and time.monotonic() < deadline:
        time.sleep(0.01)
    assert recorder.refused == [reason]
    assert SCOPES == []
    seen_after(trusted, v2())  # and the server goes on


def test_an_untrusted_peer_sending_a_header_is_closed(untrusted: RunningServer) -> None:
    assert closed_without_a_response(untrusted, v2() + request("/"))
    assert closed_without_a_response(untrusted, b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n")
    metrics = untrusted.server.observability.metrics
    assert metrics is not None
    assert metrics.connection_rejections == {"proxy_header_untrusted": 2}
    assert SCOPES == []


def test_an_untrusted_peer_speaking_http_is_served(untrusted: RunningServer) -> None:
    seen = seen_after(untrusted, b"")
    assert seen["client"][0] == "127.0.0.1"
    assert "monoceros.proxy_protocol" not in seen["extensions"]
