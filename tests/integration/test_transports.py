"""Where and how the real `monoceros` process listens, and what the CLI options change on the
wire: IPv4, IPv6, unix sockets, inherited fds, TLS, default headers, root_path, env files."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.helpers import TIMEOUT, TLSFiles
from tests.utils import ServerProcess, free_port


@contextlib.contextmanager
def serving(
    *args: str, env: dict[str, str] | None = None, pass_fds: tuple[int, ...] = ()
) -> Iterator[tuple[ServerProcess, str]]:
    """Start the server, yield it with its URL, then stop it with SIGTERM and expect exit 0."""
    with ServerProcess(*args, env=env, pass_fds=pass_fds) as process:
        url = process.wait_listening(TIMEOUT)
        yield process, url
        process.signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0, process.output
        assert "Traceback" not in process.output, process.output


def get(url: str, **options: Any) -> httpx.Response:
    return httpx.get(url, timeout=5, **options)


def scope_of(url: str, **options: Any) -> dict[str, Any]:
    response = get(url, **options)
    assert response.status_code == 200
    scope: dict[str, Any] = response.json()
    return scope


# -- TCP ---------------------------------------------------------------------------------------


def test_ipv4() -> None:
    with serving("tests.apps:echo_scope", "--host", "127.0.0.1", "--port", "0") as (_, url):
        assert url.startswith("http://127.0.0.1:")
        scope = scope_of(url + "/path?q=1")
        assert scope["scheme"] == "http"
        assert scope["client"][0] == "127.0.0.1"
        assert scope["server"] == ["127.0.0.1", int(url.rsplit(":", 1)[1])]
        assert (scope["path"], scope["query_string"]) == ("/path", "q=1")


def has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_ipv6() -> None:
    if not has_ipv6_loopback():
        if os.environ.get("CI") == "true":
            pytest.fail("CI machines must have an IPv6 loopback (::1)")
        pytest.skip("no IPv6 loopback on this machine")
    with serving("tests.apps:echo_scope", "--host", "::1", "--port", "0") as (_, url):
        assert url.startswith("http://[::1]:")
        scope = scope_of(url + "/")
        assert scope["client"][0] == "::1"
        assert scope["server"][0] == "::1"


def test_monoceros_env_vars_are_honoured() -> None:
    port = free_port()
    env = {"MONOCEROS_APP": "examples.app:app", "MONOCEROS_PORT": str(port)}
    with serving(env=env) as (_, url):
        assert url == f"http://127.0.0.1:{port}"
        assert get(url + "/").text == "Hello, World!"


def test_fd() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        fd = listener.fileno()
        with serving("examples.app:app", "--fd", str(fd), pass_fds=(fd,)) as (_, url):
            assert url == f"http://127.0.0.1:{port}"
            assert get(url + "/").text == "Hello, World!"


def test_fd_that_is_not_a_socket(tmp_path: Path) -> None:
    with open(tmp_path / "file", "w") as file:
        fd = file.fileno()
        with ServerProcess("examples.app:app", "--fd", str(fd), pass_fds=(fd,)) as process:
            assert process.wait(TIMEOUT) == 1
    assert f"--fd {fd} is not a usable socket" in process.output
    assert "Traceback" not in process.output


# -- unix sockets ------------------------------------------------------------------------------


@pytest.fixture
def socket_path(tmp_path: Path) -> str:
    return str(tmp_path / "app.sock")


def uds_get(path: str, target: str = "/") -> httpx.Response:
    with httpx.Client(transport=httpx.HTTPTransport(uds=path), timeout=5) as client:
        return client.get("http://localhost" + target)


def test_uds(socket_path: str) -> None:
    with serving("examples.app:app", "--uds", socket_path) as (_, url):
        assert url == f"unix:{socket_path}"
        assert stat.S_ISSOCK(os.stat(socket_path).st_mode)
        assert stat.S_IMODE(os.stat(socket_path).st_mode) == 0o666
        response = uds_get(socket_path)
        assert response.status_code == 200
        assert response.text == "Hello, World!"
    assert not os.path.exists(socket_path), "socket file left after a clean shutdown"


def test_uds_scope(socket_path: str) -> None:
    with serving("tests.apps:echo_scope", "--uds", socket_path):
        scope = uds_get(socket_path, "/x").json()
    assert scope["path"] == "/x"
    assert scope["client"] is None


def test_uds_stale_socket_file_is_replaced(socket_path: str) -> None:
    with ServerProcess("examples.app:app", "--uds", socket_path) as killed:
        killed.wait_listening(TIMEOUT)
        killed.signal(signal.SIGKILL)
        killed.wait(TIMEOUT)
    assert stat.S_ISSOCK(os.stat(socket_path).st_mode), "SIGKILL should leave the file behind"
    with serving("examples.app:app", "--uds", socket_path):
        assert uds_get(socket_path).status_code == 200


def test_uds_refuses_a_regular_file(socket_path: str) -> None:
    Path(socket_path).write_text("precious data")
    with ServerProcess("examples.app:app", "--uds", socket_path) as process:
        assert process.wait(TIMEOUT) == 1
    assert "a file that is not a socket is there" in process.output
    assert "Traceback" not in process.output
    assert Path(socket_path).read_text() == "precious data"


def test_uds_refuses_a_live_server(socket_path: str) -> None:
    with serving("examples.app:app", "--uds", socket_path):
        with ServerProcess("examples.app:app", "--uds", socket_path) as second:
            assert second.wait(TIMEOUT) == 1
        assert "another server is listening there" in second.output
        assert uds_get(socket_path).status_code == 200


# -- TLS ---------------------------------------------------------------------------------------


def test_tls(tls: TLSFiles) -> None:
    args = ("--port", "0", "--ssl-certfile", tls.cert, "--ssl-keyfile", tls.key)
    with serving("tests.apps:echo_scope", *args) as (_, url):
        assert url.startswith("https://127.0.0.1:")
        scope = scope_of(url + "/secure", verify=tls.client_context())
        assert scope["scheme"] == "https"
        assert scope["path"] == "/secure"
        with pytest.raises(httpx.ConnectError):
            get(url + "/")  # the system trust store does not know our CA


def test_tls_encrypted_key(tls: TLSFiles) -> None:
    key = tls.encrypted_key(b"s3cret")
    args = ("--port", "0", "--ssl-certfile", tls.cert, "--ssl-keyfile", key)
    with serving("tests.apps:echo_scope", *args, "--ssl-keyfile-password", "s3cret") as (_, url):
        assert scope_of(url + "/", verify=tls.client_context())["scheme"] == "https"


def test_tls_large_bodies_arrive_whole(tls: TLSFiles) -> None:
    # Large bodies go to the transport beside their head or chunk size (write_body): the
    # TLS transport must carry them in order, as the plain one does.
    args = ("--port", "0", "--ssl-certfile", tls.cert, "--ssl-keyfile", tls.key)
    body = bytes(range(256)) * 400  # 100 KiB
    with (
        serving("examples.app:app", *args) as (_, url),
        httpx.Client(verify=tls.client_context(), timeout=5) as client,
    ):
        streamed = client.get(url + "/stream")
        echoed = client.post(url + "/echo", content=body)
    assert streamed.headers["transfer-encoding"] == "chunked"
    assert streamed.content == b"x" * (16 * 65536)
    assert echoed.headers["content-length"] == str(len(body))
    assert echoed.content == body


# -- what the options change in requests and responses -----------------------------------------


def test_default_headers() -> None:
    with serving("examples.app:app", "--port", "0") as (_, url):
        response = get(url + "/")
    assert response.headers["server"] == "monoceros"
    assert "date" in response.headers


def test_extra_headers_and_no_server_or_date_header() -> None:
    args = ("--header", "X-A:1", "--header", "X-B: two", "--no-server-header", "--no-date-header")
    with serving("examples.app:app", "--port", "0", *args) as (_, url):
        response = get(url + "/")
    assert response.status_code == 200
    assert response.headers["x-a"] == "1"
    assert response.headers["x-b"] == "two"
    assert "server" not in response.headers
    assert "date" not in response.headers


def test_root_path() -> None:
    with serving("tests.apps:echo_scope", "--port", "0", "--root-path", "/api") as (_, url):
        scope = scope_of(url + "/items?x=1")
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/items"
    assert scope["raw_path"] == "/api/items"


ENV_APP = """
import json
import os

