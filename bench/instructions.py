"""CPU instructions per request, counted by valgrind's callgrind: a measure that does not move
with whatever else the machine is doing.

wrk's requests/s need a quiet machine and three runs to trust; an instruction count is the same
from run to run for the same build and input, so it can compare two builds of the hot path on a
busy machine (and in a review). It is not a substitute for `make bench`: it counts work, not
time (no cache misses, no syscalls' cost), and valgrind runs the server ~50x slower.

How: each server runs under `valgrind --tool=callgrind`; after a warm-up, `callgrind_control`
zeroes the counters, one keep-alive connection sends `--requests` requests one after another,
and a dump gives the instructions spent meanwhile. An HTTP/2 endpoint (`h2-plaintext`,
`h2-json`) is loaded by h2load instead, on one connection with eight streams in flight, against
the server started with run.py's HTTP/2 arguments. Stdlib only, plus valgrind (and h2load).

    python bench/instructions.py --endpoints plaintext,echo
    python bench/instructions.py --server 'base=env PYTHONPATH=/tmp/base {python} -m monoceros ...'
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.endpoints import ECHO_BODY_BYTES, ENDPOINTS, Endpoint
from bench.run import named_server
from bench.servers import DEFAULT_SERVERS, HOST, free_port, http2_args, server_env
from bench.wrk import parse_h2load, run_bounded
from bench.ws_load import ECHO, FRAME

WARMUP_REQUESTS = 200
# HTTP/2 streams in flight on the one connection h2load opens (run.py's default per connection).
H2_STREAMS = 8
# Seconds h2load may take for a count's requests, against a server slowed ~50x by valgrind.
H2LOAD_LIMIT = 600


@dataclass(frozen=True)
class Count:
    server: str
    endpoint: str
    instructions_per_request: float


def request_bytes(endpoint: Endpoint, headers: tuple[str, ...] = ()) -> bytes:
    """`endpoint`'s request, with its own headers and `headers` ("name: value")."""
    lines = (*(f"{name}: {value}" for name, value in endpoint.headers), *headers)
    extra = "".join(f"{line}\r\n" for line in lines)
    if endpoint.method == "POST":
        body = b"x" * ECHO_BODY_BYTES
        head = (
            f"POST {endpoint.path} HTTP/1.1\r\nHost: {HOST}\r\n{extra}"
            f"Content-Length: {len(body)}\r\n"
        )
        return head.encode() + b"\r\n" + body
    return f"GET {endpoint.path} HTTP/1.1\r\nHost: {HOST}\r\n{extra}\r\n".encode()


def proxy_v2_header() -> bytes:
    """A PROXY protocol v2 header as an AWS NLB sends it: IPv4 addresses and a VPC endpoint."""
    vpce = b"\x01vpce-08d2bf15fac5001c9"
    block = (
        socket.inet_aton("203.0.113.7")
        + socket.inet_aton("10.0.0.5")
        + (51000).to_bytes(2, "big")
        + (8000).to_bytes(2, "big")
        + b"\xea"
        + len(vpce).to_bytes(2, "big")
        + vpce
    )
    return b"\r\n\r\n\x00\r\nQUIT\n\x21\x11" + len(block).to_bytes(2, "big") + block


class Client:
    """One request at a time, each response read to its end: on one keep-alive connection,
    or (`fresh`) on a new connection each, opened with `prefix` (a PROXY header)."""

    def __init__(self, port: int, *, fresh: bool = False, prefix: bytes = b"") -> None:
        self.port = port
        self.fresh = fresh
        self.prefix = prefix
        self.sock = socket.create_connection((HOST, port), timeout=120)
        self.buffer = b""
        self.first = True

    def exchange(self, request: bytes) -> None:
        if self.fresh and not self.first:
            self.sock.close()
            self.sock = socket.create_connection((HOST, self.port), timeout=120)
            self.buffer = b""
            self.first = True
        if self.first:
            request = self.prefix + request
            self.first = False
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if not head.startswith(b"HTTP/1.1 200 "):
            raise RuntimeError(f"unexpected response {head[:60]!r}")
        while len(self.buffer) < length:
            self._read()
        self.buffer = self.buffer[length:]

    def _read(self) -> None:
        data = self.sock.recv(1 << 20)
        if not data:
            raise RuntimeError("the server closed the connection")
        self.buffer += data


class WebSocketClient:
    """One WebSocket session: the handshake, then a message at a time, each echo read whole
    (bench/ws_load.py's prebuilt frames). A "request" is one message."""

    def __init__(self, port: int, path: str) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=120)
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(65536)
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101 "):
            raise RuntimeError(f"handshake refused: {head[:60]!r}")

    def exchange(self, request: bytes) -> None:
        self.sock.sendall(FRAME)
        while len(self.buffer) < len(ECHO):
            data = self.sock.recv(65536)
            if not data:
                raise RuntimeError("the server closed the session")
            self.buffer += data
        if self.buffer[: len(ECHO)] != ECHO:
            raise RuntimeError(f"unexpected echo {self.buffer[:40]!r}")
        self.buffer = self.buffer[len(ECHO) :]


