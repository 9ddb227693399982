"""Rules for the modules setup.py compiles with mypyc (its HOT_PATH list).

pip builds monoceros in an isolated environment, where mypyc may not see the dependencies:
a compiled class deriving from one of their classes is then built against an unknown base,
and crashes the process when it is used (seen with prometheus-client's Collector). So
classes in compiled modules derive only from monoceros and the standard library.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def hot_path_modules() -> list[str]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "HOT_PATH":
            paths = [ast.literal_eval(item) for item in node.value.elts]  # type: ignore[attr-defined]
            break
    else:
        raise AssertionError("setup.py has no HOT_PATH list")
    names = []
    for path in paths:
        module = Path(path).relative_to("server").with_suffix("")
        parts = module.parts[:-1] if module.name == "__init__" else module.parts
        names.append(".".join(parts))
    return names


def allowed(cls: type) -> bool:
    top = cls.__module__.partition(".")[0]
    return top == "monoceros" or top in sys.stdlib_module_names


def test_the_hot_path_list_names_real_modules() -> None:
    names = hot_path_modules()
    assert "monoceros.protocols.http" in names and "monoceros.observe.metrics" in names
    for name in names:
        importlib.import_module(name)


@pytest.mark.parametrize("name", hot_path_modules())
def test_compiled_classes_derive_only_from_monoceros_and_the_stdlib(name: str) -> None:
    module = importlib.import_module(name)
    for cls in vars(module).values():
        if not inspect.isclass(cls) or cls.__module__ != name:
            continue  # imported, not defined here
        outside = [base.__qualname__ for base in cls.__mro__ if not allowed(base)]
        assert not outside, f"{name}.{cls.__qualname__} derives from {outside}"
