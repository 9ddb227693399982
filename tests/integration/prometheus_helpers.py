"""A real Prometheus (the Debian package) for the tests: started on an ephemeral port of
127.0.0.1 with its own storage, scraping the targets it is given every second, optionally
evaluating rule files; queried through its HTTP API."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.integration.helpers import TIMEOUT
from tests.integration.observe_helpers import require_tool
from tests.utils import free_port, stop_process

# Prometheus's first scrape lands ~5 s after it starts; everything is polled within this.
PROMETHEUS_TIMEOUT = 30.0


class Prometheus:
    def __init__(self, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.process = process
        self.log = log

    def query(self, expression: str) -> list[dict[str, Any]]:
        response = httpx.get(
            self.url + "/api/v1/query", params={"query": expression}, timeout=TIMEOUT
        )
        assert response.status_code == 200, response.text
        payload = response.json()
        assert payload["status"] == "success", payload
        result: list[dict[str, Any]] = payload["data"]["result"]
        return result

    def value(self, expression: str) -> float | None:
        """The single value of an instant query, or None while there is none."""
        result = self.query(expression)
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, expression: str, expected: float) -> float | None:
        """Poll until `expression` equals `expected` (bounded); return the last value seen."""
        deadline = time.monotonic() + PROMETHEUS_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            last = self.value(expression)
            if last == expected:
                break
            time.sleep(0.5)
        return last


@contextlib.contextmanager
def running_prometheus(
    targets: list[str],
    directory: Path,
    rule_files: tuple[Path, ...] = (),
    labels: dict[str, str] | None = None,
) -> Iterator[Prometheus]:
    """Prometheus scraping `targets` (host:port of admin listeners) as job "monoceros" every
    second, with `labels` on their series (`instance` among them replaces the address),
    evaluating `rule_files` every second; stopped afterwards."""
    binary = require_tool("prometheus")
    promtool = require_tool("promtool")
    config = directory / "prometheus.yml"
    settings: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "monoceros",
                "static_configs": [{"targets": targets, "labels": labels or {}}],
            }
        ],
    }
    if rule_files:
        settings["rule_files"] = [str(path) for path in rule_files]
    config.write_text(yaml.safe_dump(settings))
    check = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, timeout=30, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    address = f"127.0.0.1:{free_port()}"
    log = directory / "prometheus.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--web.listen-address={address}",
                f"--storage.tsdb.path={directory / 'data'}",
                "--log.level=warn",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    instance = Prometheus(f"http://{address}", process, log)
    try:
        deadline = time.monotonic() + PROMETHEUS_TIMEOUT
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(instance.url + "/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "Prometheus did not become ready\n" + (
                log.read_text()
            )
            time.sleep(0.2)
        yield instance
    finally:
        stop_process(process, grace=10)
