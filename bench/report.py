"""From measurements to the report: medians over rounds, ratios to the baseline, Markdown.

Two ratios, both "higher is better": requests/s over the baseline's, and the baseline's CPU per
request over this server's. The second still holds when the server is not what limits
requests/s. A server below ~90% CPU busy was waiting on wrk's core, or on the wake-ups between the
two cores.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench.endpoints import Endpoint
from bench.wrk import WrkResult

SATURATED = 0.9  # CPU busy below this: something other than the server set requests/s


@dataclass(frozen=True)
class Measurement:
    """One server on one endpoint in one round: wrk's result and the server's CPU time."""

    round: int
    server: str
    endpoint: str
    result: WrkResult | None
    cpu_seconds: float | None
    wall_seconds: float | None
    problems: list[str]
    # The load generator's CPU time (wrk, h2load, ws_load): over loopback, the kernel's work
    # of delivering a response falls to whichever side's system call moves the bytes.
    client_cpu_seconds: float | None = None
    # Of cpu_seconds, the kernel's on the server's behalf (its system calls).
    system_cpu_seconds: float | None = None

    @property
    def cpu_us_per_request(self) -> float | None:
        return self._per_request(self.cpu_seconds)

    @property
    def system_cpu_us_per_request(self) -> float | None:
        return self._per_request(self.system_cpu_seconds)

    @property
    def client_cpu_us_per_request(self) -> float | None:
        return self._per_request(self.client_cpu_seconds)

    def _per_request(self, seconds: float | None) -> float | None:
        if self.result is None or seconds is None or self.result.requests == 0:
            return None
        return seconds / self.result.requests * 1e6

    @property
    def cpu_busy(self) -> float | None:
        """The fraction of one core the server used while wrk ran."""
        if self.cpu_seconds is None or not self.wall_seconds:
            return None
        return self.cpu_seconds / self.wall_seconds


@dataclass(frozen=True)
class Summary:
    """Medians over the rounds for one server and endpoint, and every problem seen."""

    requests_per_sec: float | None
    p99_ms: float | None
    cpu_us_per_request: float | None
    cpu_busy: float | None
    notes: list[str]
    client_cpu_us_per_request: float | None = None
    system_cpu_us_per_request: float | None = None


Table = dict[str, dict[str, Summary]]  # endpoint -> server -> summary


def median(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def summarize(mine: Sequence[Measurement], failure: str | None) -> Summary:
    """Median each figure over the rounds that produced it; collect problems as notes."""
    notes = [f"round {m.round}: {problem}" for m in mine for problem in m.problems]
    if failure:
        notes.append(failure)
    return Summary(
        requests_per_sec=median([m.result.requests_per_sec if m.result else None for m in mine]),
        p99_ms=median([m.result.p99_ms if m.result else None for m in mine]),
        cpu_us_per_request=median([m.cpu_us_per_request for m in mine]),
        cpu_busy=median([m.cpu_busy for m in mine]),
        notes=notes,
        client_cpu_us_per_request=median([m.client_cpu_us_per_request for m in mine]),
        system_cpu_us_per_request=median([m.system_cpu_us_per_request for m in mine]),
    )


def build_table(
    endpoints: Sequence[Endpoint],
    servers: Sequence[str],
    measurements: Sequence[Measurement],
    failures: dict[str, str],
) -> Table:
    table: Table = {}
    for endpoint in endpoints:
        row = table[endpoint.name] = {}
        for server in servers:
            mine = [m for m in measurements if m.server == server and m.endpoint == endpoint.name]
            # A server measured on some endpoints only (the workers row) has no row elsewhere.
            if mine or server in failures:
                row[server] = summarize(mine, failures.get(server))
    return table


def throughput_ratio(summary: Summary, baseline: Summary | None) -> float | None:
    if baseline is None or summary.requests_per_sec is None or not baseline.requests_per_sec:
        return None
    return summary.requests_per_sec / baseline.requests_per_sec


def cpu_ratio(summary: Summary, baseline: Summary | None) -> float | None:
    if baseline is None or baseline.cpu_us_per_request is None or not summary.cpu_us_per_request:
        return None
    return baseline.cpu_us_per_request / summary.cpu_us_per_request


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table(endpoint: Endpoint, row: dict[str, Summary], baseline_name: str) -> list[str]:
    """One Markdown table per endpoint; a flagged row (⚠) carries its problems in `notes`."""
    baseline = row.get(baseline_name)
    lines = [
        f"### {endpoint.name}: {endpoint.method} {endpoint.path} ({endpoint.description})",
        "",
        f"| server | requests/s | p99 latency | CPU/request (kernel) | CPU busy "
        f"| client CPU/request "
        f"| req/s vs {baseline_name} | CPU vs {baseline_name} | notes |",
        "|:--|--:|--:|--:|--:|--:|--:|--:|:--|",
    ]
    for server, summary in row.items():
        notes = ("⚠ " if summary.notes else "") + "; ".join(summary.notes)
        lines.append(
            f"| {server} | {_fmt(summary.requests_per_sec, '{:,.0f}')} "
            f"| {_fmt(summary.p99_ms, '{:.2f} ms')} "
            f"| {_cpu_cell(summary)} "
            f"| {_fmt(summary.cpu_busy, '{:.0%}')} "
            f"| {_fmt(summary.client_cpu_us_per_request, '{:.1f} µs')} "
            f"| {_fmt(throughput_ratio(summary, baseline), '{:.2f}x')} "
            f"| {_fmt(cpu_ratio(summary, baseline), '{:.2f}x')} | {_cell(notes)} |"
        )
    return [*lines, ""]


def _cpu_cell(summary: Summary) -> str:
    """`14.3 µs (7.4)`: the server's CPU per request, and the kernel's part of it in brackets.
    Over loopback the kernel's part is mostly moving the bytes, which no server's code avoids:
    what sets servers apart is the rest."""
    total = _fmt(summary.cpu_us_per_request, "{:.1f} µs")
    system = summary.system_cpu_us_per_request
    return total if system is None else f"{total} ({system:.1f})"


def render_ratio_lines(server: str, table: Table, baseline: str, failure: str | None) -> list[str]:
    """`monoceros/uvicorn: plaintext 1.62x, json 1.20x, ...`: the lines to quote in a PR.

    A `*` marks a ratio where either side had a flagged run.
    """
    prefix = f"{server}/{baseline}"
    rows = table.values()
    if failure and all(row[server].requests_per_sec is None for row in rows):
        return [f"{prefix}: n/a ({server} {failure})"]
    throughput, cpu = [], []
    for endpoint, row in table.items():
        if server not in row or baseline not in row:
            continue  # measured on some endpoints only (the workers row)
        flag = "*" if row[server].notes or row[baseline].notes else ""
        throughput.append(
            f"{endpoint} {_fmt(throughput_ratio(row[server], row[baseline]), '{:.2f}x')}{flag}"
        )
        cpu.append(f"{endpoint} {_fmt(cpu_ratio(row[server], row[baseline]), '{:.2f}x')}{flag}")
    return [f"{prefix}: {', '.join(throughput)}", f"{prefix} CPU per request: {', '.join(cpu)}"]


def render_scaling_lines(servers: Sequence[str], table: Table) -> list[str]:
    """The workers row: `monoceros-w2/monoceros (scaling): plaintext 1.71x`, each server over
    itself with one process (requests/s; the -w2 runs are unpinned, so 2.00x is out of reach),
    and where the two cores went: the server's processes, wrk and what neither used, in cores
    (the median requests/s times the median CPU per request: an estimate, as the two medians
    may come from different rounds), and the server's CPU per request against its single
    process's. A server whose CPU per request holds scales; what it cannot gain is the share
    wrk takes."""
    lines = []
    for server in servers:
        single = server.removesuffix("-w2")
        if single == server or single not in servers:
            continue
        rows = [
            (endpoint, row) for endpoint, row in table.items() if server in row and single in row
        ]
        ratios = [
            f"{endpoint} {_fmt(throughput_ratio(row[server], row[single]), '{:.2f}x')}"
            for endpoint, row in rows
        ]
        lines.append(f"{server}/{single} (scaling): {', '.join(ratios)}")
        shares = [f"{endpoint} {_cores(row[server], row[single])}" for endpoint, row in rows]
        lines.append(f"{server} (cores): {'; '.join(shares)}")
    return lines


def _cores(workers: Summary, single: Summary) -> str:
    rate, cpu, client = (
        workers.requests_per_sec,
        workers.cpu_us_per_request,
        workers.client_cpu_us_per_request,
    )
    if rate is None or cpu is None:
        return "-"
    server = rate * cpu / 1e6
    wrk = idle = "-"
    if client is not None:
        wrk_cores = rate * client / 1e6
        wrk = f"{wrk_cores:.2f}"
        # What neither used: where the workers' connections fell unevenly, one worker had
        # nothing to do.
        cores = len(os.sched_getaffinity(0))  # what the unpinned workers and wrk could use
        idle = f"{max(0.0, cores - server - wrk_cores):.2f}"
    alone = single.cpu_us_per_request
    per_request = "-" if not alone else f"{cpu / alone:.2f}x"
    return (
        f"server {server:.2f}, wrk {wrk}, idle {idle}, CPU per request {per_request} one process's"
    )


def render_report(
    endpoints: Sequence[Endpoint],
    servers: Sequence[str],
    table: Table,
    failures: dict[str, str],
    baseline: str,
    header: str,
) -> str:
    lines = [header, ""]
    for endpoint in endpoints:
        lines += render_table(endpoint, table[endpoint.name], baseline)
    if baseline not in servers:
        lines.append(f"(no ratios: baseline {baseline!r} is not among the servers)")
        return "\n".join(lines)
    for server in servers:
        if server != baseline:
            lines += render_ratio_lines(server, table, baseline, failures.get(server))
    lines += render_scaling_lines(servers, table)
    lines += [
        "",
        f"Ratios: higher is better. req/s: this server's over {baseline}'s. CPU: {baseline}'s "
        "CPU time per request over this server's.",
        f"Below {SATURATED:.0%} CPU busy, a server was not what limited requests/s (wrk or the "
        "wake-ups between cores were): trust its CPU ratio.",
    ]
    if any(summary.notes for row in table.values() for summary in row.values()):
        lines.append("* = a flagged run on either side; see the notes column.")
    return "\n".join(lines)


def results_document(
    measurements: Sequence[Measurement], failures: dict[str, str], table: Table
) -> dict[str, Any]:
    """Raw results, wrk's own output included, so a surprising number can be re-read later."""
    return {
        "failures": failures,
        "runs": [
            {
                "round": m.round,
                "server": m.server,
                "endpoint": m.endpoint,
                "problems": m.problems,
                "cpu_seconds": m.cpu_seconds,
                "client_cpu_seconds": m.client_cpu_seconds,
                "wall_seconds": m.wall_seconds,
                "cpu_us_per_request": m.cpu_us_per_request,
                "system_cpu_seconds": m.system_cpu_seconds,
                **(asdict(m.result) if m.result else {}),
            }
            for m in measurements
        ],
        "medians": {
            endpoint: {server: asdict(summary) for server, summary in row.items()}
            for endpoint, row in table.items()
        },
    }
