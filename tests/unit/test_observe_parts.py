"""The parts of `observe/` around the access line and the app's metrics, without a server:
the console line, path exclusion, the access logger's records, the schemas' names, and the
directory a worker group's app metrics live in."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import values
from prometheus_client.multiprocess import MultiProcessCollector

from monoceros.observe.access import ECS, OTEL, ExcludedPaths, render_request
from monoceros.observe.access_logger import LoggedAccess, configured
from monoceros.observe.app_metrics import WorkerMetricsDirectory
from monoceros.observe.console import ConsoleAccessLine, duration_text
from monoceros.observe.literals import Literals
from monoceros.observe.log_schemas import ECS_VERSION, schema_processor
from monoceros.protocols.events import RequestFinished

# A time as Timestamps.at() gives it to the line.
NEW_YEAR = (b"2026-01-01T00:00:00.", b"000", b"000")
ENDED = 1_767_225_600_123_456_789  # 2026-01-01T00:00:00.123456789Z, as time.time_ns() gives it

SCOPE: dict[str, Any] = {
    "type": "http",
    "method": "GET",
    "path": "/items/1",
    "query_string": b"page=2",
    "headers": [(b"host", b"shop.example:8443"), (b"referer", b"http://r/")],
    "scheme": "https",
    "http_version": "1.1",
    "client": ("203.0.113.7", 0),
}


def finished(
    status: int = 200, outcome: str = "complete", error_type: str | None = None, **scope: Any
) -> RequestFinished:
    full = {**SCOPE, **scope}
    return RequestFinished(
        full,
        "GET",
        "https",
        status,
        outcome,
        0.0008,
        0,
        20,
        ("10.0.0.1", 80),
        "rid",
        None,
        error_type,
    )


# -- the console line ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0008, "0.8ms"), (0.0123, "12ms"), (0.5, "500ms"), (1.254, "1.25s"), (75.0, "75.00s")],
)
def test_console_durations(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


def test_console_line_is_compact_and_escaped() -> None:
    line = ConsoleAccessLine(colors=False).request(finished(path="/a\nb"), ENDED)
    text = line.decode()
    # Stamped when the request ended (its line may be rendered a loop turn later).
    assert text.startswith("2026-01-01T00:00:00.123456Z [info     ] GET")
    assert text.endswith(" [info     ] GET /a\\nb?page=2 200 0.8ms\n")
    assert text.count("\n") == 1


def test_console_line_colours_and_failures() -> None:
    plain = ConsoleAccessLine(colors=False)
    failed = finished(500, "error", error_type="KeyError")
    line = plain.request(failed, ENDED)
    assert b"[error    ] GET /items/1?page=2 500 0.8ms KeyError" in line
    coloured = ConsoleAccessLine(colors=True).request(finished(404), ENDED).decode()
    assert "\x1b[33m404\x1b[0m" in coloured  # a client error in yellow


# -- exclusion ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        ("/healthz", True),
        ("/healthz/", False),
        ("/static/app.css", True),
        ("/static/", True),
        ("/static", False),
        ("/metrics", False),
        (None, False),  # an app's middleware changed it
    ],
)
def test_excluded_paths(path: Any, excluded: bool) -> None:
    assert (path in ExcludedPaths(("/healthz", "/static/*"))) is excluded


# -- through the access logger ------------------------------------------------------------------


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_access_records_are_shaped_as_uvicorn_s() -> None:
    logger = logging.getLogger("tests.access.shape")
    logger.propagate = False
    assert not configured(logger)
    handler = Collect()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    assert configured(logger)
    LoggedAccess(logger).request(finished(), b"the line\n")
    (record,) = handler.records
    assert record.getMessage() == '203.0.113.7:0 - "GET /items/1?page=2 HTTP/1.1" 200'
    assert record.args == ("203.0.113.7:0", "GET", "/items/1?page=2", "1.1", 200)
    fields = vars(record)
    assert (fields["status"], fields["path"], fields["request_id"]) == (200, "/items/1", "rid")
    assert fields["monoceros_line"] == b"the line\n"


# -- the schemas' names -------------------------------------------------------------------------


def test_ecs_and_otel_access_lines_convert_units_and_split_the_host() -> None:
    ecs = json.loads(render_request(finished(), NEW_YEAR, b"1", Literals(), ECS))
    assert ecs["event.duration"] == 800_000  # nanoseconds
    assert (ecs["url.domain"], ecs["url.port"]) == ("shop.example", 8443)
    assert ecs["ecs.version"] == ECS_VERSION
    otel = json.loads(render_request(finished(500, "error"), NEW_YEAR, b"1", Literals(), OTEL))
    assert (otel["severity_text"], otel["severity_number"]) == ("error", 17)
    assert otel["http.server.request.duration"] == 0.0008
    assert otel["http.request.header.referer"] == ["http://r/"]
    assert (otel["server.address"], otel["server.port"]) == ("shop.example", 8443)


def test_other_lines_are_renamed_for_ecs_and_otel() -> None:
    event = {
        "event": "hello",
        "level": "warning",
        "logger": "app",
        "timestamp": "t",
        "pid": 1,
        "request_id": "r",
        "trace_id": "a",
        "span_id": "b",
        "exception": "Traceback",
        "order_id": 7,
    }
    assert schema_processor("default") is None
    ecs = schema_processor("ecs")
    otel = schema_processor("otel")
    assert ecs is not None and otel is not None
    assert ecs(None, "warning", dict(event)) == {
        "message": "hello",
        "log.level": "warning",
        "log.logger": "app",
        "@timestamp": "t",
        "process.pid": 1,
        "http.request.id": "r",
        "trace.id": "a",
        "span.id": "b",
        "error.stack_trace": "Traceback",
        "order_id": 7,
        "ecs.version": ECS_VERSION,
    }
    renamed = otel(None, "warning", dict(event))
    assert (renamed["body"], renamed["severity_text"], renamed["severity_number"]) == (
        "hello",
        "warning",
        13,
    )
    assert (renamed["scope.name"], renamed["trace_id"], renamed["order_id"]) == ("app", "a", 7)


# -- a worker group's app metrics ---------------------------------------------------------------


@pytest.fixture
def directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> WorkerMetricsDirectory:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    opened = WorkerMetricsDirectory()
    opened.open()
    return opened


def value_of(pid: int) -> Callable[..., Any]:
    """prometheus-client's value class, as worker `pid` has it (its own files)."""
    return values.MultiProcessValue(lambda: pid)  # type: ignore[no-untyped-call]


