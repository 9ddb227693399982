"""`make soak`: a monoceros process under mixed load for 10 minutes, sampled every second.

The load, from a few concurrent clients in this process, round-robin: keep-alive connections
(20 requests each), new connections (one request each), 404s and 500s, clients that reset in
the middle of a request body, slow readers of a 1 MiB response, WebSocket sessions (10
messages each), and bursts of 20 keep-alive connections reset while idle (the case that leaks
in uvicorn). Every second: the server's RSS and open fds (/proc), `monoceros_connections_open`
(the admin listener) and the loop's task count (the app's /tasks, bench/soak_app.py).

Pass: after a 1-minute warm-up, RSS grows less than 2 MiB (median of the last 10 s of load
against the median of the 10 s after the warm-up), and once the load stops, fds, connections
and tasks return to their idle values (measured before the load) within 20 s. The samples go to
a JSON file (--output), the summary to stdout; the exit code says pass (0) or fail (1).
127.0.0.1 only; every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import struct
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from websockets.asyncio.client import connect

HOST = "127.0.0.1"
PAGE = os.sysconf("SC_PAGE_SIZE")
MiB = 1024 * 1024
WARMUP = 60.0
RSS_GROWTH_LIMIT = 2 * MiB
SETTLE = 20.0  # seconds for fds, connections and tasks to return to idle after the load
CLIENTS = 8
PAUSE = 0.01  # seconds each client waits between two operations: a steady, modest load


@dataclass
class Sample:
    t: float  # seconds since the load started (negative: idle, before it)
    rss: int
    fds: int
    connections: int
    tasks: int
    operations: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


async def http(port: int, request: bytes) -> bytes:
    """Send `request` (which asks for connection: close) and read until the server closes."""
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(request)
    data = await asyncio.wait_for(reader.read(-1), 10)
    writer.close()
    return data


def get(path: str, close: bool = True) -> bytes:
    extra = b"Connection: close\r\n" if close else b""
    return b"GET %s HTTP/1.1\r\nHost: soak\r\n%s\r\n" % (path.encode(), extra)


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a client that vanishes does."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def read_response(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"content-length: (\d+)", head, re.IGNORECASE)
    assert length is not None, head
    await reader.readexactly(int(length.group(1)))


# -- the kinds of load ---------------------------------------------------------------------------


async def keep_alive(port: int) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    for _ in range(20):
        writer.write(get("/", close=False))
        await read_response(reader)
    writer.close()


async def new_connection(port: int) -> None:
    assert b" 200 " in await http(port, get("/"))


async def not_found(port: int) -> None:
    assert b" 404 " in await http(port, get("/missing"))


async def server_error(port: int) -> None:
    assert b" 500 " in await http(port, get("/boom"))


async def reset_mid_request(port: int) -> None:
    _, writer = await asyncio.open_connection(HOST, port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: soak\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)
    await writer.drain()
    await asyncio.sleep(0.01)
    reset(writer)


async def slow_reader(port: int) -> None:
    reader, writer = await asyncio.open_connection(HOST, port, limit=65536)
    writer.write(get("/stream"))
    received = 0
    while chunk := await asyncio.wait_for(reader.read(65536), 10):
        received += len(chunk)
        await asyncio.sleep(0.02)
    writer.close()
    assert received > MiB, received


async def websocket(port: int) -> None:
    async with connect(f"ws://{HOST}:{port}/ws") as ws:
        for number in range(10):
            await ws.send(str(number))
            assert await ws.recv() == str(number)


async def idle_resets(port: int) -> None:
    """20 keep-alive connections, each served once, then reset while idle."""
    connections = [await asyncio.open_connection(HOST, port) for _ in range(20)]
    for reader, writer in connections:
        writer.write(get("/", close=False))
        await read_response(reader)
    for _, writer in connections:
        reset(writer)


KINDS = (
    keep_alive,
    new_connection,
    not_found,
    server_error,
    reset_mid_request,
    slow_reader,
    websocket,
    idle_resets,
    new_connection,
    keep_alive,
)


# -- sampling ------------------------------------------------------------------------------------


def proc(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/statm", "rb") as statm:
        rss = int(statm.read().split()[1]) * PAGE
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


async def sample(pid: int, port: int, admin: int, t: float, operations: int) -> Sample:
    metrics = await http(admin, get("/metrics"))
    found = re.search(rb"^monoceros_connections_open (\S+)$", metrics, re.MULTILINE)
    assert found is not None
    connections = int(float(found.group(1)))
    tasks = int((await http(port, get("/tasks"))).rpartition(b"\r\n\r\n")[2])
    rss, fds = proc(pid)
    return Sample(round(t, 1), rss, fds, connections, tasks, operations)


async def soak(pid: int, port: int, admin: int, duration: float) -> tuple[list[Sample], bool]:
    samples: list[Sample] = []
    for second in range(5):  # idle, before any load
        samples.append(await sample(pid, port, admin, second - 5.0, 0))
        await asyncio.sleep(1)
    idle = samples[-1]
    done = [0]
    stop = asyncio.Event()
    start = time.monotonic()

    async def client(number: int) -> None:
        index = number
        while not stop.is_set():
            await KINDS[index % len(KINDS)](port)
            index += 1
            done[0] += 1
            await asyncio.sleep(PAUSE)

    clients = [asyncio.create_task(client(n)) for n in range(CLIENTS)]
    while (elapsed := time.monotonic() - start) < duration:
        samples.append(await sample(pid, port, admin, elapsed, done[0]))
        if any(c.done() for c in clients):
            break  # a client failed: its exception is raised below
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - start - elapsed)))
    stop.set()
    await asyncio.gather(*clients)
    stopped = time.monotonic()
    settled = False
    while time.monotonic() - stopped < SETTLE:
        now = await sample(pid, port, admin, time.monotonic() - start, done[0])
        samples.append(now)
        if (now.fds, now.connections, now.tasks) == (idle.fds, idle.connections, idle.tasks):
            settled = True
            break
        await asyncio.sleep(1)
    return samples, settled


def summary(
    samples: list[Sample], duration: float, warmup: float, settled: bool
) -> tuple[str, bool]:
    idle = [s for s in samples if s.t < 0][-1]
    load = [s for s in samples if 0 <= s.t <= duration]
    after = samples[-1]
    warm = statistics.median(s.rss for s in load if warmup <= s.t < warmup + 10)
    end = statistics.median(s.rss for s in load[-10:])
    growth = end - warm
    peak = max(load, key=lambda s: s.connections)
    minutes = [s for s in load if s.t >= warmup and int(s.t) % 60 == 0]
    curve = ", ".join(f"{int(s.t) // 60} min {s.rss / MiB:.1f}" for s in minutes)
    ok = growth < RSS_GROWTH_LIMIT and settled
    lines = [
        f"operations: {load[-1].operations} in {load[-1].t:.0f} s ({CLIENTS} clients)",
        f"RSS (MiB): idle {idle.rss / MiB:.1f}; after warm-up {warm / MiB:.1f}; "
        f"end of load {end / MiB:.1f}; growth {growth / MiB:+.2f} (limit +2.00)",
        f"RSS by minute (MiB): {curve}",
        f"peak under load: {peak.connections} connections, "
        f"{max(s.fds for s in load)} fds, {max(s.tasks for s in load)} tasks",
        f"idle before: fds {idle.fds}, connections {idle.connections}, tasks {idle.tasks}; "
        f"after the load: fds {after.fds}, connections {after.connections}, tasks "
        f"{after.tasks} ({'back to idle' if settled else 'NOT back to idle'} "
        f"{after.t - load[-1].t:.0f} s after)",
        "PASS" if ok else "FAIL",
    ]
    return "\n".join(lines), ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    parser.add_argument("--warmup", type=float, default=WARMUP, help="seconds before RSS counts")
    parser.add_argument("--output", type=Path, default=Path("build/soak.json"))
    args = parser.parse_args()
    port, admin = free_port(), free_port()
    command = [
        sys.executable,
        *("-m", "monoceros", "bench.soak_app:app", "--host", HOST, "--port", str(port)),
        *("--metrics-port", str(admin), "--log-format", "json"),
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    # The access log and the 500s' tracebacks are written (their cost is part of the soak),
    # to nowhere: 10 minutes of them would be gigabytes.
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection((HOST, admin), timeout=1).close()
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.1)
        samples, settled = asyncio.run(soak(server.pid, port, admin, args.duration))
    finally:
        server.terminate()
        server.wait(30)
    text, ok = summary(samples, args.duration, args.warmup, settled)
    args.output.write_text(json.dumps([asdict(s) for s in samples]) + "\n")
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
