"""Two servers under load at the same time on one core: which costs less per request, to a few
percent, on a machine whose speed drifts from minute to minute.

`run.py` measures servers one after another, and on a shared virtual machine the host's
speed changes between two 5-second runs by more than a change to the hot path moves
requests/s (one build against itself: per-round ratios from 0.75 to 1.33). Here both servers
share the server core at once, each with its own wrk on the load core: the scheduler gives
each half of the core, so the ratio of their requests is the inverse ratio of their CPU cost
per request, and whatever slows the machine slows both alike (one build against itself:
0.97 to 1.03). A ratio above 1 means the first server costs less.

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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from bench.endpoints import ENDPOINTS, Endpoint
from bench.run import comma_list, positive_int, server_option
from bench.servers import DEFAULT_SERVERS, HOST, REPO_ROOT, ServerFailed, ServerSpec, running_server
from bench.wrk import WrkFailed, WrkResult, run_wrk

WARMUP_SECONDS = 1


def spec_of(text: str) -> ServerSpec:
    """A run.py server by name, or NAME=COMMAND."""
    if "=" not in text and text in DEFAULT_SERVERS:
        return ServerSpec(text, DEFAULT_SERVERS[text])
    return server_option(text)


def http1_endpoint(name: str) -> Endpoint:
    by_name = {e.name: e for e in ENDPOINTS if not (e.websocket or e.http2)}
    if name not in by_name:
        raise argparse.ArgumentTypeError(f"unknown endpoint {name!r}; known: {', '.join(by_name)}")
    return by_name[name]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Two servers loaded at once on one core: the ratio of their requests/s "
        "(see bench/paired.py and bench/README.md)."
    )
    add = parser.add_argument
    add("first", type=spec_of, help="NAME=COMMAND, or one of run.py's servers")
    add("second", type=spec_of, help="the one the first is compared with")
    add("--endpoints", type=comma_list, default=["plaintext", "json"])
    add("--rounds", type=positive_int, default=6, help="fresh processes each round (default: 6)")
    add("--duration", type=positive_int, default=3, help="seconds of load per round (default: 3)")
    add("--connections", type=positive_int, default=64, help="per server (default: 64)")
    add("--server-cpus", default="0", help="taskset CPU list both servers share (default: 0)")
    add("--wrk-cpus", default="1", help="taskset CPU list both wrks share (default: 1)")
    add("--json-out", type=Path, help="also write every round's counts here")
    return parser


def load_both(
    ports: tuple[int, int], endpoint: Endpoint, args: argparse.Namespace
) -> list[WrkResult]:
    """Both wrks at once, each against its server."""
    script = str(REPO_ROOT / "bench" / endpoint.script) if endpoint.script else None

    def one(port: int, duration: int) -> WrkResult:
        return run_wrk(
            f"http://{HOST}:{port}{endpoint.path}",
            connections=args.connections,
            duration=duration,
            cpus=args.wrk_cpus,
            script=script,
            headers=endpoint.headers,
        )

    for port in ports:  # one at a time: first requests (imports, caches) are not measured
        one(port, WARMUP_SECONDS)
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(one, ports, (args.duration,) * 2))


def paired_round(endpoint: Endpoint, args: argparse.Namespace) -> tuple[int, int]:
    """Fresh processes of both servers, loaded together: how many requests each answered."""
    with ExitStack() as stack:
        servers = [
            stack.enter_context(running_server(spec, args.server_cpus, startup_timeout=20.0))
            for spec in (args.first, args.second)
        ]
        results = load_both((servers[0].port, servers[1].port), endpoint, args)
        for server in servers:
            server.ensure_alive()
    for spec, result in zip((args.first, args.second), results, strict=True):
        if result.problems:
            raise WrkFailed(f"{spec.name}: {', '.join(result.problems)}")
    return results[0].requests, results[1].requests


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        endpoints = [http1_endpoint(name) for name in args.endpoints]
    except argparse.ArgumentTypeError as exc:
        print(exc, file=sys.stderr)
        return 2
    first, second = args.first.name, args.second.name
    document: dict[str, list[dict[str, int]]] = {}
    failed = False
    for endpoint in endpoints:
        ratios: list[float] = []
        rounds = document.setdefault(endpoint.name, [])
        for index in range(args.rounds):
            try:
                counts = paired_round(endpoint, args)
            except (ServerFailed, WrkFailed) as exc:
                print(f"{endpoint.name} round {index + 1}: failed: {exc}", file=sys.stderr)
                failed = True
                continue
            rounds.append({first: counts[0], second: counts[1]})
            ratios.append(counts[0] / counts[1])
            print(
                f"{endpoint.name} round {index + 1}: {first} {counts[0]:,}, {second} "
                f"{counts[1]:,}: {ratios[-1]:.3f}",
                flush=True,
            )
        if ratios:
            print(
                f"{endpoint.name}: {first}/{second} {statistics.median(ratios):.3f} "
                f"(range {min(ratios):.3f}-{max(ratios):.3f}, {len(ratios)} rounds)",
                flush=True,
            )
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(document, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
