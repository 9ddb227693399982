"""Runs one fuzz target under atheris (libFuzzer): `python -m tests.fuzz.run TARGET [libFuzzer
options] [corpus directories]`; `make fuzz` and `make fuzz-ci` call it (see the Makefile).

The server's modules are imported under `atheris.instrument_imports`, so libFuzzer is guided by
which branches of monoceros an input reaches (httptools, a C extension, is not instrumented:
its effects show in ours). They must be the plain-Python build: compiled modules carry no
instrumentation. A finding is any exception out of the target's `check`; libFuzzer then writes
the input to the `-artifact_prefix` given, and exits non-zero.
"""

from __future__ import annotations

import importlib
import sys

import atheris

TARGETS = ("http", "proxy", "websocket", "http2")


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else ""
    if name not in TARGETS:
        raise SystemExit(f"usage: python -m tests.fuzz.run {{{','.join(TARGETS)}}} [options]")
    with atheris.instrument_imports(include=["monoceros"]):
        module = importlib.import_module(f"tests.fuzz.{name}_target")
    from monoceros.buildinfo import build_info

    if build_info().compiled:
        raise SystemExit("fuzzing needs the plain-Python build (compiled modules are opaque)")
    atheris.Setup([sys.argv[0], *sys.argv[2:]], module.check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
