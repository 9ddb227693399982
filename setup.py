"""Compiles the request hot path to C with mypyc, when it can; everything else is in
pyproject.toml.

The modules below run for every request (and every WebSocket message). Compiled by mypyc (mypy's compiler: the same type
annotations `make typecheck` checks), they make monoceros 1.57x uvicorn on plaintext instead
of 1.26x, with the same source (README, "Performance"). They stay plain Python where no C
compiler is found, or with MONOCEROS_COMPILE=0 (what the development virtualenv uses, so that
coverage sees the source): the behaviour is the same, only slower.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from typing import Any

from setuptools import setup

HOT_PATH = [
    "server/monoceros/protocols/events.py",
    "server/monoceros/protocols/flow_control.py",
    "server/monoceros/protocols/head.py",
    "server/monoceros/protocols/state.py",
    "server/monoceros/protocols/cycle.py",
    "server/monoceros/protocols/http.py",
    "server/monoceros/protocols/websocket.py",
    "server/monoceros/protocols/ws_engine.py",
    "server/monoceros/observe/__init__.py",
    "server/monoceros/observe/output.py",
    "server/monoceros/observe/access.py",
    "server/monoceros/observe/metrics.py",
    "server/monoceros/proxy.py",
]


def compiled_modules() -> list[Any]:
    if os.environ.get("MONOCEROS_COMPILE", "1") == "0":
        return []
    if shutil.which(os.environ.get("CC", "cc")) is None:
        print("monoceros: no C compiler found, installing plain Python", file=sys.stderr)
        return []
    if not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")):
        print("monoceros: no Python headers found, installing plain Python", file=sys.stderr)
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("monoceros: mypyc not available, installing plain Python", file=sys.stderr)
        return []
    # pip builds in an isolated environment, where the dependencies (and the optional wsproto)
    # may be missing: mypyc then treats them as Any, and the project's strict settings, which
    # would flag that, are left out (an empty --config-file). `make typecheck` checks in full.
    options = ["--config-file=", "--ignore-missing-imports"]
    try:
        return list(mypycify(options + HOT_PATH, opt_level="3", target_dir="build/mypyc"))
    except SystemExit:  # mypyc printed why; an install that works beats one that fails
        print("monoceros: mypyc failed (above), installing plain Python", file=sys.stderr)
        return []


# Intermediate files under build/ in folders of their own, which `make compiled` starts afresh.
setup(ext_modules=compiled_modules(), options={"build": {"build_base": "build/setuptools"}})
