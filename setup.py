"""Compiles the request hot path to C with mypyc, when it can; everything else is in
pyproject.toml.

The modules below run for every request (and every WebSocket message). Compiled by mypyc
(mypy's compiler: the same type annotations `make typecheck` checks), they run about a
third faster than the same source interpreted (figures: docs/performance.md).

MONOCEROS_COMPILE says what to do: unset, compile if possible and otherwise install plain
Python (no C compiler, no Python headers, or mypyc failing), with a message; `1`, compile or
fail (`make compiled`, `make dist`, the container image); `0`, plain Python (the development
virtualenv, so that coverage sees the source). The behaviour is the same, plain is only slower.
Either way the package records what happened (monoceros/_build.json): `monoceros --version`
shows it, and a plain-Python server warns at startup with the reason.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_py import build_py

HOT_PATH = [
    "server/monoceros/protocols/events.py",
    "server/monoceros/protocols/tracecontext.py",
    "server/monoceros/protocols/flow_control.py",
    "server/monoceros/protocols/write_batch.py",
    "server/monoceros/protocols/channel.py",
    "server/monoceros/protocols/head.py",
    "server/monoceros/protocols/scope.py",
    "server/monoceros/protocols/request_fields.py",
    "server/monoceros/protocols/context.py",
    "server/monoceros/protocols/state.py",
    "server/monoceros/protocols/cycle.py",
    "server/monoceros/protocols/reader.py",
    "server/monoceros/protocols/http.py",
    "server/monoceros/protocols/proxy_header.py",
    "server/monoceros/protocols/proxied.py",
    "server/monoceros/protocols/websocket.py",
    # HTTP/2, imported only with --http2 (zttp, its engine, is an optional dependency).
    "server/monoceros/protocols/h2_stream.py",
    "server/monoceros/protocols/h2_websocket.py",
    "server/monoceros/protocols/http2.py",
    "server/monoceros/protocols/ws_engine.py",
    "server/monoceros/protocols/ws_frames.py",
    "server/monoceros/observe/__init__.py",
    "server/monoceros/observe/output.py",
    "server/monoceros/observe/access.py",
    "server/monoceros/observe/literals.py",
    "server/monoceros/observe/routes.py",
    "server/monoceros/observe/metrics.py",
    "server/monoceros/addresses.py",
    "server/monoceros/proxy.py",
]


class CannotCompile(Exception):
    pass


# The setuptools commands that build code to install. The others that the build backend runs
# (egg_info, dist_info for the metadata, sdist) need no compiling, and an sdist must not carry
# the C. Nor does an editable install compile: modules built in place would shadow the source
# that a developer edits.
BUILD_COMMANDS = {"bdist_wheel", "build", "build_ext", "install"}


def compiled_modules() -> tuple[list[Any], str]:
    """The extension modules to build, and why there are none when there are none."""
    setting = os.environ.get("MONOCEROS_COMPILE", "")
    if setting == "0":
        return [], "MONOCEROS_COMPILE=0 at build time"
    if not BUILD_COMMANDS.intersection(sys.argv[1:]):
        return [], "not built"
    try:
        return mypyc_modules(), ""
    except CannotCompile as exc:
        if setting == "1":
            raise SystemExit(f"monoceros: MONOCEROS_COMPILE=1, but {exc}") from None
        print(f"monoceros: {exc}: installing plain Python", file=sys.stderr)
        return [], str(exc)


def mypyc_modules() -> list[Any]:
    if shutil.which(os.environ.get("CC", "cc")) is None:
        raise CannotCompile("no C compiler found")
    if not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")):
        raise CannotCompile("no Python headers found")
    try:
        from mypyc.build import mypycify
    except ImportError:
        raise CannotCompile("mypyc is not available") from None
    # mypy would otherwise look for the dependencies in the environment pip installs into,
    # where whatever versions happen to be installed (websockets 17 next to uvicorn[standard],
    # say) could fail the type check, and so the compiled build. With --no-site-packages it
    # never looks: every dependency is Any to mypyc, in every environment, so the build is the
    # same everywhere. The project's strict settings, which would flag that, are left out (an
    # empty --config-file); `make typecheck` checks against the installed dependencies in full.
    options = ["--config-file=", "--no-site-packages", "--ignore-missing-imports"]
    messages = io.StringIO()
    try:
        with contextlib.redirect_stdout(messages):
            extensions = list(mypycify(options + HOT_PATH, opt_level="3", target_dir="build/mypyc"))
    except SystemExit:  # mypyc has written why, into `messages`
        print(messages.getvalue(), file=sys.stderr, end="")
        errors = [line for line in messages.getvalue().splitlines() if ": error:" in line]
        raise CannotCompile(
            f"mypyc failed: {errors[0] if errors else 'see the build log'}"
        ) from None
    print(messages.getvalue(), end="")
    return extensions


EXTENSIONS, PLAIN_REASON = compiled_modules()


class BuildPyWithRecord(build_py):
    """Also writes monoceros/_build.json: what was compiled, or why nothing was. The server
    reads it (monoceros/buildinfo.py) for `--version` and its startup warning."""

    def run(self) -> None:
        super().run()
        modules = [
            ".".join(Path(path).relative_to("server").with_suffix("").parts).removesuffix(
                ".__init__"
            )
            for path in HOT_PATH
        ]
        record = {"compiled": modules if EXTENSIONS else [], "reason": PLAIN_REASON}
        target = Path(self.build_lib, "monoceros", "_build.json")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(record, indent=1) + "\n")


# Intermediate files under build/ in folders of their own, which `make compiled` starts afresh.
setup(
    ext_modules=EXTENSIONS,
    cmdclass={"build_py": BuildPyWithRecord},
    options={"build": {"build_base": "build/setuptools"}},
)