# Read at import time: --env-file must be loaded before the app is imported.
SEEN = {name: os.environ.get(name) for name in ("MONO_GREETING", "MONO_QUOTED", "MONO_MINE")}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": json.dumps(SEEN).encode()})
"""


def test_env_file(write_module: Callable[[str, str], str], tmp_path: Path) -> None:
    directory = write_module("env_app", ENV_APP)
    env_file = tmp_path / "app.env"
    env_file.write_text(
        "# settings\nexport MONO_GREETING=hello # inline\nMONO_QUOTED='a b'\nMONO_MINE=file\n"
    )
    args = ("--app-dir", directory, "--port", "0", "--env-file", str(env_file))
    with serving("env_app:app", *args, env={"MONO_MINE": "process"}) as (_, url):
        seen = get(url + "/").json()
    assert seen == {"MONO_GREETING": "hello", "MONO_QUOTED": "a b", "MONO_MINE": "process"}


FACTORY_APP = """
calls = []


def create_app():
    calls.append(1)

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = b"made by the factory, called %d time(s)" % len(calls)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return app
"""


def test_factory(write_module: Callable[[str, str], str]) -> None:
    directory = write_module("factory_app", FACTORY_APP)
    args = ("--factory", "--app-dir", directory, "--port", "0")
    with serving("factory_app:create_app", *args) as (_, url):
        assert get(url + "/").text == "made by the factory, called 1 time(s)"
        assert get(url + "/").text == "made by the factory, called 1 time(s)"
