"""How this installation was built: the hot path compiled with mypyc, or plain Python and why.

setup.py writes `_build.json` into the package when it builds it: the modules it compiled, or
the reason it installed plain Python (no C compiler, mypyc failed, MONOCEROS_COMPILE=0). What
is true at run time is checked here, not taken from the record: each module the record lists
must have been loaded from an extension module. An editable install or a source checkout has no
record. `monoceros --version` prints `describe()`; the server logs `log_build()` once at startup.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

RECORD = "_build.json"
NO_RECORD = "no build record: an editable install or a source checkout"


@dataclass(frozen=True, slots=True)
class BuildInfo:
    compiled: bool
    reason: str  # why the hot path is plain Python ("" when it is compiled)


@cache
def build_info() -> BuildInfo:
    """This installation's: from its record, checked against the modules loaded."""
    try:
        # Beside this module (importlib.resources would cost 4 ms of start-up to say the same).
        record = json.loads(Path(__file__).with_name(RECORD).read_text())
    except FileNotFoundError:
        record = None
    return from_record(record)


def from_record(record: dict[str, Any] | None) -> BuildInfo:
    if record is None:
        return BuildInfo(compiled=False, reason=NO_RECORD)
    modules: list[str] = record["compiled"]
    if not modules:
        return BuildInfo(compiled=False, reason=record["reason"])
    plain = [name for name in modules if not _is_extension(name)]
    if plain:
        return BuildInfo(compiled=False, reason=f"built compiled, but {plain[0]} loads as Python")
    return BuildInfo(compiled=True, reason="")


def _is_extension(module: str) -> bool:
    # Where the module would load from, without importing it: http2.py imports zttp, an
    # optional dependency, and only a server with --http2 may need it.
    spec = importlib.util.find_spec(module)
    path = (spec.origin if spec is not None else None) or ""
    return path.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def describe() -> str:
    """One phrase for `monoceros --version`."""
    info = build_info()
    return "hot path compiled with mypyc" if info.compiled else f"plain Python: {info.reason}"


def log_build(logger: logging.Logger) -> None:
    """The startup line: info when compiled, a warning (with the reason) when not."""
    info = build_info()
    if info.compiled:
        logger.info("Hot path compiled with mypyc")
    else:
        logger.warning(
            "Running as plain Python (%s): slower than the compiled build; install a compiled "
            "wheel, or reinstall with a C compiler and the Python headers present",
            info.reason,
        )
