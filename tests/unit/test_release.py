"""The release workflow (.github/workflows/release.yml), checked as far as it can be off GitHub:
its own decisions (.ci/release.py), the wheels cibuildwheel would build, the jobs' wiring, and
zizmor's audit. `make dist` and tests/integration/test_dist.py cover the build itself."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import monoceros
from tests.integration.deploy_helpers import unavailable
from tests.utils import REPO

WORKFLOW = Path(REPO, ".github", "workflows", "release.yml")
RELEASE = Path(REPO, ".ci", "release.py")
IMAGE = "ghcr.io/monoceros-server/monoceros"
VERSION = monoceros.__version__
LIBCS = ("manylinux", "musllinux")


def release(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(RELEASE), *args], capture_output=True, text=True, timeout=30
    )


def workflow() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return loaded


def tool(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        unavailable(f"{name} is not installed (pip install -e '.[dev]')")
    return path


def test_a_tag_names_exactly_the_package_version() -> None:
    assert release("version", f"v{VERSION}").stdout == f"{VERSION}\n"
    for wrong in (VERSION, f"v{VERSION}.1", "v0.0.1"):
        result = release("version", wrong)
        assert result.returncode == 1 and "does not match" in result.stderr, wrong


@pytest.mark.parametrize(
    ("python", "tags"),
    [
        pytest.param("3.11", [f"{VERSION}-py3.11", VERSION, "latest"], id="default"),
        pytest.param("3.13", [f"{VERSION}-py3.13"], id="other"),
    ],
)
def test_image_tags(python: str, tags: list[str]) -> None:
    result = release("image-tags", f"v{VERSION}", python, IMAGE)
    assert result.stdout.split() == [f"{IMAGE}:{tag}" for tag in tags]


def test_the_default_python_is_the_dockerfiles() -> None:
    dockerfile = Path(REPO, "docker", "Dockerfile").read_text()
    default = re.search(r"^ARG PYTHON_IMAGE=python:(\d+\.\d+)-", dockerfile, re.MULTILINE)
    assert default is not None
    images = workflow()["jobs"]["image"]["strategy"]["matrix"]["include"]
    assert {image["python"] for image in images} == {"3.11", "3.13"}
    assert default.group(1) in release("image-tags", f"v{VERSION}", default.group(1), IMAGE).stdout
    assert "latest" in release("image-tags", f"v{VERSION}", default.group(1), IMAGE).stdout


def test_every_job_reads_only_the_outputs_of_jobs_it_needs() -> None:
    jobs = workflow()["jobs"]
    for name, job in jobs.items():
        needs = job.get("needs", [])
        needs = [needs] if isinstance(needs, str) else needs
        assert set(needs) <= set(jobs), name
        read = set(re.findall(r"needs\.(\w+)\.", yaml.safe_dump(job)))
        assert read <= set(needs), f"{name} reads {read - set(needs)} without needing it"


def test_only_the_publishing_jobs_may_mint_tokens() -> None:
    assert workflow()["permissions"] == {}
    minting = {
        name
        for name, job in workflow()["jobs"].items()
        if job.get("permissions", {}).get("id-token") == "write"
    }
    assert minting == {"publish", "docs"}


@pytest.mark.parametrize(
    ("platform", "archs", "suffixes"),
    [
        pytest.param(
            "linux",
            "x86_64,aarch64",
            [f"{libc}_{arch}" for libc in LIBCS for arch in ("x86_64", "aarch64")],
            id="linux",
        ),
        pytest.param("macos", "x86_64,arm64", ["macosx_x86_64", "macosx_arm64"], id="macos"),
    ],
)
def test_cibuildwheel_builds_cpython_311_to_315(
    platform: str, archs: str, suffixes: list[str]
) -> None:
    command = [tool("cibuildwheel"), "--print-build-identifiers", "--platform", platform]
    result = subprocess.run(
        [*command, "--archs", archs, REPO],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    expected = {f"cp3{minor}-{suffix}" for minor in (11, 12, 13, 14, 15) for suffix in suffixes}
    assert set(result.stdout.split()) == expected


def test_zizmor_finds_nothing() -> None:
    result = subprocess.run(
        [tool("zizmor"), "--offline", "--no-progress", str(WORKFLOW)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
