"""Drive the load generators and read their reports: wrk for HTTP/1.1, h2load (nghttp2) for
HTTP/2, bench/ws_load.py for WebSocket echo.

wrk's text report is the interface, so parsing is tolerant: only `Requests/sec` is required; the
socket-error and non-2xx lines appear only when there were some, the latency distribution only
with `--latency`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# Seconds wrk may overrun its own duration (connect, teardown) before we call it hung.
OVERRUN_SECONDS = 30
# Requests per HTTP/2 connection in one h2load run (see run_h2load): under the fewest any server
# serves on one connection before closing it (hypercorn's keep_alive_max_requests, 1,000).
H2_REQUESTS_PER_CONNECTION = 900

_LATENCY_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_RPS_RE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_P99_RE = re.compile(r"^\s*99(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_REQUESTS_RE = re.compile(r"^\s*(\d+) requests in ", re.MULTILINE)
_SOCKET_ERRORS_RE = re.compile(r"^\s*Socket errors:(.*)$", re.MULTILINE)
_NON_2XX_RE = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)", re.MULTILINE)
# h2load's summary: "finished in 5.00s, 41234.20 req/s, ...", "requests: 206171 total, ...
# 206171 succeeded, 0 failed, 0 errored, 0 timeout", "status codes: 206171 2xx, 0 3xx, ..."
_H2LOAD_FINISHED_RE = re.compile(r"^finished in ([\d.]+)(ms|s), ", re.MULTILINE)
_H2LOAD_REQUESTS_RE = re.compile(
    r"^requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout",
    re.MULTILINE,
)
_H2LOAD_STATUS_RE = re.compile(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", re.M)


class WrkFailed(Exception):
    """wrk exited with an error, hung, or printed nothing we could parse."""


@dataclass(frozen=True)
class WrkResult:
    """What we keep from one wrk run; `problems` is why a run gets flagged in the report."""

    requests_per_sec: float
    p99_ms: float | None
    requests: int
    socket_errors: dict[str, int]
    non_2xx: int
    output: str = field(repr=False)
    failures: tuple[str, ...] = ()  # what ws_load saw go wrong, in its words

    @property
    def problems(self) -> list[str]:
        found = [f"{count} {kind} errors" for kind, count in self.socket_errors.items() if count]
        found += self.failures
        if self.non_2xx:
            found.append(f"{self.non_2xx} non-2xx")
        if self.requests == 0:
            found.append("no requests completed")
        return found


def parse_wrk(output: str) -> WrkResult:
    """Read wrk's text report into a WrkResult; raise WrkFailed if it has no Requests/sec."""
    rps = _RPS_RE.search(output)
    if rps is None:
        raise WrkFailed("no 'Requests/sec' line in wrk output")
    p99 = _P99_RE.search(output)
    requests = _REQUESTS_RE.search(output)
    socket_errors = _SOCKET_ERRORS_RE.search(output)
    non_2xx = _NON_2XX_RE.search(output)
    return WrkResult(
        requests_per_sec=float(rps.group(1)),
        p99_ms=float(p99.group(1)) * _LATENCY_UNITS_MS[p99.group(2)] if p99 else None,
        requests=int(requests.group(1)) if requests else 0,
        socket_errors=_parse_socket_errors(socket_errors.group(1)) if socket_errors else {},
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        output=output,
    )


def _parse_socket_errors(text: str) -> dict[str, int]:
    """`connect 0, read 12, write 0, timeout 3` -> {"connect": 0, "read": 12, ...}."""
    return {kind: int(count) for kind, count in re.findall(r"(\w+)\s+(\d+)", text)}


def pinned(cpus: str) -> list[str]:
    """The taskset prefix; children inherit the affinity, so worker processes stay pinned too."""
    return ["taskset", "-c", cpus]


