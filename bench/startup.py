"""Start-up and memory, side by side: how long each server takes from exec to its first `200`,
and how much memory it holds once idle (its process group's resident set, after 200 requests).

Start-up counts for rolling deploys, autoscaling and `--reload`; idle memory for density (how
many pods fit a node). Each server is started ROUNDS times; the report gives the median and the
spread. Usage: PYTHONPATH=build/compiled .venv/bin/python bench/startup.py [--rounds N]
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.servers import HOST, REPO_ROOT, ServerSpec, free_port, server_env, stop

# The servers as users run them in production: monoceros with its JSON access log and metrics
# (the defaults), the others as configured in bench/servers.py's DEFAULT_SERVERS.
SERVERS: dict[str, str] = {
    "monoceros+obs": "{python} -m monoceros examples.app:app --host 127.0.0.1 --port {port}"
    " --metrics-port 0 --log-format json",
    "monoceros": "{python} -m monoceros examples.app:app --host 127.0.0.1 --port {port}"
    " --no-access-log --no-metrics --log-level warning",
    "uvicorn": "{python} -m uvicorn examples.app:app --host 127.0.0.1 --port {port}"
    " --no-access-log --log-level warning --loop uvloop --http httptools",
    "granian": "{python} -m granian --interface asgi --host 127.0.0.1 --port {port}"
    " --loop uvloop --log-level warning --no-access-log examples.app:app",
}
TIMEOUT = 30.0
WARM_REQUESTS = 200


def first_ok(port: int, deadline: float) -> float:
    """Poll until GET / answers 200; the monotonic time it did."""
    while time.monotonic() < deadline:
        connection = http.client.HTTPConnection(HOST, port, timeout=1)
        try:
            connection.request("GET", "/")
            if connection.getresponse().status == 200:
                return time.monotonic()
        except OSError:
            time.sleep(0.002)
        finally:
            connection.close()
    raise TimeoutError(f"no 200 on port {port} within {TIMEOUT:g} s")


def group_rss_kib(pgid: int) -> int:
    """Resident memory of every process in the group (a supervisor and its workers)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text().rpartition(")")[2].split()
            if int(stat[2]) != pgid:
                continue
            for line in Path(f"/proc/{entry.name}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total


def measure(spec: ServerSpec) -> tuple[float, float]:
    """(seconds from exec to the first 200, idle RSS in MiB after WARM_REQUESTS requests)."""
    port = free_port()
    started = time.monotonic()
    process = subprocess.Popen(
        spec.command(port),
        cwd=REPO_ROOT,
        env=server_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        ready = first_ok(port, started + TIMEOUT) - started
        connection = http.client.HTTPConnection(HOST, port, timeout=5)
        for _ in range(WARM_REQUESTS):
            connection.request("GET", "/json")
            connection.getresponse().read()
        connection.close()
        time.sleep(0.5)  # idle: what a quiet pod holds
        return ready, group_rss_kib(process.pid) / 1024
    finally:
        stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", help="comma-separated servers (default: all)")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(SERVERS)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for _ in range(args.rounds):  # interleaved, as bench/run.py does
        for name in names:
            results[name].append(measure(ServerSpec(name, SERVERS[name])))
    print(f"Median of {args.rounds} starts (min-max); idle RSS after {WARM_REQUESTS} requests.\n")
    print("| server | exec to first 200 | idle RSS |")
    print("|:--|--:|--:|")
    for name, runs in results.items():
        ready = [r for r, _ in runs]
        rss = [m for _, m in runs]
        print(
            f"| {name} | {statistics.median(ready) * 1000:.0f} ms "
            f"({min(ready) * 1000:.0f}-{max(ready) * 1000:.0f}) "
            f"| {statistics.median(rss):.1f} MiB ({min(rss):.1f}-{max(rss):.1f}) |"
        )


if __name__ == "__main__":
    main()
