"""Benchmark ASGI servers side by side with wrk; report medians and ratios against uvicorn.

Why it is built this way (see bench/README.md):

- Absolute requests/s swing ±40% between runs on our machines, and the host's speed drifts from
  minute to minute; ratios measured side by side hold. So each round starts every server, then
  loads each endpoint on every server in turn (a ratio compares figures taken seconds apart),
  the order of servers rotates each round, and we report the median per server and endpoint
  with its ratio to uvicorn.
- The server is pinned to one CPU and wrk to another (`taskset`), so they never share a core.
- We also read the server's CPU time per request: once wrk's core is saturated, requests/s
  stops telling servers apart, CPU per request does not.
- Each server starts on a fresh ephemeral port; one that fails is reported, and the rest go on.

Stdlib only, plus the `wrk` and `taskset` binaries. Usage: `python bench/run.py --help`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

# Run as a script (`python bench/run.py`), sys.path holds bench/, not the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.endpoints import ENDPOINTS, Endpoint, smoke_check
from bench.report import Measurement, build_table, render_report, results_document
from bench.servers import (
    DEFAULT_SERVERS,
    HOST,
    REPO_ROOT,
    WORKER_ENDPOINTS,
    WORKER_SERVERS,
    RunningServer,
    ServerFailed,
    ServerSpec,
    http2_args,
    running_server,
)
from bench.wrk import WrkFailed, WrkResult, run_h2load, run_wrk, run_ws_load

BUSY_MACHINE = 0.10  # background CPU use (all cores) above which the report warns
# Steal (CPU time the hypervisor gave other guests) above which the report warns: at 40%, on
# 2026-12-07, one run put the ASGI floor at 1.77x uvicorn on plaintext, where paired it is 2.63x.
NOISY_HOST = 0.05
# HTTP/2 requests in flight per connection (h2load -m) unless --h2-streams says: a browser's
# page load has as many; h2load gets --connections / streams connections, so as many requests
# are in flight as wrk has on HTTP/1.1.
H2_STREAMS = 8


@dataclass(frozen=True)
class Settings:
    """Everything that shapes a run, validated once from the command line."""

    duration: int
    rounds: int
    connections: int
    warmup: int
    server_cpus: str
    wrk_cpus: str
    startup_timeout: float
    baseline: str
    h2_streams: int = H2_STREAMS


# --- measuring ----------------------------------------------------------------------------------


def cpus_of(spec: ServerSpec, settings: Settings) -> tuple[str, str]:
    """(the server's CPUs, the load generator's): apart, or for the workers row both all."""
    if spec.workers_row:
        everything = ",".join(str(cpu) for cpu in sorted(os.sched_getaffinity(0)))
        return everything, everything
    return settings.server_cpus, settings.wrk_cpus


def load(server: RunningServer, endpoint: Endpoint, settings: Settings, duration: int) -> WrkResult:
    wrk_cpus = cpus_of(server.spec, settings)[1]
    if endpoint.websocket:
        return run_ws_load(
            HOST,
            server.port,
            endpoint.path,
            connections=settings.connections,
            duration=duration,
            cpus=wrk_cpus,
        )
    if endpoint.http2:
        return run_h2load(
            f"http://{HOST}:{server.port}{endpoint.path}",
            connections=settings.connections // settings.h2_streams or 1,
            streams=settings.h2_streams,
            duration=duration,
            cpus=wrk_cpus,
        )
    script = str(REPO_ROOT / "bench" / endpoint.script) if endpoint.script else None
    return run_wrk(
        f"http://{HOST}:{server.port}{endpoint.path}",
        connections=settings.connections,
        duration=duration,
        cpus=wrk_cpus,
        script=script,
        headers=endpoint.headers,
    )


def measure(
    server: RunningServer, endpoint: Endpoint, settings: Settings, round_no: int, check: str | None
) -> Measurement:
    """One wrk run, bracketed by readings of the server's CPU time."""
    problems = [check] if check else []
    result: WrkResult | None = None
    cpu_before, wall_before = server.cpu_time(), time.monotonic()
    client_before = children_cpu_seconds()
    try:
        result = load(server, endpoint, settings, settings.duration)
        problems += result.problems
    except WrkFailed as exc:
        problems.append(str(exc))
    cpu, wall = server.cpu_time() - cpu_before, time.monotonic() - wall_before
    client = children_cpu_seconds() - client_before
    server.ensure_alive()
    return Measurement(
        round_no,
        server.spec.name,
        endpoint.name,
        result,
        cpu.total,
        wall,
        problems,
        client,
        system_cpu_seconds=cpu.system,
    )


