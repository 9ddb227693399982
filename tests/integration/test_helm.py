"""The Helm chart in helm/monoceros: rendered with the Helm SDK for the default values and each
file under helm/monoceros/ci, linted strictly, every manifest validated with
`kubernetes-validate --strict` against the oldest Kubernetes the chart supports and the newest the
tool knows, the schema's refusals, the NetworkPolicy evaluated for who may connect, two releases'
alert rules run side by side in promtool, the values table regenerated with Bitnami's
readme-generator-for-helm, and the rendered pod run in Docker as far as Docker can express it
(image, environment, user, read-only root, emptyDirs as tmpfs, capabilities, memory limit), probed
on its admin port, then stopped with SIGTERM.

There is no helm CLI and no cluster on our machines (Helm SDK only: helm-python-sdk). Skips
without the tools, except under CI=true, where it fails.
"""

from __future__ import annotations

import copy
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped,unused-ignore]

from tests.chart import (
    CHART,
    CUSTOM_KINDS,
    NAMESPACE,
    REPO,
    Rendered,
    cases,
    helm_sdk,
    render,
    render_error,
    values_file,
)
from tests.integration.deploy_helpers import (
    DASHBOARD,
    DEPLOY,
    RULES,
    ca_bundle,
    http_request,
    load_yaml,
    require_docker,
    run,
    tool,
    unavailable,
    wait_for,
)

CHART_YAML = values_file(CHART / "Chart.yaml")


def _kube_versions() -> list[str]:
    """The oldest Kubernetes Chart.yaml admits, and the newest kubernetes-validate knows."""
    try:
        import kubernetes_validate  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return []
    match = re.fullmatch(r">=\s*(\d+\.\d+\.\d+)(-0)?", CHART_YAML["kubeVersion"])
    assert match, f"kubeVersion {CHART_YAML['kubeVersion']!r}: expected '>=X.Y.Z-0'"
    return [match.group(1), kubernetes_validate.latest_version()]


KUBE_VERSIONS = _kube_versions()


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# ---- lint and schema validation of every manifest


@pytest.mark.parametrize("values", cases())
def test_lint_strict(values: dict[str, Any]) -> None:
    helm = helm_sdk()
    for version in KUBE_VERSIONS or ["v1.25.0"]:
        report = helm.lint(str(CHART), values, strict=True, kube_version=f"v{version}")
        problems = [m for m in report["messages"] if m["severity"] >= 2]  # warnings and errors
        assert not problems and not report["errors"], (version, problems, report["errors"])


@pytest.mark.parametrize("values", cases())
def test_manifests_validate_strictly(values: dict[str, Any], tmp_path: Path) -> None:
    validate = tool("kubernetes-validate", "kubernetes-validate")
    rendered = render(values)
    files = []
    for index, manifest in enumerate(rendered.manifests):
        if manifest["kind"] in CUSTOM_KINDS:
            continue  # CRDs: no schema offline; see test_operator_resources, test_http_route
        path = tmp_path / f"{index:02d}-{manifest['kind']}.yaml"
        path.write_text(json.dumps(manifest))
        files.append(str(path))
    assert len(files) >= 6
    for version in KUBE_VERSIONS:
        result = run(
            [validate, "--strict", "--quiet", "-k", version, *files], timeout=120, check=False
        )
        assert result.returncode == 0, (version, result.stdout[-4000:], result.stderr[-2000:])


def test_strict_validation_catches_a_misplaced_field(tmp_path: Path) -> None:
    """The check above can fail: an unknown field in a Deployment is refused."""
    validate = tool("kubernetes-validate", "kubernetes-validate")
    deployment = render({}).deployment()
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFilesystem"] = True
    path = tmp_path / "deployment.yaml"
    path.write_text(json.dumps(deployment))
    result = run([validate, "--strict", "-k", KUBE_VERSIONS[-1], str(path)], 60, check=False)
    assert result.returncode != 0 and "readOnlyRootFilesystem" in result.stdout + result.stderr


def test_kube_versions_are_known() -> None:
    if not KUBE_VERSIONS:
        unavailable("kubernetes-validate is not installed (pip install -e '.[dev]')")
    from kubernetes_validate.utils import all_versions  # type: ignore[import-untyped,unused-ignore]

    assert KUBE_VERSIONS[0] in all_versions(), f"kubernetes-validate has no {KUBE_VERSIONS[0]}"
    assert KUBE_VERSIONS[0] != KUBE_VERSIONS[1]


# ---- what each values file produces


def _pod(rendered: Rendered) -> dict[str, Any]:
    pod: dict[str, Any] = rendered.deployment()["spec"]["template"]["spec"]
    return pod