class Http2Client:
    """h2load, one connection at a time (HTTP/2 by prior knowledge): `exchange_many` sends
    `requests` requests with H2_STREAMS in flight and checks that every one got a 2xx."""

    def __init__(self, port: int, path: str) -> None:
        self.url = f"http://{HOST}:{port}{path}"

    def exchange_many(self, requests: int) -> None:
        command = ["h2load", "-c1", f"-m{H2_STREAMS}", f"-n{requests}", self.url]
        result, _ = parse_h2load(run_bounded("h2load", command, H2LOAD_LIMIT))
        problems = result.problems
        if result.requests != requests:
            problems.append(f"{result.requests} of {requests} requests succeeded")
        if problems:
            raise RuntimeError(f"h2load: {', '.join(problems)}")


def wait_for_port(process: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode}")
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("the server did not listen in time")


def count(
    name: str,
    template: str,
    endpoint: Endpoint,
    requests: int,
    out_dir: str,
    only: str | None = None,
    fresh: bool = False,
    opening: bytes = b"",
    headers: tuple[str, ...] = (),
) -> Count:
    port = free_port()
    command = shlex.split(
        template.replace("{python}", shlex.quote(sys.executable)).replace("{port}", str(port))
    )
    prefix = os.path.join(out_dir, f"{name}-{endpoint.name}")
    # --trace-children: commands may start with `env VAR=...`, which execs the server.
    valgrind = ["valgrind", "--tool=callgrind", "--trace-children=yes", "-q"]
    valgrind.append(f"--callgrind-out-file={prefix}.%p")
    if only:  # count only inside this function (and what it calls)
        valgrind.append(f"--toggle-collect={only}")
    env = server_env()
    env["PYTHONHASHSEED"] = "0"
    process = subprocess.Popen(
        valgrind + command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(process, port, timeout=300)
        load = _load(port, endpoint, fresh, opening, headers)
        load(WARMUP_REQUESTS)
        control = ["callgrind_control", str(process.pid)]
        subprocess.run([*control, "--zero"], check=True, capture_output=True)
        load(requests)
        subprocess.run([*control, "--dump"], check=True, capture_output=True)
    finally:
        process.kill()
        process.wait()
    total = _totals(Path(f"{prefix}.{process.pid}.1"))
    return Count(name, endpoint.name, total / requests)


def _load(
    port: int, endpoint: Endpoint, fresh: bool, opening: bytes, headers: tuple[str, ...]
) -> Callable[[int], None]:
    """What sends `n` of `endpoint`'s requests, each answered before the call returns."""
    if endpoint.http2:
        return Http2Client(port, endpoint.path).exchange_many
    client: Client | WebSocketClient
    if endpoint.websocket:
        client = WebSocketClient(port, endpoint.path)
    else:
        client = Client(port, fresh=fresh, prefix=opening)
    request = request_bytes(endpoint, headers)

    def load(n: int) -> None:
        for _ in range(n):
            client.exchange(request)

    return load


def _totals(dump: Path) -> int:
    for line in dump.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"no instruction total in {dump}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--server",
        action="append",
        default=[],
        type=named_server,
        metavar="NAME=COMMAND",
        help="a server to count, or one of run.py's by name (default: monoceros, "
        "monoceros+obs); {port} and {python}",
    )
    parser.add_argument("--endpoints", default="plaintext,json,echo")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--keep", type=Path, help="keep the callgrind dumps in this folder")
    parser.add_argument(
        "--only", help="count only inside this C function, e.g. '*HttpProtocol___data_received'"
    )
    parser.add_argument(
        "--fresh-connections", action="store_true", help="a new connection for each request"
    )
    parser.add_argument(
        "--proxy-v2",
        action="store_true",
        help="open each connection with a PROXY protocol v2 header (serve with --proxy-protocol)",
    )
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="send this header with every request (repeatable)",
    )
    args = parser.parse_args()
    headers = tuple(args.header)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        parser.error("valgrind (with callgrind_control) is not installed: apt-get install valgrind")
    servers = {spec.name: spec.template for spec in args.server} or {
        name: DEFAULT_SERVERS[name] for name in ("monoceros", "monoceros+obs")
    }
    by_name = {endpoint.name: endpoint for endpoint in ENDPOINTS}
    endpoints = [by_name[name] for name in args.endpoints.split(",")]
    if any(endpoint.http2 for endpoint in endpoints) and shutil.which("h2load") is None:
        parser.error("h2load is not installed: apt-get install nghttp2-client")
    print(f"{'server':<20} {'endpoint':<10} {'instructions/request':>22}")
    with tempfile.TemporaryDirectory(prefix="monoceros-callgrind-") as scratch:
        out_dir = str(args.keep) if args.keep else scratch
        os.makedirs(out_dir, exist_ok=True)
        for endpoint in endpoints:
            for name, template in servers.items():
                extra = http2_args(name) if endpoint.http2 else None
                if extra:
                    template = f"{template} {extra}"
                result = count(
                    name,
                    template,
                    endpoint,
                    args.requests,
                    out_dir,
                    args.only,
                    fresh=args.fresh_connections,
                    opening=proxy_v2_header() if args.proxy_v2 else b"",
                    headers=headers,
                )
                per_request = f"{result.instructions_per_request:,.0f}"
                print(f"{name:<20} {endpoint.name:<10} {per_request:>22}", flush=True)


if __name__ == "__main__":
    main()