def children_cpu_seconds() -> float:
    """CPU time of this process's finished children: the load generators, each run to its end
    (the servers are still running, so they are not in it)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def warm_up(server: RunningServer, settings: Settings, endpoint: Endpoint) -> None:
    """~1 s of load, so first-request costs (imports, allocations) are not measured."""
    if settings.warmup <= 0:
        return
    try:
        result = load(server, endpoint, settings, settings.warmup)
    except WrkFailed as exc:
        raise ServerFailed(f"warm-up failed ({exc})") from None
    server.ensure_alive()
    if result.requests == 0:
        raise ServerFailed("warm-up completed no requests")


@dataclass
class Started:
    """A server started for a round, with the endpoints it is measured on and their checks."""

    server: RunningServer
    endpoints: list[Endpoint]
    checks: dict[str, str | None]


def start_server(
    spec: ServerSpec, endpoints: Sequence[Endpoint], settings: Settings, stack: ExitStack
) -> Started:
    """Start one server for the round (stopped when `stack` closes), check and warm it up."""
    server = stack.enter_context(
        running_server(spec, cpus_of(spec, settings)[0], settings.startup_timeout)
    )
    try:
        checks = {endpoint.name: smoke_check(HOST, server.port, endpoint) for endpoint in endpoints}
        warm_up(server, settings, endpoints[0])
    except ServerFailed as exc:
        raise server.failure(exc) from None
    return Started(server, list(endpoints), checks)


def start_round(
    spec: ServerSpec,
    endpoints: Sequence[Endpoint],
    settings: Settings,
    round_no: int,
    stack: ExitStack,
) -> tuple[list[Started], list[Measurement]]:
    """The server for the HTTP/1.1 endpoints, and a second process with HTTP/2 on for the h2-*
    ones (HTTP/1.1 is measured as users run it, without HTTP/2 turned on); and the h2-* rows
    of a server that serves no HTTP/2, recorded as such."""
    if spec.workers_row:
        endpoints = [endpoint for endpoint in endpoints if endpoint.name in WORKER_ENDPOINTS]
    plain = [endpoint for endpoint in endpoints if not endpoint.http2]
    http2 = [endpoint for endpoint in endpoints if endpoint.http2]
    started: list[Started] = []
    unserved: list[Measurement] = []
    if plain:
        started.append(start_server(spec, plain, settings, stack))
    if http2 and spec.http2_args is None:
        unserved = [
            Measurement(round_no, spec.name, endpoint.name, None, None, None, ["serves no HTTP/2"])
            for endpoint in http2
        ]
    elif http2:
        started.append(start_server(spec.with_http2(), http2, settings, stack))
    return started, unserved


def measure_started(
    started: Started, endpoint: Endpoint, settings: Settings, round_no: int
) -> Measurement:
    check = started.checks[endpoint.name]
    if endpoint.websocket and check is not None:
        # Not served at all (the ceiling and the floor speak no WebSocket): nothing to load.
        return Measurement(
            round_no, started.server.spec.name, endpoint.name, None, None, None, [check]
        )
    try:
        return measure(started.server, endpoint, settings, round_no, check)
    except ServerFailed as exc:
        raise started.server.failure(exc) from None


def run_rounds(
    specs: Sequence[ServerSpec], endpoints: Sequence[Endpoint], settings: Settings
) -> tuple[list[Measurement], dict[str, str]]:
    """Interleave: each round starts every server (in a rotated order), then loads each
    endpoint on every server in turn, so the figures a ratio compares are taken seconds apart,
    not minutes (the machine's speed drifts between minutes). The servers wait idle on their
    core while another is loaded.

    A server that fails is reported once and skipped from then on.
    """
    measurements: list[Measurement] = []
    failures: dict[str, str] = {}

    def failed(name: str, round_no: int, exc: ServerFailed) -> None:
        failures[name] = exc.short()
        log(f"[round {round_no}] {name} FAILED: {exc.reason}")
        if exc.log_tail:
            log("    " + exc.log_tail.replace("\n", "\n    "))

    for round_no in range(1, settings.rounds + 1):
        shift = (round_no - 1) % len(specs)
        with ExitStack() as stack:
            started: list[Started] = []
            for spec in [*specs[shift:], *specs[:shift]]:
                if spec.name in failures:
                    continue
                try:
                    servers, unserved = start_round(spec, endpoints, settings, round_no, stack)
                except ServerFailed as exc:
                    failed(spec.name, round_no, exc)
                    continue
                started += servers
                for measurement in unserved:
                    log_progress(measurement, settings.rounds)
                    measurements.append(measurement)
            for endpoint in endpoints:
                for entry in started:
                    name = entry.server.spec.name
                    if name in failures or endpoint not in entry.endpoints:
                        continue
                    try:
                        measurement = measure_started(entry, endpoint, settings, round_no)
                    except ServerFailed as exc:
                        failed(name, round_no, exc)
                        continue
                    log_progress(measurement, settings.rounds)
                    measurements.append(measurement)
    return measurements, failures


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def log_progress(m: Measurement, rounds: int) -> None:
    figures = "no result"
    if m.result and m.cpu_us_per_request is not None and m.cpu_busy is not None:
        p99 = f"{m.result.p99_ms:.2f} ms" if m.result.p99_ms is not None else "-"
        figures = (
            f"{m.result.requests_per_sec:>9,.0f} req/s  p99 {p99:>9}  "
            f"{m.cpu_us_per_request:5.1f} µs CPU/req  {m.cpu_busy:4.0%} busy"
        )
    flag = f"  [{'; '.join(m.problems)}]" if m.problems else ""
    log(f"[round {m.round}/{rounds}] {m.server:<12} {m.endpoint:<10} {figures}{flag}")


def cpu_ticks() -> list[int]:
    """The machine's CPU time so far, all CPUs (/proc/stat, proc(5)): user, nice, system, idle,
    iowait, irq, softirq, steal."""
    with open("/proc/stat") as stat:
        return [int(value) for value in stat.readline().split()[1:9]]


def background_load(seconds: float = 1.0) -> float:
    """How busy the machine is before we load it: the fraction of all CPUs in use.

    Another process on the server's or wrk's core skews every figure, and nothing else in the
    report would show it.
    """

    def busy_and_total() -> tuple[int, int]:
        ticks = cpu_ticks()
        idle = ticks[3] + ticks[4]  # idle and iowait
        return sum(ticks) - idle, sum(ticks)

    busy_before, total_before = busy_and_total()
    time.sleep(seconds)
    busy_after, total_after = busy_and_total()
    return (busy_after - busy_before) / max(total_after - total_before, 1)


def steal_between(before: list[int], after: list[int]) -> float:
    """The share of the CPUs' time the hypervisor gave to other guests ("steal") between two
    `cpu_ticks()`: on a shared virtual machine, time in which every server ran slower, by
    however much the moment it was measured happened to lose."""
    return (after[7] - before[7]) / max(sum(after) - sum(before), 1)


# --- command line -------------------------------------------------------------------------------


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def server_option(text: str) -> ServerSpec:
    """`--server 'name=command with {port}'`: the one-line way to add a server."""
    name, sep, template = text.partition("=")
    name, template = name.strip(), template.strip()
    if not sep or not name or not template:
        raise argparse.ArgumentTypeError(f"expected NAME=COMMAND, got {text!r}")
    if "{port}" not in template:
        raise argparse.ArgumentTypeError(f"the command for {name!r} has no {{port}} placeholder")
    return ServerSpec(name, template)


def named_server(text: str) -> ServerSpec:
    """One of run.py's servers by name (`monoceros`, `floor`...), or NAME=COMMAND."""
    if "=" not in text and text in DEFAULT_SERVERS:
        return ServerSpec(text, DEFAULT_SERVERS[text])
    return server_option(text)


def comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Benchmark ASGI servers side by side with wrk (see bench/README.md)."
    )
    add = parser.add_argument
    add(
        "--server",
        type=server_option,
        action="append",
        default=[],
        metavar="NAME=COMMAND",
        help="add a server (or replace a default); COMMAND has {port} and may use {python}",
    )
    add(
        "--only",
        type=comma_list,
        help="comma-separated servers to run (default: all of "
        + ",".join(DEFAULT_SERVERS)
        + " and any --server)",
    )
    add(
        "--endpoints",
        type=comma_list,
        default=",".join(endpoint.name for endpoint in ENDPOINTS),
        help="comma-separated endpoints (default: %(default)s)",
    )
    add(
        "--h2-streams",
        type=positive_int,
        default=H2_STREAMS,
        help="HTTP/2 streams in flight per h2load connection, of --connections in all "
        "(default: %(default)s)",
    )
    add(
        "--duration",
        type=positive_int,
        default=5,
        help="seconds per wrk run (default: %(default)s)",
    )
    add(
        "--rounds",
        type=positive_int,
        default=3,
        help="interleaved rounds; medians are reported (default: %(default)s)",
    )
    add(
        "--connections",
        type=positive_int,
        default=64,
        help="wrk connections (default: %(default)s)",
    )
    add(
        "--warmup",
        type=int,
        default=1,
        help="seconds of warm-up after each start, 0 for none (default: %(default)s)",
    )
    add("--monoceros-args", default="", help="extra arguments appended to the monoceros command")
    add(
        "--baseline", default="uvicorn", help="the server ratios are against (default: %(default)s)"
    )
    add("--server-cpus", default="0", help="taskset CPU list for the server (default: %(default)s)")
    add("--wrk-cpus", default="1", help="taskset CPU list for wrk (default: %(default)s)")
    add(
        "--startup-timeout",
        type=float,
        default=20.0,
        help="seconds to wait for the port (default: %(default)s)",
    )
    add("--json-out", type=Path, help="also write raw results as JSON to this file")
    return parser


