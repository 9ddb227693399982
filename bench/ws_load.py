"""WebSocket echo load: N connections, each sending a message and waiting for its echo, again
and again for D seconds. Prints one JSON object: messages, messages/s, p99 latency.

wrk speaks no WebSocket, so this is the harness's load generator for `ws-echo`. It is built to
cost the client little per message (a prebuilt masked frame, one read and one write each way,
no library) so that the server under test stays the bottleneck; like wrk, it runs pinned to
its own CPU. Stdlib plus uvloop. Usage: python bench/ws_load.py --port P [--connections 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import cast

import uvloop

MESSAGE = b"0123456789abcdef0123456789abcdef"  # 32 bytes of text
MASK = b"\x12\x34\x56\x78"


def masked_text_frame(payload: bytes) -> bytes:
    """A client's single-frame text message (RFC 6455 5.2; clients must mask)."""
    assert len(payload) < 126
    masked = bytes(byte ^ MASK[i % 4] for i, byte in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + MASK + masked


FRAME = masked_text_frame(MESSAGE)
ECHO = bytes([0x81, len(MESSAGE)]) + MESSAGE  # what the server sends back, unmasked


class EchoClient(asyncio.Protocol):
    def __init__(self, host: str, port: int, path: str, run: Run) -> None:
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.run = run
        self.buffer = b""
        self.open = False
        self.sent_at = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        transport = self.transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.open:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            if not head.startswith(b"HTTP/1.1 101"):
                self.run.fail(f"handshake refused: {head.splitlines()[0]!r}")
                return
            self.open, self.buffer = True, rest
            self.send()
            return
        while len(self.buffer) >= len(ECHO):  # echoes arrive one at a time: we wait for each
            frame, self.buffer = self.buffer[: len(ECHO)], self.buffer[len(ECHO) :]
            if frame != ECHO:
                self.run.fail(f"unexpected frame {frame[:16]!r}")
                return
            self.run.completed(time.perf_counter() - self.sent_at)
            self.send()

    def send(self) -> None:
        assert self.transport is not None
        if self.run.running:
            self.sent_at = time.perf_counter()
            self.transport.write(FRAME)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.run.running:
            self.run.fail(f"connection lost: {exc!r}")


class Run:
    def __init__(self) -> None:
        self.running = True
        self.latencies: list[float] = []
        self.problems: list[str] = []

    def completed(self, latency: float) -> None:
        if self.running:
            self.latencies.append(latency)

    def fail(self, problem: str) -> None:
        if problem not in self.problems:
            self.problems.append(problem)


async def main(args: argparse.Namespace) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    run = Run()
    clients = []
    for _ in range(args.connections):
        _, client = await loop.create_connection(
            lambda: EchoClient(args.host, args.port, args.path, run), args.host, args.port
        )
        clients.append(client)
    started = time.perf_counter()
    await asyncio.sleep(args.duration)
    run.running = False
    elapsed = time.perf_counter() - started
    for client in clients:
        if client.transport is not None:
            client.transport.close()
    latencies = sorted(run.latencies)
    p99 = latencies[int(len(latencies) * 0.99)] * 1000 if latencies else None
    return {
        "messages": len(latencies),
        "messages_per_sec": len(latencies) / elapsed,
        "p99_ms": p99,
        "problems": run.problems,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/ws")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=5.0)
    arguments = parser.parse_args()
    print(json.dumps(uvloop.run(asyncio.wait_for(main(arguments), arguments.duration + 30))))
