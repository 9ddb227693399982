"""The Helm chart against what it deploys: the package version and the published image, the
server's real command line and admin listener, the Compose stack's alert rules and dashboard, and
its own documentation.

Renders helm/monoceros offline with the Helm SDK (tests/chart.py); no cluster, no Docker.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import os
import re
from typing import Any

import click
import jsonschema
import pytest
from click.core import ParameterSource
from prometheus_client import CollectorRegistry

import monoceros
from monoceros.cli import main
from monoceros.observe.admin import AdminApp, Readiness
from tests.chart import CHART, REPO, cases, render, values_file

VALUES = values_file(CHART / "values.yaml")
SCHEMA = json.loads((CHART / "values.schema.json").read_text())


# ---- versions and copied files


PROJECT_VERSION = monoceros.__version__  # written once, in server/monoceros/_version.py
# Where the release workflow pushes the image: tags <version>, <version>-py3.11, -py3.13, latest.
PUBLISHED_IMAGE = "ghcr.io/monoceros-server/monoceros"


def test_app_version_is_the_package_version() -> None:
    """server/monoceros/_version.py is the source; Chart.yaml's appVersion (the default image
    tag) must follow it."""
    chart = values_file(CHART / "Chart.yaml")
    assert chart["appVersion"] == importlib.metadata.version("monoceros") == PROJECT_VERSION


def test_default_image_is_the_published_one() -> None:
    rendered = render({})
    assert rendered.container()["image"] == f"{PUBLISHED_IMAGE}:{PROJECT_VERSION}"
    image = VALUES["image"]
    assert f"{image['registry']}/{image['repository']}" == PUBLISHED_IMAGE
    assert image["tag"] == "" and image["digest"] == ""  # the tag follows appVersion


def test_the_from_example_pins_this_release() -> None:
    """examples/myapp/Dockerfile (which examples/compose.override.yaml builds) starts FROM this
    release's published image."""
    dockerfile = (REPO / "examples" / "myapp" / "Dockerfile").read_text()
    (image,) = re.findall(r"^ARG MONOCEROS_BASE_IMAGE=(\S+)$", dockerfile, re.M)
    assert image == f"{PUBLISHED_IMAGE}:{PROJECT_VERSION}"
    assert re.findall(r"^FROM (.+)$", dockerfile, re.M) == ["${MONOCEROS_BASE_IMAGE}"]


@pytest.mark.parametrize(
    ("copy", "source"),
    [
        pytest.param("dashboards/monoceros.json", "grafana/dashboards/monoceros.json", id="dash"),
        pytest.param("rules/monoceros.yml", "docker/prometheus/rules/monoceros.yml", id="rules"),
    ],
)
def test_chart_copy_equals_source(copy: str, source: str) -> None:
    """Helm reads no file outside the chart: these copies must follow their sources."""
    assert (CHART / copy).read_bytes() == (REPO / source).read_bytes(), (
        f"helm/monoceros/{copy} differs from {source}: run `make chart-files`"
    )


# ---- values.yaml documentation and schema

PARAM = re.compile(r"^## @param (\S+) (?:\[([^\]]*)\] )?\S", re.M)


def _leaves(values: dict[str, Any], prefix: str = "") -> set[str]:
    """Dotted paths of the values as readme-generator-for-helm sees them: every scalar, empty
    map and list; a non-empty map is walked into; a list of maps is walked into too."""
    paths = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            paths |= _leaves(value, f"{path}.")
        elif isinstance(value, list) and value and not all(isinstance(v, str) for v in value):
            for index, item in enumerate(value):
                paths |= _leaves(item, f"{path}[{index}].") if isinstance(item, dict) else set()
        else:
            paths.add(path)
    return paths


def test_every_value_is_documented_with_a_param_line() -> None:
    """The rule readme-generator-for-helm enforces (test_helm.py runs the tool itself): each leaf
    has a `## @param` line, except below a param with a modifier (`[object,default: ...]`), which
    documents the whole map or list."""
    params = PARAM.findall((CHART / "values.yaml").read_text())
    names = [name for name, _ in params]
    assert len(names) == len(set(names)), "a value is documented twice"
    whole = tuple(name for name, modifiers in params if modifiers)
    leaves = {
        path
        for path in _leaves(VALUES)
        if not any(path.startswith((f"{w}.", f"{w}[")) for w in whole)
    } | set(whole)
    assert set(names) == leaves, {
        "undocumented": leaves - set(names),
        "no value": set(names) - leaves,
    }


def test_defaults_satisfy_the_schema() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.validate(VALUES, SCHEMA)
    assert set(SCHEMA["properties"]) - {"global"} == set(VALUES)
    assert SCHEMA["additionalProperties"] is False


def test_server_enums_are_the_cli_choices() -> None:
    params = {param.name: param for param in main.params}
    server = SCHEMA["properties"]["server"]["properties"]
    for key, spec in server.items():
        param = params[_snake(key)]
        if isinstance(param.type, click.Choice):
            assert [c for c in spec["enum"] if c is not None] == list(param.type.choices), key


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def test_request_body_default_is_the_servers() -> None:
    """The chart states it (the ingress' proxy-body-size follows it), so it must be the same."""
    params = {param.name: param for param in main.params}
    assert VALUES["server"]["limitRequestBody"] == params["limit_request_body"].default


