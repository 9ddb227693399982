"""--interface, from real subprocesses: ASGI 2 and WSGI apps served, anything else refused at
startup with one line (never answered with 500s); --reset-contextvars; an app factory given
without --factory."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.integration.helpers import TIMEOUT
from tests.integration.test_startup_errors import assert_fails_clearly
from tests.integration.test_transports import serving

APPS = """
import contextvars
import json
import wsgiref.simple_server

from a2wsgi import ASGIMiddleware


class ClassASGI2:
    '''The classic ASGI 2 form: the class is the app, an instance serves one request.'''

    def __init__(self, scope):
        self.scope = scope

    async def __call__(self, receive, send):
        body = json.dumps({"path": self.scope["path"], "type": "asgi2-class"}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


def function_asgi2(scope):
    async def instance(receive, send):
        if scope["type"] != "http":
            return
        message = await receive()
        body = json.dumps({"type": "asgi2-function", "body": message["body"].decode()})
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": body.encode()})

    return instance


class Routes:
    '''A Flask-style WSGI app with the standard library only: routes, a query string, a body,
    status and headers chosen by the view.'''

    def __init__(self):
        self.views = {}

    def route(self, path):
        def register(view):
            self.views[path] = view
            return view

        return register

    def __call__(self, environ, start_response):
        view = self.views.get(environ["PATH_INFO"])
        if view is None:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"no such page"]
        status, headers, body = view(environ)
        start_response(status, headers)
        return [body]


wsgi = Routes()


@wsgi.route("/hello")
def hello(environ):
    return "200 OK", [("Content-Type", "text/plain"), ("X-View", "hello")], b"Hello, WSGI"


@wsgi.route("/echo")
def echo(environ):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    seen = {
        "method": environ["REQUEST_METHOD"],
        "query": environ["QUERY_STRING"],
        "body": environ["wsgi.input"].read(length).decode(),
        "script_name": environ["SCRIPT_NAME"],
        "path_info": environ["PATH_INFO"],
    }
    return "202 Accepted", [("Content-Type", "application/json")], json.dumps(seen).encode()


# The standard library's own WSGI app.
demo = wsgiref.simple_server.demo_app


async def asgi3(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ASGI 3 through a2wsgi's WSGI"})

# a2wsgi's own WSGI app: an ASGI app made WSGI, which we serve as ASGI again.
a2wsgi_app = ASGIMiddleware(asgi3)

not_an_app = 42


def two_keyword_only(*, scope, receive):
    pass


def four_arguments(a, b, c, d):
    pass


seen_at_import = contextvars.ContextVar("seen_at_import", default="unset")
seen_at_import.set("set at import")


async def show_context(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": seen_at_import.get().encode()})


def create_app():
    return show_context
"""


@pytest.fixture
def app_dir(write_module: Callable[[str, str], str]) -> str:
    return write_module("interface_apps", APPS)


def serve_args(app_dir: str, *args: str) -> tuple[str, ...]:
    return ("--app-dir", app_dir, "--port", "0", *args)


@pytest.mark.parametrize("interface", ["auto", "asgi2"])
def test_asgi2_class(app_dir: str, interface: str) -> None:
    args = serve_args(app_dir, "--interface", interface)
    with serving("interface_apps:ClassASGI2", *args) as (process, url):
        response = httpx.get(url + "/items", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json() == {"path": "/items", "type": "asgi2-class"}
    assert "Serving interface_apps:ClassASGI2 as an ASGI 2 application" in process.output


def test_asgi2_function(app_dir: str) -> None:
    with serving("interface_apps:function_asgi2", *serve_args(app_dir)) as (_, url):
        response = httpx.post(url + "/", content=b"payload", timeout=TIMEOUT)
    assert response.status_code == 201
    assert response.json() == {"type": "asgi2-function", "body": "payload"}


@pytest.mark.parametrize("interface", ["auto", "wsgi"])
def test_wsgi_routes_written_with_the_standard_library(app_dir: str, interface: str) -> None:
    args = serve_args(app_dir, "--interface", interface, "--root-path", "/api")
    with serving("interface_apps:wsgi", *args) as (process, url):
        hello = httpx.get(url + "/hello", timeout=TIMEOUT)
        echo = httpx.post(url + "/echo?a=1", content=b"body bytes", timeout=TIMEOUT)
        missing = httpx.get(url + "/nope", timeout=TIMEOUT)
    assert (hello.status_code, hello.text, hello.headers["x-view"]) == (200, "Hello, WSGI", "hello")
    assert echo.status_code == 202
    assert echo.json() == {
        "method": "POST",
        "query": "a=1",
        "body": "body bytes",
        "script_name": "/api",
        "path_info": "/echo",
    }
    assert missing.status_code == 404
    assert "as a WSGI application (a2wsgi, 10 threads)" in process.output


def test_the_standard_librarys_demo_app(app_dir: str) -> None:
    with serving("interface_apps:demo", *serve_args(app_dir)) as (_, url):
        response = httpx.get(url + "/demo?x=1", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.text.startswith("Hello world!")
    assert "PATH_INFO = '/demo'" in response.text and "QUERY_STRING = 'x=1'" in response.text


def test_a2wsgis_own_wsgi_app(app_dir: str) -> None:
    with serving("interface_apps:a2wsgi_app", *serve_args(app_dir)) as (process, url):
        response = httpx.get(url + "/", timeout=TIMEOUT)
    assert (response.status_code, response.text) == (200, "ASGI 3 through a2wsgi's WSGI")
    assert "as a WSGI application" in process.output


@pytest.mark.parametrize(
    ("name", "message"),
    [
        pytest.param(
            "not_an_app", 'ASGI app "interface_apps:not_an_app" is not callable', id="int"
        ),
        pytest.param(
            "two_keyword_only",
            '"interface_apps:two_keyword_only" is not an ASGI 3, ASGI 2 or WSGI application '
            "(it is called as two_keyword_only(*, scope, receive)); if it is one, say which "
            "with --interface",
            id="keyword-only",
        ),
        pytest.param("four_arguments", "is not an ASGI 3, ASGI 2 or WSGI", id="four-arguments"),
    ],
)
def test_anything_else_is_refused_at_startup(app_dir: str, name: str, message: str) -> None:
    assert_fails_clearly(f"interface_apps:{name}", *serve_args(app_dir), message=message)


def test_reset_contextvars(app_dir: str) -> None:
    with serving("interface_apps:show_context", *serve_args(app_dir)) as (_, url):
        assert httpx.get(url + "/", timeout=TIMEOUT).text == "set at import"
    args = serve_args(app_dir, "--reset-contextvars")
    with serving("interface_apps:show_context", *args) as (_, url):
        assert httpx.get(url + "/", timeout=TIMEOUT).text == "unset"


def test_a_factory_without_factory_is_called_with_a_warning(app_dir: str) -> None:
    with serving("interface_apps:create_app", *serve_args(app_dir)) as (process, url):
        assert httpx.get(url + "/", timeout=TIMEOUT).text == "set at import"
    (line,) = [line for line in process.lines if "takes no arguments" in line]
    assert "interface_apps:create_app" in line and '"level":"warning"' in line
