"""interface.detect: what kind of app an object is, by its signature (a table, one line a case)."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from monoceros.errors import StartupError
from monoceros.interface import ASGI2App, adapt, detect, takes_no_arguments


async def asgi3(scope: Any, receive: Any, send: Any) -> None:
    pass


def asgi2(scope: Any) -> Any:
    return asgi3


class ClassASGI2:
    def __init__(self, scope: Any) -> None:
        self.scope = scope

    async def __call__(self, receive: Any, send: Any) -> None:
        pass


class ObjectASGI3:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        pass


class AwaitableClass:
    def __init__(self, scope: Any, receive: Any, send: Any) -> None:
        pass

    def __await__(self) -> Any:
        yield


class SyncWrapperASGI3:
    """A synchronous __call__ returning the wrapped app's coroutine (some middleware does)."""

    def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        return asgi3(scope, receive, send)


def wsgi(environ: Any, start_response: Any) -> list[bytes]:
    return []


class ObjectWSGI:
    def __call__(self, environ: Any, start_response: Any, extra: Any = None) -> list[bytes]:
        return []


def wrapped(function: Any) -> Any:
    @functools.wraps(function)
    def wrapper(*args: Any) -> Any:
        return function(*args)

    return wrapper


def star_args(*args: Any) -> None:
    pass


def keyword_only(*, scope: Any) -> None:
    pass


def factory() -> Any:
    return asgi3


@pytest.mark.parametrize(
    ("obj", "kind"),
    [
        pytest.param(asgi3, "asgi3", id="coroutine-function"),
        pytest.param(ObjectASGI3(), "asgi3", id="object-async-call"),
        pytest.param(AwaitableClass, "asgi3", id="awaitable-class"),
        pytest.param(SyncWrapperASGI3(), "asgi3", id="sync-three-arguments"),
        pytest.param(wrapped(asgi3), "asgi3", id="functools-wraps"),
        pytest.param(functools.partial(asgi3), "asgi3", id="partial"),
        pytest.param(asgi2, "asgi2", id="asgi2-function"),
        pytest.param(ClassASGI2, "asgi2", id="asgi2-class"),
        pytest.param(wsgi, "wsgi", id="wsgi-function"),
        pytest.param(ObjectWSGI(), "wsgi", id="wsgi-object-optional-argument"),
        pytest.param(42, None, id="not-callable"),
        pytest.param(star_args, None, id="star-args"),
        pytest.param(keyword_only, None, id="keyword-only"),
        pytest.param(factory, None, id="no-arguments"),
        pytest.param(ObjectASGI3, None, id="class-of-an-asgi3-object"),
    ],
)
def test_detect(obj: Any, kind: str | None) -> None:
    assert detect(obj) == kind


def test_factories_are_what_takes_no_arguments() -> None:
    assert takes_no_arguments(factory) and takes_no_arguments(ObjectASGI3)
    assert not takes_no_arguments(asgi3) and not takes_no_arguments(len)


def test_adapt_wraps_asgi2_and_refuses_what_is_no_app() -> None:
    app, kind = adapt(ClassASGI2, "auto", "m:a")
    assert kind == "asgi2" and isinstance(app, ASGI2App)
    assert adapt(asgi3, "asgi3", "m:a") == (asgi3, "asgi3")
    with pytest.raises(StartupError, match="not an ASGI 3, ASGI 2 or WSGI application"):
        adapt(star_args, "auto", "m:a")
    # Said outright, the operator's word is taken.
    assert adapt(star_args, "asgi3", "m:a")[1] == "asgi3"


def test_a_wsgi_app_without_a2wsgi(hidden_packages: set[str]) -> None:
    hidden_packages.add("a2wsgi")
    with pytest.raises(StartupError, match=r"pip install 'monoceros\[wsgi\]'"):
        adapt(wsgi, "auto", "m:a")
