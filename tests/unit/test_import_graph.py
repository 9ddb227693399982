"""The package's import graph has no circles, and its layers import downwards only
(docs/architecture.md).

Every `import` statement counts, those under `if TYPE_CHECKING:` and inside functions too: a
circle that only the type checker sees is still two modules that cannot be read, or changed,
one without the other.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "server" / "monoceros"


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = ["monoceros", *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """monoceros module -> the monoceros modules it imports."""
    modules = {module_name(path, root): path for path in root.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from package import module` names a module; `from module import name`
                # names something in it.
                targets = [
                    f"{node.module}.{alias.name}"
                    if f"{node.module}.{alias.name}" in modules
                    else node.module
                    for alias in node.names
                ]
            graph[name].update(target for target in targets if target in modules)
        graph[name].discard(name)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


GRAPH = import_graph()


def test_no_import_circles() -> None:
    assert circles(GRAPH) == []


def test_the_circle_finder_finds_circles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]


# The layers of docs/architecture.md, lowest first: a module may import its own layer and the
# ones below, never one above.
LAYERS = [
    {"monoceros.types", "monoceros.errors", "monoceros.grammar", "monoceros._version"},
    {"monoceros.addresses", "monoceros.config"},
    {"monoceros.proxy", "monoceros.sockets"},
    {"monoceros.protocols"},
    {"monoceros.observe"},
]


def layer_of(module: str) -> int | None:
    for number, layer in enumerate(LAYERS):
        if any(module == part or module.startswith(part + ".") for part in layer):
            return number
    return None


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if layer_of(m) is not None))
def test_imports_go_down_the_layers(module: str) -> None:
    own = layer_of(module)
    assert own is not None
    upward = []
    for target in GRAPH[module]:
        layer = layer_of(target)  # None: the process layer above them all (server.py ...)
        if layer is None or layer > own:
            upward.append(target)
    assert upward == [], f"{module} imports from a higher layer"


def test_serving_does_not_import_prometheus_client() -> None:
    """prometheus-client takes tens of milliseconds to import: a process imports it at its first
    scrape of /metrics (observe/hub.served_registry), not before it serves its first request."""
    probe = (
        "import sys, monoceros.cli, monoceros.server, monoceros.observe.hub; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'prometheus_client'))"
    )
    imported = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert imported.strip() == "[]", imported