@pytest.mark.parametrize("values", cases())
def test_pod_is_locked_down(values: dict[str, Any]) -> None:
    rendered = render(values)
    pod, container = _pod(rendered), rendered.container()
    security = {**pod["securityContext"], **container["securityContext"]}
    assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    account = rendered.get("ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    forwarded = rendered.server_env().get("MONOCEROS_FORWARDED_ALLOW_IPS", "")
    assert "*" not in forwarded


def test_defaults() -> None:
    rendered = render({})
    assert rendered.kinds() == {
        "ConfigMap",
        "Deployment",
        "Service",
        "ServiceAccount",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "Pod",  # the helm test hook
    }
    env = rendered.server_env()
    assert "MONOCEROS_FORWARDED_ALLOW_IPS" not in env  # no proxy trusted without an ingress
    assert env["MONOCEROS_WORKERS"] == "1"
    deployment = rendered.deployment()
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    image = rendered.container()["image"]
    assert image == f"ghcr.io/monoceros-server/monoceros:{CHART_YAML['appVersion']}"
    spread = _pod(rendered)["topologySpreadConstraints"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert {c["topologyKey"] for c in spread} == {
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    }
    assert all(c["labelSelector"]["matchLabels"] == selector for c in spread)
    assert rendered.get("PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_helm_test_hook_gets_readyz_through_the_network_policy() -> None:
    rendered = render({})
    hook = rendered.get("Pod", "-test-readyz")
    assert hook["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = hook["spec"]["containers"][0]["command"][-1]
    service = rendered.metrics_service()
    assert f"http://{service['metadata']['name']}:9000/readyz" in script
    peer = Peer(NAMESPACE, hook["metadata"]["labels"])
    assert admits(rendered.get("NetworkPolicy"), peer, "metrics")
    assert hook["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


class Peer:
    """A pod that connects: its namespace (with the label Kubernetes sets on every namespace)
    and its labels."""

    def __init__(self, namespace: str, labels: dict[str, str] | None = None) -> None:
        self.namespace = {"kubernetes.io/metadata.name": namespace}
        self.labels = labels or {}


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, selector  # the chart uses matchLabels only
    return selector.get("matchLabels", {}).items() <= labels.items()


def admits(policy: dict[str, Any], peer: Peer, port: str) -> bool:
    """NetworkPolicy ingress semantics for one peer and one named port: a rule admits when one
    of its `from` entries matches (all of an entry's selectors at once; a podSelector alone means
    the policy's namespace) and one of its ports is the port; no `from` or no `ports`: any."""
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    for rule in spec.get("ingress", []):
        ports = rule.get("ports")
        if ports is not None and not any(p.get("port") == port for p in ports):
            continue
        sources = rule.get("from")
        if sources is None:
            return True
        for source in sources:
            assert "ipBlock" not in source
            namespace_ok = (
                _matches(source["namespaceSelector"], peer.namespace)
                if "namespaceSelector" in source
                else peer.namespace["kubernetes.io/metadata.name"]
                == policy["metadata"]["namespace"]
            )
            pod_ok = (
                _matches(source["podSelector"], peer.labels) if "podSelector" in source else True
            )
            if namespace_ok and pod_ok:
                return True
    return False


CONTROLLER = Peer("ingress-nginx", {"app.kubernetes.io/name": "ingress-nginx"})
PROMETHEUS = Peer("monitoring", {"app.kubernetes.io/name": "prometheus"})
CALLER = Peer("web", {"app": "billing"})  # another app of the release namespace
ELSEWHERE = Peer("shop", {"app": "checkout"})  # another namespace
CLIENT = Peer("web", {"demo-monoceros-client": "true"})
GATEWAY = Peer("gateway-system", {"gateway.networking.k8s.io/gateway-name": "public"})
CLOSED: dict[str, Any] = {"networkPolicy": {"allowExternal": False}}
EXTRA_CALLER: dict[str, Any] = {
    "networkPolicy": {
        "allowExternal": False,
        "extraIngress": [
            {
                "from": [{"podSelector": {"matchLabels": {"app": "billing"}}}],
                "ports": [{"port": "http"}],
            }
        ],
    }
}
GATEWAY_VALUES = values_file(CHART / "ci" / "gateway-values.yaml")


@pytest.mark.parametrize(
    ("values", "peer", "port", "admitted"),
    [
        # Defaults: the app's port is open to the pods that call it; /metrics to Prometheus only.
        pytest.param({}, CALLER, "http", True, id="caller-http"),
        pytest.param({}, ELSEWHERE, "http", True, id="other-namespace-http"),
        pytest.param({}, CONTROLLER, "http", True, id="controller-http"),
        pytest.param({}, CALLER, "metrics", False, id="caller-no-metrics"),
        pytest.param({}, CONTROLLER, "metrics", False, id="controller-no-metrics"),
        pytest.param({}, PROMETHEUS, "metrics", True, id="prometheus-metrics"),
        pytest.param({}, CLIENT, "metrics", True, id="labelled-client-metrics"),
        # allowExternal=false: the controller and labelled clients only.
        pytest.param(CLOSED, CALLER, "http", False, id="closed-caller"),
        pytest.param(CLOSED, ELSEWHERE, "http", False, id="closed-elsewhere"),
        pytest.param(CLOSED, CONTROLLER, "http", True, id="closed-controller"),
        pytest.param(CLOSED, CLIENT, "http", True, id="closed-labelled-client"),
        pytest.param(CLOSED, PROMETHEUS, "http", False, id="closed-prometheus-not-http"),
        pytest.param(EXTRA_CALLER, CALLER, "http", True, id="closed-extra-ingress"),
        pytest.param(EXTRA_CALLER, ELSEWHERE, "http", False, id="closed-extra-ingress-only"),
        pytest.param(GATEWAY_VALUES, GATEWAY, "http", True, id="gateway"),
        pytest.param(GATEWAY_VALUES, CONTROLLER, "http", False, id="gateway-only"),
        pytest.param(GATEWAY_VALUES, GATEWAY, "metrics", False, id="gateway-no-metrics"),
    ],
)
def test_network_policy(values: dict[str, Any], peer: Peer, port: str, admitted: bool) -> None:
    assert admits(render(values).get("NetworkPolicy"), peer, port) is admitted


def test_ingress_matches_the_servers_proxy_trust() -> None:
    values = values_file(CHART / "ci" / "ingress-values.yaml")
    rendered = render(values)
    ingress = rendered.get("Ingress")
    env = rendered.server_env()
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [
        {"hosts": ["app.example.com"], "secretName": "app.example.com-tls"}
    ]
    annotations = ingress["metadata"]["annotations"]
    # ingress-nginx lets through what the server accepts, no more (its own default is 1m).
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "10485760"
    assert env["MONOCEROS_LIMIT_REQUEST_BODY"] == "10485760"
    assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert env["MONOCEROS_FORWARDED_ALLOW_IPS"] == "10.244.0.0/16"
    assert env["MONOCEROS_PROXY_HEADERS"] == "true"
    # Longer than ingress-nginx's upstream keep-alive (60 s): nginx closes idle connections first.
    assert float(env["MONOCEROS_TIMEOUT_KEEP_ALIVE"]) > 60
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {
        "name": rendered.service()["metadata"]["name"],
        "port": {"name": "http"},
    }
    assert "https://app.example.com/" in rendered.notes


def test_autoscaling() -> None:
    rendered = render(values_file(CHART / "ci" / "autoscaling-values.yaml"))
    hpa = rendered.get("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert "replicas" not in rendered.deployment()["spec"]  # the HPA owns it
    targets = {m["resource"]["name"]: m["resource"]["target"] for m in hpa["spec"]["metrics"]}
    assert targets == {
        "cpu": {"type": "Utilization", "averageUtilization": 60},
        "memory": {"type": "Utilization", "averageUtilization": 75},
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 20)
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert hpa["spec"]["scaleTargetRef"]["name"] == rendered.deployment()["metadata"]["name"]


def test_http_route() -> None:
    rendered = render(GATEWAY_VALUES)
    route = rendered.get("HTTPRoute")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    spec = route["spec"]
    assert set(spec) == {"parentRefs", "hostnames", "rules"}
    assert spec["parentRefs"] == [
        {"name": "public", "namespace": "gateway-system", "sectionName": "https"}
    ]
    assert spec["hostnames"] == ["app.example.com"]
    (rule,) = spec["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    service = rendered.service()
    (backend,) = rule["backendRefs"]
    assert backend == {
        "name": service["metadata"]["name"],
        "port": service["spec"]["ports"][0]["port"],
    }
    assert rendered.server_env()["MONOCEROS_FORWARDED_ALLOW_IPS"] == "10.244.0.0/16"
    assert "Ingress" not in rendered.kinds()
    assert "HTTPRoute demo-monoceros" in rendered.notes


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(GATEWAY_VALUES, id="loadbalancer-and-httproute"),
        pytest.param(values_file(CHART / "ci" / "ingress-values.yaml"), id="ingress"),
    ],
)
def test_metrics_are_never_published(values: dict[str, Any]) -> None:
    """The admin listener is on a ClusterIP Service of its own; whatever publishes the app (a
    LoadBalancer or NodePort Service, the Ingress, the HTTPRoute) reaches the http port only."""
    rendered = render(values)
    app = rendered.service()
    metrics = rendered.metrics_service()
    assert [p["targetPort"] for p in app["spec"]["ports"]] == ["http"]
    assert metrics["spec"]["type"] == "ClusterIP"
    assert [p["targetPort"] for p in metrics["spec"]["ports"]] == ["metrics"]
    backends = [
        path["backend"]["service"]
        for kind in ("Ingress",)
        if kind in rendered.kinds()
        for rule in rendered.get(kind)["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]
    if "HTTPRoute" in rendered.kinds():
        backends += [
            {"name": ref["name"], "port": {"number": ref["port"]}}
            for rule in rendered.get("HTTPRoute")["spec"]["rules"]
            for ref in rule["backendRefs"]
        ]
    assert backends
    for backend in backends:
        assert backend["name"] == app["metadata"]["name"]
        assert backend["port"] in ({"name": "http"}, {"number": app["spec"]["ports"][0]["port"]})


def test_extra_containers_and_hooks() -> None:
    values = values_file(CHART / "ci" / "extras-values.yaml")
    rendered = render(values)
    pod = _pod(rendered)
    container = rendered.container()
    assert container["command"] == ["monoceros"]
    assert container["args"] == ["--header", "X-Frame-Options:DENY"]
    assert container["lifecycle"] == values["lifecycle"]
    assert container["env"] == values["extraEnv"]
    # The chart's ConfigMap first, so that the Secret's variables win where both set one.
    assert [list(source) for source in container["envFrom"]] == [["configMapRef"], ["secretRef"]]
    assert pod["initContainers"] == values["initContainers"]
    assert [c["name"] for c in pod["containers"]] == ["monoceros", "log-shipper"]
    volumes = {v["name"] for v in pod["volumes"]}
    assert volumes == {"tmp", "app-logs"}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"/tmp", "/var/log/app"}


def test_workers_are_rendered_for_the_server() -> None:
    """workers > 1 is checked by rendering and the CLI's own parsing (test_chart_consistency.py),
    not run in Docker: the supervisor is another piece of work."""
    rendered = render(values_file(CHART / "ci" / "workers-values.yaml"))
    env = rendered.server_env()
    assert env["MONOCEROS_WORKERS"] == "4"
    assert _pod(rendered)["terminationGracePeriodSeconds"] == 10 + 45 + 5


def test_config_changes_roll_the_pods() -> None:
    def checksum(values: dict[str, Any]) -> str:
        annotations = render(values).deployment()["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["checksum/config"])

    assert checksum({}) == checksum({})
    assert checksum({}) != checksum({"server": {"logLevel": "debug"}})


def test_custom_security_context_and_image() -> None:
    rendered = render(values_file(CHART / "ci" / "security-context-values.yaml"))
    container, pod = rendered.container(), _pod(rendered)
    assert container["image"] == (
        "registry.example.com/team/api@sha256:"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    )
    assert pod["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert container["securityContext"]["runAsUser"] == 1000680000
    assert container["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "api-database"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"/tmp", "/var/uploads"}


# ---- monitoring: operator resources (checked structurally), rules and dashboard


def test_operator_resources() -> None:
    rendered = render(values_file(CHART / "ci" / "monitoring-values.yaml"))
    service = rendered.metrics_service()
    monitor = rendered.get("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kps"  # what kube-prometheus-stack selects
    spec = monitor["spec"]
    assert set(spec) == {"selector", "namespaceSelector", "endpoints"}
    # The metrics Service only: the series get its name as their `service` label.
    selected = [
        m["metadata"]["name"]
        for m in rendered.manifests
        if m["kind"] == "Service"
        and spec["selector"]["matchLabels"].items() <= m["metadata"]["labels"].items()
    ]
    assert selected == [service["metadata"]["name"]]
    assert spec["namespaceSelector"] == {"matchNames": ["web"]}
    (endpoint,) = spec["endpoints"]
    assert endpoint == {
        "port": "metrics",
        "path": "/metrics",
        "interval": "30s",
        "scrapeTimeout": "10s",
    }
    assert "metrics" in {p["name"] for p in service["spec"]["ports"]}

    rule = rendered.get("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kps"
    # The Compose stack's rules, with its job="monoceros" replaced by this release's series.
    text = RULES.read_text().replace(
        'job="monoceros"', 'namespace="web", service="demo-monoceros-metrics"'
    )
    source = yaml.safe_load(text)
    assert set(rule["spec"]) == {"groups"}
    assert _rules(rule["spec"]) == _rules(source)
    assert rule["spec"] == source  # labels, annotations and `for` too

    annotations = rendered.deployment()["spec"]["template"]["metadata"]["annotations"]
    assert not any(key.startswith("prometheus.io/") for key in annotations)


def _rules(groups: dict[str, Any]) -> dict[str, str]:
    return {
        rule.get("alert") or rule["record"]: rule["expr"]
        for group in groups["groups"]
        for rule in group["rules"]
    }


def test_dashboard_config_map() -> None:
    rendered = render(values_file(CHART / "ci" / "monitoring-values.yaml"))
    config_map = rendered.get("ConfigMap", "-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["namespace"] == "observability"
    assert config_map["metadata"]["annotations"]["grafana_folder"] == "monoceros"
    assert json.loads(config_map["data"]["monoceros.json"]) == json.loads(DASHBOARD.read_text())
    assert "monoceros-overview" in rendered.notes


MONITORED: dict[str, Any] = {
    "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}
}


def test_two_releases_alert_apart(tmp_path: Path) -> None:
    """The PrometheusRules of two releases in one namespace, evaluated by promtool over series of
    both as the ServiceMonitors label them: each release's rules see its own series only, record
    nothing for the other, and an alert names the release it is about."""
    promtool = tool("promtool")
    groups = []
    for release in ("api", "web"):
        output = (
            helm_sdk()
            .Chart.load(str(CHART))
            .render(MONITORED, name=release, namespace=NAMESPACE, is_install=True)
        )
        (text,) = [t for path, t in output.items() if path.endswith("prometheusrule.yaml")]
        for group in yaml.safe_load(text)["spec"]["groups"]:
            groups.append({**group, "name": f"{release}.{group['name']}"})
    (tmp_path / "rules.yml").write_text(json.dumps({"groups": groups}))

    def series(release: str, status: str, per_minute: int) -> dict[str, str]:
        labels = (
            f'job="{release}-monoceros-metrics",namespace="{NAMESPACE}",'
            f'service="{release}-monoceros-metrics",pod="{release}-monoceros-0",'
            f'instance="10.0.0.{len(release)}:9000",http_response_status_code="{status}"'
        )
        return {
            "series": f"http_server_request_duration_seconds_count{{{labels}}}",
            "values": f"0+{per_minute}x30",
        }

    (runbook,) = [
        rule["annotations"]["runbook_url"]
        for group in load_yaml(RULES)["groups"]
        for rule in group["rules"]
        if rule.get("alert") == "MonocerosHighErrorRatio"
    ]
    # api answers 25% with 500; web answers everything with 200.
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    series("api", "200", 45),
                    series("api", "500", 15),
                    series("web", "200", 600),
                ],
                "promql_expr_test": [
                    {
                        # One recorded series per release, not two: each is recorded once.
                        "expr": "count by (service) (job_instance:http_server_requests:rate5m)",
                        "eval_time": "10m",
                        "exp_samples": [
                            {"labels": '{service="api-monoceros-metrics"}', "value": 1},
                            {"labels": '{service="web-monoceros-metrics"}', "value": 1},
                        ],
                    }
                ],
                "alert_rule_test": [
                    {
                        "alertname": "MonocerosHighErrorRatio",
                        "eval_time": "10m",
                        "exp_alerts": [
                            {
                                "exp_labels": {
                                    "severity": "warning",
                                    "job": "api-monoceros-metrics",
                                    "namespace": NAMESPACE,
                                    "service": "api-monoceros-metrics",
                                    "pod": "api-monoceros-0",
                                    "instance": "10.0.0.3:9000",
                                },
                                "exp_annotations": {
                                    "summary": "10.0.0.3:9000: 25% of requests fail with 5xx",
                                    "description": "More than 5% of requests to "
                                    "api-monoceros-metrics/10.0.0.3:9000 got a 5xx answer over "
                                    "5 minutes.",
                                    "runbook_url": runbook,
                                },
                            }
                        ],
                    }
                ],
            }
        ],
    }
    (tmp_path / "rules.test.yml").write_text(json.dumps(tests))
    result = run([promtool, "test", "rules", str(tmp_path / "rules.test.yml")], 60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_values_table_is_generated_from_the_param_lines(tmp_path: Path) -> None:
    """Bitnami's readme-generator-for-helm (npm) accepts values.yaml's `## @param` lines (it fails
    on a value without one, or a line without a value), and the chart README's table is what it
    generates (`make chart-readme`)."""
    npx = tool("npx")
    values, readme = tmp_path / "values.yaml", tmp_path / "README.md"
    values.write_bytes((CHART / "values.yaml").read_bytes())
    readme.write_bytes((CHART / "README.md").read_bytes())
    generator = re.search(r"^README_GENERATOR := (\S+)$", (REPO / "Makefile").read_text(), re.M)
    assert generator
    result = run(
        [npx, "--yes", generator.group(1), "--values", str(values), "--readme", str(readme)],
        timeout=300,
        check=False,
    )
    if result.returncode != 0 and "npm ERR!" in result.stderr:  # not installed: no registry
        unavailable(f"npx could not install readme-generator-for-helm: {result.stderr[-2000:]}")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert readme.read_text() == (CHART / "README.md").read_text(), "run `make chart-readme`"
    # ... and it can fail: a value without a `## @param` line is refused.
    values.write_text(values.read_text() + "undocumented: 1\n")
    refused = run(
        [npx, "--yes", generator.group(1), "--values", str(values), "--readme", str(readme)],
        300,
        check=False,
    )
    assert refused.returncode != 0 and "Missing metadata for key: undocumented" in refused.stdout


# ---- the schema and validateValues refuse bad values


def test_proxy_protocol_behind_an_nlb() -> None:
    """The documented NLB setup: the annotation on the Service, the balancer's subnets
    trusted, and the server told to read PROXY headers."""
    annotation = "service.beta.kubernetes.io/aws-load-balancer-proxy-protocol"
    rendered = render(
        {
            "server": {"proxyProtocol": True, "forwardedAllowIps": "10.0.64.0/20"},
            "service": {"type": "LoadBalancer", "annotations": {annotation: "*"}},
        }
    )
    env = rendered.server_env()
    assert env["MONOCEROS_PROXY_PROTOCOL"] == "true"
    assert env["MONOCEROS_FORWARDED_ALLOW_IPS"] == "10.0.64.0/20"
    service = rendered.get("Service", suffix="monoceros")  # the application's, not -metrics
    assert service["metadata"]["annotations"][annotation] == "*"


def test_http2_for_meshes() -> None:
    """server.http2 turns the option on and tells whoever routes to the pods (a mesh, a
    cloud load balancer) to speak h2c; off, the Service says nothing of it."""
    rendered = render({"server": {"http2": True}})
    assert rendered.server_env()["MONOCEROS_HTTP2"] == "true"
    port = rendered.get("Service", suffix="monoceros")["spec"]["ports"][0]
    assert port["appProtocol"] == "kubernetes.io/h2c"
    default = render({}).get("Service", suffix="monoceros")["spec"]["ports"][0]
    assert "appProtocol" not in default
    assert "MONOCEROS_HTTP2" not in render({}).server_env()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param({"replicas": 3}, "additional properties 'replicas'", id="unknown-top-level"),
        pytest.param({"server": {"wokers": 2}}, "'wokers' not allowed", id="unknown-server-key"),
        pytest.param({"server": {"workers": "4"}}, "/server/workers", id="workers-string"),
        pytest.param({"server": {"workers": 0}}, "/server/workers", id="workers-zero"),
        pytest.param({"server": {"logLevel": "verbose"}}, "/server/logLevel", id="log-level"),
        pytest.param({"server": {"timeoutGracefulShutdown": None}}, "timeoutGraceful", id="drain"),
        pytest.param({"replicaCount": "2"}, "/replicaCount", id="replicas-string"),
        pytest.param({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy", id="pull"),
        pytest.param({"image": {"digest": "latest"}}, "/image/digest", id="digest"),
        pytest.param({"containerPorts": {"http": 70000}}, "/containerPorts/http", id="port"),
        pytest.param({"ingress": {"enabled": "yes"}}, "/ingress/enabled", id="ingress-bool"),
        pytest.param({"app": "app.py"}, "/app", id="app-not-module-attr"),
        pytest.param({"commonLabels": {"team": 5}}, "/commonLabels/team", id="label-int"),
        pytest.param(
            {"ingress": {"enabled": True}}, "set server.forwardedAllowIps", id="ingress-no-trust"
        ),
        pytest.param(
            {"containerPorts": {"http": 9000, "metrics": 9000}}, "must differ", id="same-ports"
        ),
        pytest.param(
            {"server": {"proxyProtocol": True}}, "its subnets", id="proxy-protocol-no-trust"
        ),
        pytest.param(
            {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}},
            "maxReplicas must not be below",
            id="hpa-range",
        ),
        pytest.param(
            {"autoscaling": {"enabled": True}, "resources": {"requests": None}},
            "needs resources.requests.cpu",
            id="hpa-no-requests",
        ),
        pytest.param({"pdb": {"minAvailable": 2}}, "node drains block", id="pdb-blocks-drains"),
        pytest.param({"httpRoute": {"parentRef": []}}, "'parentRef' not allowed", id="route-typo"),
        pytest.param(
            {"service": {"ports": {"metrics": 9000}}}, "'metrics' not allowed", id="moved"
        ),
        pytest.param({"sidecars": [{"image": "x"}]}, "/sidecars/0", id="sidecar-no-name"),
        pytest.param({"networkPolicy": {"allowExternal": "no"}}, "allowExternal", id="np-bool"),
        pytest.param(
            {"httpRoute": {"enabled": True}, "server": {"forwardedAllowIps": "10.0.0.0/8"}},
            "name the Gateway",
            id="route-no-parent",
        ),
        pytest.param(
            {"httpRoute": {"enabled": True, "parentRefs": [{"name": "gw"}]}},
            "Gateway's pods",
            id="route-no-trust",
        ),
        pytest.param(
            {"metrics": {"prometheusRule": {"enabled": True}}},
            "needs metrics.serviceMonitor.enabled",
            id="rules-without-monitor",
        ),
        pytest.param(
            {"server": {"shutdownDelay": 1}, "readinessProbe": {"periodSeconds": 5}},
            "shorter than server.shutdownDelay",
            id="readiness-slower-than-delay",
        ),
    ],
)
def test_bad_values_are_refused(values: dict[str, Any], message: str) -> None:
    assert message in render_error(values)


def test_validate_values_reports_every_problem_at_once() -> None:
    error = render_error(
        {
            "ingress": {"enabled": True},
            "containerPorts": {"http": 9000, "metrics": 9000},
        }
    )
    assert "forwardedAllowIps" in error and "must differ" in error


# ---- the rendered pod, run in Docker

IMAGE = "monoceros:helm-test"
LOCAL_PYTHON = "local/python:3.11-slim-bookworm"
# The image the test builds, in place of the chart's default registry image.
DOCKER_VALUES: dict[str, Any] = {
    "image": {"registry": "", "repository": "monoceros", "tag": "helm-test", "digest": ""}
}
DOCKER_CASES = [
    pytest.param({}, id="defaults"),
    pytest.param(values_file(CHART / "ci" / "security-context-values.yaml"), id="security-context"),
    # command and args reach the server: its --header option answers every response.
    pytest.param(values_file(CHART / "ci" / "extras-values.yaml"), id="command-and-args"),
]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    require_docker()
    run([str(DEPLOY / "base-images.sh")], timeout=420)
    build = ["/usr/bin/docker", "build", "--quiet", "-f", "docker/Dockerfile", "-t", IMAGE]
    build += ["--build-arg", f"PYTHON_IMAGE={LOCAL_PYTHON}"]
    bundle = ca_bundle(tmp_path_factory.mktemp("ca"))
    if bundle is not None:  # pip inside the build goes through the machine's TLS-inspecting proxy
        build += ["--secret", f"id=pip_ca,src={bundle}"]
    run([*build, "."], timeout=420, env={**os.environ, "DOCKER_BUILDKIT": "1"})
    return IMAGE


def _bytes(quantity: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "k": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(float(quantity.removesuffix(suffix)) * factor)
    return int(quantity)


def docker_run_args(
    pod: dict[str, Any], container: dict[str, Any], env_from: dict[str, str], options: list[str]
) -> tuple[list[str], list[str]]:
    """`docker run` arguments for one container of a pod spec (`options` go before the image),
    and the parts of the spec Docker cannot express."""
    pod_security = pod.get("securityContext", {})
    security = {**pod_security, **container.get("securityContext", {})}
    skipped = []
    args = [*options, "--user", f"{security['runAsUser']}:{security.get('runAsGroup', 0)}"]
    if "fsGroup" in pod_security:
        args += ["--group-add", str(pod_security["fsGroup"])]
    if security.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    for capability in security.get("capabilities", {}).get("drop", []):
        args += ["--cap-drop", capability]
    for capability in security.get("capabilities", {}).get("add", []):
        args += ["--cap-add", capability]
    if security.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    assert not security.get("privileged")
    # RuntimeDefault is the runtime's default seccomp profile: Docker applies its own by default.
    assert security.get("seccompProfile", {}).get("type") == "RuntimeDefault"
    volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "emptyDir" not in volume:
            skipped.append(f"volume {mount['name']} ({', '.join(volume)})")
            continue
        tmpfs = "rw,nosuid,nodev,mode=1777"
        if "sizeLimit" in volume["emptyDir"]:
            tmpfs += f",size={_bytes(str(volume['emptyDir']['sizeLimit']))}"
        args += ["--tmpfs", f"{mount['mountPath']}:{tmpfs}"]
    for name, value in env_from.items():
        args += ["--env", f"{name}={value}"]
    for variable in container.get("env", []):
        if "value" in variable:
            args += ["--env", f"{variable['name']}={variable['value']}"]
        else:
            skipped.append(f"env {variable['name']} (valueFrom)")
    memory = container.get("resources", {}).get("limits", {}).get("memory")
    if memory:
        args += ["--memory", str(_bytes(str(memory)))]
    for port in container.get("ports", []):
        args += ["--publish", f"127.0.0.1::{port['containerPort']}"]
    if "terminationGracePeriodSeconds" in pod:
        args += ["--stop-timeout", str(pod["terminationGracePeriodSeconds"])]
    command = container.get("command", [])
    if command:
        args += ["--entrypoint", command[0]]
    args.append(container["image"])
    args += command[1:] + container.get("args", [])
    return args, skipped


def _status(port: int, path: str) -> int | None:
    try:
        return http_request(port, path, timeout=2).status
    except OSError:
        return None


@pytest.fixture
def docker_names() -> Iterator[tuple[str, str]]:
    """A container name and a Docker network of its own (removed afterwards)."""
    name = f"monoceros-helm-test-{uuid.uuid4().hex[:8]}"
    run(["docker", "network", "create", name], timeout=60)
    yield name, name
    logs = run(["docker", "logs", "--tail", "40", name], timeout=30, check=False)
    print(logs.stdout[-4000:], logs.stderr[-4000:])
    run(["docker", "rm", "--force", name], timeout=60, check=False)
    run(["docker", "network", "rm", name], timeout=60, check=False)


@pytest.mark.timeout(900)  # a cold machine builds the base images first (~2 min)
@pytest.mark.parametrize("values", DOCKER_CASES)
def test_rendered_pod_starts_passes_its_probes_and_drains(
    values: dict[str, Any], image: str, docker_names: tuple[str, str]
) -> None:
    name, network = docker_names
    rendered = render(_merge(values, DOCKER_VALUES))
    container, pod = rendered.container(), _pod(rendered)
    assert container["image"] == image
    service = rendered.metrics_service()["metadata"]["name"]
    # The metrics Service's name resolves to the container on its network (the helm test hook).
    options = ["--name", name, "--detach", "--network", network, "--network-alias", service]
    args, skipped = docker_run_args(pod, container, rendered.server_env(), options)
    print("docker run", " ".join(args), "\nnot expressible in Docker:", skipped)
    run(["docker", "run", *args], timeout=60)

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}

    def published(container_port: int) -> int:
        out = run(["docker", "port", name, f"{container_port}/tcp"], timeout=30).stdout
        return int(out.splitlines()[0].rsplit(":", 1)[1])

    http_port, metrics_port = published(ports["http"]), published(ports["metrics"])

    # The startup probe's budget, then readiness and liveness, as the kubelet would ask.
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "metrics", probe
    startup = container["startupProbe"]
    wait_for(
        "the startup probe",
        lambda: _status(metrics_port, startup["httpGet"]["path"]) == 200,
        timeout=startup["periodSeconds"] * startup["failureThreshold"],
    )
    wait_for(
        "the readiness probe",
        lambda: _status(metrics_port, container["readinessProbe"]["httpGet"]["path"]) == 200,
        timeout=30,
    )
    assert _status(metrics_port, container["livenessProbe"]["httpGet"]["path"]) == 200
    response = http_request(http_port, "/")
    assert (response.status, response.body) == (200, b"Hello, World!")
    if "--header" in container.get("args", []):
        assert response.headers["x-frame-options"] == "DENY"
    assert _status(metrics_port, "/metrics") == 200

    # The user, and a root filesystem that only /tmp (the emptyDir) can be written to.
    user = run(["docker", "exec", name, "id", "-u"], timeout=30).stdout.strip()
    assert user == str(container["securityContext"]["runAsUser"])
    assert run(["docker", "exec", name, "touch", "/tmp/x"], 30, check=False).returncode == 0
    denied = run(["docker", "exec", name, "touch", "/app/x"], 30, check=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr

    # The `helm test` hook pod, locked down the same way, through the Service's name (Docker
    # has no Service: its metrics port must be the container's for this to stand in).
    assert rendered.metrics_service()["spec"]["ports"][0]["port"] == ports["metrics"]
    hook = rendered.get("Pod", "-test-readyz")["spec"]
    hook_args, _ = docker_run_args(hook, hook["containers"][0], {}, ["--rm", "--network", network])
    result = run(["docker", "run", *hook_args], timeout=60, check=False)
    assert result.returncode == 0 and "ready:" in result.stdout, result.stderr[-2000:]

    # SIGTERM, as the kubelet sends it: readiness 503 at once while the app still serves for
    # the shutdown delay, then exit 0 well inside terminationGracePeriodSeconds.
    env = rendered.server_env()
    grace = pod["terminationGracePeriodSeconds"]
    stopped_at = time.monotonic()
    run(["docker", "kill", "--signal", "TERM", name], timeout=30)
    wait_for("/readyz to turn 503", lambda: _status(metrics_port, "/readyz") == 503, timeout=3)
    assert _status(metrics_port, "/healthz") == 200
    assert http_request(http_port, "/").status == 200
    exit_code = run(["docker", "wait", name], timeout=grace + 15).stdout.strip()
    elapsed = time.monotonic() - stopped_at
    assert exit_code == "0"
    assert float(env["MONOCEROS_SHUTDOWN_DELAY"]) <= elapsed < grace, elapsed


def test_docker_args_cover_the_pod_spec() -> None:
    """The translation itself, without Docker: every field of the locked-down pod maps to a flag."""
    rendered = render(_merge({}, DOCKER_VALUES))
    args, skipped = docker_run_args(
        _pod(rendered), rendered.container(), rendered.server_env(), ["--detach"]
    )
    joined = " ".join(args)
    for flag in (
        "--user 10001:10001",
        "--group-add 10001",
        "--read-only",
        "--cap-drop ALL",
        "--security-opt no-new-privileges",
        "--tmpfs /tmp:rw,nosuid,nodev,mode=1777,size=268435456",
        "--env MONOCEROS_APP=app:app",
        "--publish 127.0.0.1::8000",
        "--publish 127.0.0.1::9000",
        "--memory 268435456",
        "--stop-timeout 30",
    ):
        assert flag in joined, flag
    assert args[-1] == IMAGE and not skipped
