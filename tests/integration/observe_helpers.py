"""Helpers for the observability tests: JSON log lines, scrapes of /metrics, external tools."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.integration.helpers import TIMEOUT
from tests.utils import RunningServer, ServerProcess

APP = "tests.integration.observe_app:app"
ADMIN_LINE = r"Admin listener on (http://\S+?:\d+)"
ACCESS_LOGGER = "monoceros.access"
OPENMETRICS = "application/openmetrics-text; version=1.0.0"

T = TypeVar("T")


def start(*args: str, app: str = APP, env: dict[str, str] | None = None) -> ServerProcess:
    """A `monoceros` subprocess writing JSON logs (unless `args` say otherwise)."""
    if "--log-format" not in args:
        args = ("--log-format", "json", *args)
    return ServerProcess(app, "--port", "0", *args, env=env)


def admin_url(process: ServerProcess) -> str:
    return process.wait_for_line(ADMIN_LINE, TIMEOUT).group(1)


def running_admin_url(running: RunningServer) -> str:
    host, port = running.server.admin_sockets[0].getsockname()[:2]
    return f"http://{host}:{port}"


def json_lines(process: ServerProcess) -> list[dict[str, Any]]:
    """Every line the process wrote (stdout and stderr), each parsed as one JSON object."""
    records = []
    for number, line in enumerate(list(process.lines)):
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"line {number} is not JSON: {line!r}\n{process.output}")
        assert isinstance(record, dict), line
        records.append(record)
    return records


def access_lines(process: ServerProcess) -> list[dict[str, Any]]:
    return [record for record in json_lines(process) if record.get("logger") == ACCESS_LOGGER]


def eventually(probe: Callable[[], T | None], timeout: float = TIMEOUT, what: str = "") -> T:
    """Call `probe` until it returns something other than None (bounded in time)."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or probe}")
        time.sleep(0.02)


def wait_for_access(process: ServerProcess, count: int) -> list[dict[str, Any]]:
    """The access lines, once there are at least `count` of them."""

    def probe() -> list[dict[str, Any]] | None:
        lines = access_lines(process)
        return lines if len(lines) >= count else None

    return eventually(probe, what=f"{count} access lines in\n{process.output}")


class Scrape:
    """One parsed /metrics body."""

    def __init__(self, text: str, openmetrics: bool = False) -> None:
        self.text = text
        parse = openmetrics_families if openmetrics else text_string_to_metric_families
        self.families = {family.name: family for family in parse(text)}

    def samples(self, name: str) -> list[Sample]:
        return [
            sample
            for family in self.families.values()
            for sample in family.samples
            if sample.name == name
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples called `name` whose labels include `labels` (0 if none)."""
        return sum(
            sample.value
            for sample in self.samples(name)
            if all(sample.labels.get(key) == wanted for key, wanted in labels.items())
        )

    def label_sets(self, name: str) -> set[tuple[tuple[str, str], ...]]:
        return {tuple(sorted(sample.labels.items())) for sample in self.samples(name)}


def scrape(admin: str, accept: str | None = None) -> Scrape:
    headers = {"accept": accept} if accept else {}
    response = httpx.get(admin + "/metrics", headers=headers, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    openmetrics = response.headers["content-type"].startswith("application/openmetrics-text")
    return Scrape(response.text, openmetrics)


def require_tool(name: str) -> str:
    """The path of `name`; skip without it, except in CI (CI=true), where that is a failure."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install -y prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path
