"""Values middleware in the wild leaves in a scope: for the tests of what the server makes
of a scope once the app has rewritten it (tests/unit/test_scope_rewrites_unit.py, and over
the wire tests/integration/test_scope_rewrites.py)."""

from __future__ import annotations

from typing import Any, ClassVar


class Opaque:
    """A value no JSON encoder knows."""


class MatchedRoute:
    """What Starlette puts in scope["route"] for `/items/{id}`, as the route label reads it."""

    path_format = "/items/{id}"
    path = "/items/{id}"
    param_convertors: ClassVar = {"id": None}


# A kind of rewrite, by name: the value put in the scope's key, or DELETED (the key removed).
DELETED = "deleted"
KINDS: dict[str, Any] = {
    "none": None,
    "str": "rewritten",
    "bytes": b"rewritten",
    "int": 7,
    "huge": 2**70,  # past a 64-bit integer
    "list": ["a", 1],
    "dict": {"a": 1},
    "nested": ("a", ["b"]),  # a tuple, but not a hashable one
    "surrogate": "/caf\udce9",  # bytes decoded with surrogateescape: no UTF-8 has it
    "opaque": Opaque(),
}
KIND_NAMES = [DELETED, *KINDS]
ROUTE = MatchedRoute()
# Every key the access log, the metrics and the route label read once the app has run.
KEYS_READ_AFTER = [
    *("path", "query_string", "http_version", "headers", "client", "server", "scheme"),
    *("method", "root_path", "app_root_path", "route", "path_template", "extensions", "type"),
]


def rewrite(scope: dict[str, Any], key: str, kind: str) -> None:
    if kind == DELETED:
        scope.pop(key, None)
    elif kind == "route":
        scope[key] = ROUTE
    else:
        scope[key] = KINDS[kind]
