"""`http_route`: the route template of a request, from what its framework left in the scope;
"" (unknown) otherwise, never the raw path, so random URLs cannot create series.

Read, in order, once the request is finished:

- `scope["route"]` (Starlette, FastAPI): the matched route; its `path_format` (`{id:int}` shown
  as `{id}`), behind the prefix of the Mounts it is under;
- `scope["path_template"]` (Litestar);
- `scope["extensions"]["monoceros.route"]`: any app's own, a str (docs/observability/metrics.md).
  The extensions dictionary is shared by every shallow copy of the scope, so the template
  reaches the server even from a copy;
- else the app's own `RouteFinder` (observe/route_hooks.py), when it has one: a Starlette
  router matched again for a scope that a middleware copied before routing, Django and Quart.

Compiled (setup.py): it runs for every request the metrics count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from monoceros.types import ServerScope

# Asked when the scope names no route: returns the template, or "".
RouteFinder = Callable[[Any], str]
EXTENSION: Final = "monoceros.route"


def route_of(scope: ServerScope, finder: RouteFinder | None = None) -> str:
    """The route `scope` names, or what `finder` finds, or "" (an unrouted request)."""
    route = scope.get("route")
    if route is not None:
        template = _starlette_route(scope, route)
        if template is not None:
            return template
    else:
        # Any: values an app put in the scope, checked here (the compiled build would
        # refuse a wrong type with its own TypeError).
        litestar: Any = scope.get("path_template")
        if type(litestar) is str:
            return litestar
        extensions: Any = scope.get("extensions")
        if type(extensions) is dict:
            own: Any = extensions.get(EXTENSION)
            if type(own) is str:
                return own
    if finder is not None:
        return finder(scope)
    return ""


def _starlette_route(scope: ServerScope, route: Any) -> str | None:
    """The template of Starlette's matched `route`, or None if the scope cannot say (a Mount
    with path parameters of its own above it)."""
    template = getattr(route, "path_format", None)
    if not isinstance(template, str):
        return ""
    root = scope.get("root_path", "")
    top: Any = scope.get("app_root_path", root)  # whatever an app put there
    if root == top:
        return template  # not under a Mount
    if type(root) is not str or type(top) is not str:
        return None  # an app put something else there: the Mounts cannot be told
    # Under Mounts: root_path grew by what each matched. That is their template only if they
    # have no path parameters of their own (then every parameter is the route's).
    convertors = getattr(route, "param_convertors", None)
    params = scope.get("path_params")
    if not isinstance(convertors, dict) or not isinstance(params, dict):
        return None
    prefix: str = root[len(top) :]
    mount_path = getattr(route, "path", None)
    if hasattr(route, "routes") and isinstance(mount_path, str):
        # A Mount is the route (StaticFiles, a sub-app that is not a router): root_path ends
        # with what it matched itself, and its template says it again ("/static/{path}");
        # its convertors have `path` besides any parameters of its own.
        if not prefix.endswith(mount_path) or len(params) != len(convertors) - 1:
            return None
        return prefix[: len(prefix) - len(mount_path)] + template
    if len(params) != len(convertors):
        return None  # a Mount with parameters of its own
    return prefix + template