def select_servers(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[ServerSpec]:
    """Defaults, then --server additions/overrides, then --monoceros-args, then --only."""
    templates = {**DEFAULT_SERVERS, **WORKER_SERVERS}
    for spec in args.server:
        templates[spec.name] = spec.template
    if args.monoceros_args and "monoceros" in templates:
        templates["monoceros"] += " " + args.monoceros_args
    names = args.only or list(templates)
    unknown = [name for name in names if name not in templates]
    if unknown:
        parser.error(f"unknown server(s) {', '.join(unknown)}; known: {', '.join(templates)}")
    return [
        ServerSpec(name, templates[name], http2_args(name), name in WORKER_SERVERS)
        for name in names
    ]


def select_endpoints(names: list[str], parser: argparse.ArgumentParser) -> list[Endpoint]:
    by_name = {endpoint.name: endpoint for endpoint in ENDPOINTS}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        parser.error(f"unknown endpoint(s) {', '.join(unknown)}; known: {', '.join(by_name)}")
    return [by_name[name] for name in names]


def parse_cpu_list(text: str) -> set[int] | None:
    """taskset's list syntax (`0`, `0,2`, `0-3`); None if it doesn't parse."""
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            low, _, high = part.partition("-")
            cpus.update(range(int(low), int(high or low) + 1))
    except ValueError:
        return None
    return cpus


def check_environment(settings: Settings, parser: argparse.ArgumentParser) -> None:
    """Fail before starting anything if wrk or taskset is missing or a CPU doesn't exist."""
    for binary, hint in (
        ("wrk", "apt-get install -y wrk"),
        ("h2load", "apt-get install -y nghttp2-client"),
        ("curl", "apt-get install -y curl"),
        ("taskset", "from util-linux"),
    ):
        if shutil.which(binary) is None:
            parser.error(f"{binary} not found on PATH ({hint})")
    available = os.sched_getaffinity(0)
    chosen: list[set[int]] = []
    for option, text in (
        ("--server-cpus", settings.server_cpus),
        ("--wrk-cpus", settings.wrk_cpus),
    ):
        cpus = parse_cpu_list(text)
        if cpus is None or not cpus <= available:
            parser.error(f"{option} {text!r} is not within the usable CPUs {sorted(available)}")
        chosen.append(cpus)
    if chosen[0] & chosen[1]:
        log("warning: server and wrk share a CPU; results will mostly measure contention")


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(
        duration=args.duration,
        rounds=args.rounds,
        connections=args.connections,
        warmup=max(args.warmup, 0),
        server_cpus=args.server_cpus,
        wrk_cpus=args.wrk_cpus,
        startup_timeout=args.startup_timeout,
        baseline=args.baseline,
        h2_streams=args.h2_streams,
    )


def write_json(path: Path, document: dict[str, object]) -> None:
    path.write_text(json.dumps(document, indent=2) + "\n")
    log(f"raw results written to {path}")


def cpu_model() -> str:
    """The processor's name: ratios between servers move with it (the same code measured
    1.80x uvicorn on one machine of ours and 2.02x on another), so every report names it."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    """Exit status 1 only if no server could be measured at all."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Stopped with SIGTERM, exit through the round's ExitStack, which stops its servers (each
    # in a process group of its own, which no signal to this one reaches).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    specs = select_servers(args, parser)
    endpoints = select_endpoints(args.endpoints, parser)
    settings = settings_from(args)
    check_environment(settings, parser)
    load_seconds = len(specs) * (settings.warmup + len(endpoints) * settings.duration)
    log(
        f"{len(specs)} server(s) x {len(endpoints)} endpoint(s) x {settings.rounds} round(s): "
        f"about {settings.rounds * load_seconds} s of load, plus start-ups"
    )

    idle_load = background_load()
    if idle_load > BUSY_MACHINE:
        log(f"warning: the machine is already {idle_load:.0%} busy; results will be noisy")

    ticks_before = cpu_ticks()
    measurements, failures = run_rounds(specs, endpoints, settings)
    steal = steal_between(ticks_before, cpu_ticks())
    if steal > NOISY_HOST:
        log(f"warning: the hypervisor took {steal:.0%} of the CPUs' time during the run")
    names = [spec.name for spec in specs]
    table = build_table(endpoints, names, measurements, failures)
    cpu, cores = cpu_model(), len(os.sched_getaffinity(0))
    header = (
        f"Medians of {settings.rounds} interleaved round(s): wrk -t1 -c{settings.connections} "
        f"-d{settings.duration}s on CPU {settings.wrk_cpus}, server on CPU {settings.server_cpus}"
        f" ({cpu}, {cores} cores; Python {platform.python_version()},"
        f" {os.path.realpath(sys.executable)})."
    )
    if idle_load > BUSY_MACHINE:
        header += (
            f"\n⚠ Before the run the machine was already {idle_load:.0%} busy with other"
            " processes: absolute figures and CPU busy are skewed, ratios less so."
        )
    if steal > NOISY_HOST:
        header += (
            f"\n⚠ During the run the hypervisor gave {steal:.0%} of the CPUs' time to other"
            " guests (steal, /proc/stat): each figure lost however much its moment lost, so"
            " ratios move too; measure again, or compare with bench/paired.py."
        )
    else:
        header += f" Steal during the run: {steal:.1%} of the CPUs' time."
    print(render_report(endpoints, names, table, failures, settings.baseline, header))
    if args.json_out:
        write_json(
            args.json_out,
            {
                "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "machine": {"platform": platform.platform(), "cpu": cpu, "cpus": cores},
                "python": sys.version,
                "settings": asdict(settings),
                "background_load": idle_load,
                "steal": steal,
                "servers": {spec.name: spec.template for spec in specs},
                **results_document(measurements, failures, table),
            },
        )
    return 1 if len(failures) == len(specs) else 0


if __name__ == "__main__":
    sys.exit(main())