# ---- what is rendered, against the server's command line


def _env_sources(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Parse `monoceros` with exactly this environment; the params each variable set."""
    for name in [n for n in os.environ if n.startswith("MONOCEROS_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    ctx = main.make_context("monoceros", [])
    envvars: dict[str, Any] = {}
    for param in main.params:
        if ctx.get_parameter_source(param.name or "") is ParameterSource.ENVIRONMENT:
            names = param.envvar or [f"MONOCEROS_{(param.name or '').upper()}"]
            for name in [names] if isinstance(names, str) else names:
                if name in env:
                    envvars[name] = ctx.params[param.name or ""]
    return envvars


@pytest.mark.parametrize("values", cases())
def test_every_rendered_variable_is_a_cli_option(
    values: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """click ignores unknown MONOCEROS_* names: each one must set a real option, with a value
    the option accepts (a bad value makes make_context raise a usage error)."""
    env = render(values).server_env()
    parsed = _env_sources(env, monkeypatch)
    assert set(parsed) == set(env), f"not options of `monoceros`: {set(env) - set(parsed)}"
    # Spot checks that values arrive as the types the server uses.
    assert parsed["MONOCEROS_PORT"] == int(env["MONOCEROS_PORT"])
    assert parsed["MONOCEROS_WORKERS"] == values.get("server", {}).get("workers", 1)


@pytest.mark.parametrize("values", cases())
def test_ports_and_probes_match_the_server(values: dict[str, Any]) -> None:
    rendered = render(values)
    container, env = rendered.container(), rendered.server_env()
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {
        "http": int(env["MONOCEROS_PORT"]),
        "metrics": int(env["MONOCEROS_METRICS_PORT"]),
    }
    expected = {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }
    for probe, path in expected.items():
        assert container[probe]["httpGet"] == {"path": path, "port": "metrics"}, probe
    services = {s["metadata"]["name"]: s for s in rendered.manifests if s["kind"] == "Service"}
    ports = {name: [p["targetPort"] for p in s["spec"]["ports"]] for name, s in services.items()}
    assert ports == {"demo-monoceros": ["http"], "demo-monoceros-metrics": ["metrics"]}
    annotations = rendered.deployment()["spec"]["template"]["metadata"]["annotations"]
    if values.get("metrics", {}).get("podAnnotations", True):
        assert annotations["prometheus.io/port"] == env["MONOCEROS_METRICS_PORT"]
        assert annotations["prometheus.io/path"] == "/metrics"


@pytest.mark.parametrize(
    ("path", "readiness", "status"),
    [
        ("/healthz", Readiness.STARTING, 200),
        ("/readyz", Readiness.SERVING, 200),
        ("/readyz", Readiness.STARTING, 503),
        ("/readyz", Readiness.DRAINING, 503),
        ("/metrics", Readiness.SERVING, 200),
    ],
)
def test_probe_paths_are_served_by_the_admin_listener(
    path: str, readiness: Readiness, status: int
) -> None:
    app = AdminApp(CollectorRegistry)
    app.readiness = readiness
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "headers": []}
    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    assert sent[0]["status"] == status


@pytest.mark.parametrize("values", cases())
def test_grace_period_outlasts_the_drain(values: dict[str, Any]) -> None:
    rendered = render(values)
    env = rendered.server_env()
    grace = rendered.deployment()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    delay = float(env.get("MONOCEROS_SHUTDOWN_DELAY", "0"))
    drain = float(env["MONOCEROS_TIMEOUT_GRACEFUL_SHUTDOWN"])
    assert isinstance(grace, int) and grace > delay + drain
    readiness = rendered.container()["readinessProbe"]
    assert readiness["periodSeconds"] * readiness["failureThreshold"] < max(delay, 1)


# Metric names followed by a selector: name{matchers} (PromQL functions take parentheses).
SELECTOR = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")


def test_every_rule_selects_only_its_release() -> None:
    """Each selector of the rendered PrometheusRule names this release's namespace and metrics
    Service, and every series a rule reads has a selector: rules of two releases never read, or
    record, each other's series (test_helm.py runs two releases' rules in promtool)."""
    rendered = render(
        {"metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}}
    )
    monitor_target = rendered.metrics_service()["metadata"]["name"]
    expected = f'namespace="web", service="{monitor_target}"'
    for group in rendered.get("PrometheusRule")["spec"]["groups"]:
        for rule in group["rules"]:
            expr = rule["expr"]
            assert "job=" not in expr, expr
            selectors = SELECTOR.findall(expr)
            assert selectors, expr
            assert all(matchers.startswith(expected) for _, matchers in selectors), expr
            bare = re.findall(r"\b(?:rate|increase)\(([a-z_:]+)\[", expr)
            assert not bare, f"a series read without a selector in {expr}"
