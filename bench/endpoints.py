"""The endpoints of examples/app.py that we measure, and a by-hand check of each answer."""

from __future__ import annotations

import http.client
from dataclasses import dataclass

from examples.app import JSON_DOCUMENT, PLAINTEXT, STREAM_CHUNK, STREAM_CHUNKS

ECHO_BODY_BYTES = 16 * 1024  # must match the body in bench/post_16k.lua


@dataclass(frozen=True)
class Endpoint:
    """One thing we measure: a URL path, how wrk requests it, and what a correct answer is."""

    name: str
    path: str
    description: str
    expected_bytes: int
    script: str | None = None  # a wrk Lua script in bench/, for anything but a plain GET

    @property
    def method(self) -> str:
        return "POST" if self.script else "GET"


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("plaintext", "/", "13-byte text", len(PLAINTEXT)),
    Endpoint("json", "/json", "1 KB JSON", len(JSON_DOCUMENT)),
    Endpoint("echo", "/echo", "16 KiB body echoed", ECHO_BODY_BYTES, script="post_16k.lua"),
    Endpoint("stream", "/stream", "1 MiB streamed", len(STREAM_CHUNK) * STREAM_CHUNKS),
)


def smoke_check(host: str, port: int, endpoint: Endpoint) -> str | None:
    """One request by hand; returns what is wrong, or None.

    wrk checks neither bodies nor lengths, and a fast server that answers wrongly must not look
    like a win, so each start checks status and body size once.
    """
    body = b"x" * ECHO_BODY_BYTES if endpoint.method == "POST" else None
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request(endpoint.method, endpoint.path, body=body)
        response = connection.getresponse()
        data = response.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"check request failed: {exc!r}"
    finally:
        connection.close()
    if response.status != 200:
        return f"check got status {response.status}"
    if len(data) != endpoint.expected_bytes:
        return f"check got {len(data)} body bytes, expected {endpoint.expected_bytes}"
    return None