def run_wrk(
    url: str,
    *,
    connections: int,
    duration: int,
    cpus: str,
    script: str | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> WrkResult:
    """One wrk run, bounded in time, pinned to `cpus` so it never shares the server's core.

    One wrk thread: the load generator gets exactly one core, like the server.
    """
    command = [*pinned(cpus), "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    for name, value in headers:
        command += ["-H", f"{name}: {value}"]
    if script:
        command += ["-s", script]
    command.append(url)
    return parse_wrk(run_bounded("wrk", command, duration + OVERRUN_SECONDS))


def run_h2load(url: str, *, connections: int, streams: int, duration: int, cpus: str) -> WrkResult:
    """h2load runs (HTTP/2 by prior knowledge on an http:// URL) back to back for `duration`
    seconds, pinned to `cpus`, with one thread as wrk has; `streams` requests in flight per
    connection.

    Each run sends H2_REQUESTS_PER_CONNECTION requests per connection: servers close a
    connection gracefully (GOAWAY) after so many streams (hypercorn 1,000, those on zttp
    ~3,800), and h2load does not reconnect, so a timed run (-D) would measure connections
    that have ended."""
    total = connections * H2_REQUESTS_PER_CONNECTION
    command = [*pinned(cpus), "h2load", "-t1", f"-c{connections}", f"-m{streams}", f"-n{total}"]
    results: list[WrkResult] = []
    elapsed = 0.0
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        output = run_bounded("h2load", [*command, url], duration + OVERRUN_SECONDS)
        result, seconds = parse_h2load(output)
        results.append(result)
        elapsed += seconds
    done = sum(result.requests for result in results)
    errors: dict[str, int] = {}
    for result in results:
        for kind, count in result.socket_errors.items():
            errors[kind] = errors.get(kind, 0) + count
    return WrkResult(
        requests_per_sec=done / elapsed if elapsed else 0.0,
        p99_ms=None,  # h2load reports no percentiles
        requests=done,
        socket_errors=errors,
        non_2xx=sum(result.non_2xx for result in results),
        output=results[-1].output if results else "",
    )


def parse_h2load(output: str) -> tuple[WrkResult, float]:
    """One h2load run's summary, and how long it took in seconds."""
    finished = _H2LOAD_FINISHED_RE.search(output)
    requests = _H2LOAD_REQUESTS_RE.search(output)
    statuses = _H2LOAD_STATUS_RE.search(output)
    if finished is None or requests is None or statuses is None:
        raise WrkFailed("no summary in h2load output")
    seconds = float(finished.group(1)) * (0.001 if finished.group(2) == "ms" else 1.0)
    succeeded, failed, errored, timeout = (int(value) for value in requests.groups())
    result = WrkResult(
        requests_per_sec=succeeded / seconds if seconds else 0.0,
        p99_ms=None,
        requests=succeeded,
        socket_errors={"failed": failed, "errored": errored, "timeout": timeout},
        non_2xx=sum(int(count) for count in statuses.groups()[1:]),
        output=output,
    )
    return result, seconds


def run_ws_load(
    host: str, port: int, path: str, *, connections: int, duration: int, cpus: str
) -> WrkResult:
    """bench/ws_load.py in wrk's place for WebSocket endpoints: one message is one "request"."""
    command = [
        *pinned(cpus),
        sys.executable,
        str(Path(__file__).resolve().parent / "ws_load.py"),
        f"--host={host}",
        f"--port={port}",
        f"--path={path}",
        f"--connections={connections}",
        f"--duration={duration}",
    ]
    output = run_bounded("ws_load", command, duration + OVERRUN_SECONDS)
    report = json.loads(output)
    return WrkResult(
        requests_per_sec=report["messages_per_sec"],
        p99_ms=report["p99_ms"],
        requests=report["messages"],
        socket_errors={},
        non_2xx=0,
        output=output,
        failures=tuple(report["problems"]),
    )


def run_bounded(name: str, command: list[str], limit: int) -> str:
    """Run a load generator to completion within `limit` seconds; its stdout."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=limit, check=False)
    except subprocess.TimeoutExpired as exc:
        raise WrkFailed(f"{name} did not finish within {limit} s") from exc
    if done.returncode != 0:
        raise WrkFailed(f"{name} exited with {done.returncode}: {done.stderr.strip()[-200:]}")
    return done.stdout
