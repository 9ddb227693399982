"""The release files `make dist` builds, installed the ways users install them.

- The wheel goes into a fresh virtualenv whose PATH holds no C compiler, with pip allowed
  binaries only: it must install compiled and serve (.ci/check_install.py, the check the
  release workflow runs on every cibuildwheel wheel).
- The sdist goes into a virtualenv with no C compiler to be found (CC names none): it installs
  as plain Python, records why, and says so (`--version`, a warning at startup).
- The sdist goes into a virtualenv that already holds `uvicorn[standard]`, websockets 17 and
  wsproto, where a user migrating from uvicorn installs us, with MONOCEROS_COMPILE unset (as a
  user's pip runs it): mypyc must not be thrown by what that environment holds, so the build
  comes out compiled, with the versions already there kept.

`make test` runs `make dist` first. Without dist/ these tests skip, except under CI=true.
Each needs PyPI for the dependencies (pip's cache makes the second run fast).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

import monoceros
from tests.integration.deploy_helpers import unavailable
from tests.utils import REPO

DIST = Path(REPO, "dist")
CHECK_INSTALL = Path(REPO, ".ci", "check_install.py")
PIP_TIMEOUT = 600
# pip builds here: the sdist's install compiles the hot path with mypyc and gcc, about a minute
# on our machines (one CI run saw it exceed the suite's 60 s default). Each command has
# PIP_TIMEOUT.
pytestmark = pytest.mark.timeout(PIP_TIMEOUT)


def dist_file(pattern: str) -> Path:
    found = sorted(DIST.glob(pattern))
    if not found:
        unavailable(f"no {pattern} in dist/: run `make dist` first")
    assert len(found) == 1, found
    return found[0]


def wheel() -> Path:
    return dist_file(f"monoceros-{monoceros.__version__}-*.whl")


def sdist() -> Path:
    return dist_file(f"monoceros-{monoceros.__version__}.tar.gz")


def fresh_venv(path: Path) -> Path:
    venv.EnvBuilder(with_pip=True, clear=True).create(path)
    return path / "bin" / "python"


def run(*args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(arg) for arg in args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=PIP_TIMEOUT,
    )
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def without_a_compiler(python: Path) -> dict[str, str]:
    """The environment minus any way to a C compiler: only the virtualenv's bin on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("CC", "PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = str(python.parent)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def test_the_wheel_is_tagged_manylinux_and_carries_the_compiled_hot_path() -> None:
    path = wheel()
    assert "manylinux" in path.name, path.name
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        record = json.loads(archive.read("monoceros/_build.json"))
    assert record["reason"] == "" and "monoceros.protocols.http" in record["compiled"]
    extensions = [name for name in names if name.endswith(".so")]
    compiled = {
        name.replace("/", ".").split(".cpython")[0].removesuffix(".__init__") for name in extensions
    }
    assert set(record["compiled"]) <= compiled, (record, extensions)
    assert any(name.endswith("dist-info/licenses/LICENSE") for name in names), names


def test_the_sdist_has_the_source_and_no_generated_code() -> None:
    with tarfile.open(sdist()) as archive:
        names = [name.split("/", 1)[1] for name in archive.getnames() if "/" in name]
    for needed in ("LICENSE", "README.md", "setup.py", "pyproject.toml"):
        assert needed in names
    assert "server/monoceros/_version.py" in names
    assert not [name for name in names if name.startswith("build/") or name.endswith(".c")]


def test_twine_accepts_both() -> None:
    twine = Path(sys.executable).with_name("twine")
    run(twine, "check", "--strict", wheel(), sdist())


def test_the_wheel_installs_compiled_without_a_compiler_and_serves(tmp_path: Path) -> None:
    python = fresh_venv(tmp_path / "venv")
    env = without_a_compiler(python)
    # --only-binary: nothing at all is built, for monoceros or any dependency.
    run(python, "-m", "pip", "install", "--quiet", "--only-binary=:all:", wheel(), env=env)
    output = run(python, CHECK_INSTALL, env=env, cwd=tmp_path)
    assert "check_install: ok" in output, output


def test_the_sdist_compiles_next_to_uvicorn_standard_websockets_17_and_wsproto(
    tmp_path: Path,
) -> None:
    python = fresh_venv(tmp_path / "venv")
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    run(*pip, "uvicorn[standard]", "websockets>=17,<18", "wsproto")
    websockets = ["-c", "import importlib.metadata as m; print(m.version('websockets'))"]
    before = run(python, *websockets)
    assert before.startswith("17."), before
    env = {k: v for k, v in os.environ.items() if k != "MONOCEROS_COMPILE"}
    run(*pip, sdist(), env=env)
    assert run(python, *websockets) == before  # kept: our range admits it
    run(python, "-m", "pip", "check")
    output = run(python, CHECK_INSTALL, cwd=tmp_path)
    assert "check_install: ok" in output, output


def test_the_sdist_without_a_compiler_installs_plain_and_says_why(tmp_path: Path) -> None:
    python = fresh_venv(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k != "MONOCEROS_COMPILE"}
    env["CC"] = str(tmp_path / "no-such-compiler")
    run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", sdist(), env=env)
    version = run(python, "-m", "monoceros", "--version", cwd=tmp_path)
    assert "(plain Python: no C compiler found)" in version, version
    output = run(python, CHECK_INSTALL, "--plain", cwd=tmp_path)
    assert "Running as plain Python (no C compiler found)" in output, output
