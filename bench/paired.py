"""Two servers under load at the same time on one core: which costs less per request, to about
5%, on a machine whose speed drifts from minute to minute.

`run.py` measures servers one after another, and on a shared virtual machine the host's
speed changes between two 5-second runs by more than a change to the hot path moves
requests/s (one build against itself: per-round ratios from 0.75 to 1.33). Here both servers
share the server core at once, each with its own wrk on the load core, and whatever slows the
machine slows both alike (one build against itself: 0.94 to 1.05 over six rounds). Two
ratios per round, above 1 when the first server costs less: their requests (the scheduler
gives each half the core, so while both are CPU-bound this is the inverse ratio of their cost),
and their CPU time per request, read from /proc (which still holds when the load core, shared
by two wrks, is what limits them). Which server starts and warms up first alternates.

This compares two builds or two configurations of one server (before/after a change to the
hot path); it does not replace `make bench`, whose figures against uvicorn and granian are
what the README reports. Usage:

    python bench/paired.py 'new=env PYTHONPATH=build/compiled {python} -m monoceros ...' \\
        'base=env PYTHONPATH=/tmp/base {python} -m monoceros ...' --endpoints plaintext,json

A server is NAME=COMMAND (with `{port}`, and `{python}` for this interpreter) or the name of
one of run.py's servers (monoceros, monoceros+obs, uvicorn...).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from bench.endpoints import Endpoint
from bench.run import comma_list, named_server, positive_int, select_endpoints
from bench.servers import (
    HOST,
    REPO_ROOT,
    RunningServer,
    ServerFailed,
    running_server,
)
from bench.wrk import WrkFailed, WrkResult, run_wrk

WARMUP_SECONDS = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Two servers loaded at once on one core: the ratio of their requests/s "
        "(see bench/paired.py and bench/README.md)."
    )
    add = parser.add_argument
    add("first", type=named_server, help="NAME=COMMAND, or one of run.py's servers")
    add("second", type=named_server, help="the one the first is compared with")
    add("--endpoints", type=comma_list, default=["plaintext", "json"])
    add("--rounds", type=positive_int, default=6, help="fresh processes each round (default: 6)")
    add("--duration", type=positive_int, default=3, help="seconds of load per round (default: 3)")
    add("--connections", type=positive_int, default=64, help="per server (default: 64)")
    add("--server-cpus", default="0", help="taskset CPU list both servers share (default: 0)")
    add("--wrk-cpus", default="1", help="taskset CPU list both wrks share (default: 1)")
    add("--json-out", type=Path, help="also write every round's counts here")
    return parser


@dataclass(frozen=True)
class Share:
    """What one server did in a round: requests answered, and CPU seconds spent on them."""

    requests: int
    cpu_seconds: float

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_seconds * 1e6 / self.requests


def load_both(
    servers: list[RunningServer], endpoint: Endpoint, args: argparse.Namespace
) -> list[Share]:
    """Both wrks at once, each against its server, in the order given (warm-ups included)."""
    script = str(REPO_ROOT / "bench" / endpoint.script) if endpoint.script else None

    def one(server: RunningServer, duration: int) -> WrkResult:
        return run_wrk(
            f"http://{HOST}:{server.port}{endpoint.path}",
            connections=args.connections,
            duration=duration,
            cpus=args.wrk_cpus,
            script=script,
            headers=endpoint.headers,
        )

    for server in servers:  # one at a time: first requests (imports, caches) are not measured
        one(server, WARMUP_SECONDS)
    before = [server.cpu_time() for server in servers]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(one, servers, (args.duration,) * 2))
    spent = [(server.cpu_time() - then).total for server, then in zip(servers, before, strict=True)]
    for server, result in zip(servers, results, strict=True):
        server.ensure_alive()
        if result.problems:
            raise WrkFailed(f"{server.spec.name}: {', '.join(result.problems)}")
    return [Share(r.requests, cpu) for r, cpu in zip(results, spent, strict=True)]


def paired_round(endpoint: Endpoint, args: argparse.Namespace, index: int) -> tuple[Share, Share]:
    """Fresh processes of both servers, loaded together; the first and the second's shares.
    Which starts and warms up first alternates from round to round."""
    specs = [args.first, args.second]
    if index % 2:
        specs.reverse()
    with ExitStack() as stack:
        servers = [
            stack.enter_context(running_server(spec, args.server_cpus, startup_timeout=20.0))
            for spec in specs
        ]
        shares = load_both(servers, endpoint, args)
    if index % 2:
        shares.reverse()
    return shares[0], shares[1]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.first.name == args.second.name:
        parser.error(f"the two servers need names of their own (both are {args.first.name!r})")
    endpoints = select_endpoints(args.endpoints, parser)
    loaded_otherwise = [e.name for e in endpoints if e.websocket or e.http2]
    if loaded_otherwise:
        parser.error(f"wrk loads HTTP/1.1 only, not {', '.join(loaded_otherwise)}")
    first, second = args.first.name, args.second.name
    document: dict[str, Any] = {"first": first, "second": second, "rounds": {}}
    failed = False
    for endpoint in endpoints:
        by_requests: list[float] = []
        by_cpu: list[float] = []
        rounds = document["rounds"].setdefault(endpoint.name, [])
        for index in range(args.rounds):
            try:
                mine, theirs = paired_round(endpoint, args, index)
            except (ServerFailed, WrkFailed) as exc:
                print(f"{endpoint.name} round {index + 1}: failed: {exc}", file=sys.stderr)
                failed = True
                continue
            rounds.append({"first": asdict(mine), "second": asdict(theirs)})
            by_requests.append(mine.requests / theirs.requests)
            by_cpu.append(theirs.cpu_us_per_request / mine.cpu_us_per_request)
            print(
                f"{endpoint.name} round {index + 1}: {first} {mine.requests:,} requests, "
                f"{mine.cpu_us_per_request:.1f} us each; {second} {theirs.requests:,}, "
                f"{theirs.cpu_us_per_request:.1f} us: {by_requests[-1]:.3f} by requests, "
                f"{by_cpu[-1]:.3f} by CPU",
                flush=True,
            )
        if by_requests:
            print(
                f"{endpoint.name}: {first}/{second} by requests {summary(by_requests)}, "
                f"by CPU per request {summary(by_cpu)} ({len(by_requests)} rounds)",
                flush=True,
            )
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(document, indent=2) + "\n")
    return 1 if failed else 0


def summary(ratios: list[float]) -> str:
    return f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})"


if __name__ == "__main__":
    sys.exit(main())
