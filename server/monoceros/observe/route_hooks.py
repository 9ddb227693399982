"""Route templates the scope alone does not carry, from the app itself (observe/routes.py reads
the scope first).

- Starlette and FastAPI: a middleware that passes a copy of the scope on (`dict(scope)`,
  `{**scope, ...}`) before routing leaves the router's `route` in the copy. For a scope with
  neither `route` nor `router` (no routing happened on it), or a route under a Mount with
  path parameters, the app's router is asked again which route matches, with the Mount
  prefixes joined to it: `route.matches()`, as the router does. Only those requests pay.
- Django: the URL resolver's match (`request.resolver_match.route`) is written into the
  scope's extensions as the request is resolved.
- Quart: the matched rule (`request.url_rule.rule`), the same way, as the request starts.

Each is found on the app object the server loaded (unwrapped of nothing: the object the import
string named). Plain Python: it runs only for the requests above.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, cast

from monoceros.observe.routes import EXTENSION, RouteFinder

logger = logging.getLogger("monoceros.error")


def route_finder(app: Any) -> RouteFinder | None:
    """What answers for `app` when its scopes name no route (None: the scope is all there
    is); hooks Django and Quart apps so that their scopes do."""
    module = type(app).__module__
    if module.startswith("django."):
        _hook_django(app)
    elif module.startswith("quart."):
        _hook_quart(app)
    router = getattr(app, "router", None)
    if router is not None and isinstance(getattr(router, "routes", None), list):
        return functools.partial(_rematched, router)
    return None


# -- Starlette and FastAPI ----------------------------------------------------------------------


def _rematched(router: Any, scope: Any) -> str:
    if "router" in scope and "route" not in scope:
        return ""  # routed on this very scope, and nothing matched: unmatched stays ""
    # As the router first saw it: Mounts move root_path on (app_root_path keeps where it began).
    fresh = {**scope, "root_path": scope.get("app_root_path", scope.get("root_path", ""))}
    try:
        template = _match(router.routes, fresh, "")
    except Exception:
        return ""
    return template or ""


def _match(routes: list[Any], scope: dict[str, Any], prefix: str) -> str | None:
    """The template of the route among `routes` the router would choose (a full match first,
    else the first partial one: a method not allowed)."""
    chosen: tuple[Any, dict[str, Any]] | None = None
    for route in routes:
        match, child = route.matches(scope)
        if match.name == "FULL":
            chosen = (route, child)
            break
        if match.name == "PARTIAL" and chosen is None:
            chosen = (route, child)
    if chosen is None:
        return None
    route, child = chosen
    inner = getattr(route, "routes", None)
    path = getattr(route, "path", None)
    if inner and isinstance(path, str):  # a Mount over a router: its routes, under its path
        return _match(inner, {**scope, **child}, prefix + path)
    template = getattr(route, "path_format", None)
    return prefix + template if isinstance(template, str) else None


# -- Django -------------------------------------------------------------------------------------


def _hook_django(handler: Any) -> None:
    resolve = getattr(handler, "resolve_request", None)
    if resolve is None:
        return

    @functools.wraps(resolve)
    def resolve_request(request: Any) -> Any:
        match = resolve(request)  # raises Resolver404 for an unmatched path: "" it stays
        route = getattr(match, "route", None)
        scope = getattr(request, "scope", None)
        if isinstance(route, str) and isinstance(scope, dict):
            _set(scope, route if route.startswith(("/", "^")) else "/" + route)
        return match

    handler.resolve_request = resolve_request


# -- Quart --------------------------------------------------------------------------------------


def _hook_quart(app: Any) -> None:
    try:
        from quart import request
        from quart.signals import request_started
    except ImportError:  # pragma: no cover - the app is Quart's, so Quart is there
        return

    async def started(sender: Any, **extra: Any) -> None:
        rule = request.url_rule
        if rule is not None:
            _set(cast(dict[str, Any], request.scope), rule.rule)

    request_started.connect(started, app, weak=False)


def _set(scope: dict[str, Any], template: str) -> None:
    extensions = scope.get("extensions")
    if isinstance(extensions, dict):
        extensions[EXTENSION] = template
