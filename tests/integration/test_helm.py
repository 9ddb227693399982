"""The Helm chart in helm/monoceros: rendered with the Helm SDK for the default values and each
file under helm/monoceros/ci, linted strictly, every manifest validated with
`kubernetes-validate --strict` against the oldest Kubernetes the chart supports and the newest the
tool knows, the schema's refusals, and the rendered pod run in Docker as far as Docker can express
it (image, environment, user, read-only root, emptyDirs as tmpfs, capabilities, memory limit),
probed on its admin port, then stopped with SIGTERM.

There is no helm CLI and no cluster on our machines (only the Helm SDK). Skips without the
tools, except under CI=true, where it fails.
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

from tests.chart import (
    CHART,
    OPERATOR_KINDS,
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
        if manifest["kind"] in OPERATOR_KINDS:
            continue  # CRDs: no schema offline; see test_operator_resources
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
    assert image == f"monoceros:{CHART_YAML['appVersion']}"
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
    service = rendered.get("Service")
    assert f"http://{service['metadata']['name']}:9000/readyz" in script
    policy = rendered.get("NetworkPolicy")["spec"]
    client_rule = policy["ingress"][2]
    (label,) = client_rule["from"][0]["podSelector"]["matchLabels"].items()
    assert hook["metadata"]["labels"][label[0]] == label[1]
    assert hook["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True


def test_network_policy_admits_only_the_controller_and_prometheus() -> None:
    policy = render({}).get("NetworkPolicy")
    rules = policy["spec"]["ingress"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    controller, prometheus = rules[0], rules[1]
    assert controller["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert controller["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "ingress-nginx"
    }
    assert prometheus["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert prometheus["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }


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
        "name": rendered.get("Service")["metadata"]["name"],
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
    service = rendered.get("Service")
    monitor = rendered.get("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kps"  # what kube-prometheus-stack selects
    spec = monitor["spec"]
    assert set(spec) == {"jobLabel", "selector", "namespaceSelector", "endpoints"}
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
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
    source = load_yaml(RULES)
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


# ---- the schema and validateValues refuse bad values


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
    service = rendered.get("Service")["metadata"]["name"]
    # The Service's name resolves to the container on its network (for the helm test hook).
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
    assert _status(metrics_port, "/metrics") == 200

    # The user, and a root filesystem that only /tmp (the emptyDir) can be written to.
    user = run(["docker", "exec", name, "id", "-u"], timeout=30).stdout.strip()
    assert user == str(container["securityContext"]["runAsUser"])
    assert run(["docker", "exec", name, "touch", "/tmp/x"], 30, check=False).returncode == 0
    denied = run(["docker", "exec", name, "touch", "/app/x"], 30, check=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr

    # The `helm test` hook pod, locked down the same way, through the Service's name (Docker
    # has no Service: its metrics port must be the container's for this to stand in).
    assert rendered.get("Service")["spec"]["ports"][1]["port"] == ports["metrics"]
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
