"""The Helm chart in helm/monoceros, rendered offline with the Helm SDK (`helm-python-sdk`).

Used by tests/unit/test_chart_consistency.py and tests/integration/test_helm.py. The SDK is a dev
dependency; without it a test skips, except under CI=true, where it fails.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped,unused-ignore]

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "helm" / "monoceros"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
RELEASE = "demo"
NAMESPACE = "web"
# Custom resources (Prometheus Operator, Gateway API): no schema offline, checked field by field.
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule", "HTTPRoute"}


def helm_sdk() -> Any:
    try:
        import helm_python  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        reason = "helm-python-sdk is not installed (pip install -e '.[dev]')"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: chart checks must run)")
        pytest.skip(reason)
    return helm_python


@dataclass(frozen=True)
class Rendered:
    """One `helm template`: the manifests by kind and name, and NOTES.txt."""

    manifests: list[dict[str, Any]]
    notes: str

    def get(self, kind: str, suffix: str = "") -> dict[str, Any]:
        found = [
            m
            for m in self.manifests
            if m["kind"] == kind and m["metadata"]["name"].endswith(suffix)
        ]
        assert len(found) == 1, f"{len(found)} {kind} manifests named *{suffix}"
        return found[0]

    def kinds(self) -> set[str]:
        return {m["kind"] for m in self.manifests}

    def deployment(self) -> dict[str, Any]:
        return self.get("Deployment")

    def service(self) -> dict[str, Any]:
        """The application's Service (its http port only)."""
        return self.get("Service", "-monoceros")

    def metrics_service(self) -> dict[str, Any]:
        """The admin listener's ClusterIP Service."""
        return self.get("Service", "-monoceros-metrics")

    def container(self) -> dict[str, Any]:
        """The server's container (sidecars may sit beside it)."""
        containers: list[dict[str, Any]] = self.deployment()["spec"]["template"]["spec"][
            "containers"
        ]
        (server,) = [c for c in containers if c["name"] == "monoceros"]
        return server

    def server_env(self) -> dict[str, str]:
        """The MONOCEROS_* variables of the server container (its envFrom ConfigMap)."""
        env: dict[str, str] = self.get("ConfigMap", "-env")["data"]
        return env


def values_file(path: Path) -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    return values


@functools.lru_cache(maxsize=1)
def _chart() -> Any:
    return helm_sdk().Chart.load(str(CHART))


def render(values: dict[str, Any] | None = None) -> Rendered:
    """Render the chart as `helm install demo helm/monoceros -n web -f values` would."""
    output: dict[str, str] = _chart().render(
        values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True
    )
    manifests = []
    notes = ""
    for path, text in sorted(output.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        manifests.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return Rendered(manifests, notes)


def render_error(values: dict[str, Any]) -> str:
    """The error message of a render that must fail (schema or validateValues)."""
    helm = helm_sdk()
    try:
        _chart().render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    except (helm.HelmValuesError, helm.HelmRenderError) as exc:
        return str(exc)
    pytest.fail(f"the chart rendered with bad values {values!r}")


def cases() -> list[Any]:
    """The default values and every file under helm/monoceros/ci, as pytest params."""
    return [pytest.param({}, id="defaults")] + [
        pytest.param(values_file(path), id=path.name.removesuffix("-values.yaml"))
        for path in CI_VALUES
    ]
