"""Compiles the request hot path to C with mypyc, when it can; everything else is in
pyproject.toml.

The modules below run for every request (and every WebSocket message). Compiled by mypyc
(mypy's compiler: the same type annotations `make typecheck` checks), they make monoceros
1.64x uvicorn on plaintext instead of 1.12x, with the same source (README, "Performance").

MONOCEROS_COMPILE says what to do: unset, compile if possible and otherwise install plain
Python (no C compiler, no Python headers, or mypyc failing), with a message; `1`, compile or
fail (`make compiled`, the container image); `0`, plain Python (the development virtualenv,
so that coverage sees the source). The behaviour is the same, plain is only slower.
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


class CannotCompile(Exception):
    pass


def compiled_modules() -> list[Any]:
    setting = os.environ.get("MONOCEROS_COMPILE", "")
    if setting == "0":
        return []
    try:
        return mypyc_modules()
    except CannotCompile as exc:
        if setting == "1":
            raise SystemExit(f"monoceros: MONOCEROS_COMPILE=1, but {exc}") from None
        print(f"monoceros: {exc}: installing plain Python", file=sys.stderr)
        return []


def mypyc_modules() -> list[Any]:
    if shutil.which(os.environ.get("CC", "cc")) is None:
        raise CannotCompile("no C compiler found")
    if not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")):
        raise CannotCompile("no Python headers found")
    try:
        from mypyc.build import mypycify
    except ImportError:
        raise CannotCompile("mypyc is not available") from None
    # pip builds in an isolated environment, where the dependencies (and the optional wsproto)
    # may be missing: mypyc then treats them as Any, and the project's strict settings, which
    # would flag that, are left out (an empty --config-file). `make typecheck` checks in full.
    options = ["--config-file=", "--ignore-missing-imports"]
    try:
        return list(mypycify(options + HOT_PATH, opt_level="3", target_dir="build/mypyc"))
    except SystemExit:  # mypyc has printed why
        raise CannotCompile("mypyc failed (see above)") from None


# Intermediate files under build/ in folders of their own, which `make compiled` starts afresh.
setup(ext_modules=compiled_modules(), options={"build": {"build_base": "build/setuptools"}})
