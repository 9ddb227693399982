"""Credentials never reach the logs: the values of Authorization, Proxy-Authorization, Cookie
and Set-Cookie (and their parts: a token without its scheme, a cookie's value, Basic
credentials decoded) appear in no line a real server process writes, in either log format,
also when the app raises or logs with them in its message. The test greps everything the
process printed."""

from __future__ import annotations

import base64
import json
import logging
import socket

import pytest

from monoceros.types import Receive, Scope, Send
from tests.utils import ServerProcess, read_until_closed

TOKEN = "tok-0123456789abcdef"
SESSION = "sess-9876543210"
PASSWORD = "hunter2-correct-horse"
PROXY_TOKEN = "proxy-credential-42"
SET_COOKIE = "id-set-by-the-app-77"
BASIC = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
SECRETS = (TOKEN, SESSION, PASSWORD, PROXY_TOKEN, SET_COOKIE, BASIC)

app_logger = logging.getLogger("secrets_app")


def header(scope: Scope, name: bytes) -> str:
    return next((v.decode() for n, v in scope["headers"] if n == name), "")


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    authorization, cookie = header(scope, b"authorization"), header(scope, b"cookie")
    if path == "/raise":
        raise ValueError(f"refused {authorization!r} with cookie {cookie}")
    if path == "/raise-token-only":
        raise PermissionError(f"token {authorization.split()[-1]} expired")
    if path == "/log":
        app_logger.error("login failed for %s (%s)", authorization, header(scope, b"cookie"))
    if path == "/set-cookie-then-raise":
        cookie_line = f"session={SET_COOKIE}; Path=/; HttpOnly".encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"set-cookie", cookie_line)],
            }
        )
        raise RuntimeError(f"failed after setting {cookie_line!r}")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


REQUESTS = [
    ("/raise", f"Authorization: Bearer {TOKEN}", f"Cookie: theme=dark; session={SESSION}"),
    ("/raise-token-only", f"Authorization: Bearer {TOKEN}"),
    ("/raise", f"Authorization: Basic {BASIC}", f"Proxy-Authorization: Bearer {PROXY_TOKEN}"),
    ("/log", f"Authorization: Bearer {TOKEN}", f"Cookie: session={SESSION}"),
    ("/set-cookie-then-raise", f"Cookie: session={SESSION}"),
    ("/ok", f"Authorization: Bearer {TOKEN}", f"Cookie: session={SESSION}"),
]


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_no_credential_reaches_the_logs(log_format: str) -> None:
    with ServerProcess(
        "tests.integration.test_secrets:app", "--port", "0", "--log-format", log_format
    ) as process:
        port = int(process.wait_listening().rsplit(":", 1)[1])
        for path, *headers in REQUESTS:
            lines = [f"GET {path} HTTP/1.1", "Host: x", *headers, "Connection: close"]
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
                read_until_closed(sock)
        # Every request has its access line: everything it logged before is out too.
        for path, *_ in REQUESTS:
            process.wait_for_line(rf"(request|GET).*{path}")
        process.wait_for_line("login failed for")
        output = process.output
    leaked = [secret for secret in SECRETS if secret in output]
    assert not leaked, f"{leaked} in the log output:\n{output}"
    assert output.count("[redacted]") >= 5, output  # the lines are there, the secrets are not
    if log_format == "json":
        for line in process.lines:
            if line.startswith("{"):
                json.loads(line)