def count(pid: int, amount: float, kind: str = "counter", mode: str = "") -> None:
    name = "jobs" if kind == "counter" else "queue_depth"
    sample = name + ("_total" if kind == "counter" else "")
    value = value_of(pid)(kind, name, sample, ("queue",), ("q",), "Jobs.", multiprocess_mode=mode)
    value.inc(amount)


def collected(directory: WorkerMetricsDirectory) -> dict[tuple[str, tuple[Any, ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in directory.collect()
        for sample in family.samples
    }


def test_an_exited_worker_s_counts_are_kept_in_one_retired_file(
    directory: WorkerMetricsDirectory,
) -> None:
    for pid, amount in ((101, 3), (102, 4)):
        count(pid, amount)
        count(pid, amount, "gauge", "livesum")
        count(pid, amount, "gauge", "all")
        count(pid, amount, "gauge", "max")
    directory.worker_exited(101)
    count(103, 5)
    directory.worker_exited(102)
    files = sorted(os.listdir(directory.path))
    assert files == [
        "counter_103.db",
        "counter_retired.db",
        "gauge_max_retired.db",
    ]
    seen = collected(directory)
    assert seen[("jobs_total", (("queue", "q"),))] == 12
    assert seen[("queue_depth", (("queue", "q"),))] == 4  # max mode: the retired maximum
    assert not [key for key in seen if key[0] == "queue_depth" and dict(key[1]).get("pid")]


def test_a_previous_run_s_files_are_removed_and_a_directory_of_its_own_goes_at_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "counter_99.db").write_bytes(b"old")
    (tmp_path / "notes.txt").write_text("not ours")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    given = WorkerMetricsDirectory()
    assert list(given.collect()) == []  # nothing before it is opened, nothing touched
    assert sorted(os.listdir(tmp_path)) == ["counter_99.db", "notes.txt"]
    given.open()
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]
    given.close()
    assert tmp_path.exists()  # the user's directory stays
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR")
    own = WorkerMetricsDirectory()
    own.open()
    assert own.path is not None
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == own.path  # for the workers spawned next
    own.close()
    assert not os.path.exists(own.path)


def test_folding_keeps_histogram_buckets_per_bucket(directory: WorkerMetricsDirectory) -> None:
    for pid in (201, 202):
        cls = value_of(pid)
        for bound, amount in (("1.0", 2), ("+Inf", 1)):
            bucket = cls("histogram", "wait", "wait_bucket", ("le",), (bound,), "Waits.")
            bucket.inc(amount)
        cls("histogram", "wait", "wait_sum", (), (), "Waits.").inc(4.0)
        directory.worker_exited(pid)
    assert directory.path is not None
    merged = {
        (s.name, s.labels.get("le")): s.value
        for family in MultiProcessCollector.merge(
            [os.path.join(directory.path, "histogram_retired.db")]
        )
        for s in family.samples
    }
    assert merged[("wait_bucket", "1.0")] == 4
    assert merged[("wait_bucket", "+Inf")] == 6  # cumulative once read
    assert merged[("wait_count", None)] == 6
    assert merged[("wait_sum", None)] == 8
