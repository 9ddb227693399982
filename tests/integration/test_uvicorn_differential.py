"""The same requests to uvicorn and to monoceros, each started with the same command line: the
scopes the app sees are equal, but for the differences listed here (docs/migrating.md)."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.integration.helpers import TIMEOUT
from tests.utils import REPO, ServerProcess, free_port, read_until_closed

SCOPE_APP = """
import json


def plain(value):
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    seen = json.dumps({"scope": plain(scope), "body": body.decode()}).encode()
    # In a header, so that HEAD shows it too.
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-seen", seen)]})
    await send({"type": "http.response.body", "body": b"ok"})
"""

# What differs, and why (each is in docs/migrating.md):
DIFFERENCES = {
    # Ours: the direct peer, whatever proxy headers say (`monoceros.peer`), and pathsend.
    "extensions": "monoceros adds the monoceros.peer and http.response.pathsend extensions",
    # uvicorn says 2.3; ours raises OSError from send() once the client is gone (2.4).
    "asgi": "spec_version 2.4 against uvicorn's 2.3",
}
# Differences of the run, not of the servers: each listens on its own port.
PER_RUN = ("client", "server")

REQUESTS = {
    "plain": b"GET /items/1?q=a%20b HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n"
    b"Connection: close\r\n\r\n",
    "encoded-path": b"GET /caf%C3%A9/a%2Fb HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "http-1.0": b"GET /old HTTP/1.0\r\nHost: x\r\n\r\n",
    "head": b"HEAD /head HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "chunked": b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    b"Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    "proxied": b"GET /behind HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.7\r\n"
    b"X-Forwarded-Proto: https\r\nConnection: close\r\n\r\n",
}

COMMAND_LINES = {
    "defaults": (),
    "root-path": ("--root-path", "/mnt"),
    "trusted-proxy": ("--forwarded-allow-ips", "127.0.0.1", "--proxy-headers"),
    "no-proxy-headers": ("--no-proxy-headers",),
    "headers": ("--header", "x-a:1", "--no-server-header", "--no-date-header"),
}


@contextlib.contextmanager
def uvicorn_running(args: tuple[str, ...], port: int) -> Iterator[None]:
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", *args, "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process.poll)
        yield
    finally:
        process.terminate()
        process.wait(TIMEOUT)


@contextlib.contextmanager
def monoceros_running(args: tuple[str, ...], port: int) -> Iterator[None]:
    with ServerProcess(*args, "--port", str(port)) as process:
        process.wait_listening(TIMEOUT)
        yield


def wait_for_port(port: int, exited: Callable[[], int | None]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        assert exited() is None, "the server exited"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)


def seen_by_the_app(port: int, request: bytes) -> dict[str, Any]:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(request)
        response = read_until_closed(sock, TIMEOUT)
    head = response.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "x-seen":
            seen: dict[str, Any] = json.loads(value.strip())
            return seen
    raise AssertionError(f"no scope in the response: {response!r}")


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    directory = tmp_path_factory.mktemp("differential")
    (directory / "scope_app.py").write_text(SCOPE_APP)
    return str(directory)


@pytest.mark.parametrize("command_line", sorted(COMMAND_LINES))
def test_same_command_line_same_scopes(app_dir: str, command_line: str) -> None:
    args = ("scope_app:app", "--app-dir", app_dir, *COMMAND_LINES[command_line])
    theirs_port, ours_port = free_port(), free_port()
    with uvicorn_running(args, theirs_port), monoceros_running(args, ours_port):
        differed = set()
        for name, request in REQUESTS.items():
            theirs = seen_by_the_app(theirs_port, request)
            ours = seen_by_the_app(ours_port, request)
            assert ours["body"] == theirs["body"], name
            for key in DIFFERENCES:
                if theirs["scope"].pop(key, None) != ours["scope"].pop(key, None):
                    differed.add(key)
            for key in PER_RUN:
                assert (ours["scope"][key] is None) == (theirs["scope"][key] is None), name
                if ours["scope"][key] is not None:
                    assert ours["scope"][key][0] == theirs["scope"][key][0], (name, key)
                del theirs["scope"][key], ours["scope"][key]
            assert ours["scope"] == theirs["scope"], name
    assert differed == set(DIFFERENCES), "a listed difference is gone: update the list and docs"
