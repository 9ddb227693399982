"""`--interface`: what kind of application the imported object is, and the ASGI 3 app the
server calls in its place.

- ASGI 3: `app(scope, receive, send)` returns an awaitable; served as it is.
- ASGI 2 (the "double callable"): `app(scope)` returns `instance`, and `instance(receive, send)`
  is awaited; wrapped as uvicorn wraps it.
- WSGI: `app(environ, start_response)`, synchronous; served through a2wsgi on a bounded pool
  of threads (pip install 'monoceros[wsgi]').

`auto` tells them apart by the object's signature: a coroutine function (or an object whose
`__call__` is one) is ASGI 3; a synchronous callable taking three arguments is ASGI 3 too (a
wrapper returning the app's coroutine); one argument is ASGI 2 (a class whose constructor takes
the scope is the classic form); two are WSGI. Anything else is refused at startup with one line,
rather than answered with 500s. uvicorn's own `auto` takes every synchronous callable for ASGI
2, WSGI apps included.
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib.util
import inspect
from typing import Any, Literal, cast

from monoceros.errors import StartupError
from monoceros.protocols.events import current_exchange
from monoceros.types import ASGIApp, Receive, Scope, Send

Kind = Literal["asgi3", "asgi2", "wsgi"]

# a2wsgi's threads for a WSGI app: at most this many requests run the app at once, the others
# wait for a thread. a2wsgi's default, and what uvicorn's own WSGI middleware used.
WSGI_THREADS = 10


def detect(obj: Any) -> Kind | None:
    """The kind of app `obj` is, or None when it is none of them."""
    if not callable(obj):
        return None
    if inspect.isclass(obj):
        if hasattr(obj, "__await__"):  # App(scope, receive, send) is the awaitable
            return "asgi3"
    elif _is_coroutine_function(obj if inspect.isroutine(obj) else obj.__call__):
        return "asgi3"
    return _BY_ARITY.get(_positional_arity(obj))


# A synchronous callable (or a class: its constructor) by how many arguments it takes.
_BY_ARITY: dict[int | None, Kind] = {1: "asgi2", 2: "wsgi", 3: "asgi3"}


def takes_no_arguments(obj: Any) -> bool:
    """A callable that can be called with nothing: a factory given without --factory, which
    uvicorn calls (with a warning) and serves what it returns."""
    try:
        inspect.signature(obj).bind()
    except (TypeError, ValueError):
        return False
    return True


def as_asgi3(obj: Any, kind: Kind) -> ASGIApp:
    if kind == "asgi2":
        return ASGI2App(obj)
    if kind == "wsgi":
        if importlib.util.find_spec("a2wsgi") is None:
            raise StartupError("a WSGI app needs a2wsgi: pip install 'monoceros[wsgi]'")
        from a2wsgi import WSGIMiddleware

        return cast(ASGIApp, WSGIMiddleware(obj, workers=WSGI_THREADS))
    asgi3: ASGIApp = obj
    return asgi3


def adapt(obj: Any, interface: str, name: str) -> tuple[ASGIApp, Kind]:
    """The ASGI 3 app to serve for `obj` given `--interface`; StartupError when `auto` finds
    no app in it. `name` is how the operator named it (module:attribute)."""
    kind: Kind | None
    if interface == "auto":
        kind = detect(obj)
        if kind is None:
            raise StartupError(
                f'"{name}" is not an ASGI 3, ASGI 2 or WSGI application '
                f"({_describe_callable(obj)}); if it is one, say which with --interface"
            )
    else:
        kind = interface  # type: ignore[assignment]
        assert kind in ("asgi3", "asgi2", "wsgi")
    return as_asgi3(obj, kind), kind


class ASGI2App:
    """An ASGI 2 app served as ASGI 3: `app(scope)`, then `await instance(receive, send)`."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        instance = self.app(scope)
        await instance(receive, send)


class FreshContext:
    """`--reset-contextvars`: each call of the app runs in a new, empty contextvars.Context
    (nothing set at import or in the lifespan shows through), but for the exchange this server
    binds to the request, so the app's log lines still carry its request id and none of its
    credentials."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        context = contextvars.Context()
        context.run(current_exchange.set, current_exchange.get())

        async def call() -> None:
            await self.app(scope, receive, send)

        await asyncio.get_running_loop().create_task(call(), context=context)


def _is_coroutine_function(target: Any) -> bool:
    # Through functools.wraps layers: a synchronous wrapper returning the wrapped coroutine.
    return inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
        inspect.unwrap(target)
    )


def _positional_arity(obj: Any) -> int | None:
    """How many positional arguments `obj` takes when that number is fixed: 1, 2 or 3; None
    when it takes *args or its signature cannot be read."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    required = 0
    optional = 0
    for parameter in signature.parameters.values():
        if parameter.kind is parameter.VAR_POSITIONAL:
            return None
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            if parameter.default is parameter.empty:
                required += 1
            else:
                optional += 1
        elif parameter.kind is parameter.KEYWORD_ONLY and parameter.default is parameter.empty:
            return None  # a required keyword argument: no server calls it that way
    # e.g. `def app(environ, start_response, extra=None)`: what it must be given decides.
    return required if required else None


def _describe_callable(obj: Any) -> str:
    if not callable(obj):
        return f"it is {type(obj).__name__}, not callable"
    try:
        name = getattr(obj, "__name__", type(obj).__name__)
        return f"it is called as {name}{inspect.signature(obj)}"
    except (TypeError, ValueError):
        return f"a {type(obj).__name__} whose signature cannot be read"
