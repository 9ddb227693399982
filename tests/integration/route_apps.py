"""Real apps of each framework whose route templates become `http_route`, served by the tests
(tests/integration/test_routes.py). Each answers 200 on its routes and 404 elsewhere.

- Starlette: a route, a Mount, a Mount with a path parameter of its own, a Mount of a plain
  ASGI app; and the same routes behind a middleware that passes a copy of the scope on.
- FastAPI: an APIRouter with a prefix, a mounted FastAPI sub-app, an @app.middleware("http").
- Litestar: a Router with a path, a handler with a typed parameter.
- Django: path() and include(), one urlconf in this module.
- Quart: a blueprint with a prefix.
- A plain ASGI app that names its own route in the scope's extensions, behind a copying
  middleware too.
"""

from __future__ import annotations

from typing import Any

from monoceros.types import ASGIApp, Receive, Scope, Send
from tests.apps import send_text


class CopyScope:
    """A middleware that hands the app a copy of the scope, as many do (`dict(scope)`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(dict(scope), receive, send)


async def _plain(scope: Scope, receive: Receive, send: Send) -> None:
    await send_text(send, b"plain")


# -- Starlette ----------------------------------------------------------------------------------


def _starlette(copying: bool) -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    routes = [
        Route("/items/{item_id:int}", ok),
        Mount("/v2", routes=[Route("/users/{uid}", ok)]),
        Mount("/tenants/{tenant}", routes=[Route("/orders/{oid}", ok)]),
        Mount("/static", app=_plain),
    ]
    middleware = [Middleware(CopyScope)] if copying else []
    return Starlette(routes=routes, middleware=middleware)


starlette_app = _starlette(copying=False)
starlette_copying = _starlette(copying=True)


# -- FastAPI ------------------------------------------------------------------------------------


def _fastapi() -> Any:
    from fastapi import APIRouter, FastAPI, Request

    app = FastAPI()
    router = APIRouter(prefix="/api")

    @router.get("/orders/{order_id}")
    async def get_order(order_id: int) -> dict[str, int]:
        return {"order": order_id}

    app.include_router(router)

    admin = FastAPI()

    @admin.get("/probes/{probe}")
    async def probe(probe: str) -> dict[str, str]:
        return {"probe": probe}

    app.mount("/admin", admin)

    @app.middleware("http")
    async def header(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["x-middleware"] = "1"
        return response

    return app


fastapi_app = _fastapi()


# -- Litestar -----------------------------------------------------------------------------------


def _litestar() -> Any:
    from litestar import Litestar, Router, get
    from litestar.params import FromPath

    @get("/books/{book_id:int}")
    async def book(book_id: FromPath[int]) -> dict[str, int]:
        return {"book": book_id}

    return Litestar(route_handlers=[Router(path="/shelf", route_handlers=[book])])


litestar_app = _litestar()


# -- Django -------------------------------------------------------------------------------------


def _django() -> Any:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            ALLOWED_HOSTS=["*"],
            ROOT_URLCONF=__name__,
            SECRET_KEY="tests only",
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
        )
        django.setup()
    from django.core.asgi import get_asgi_application

    return get_asgi_application()


def _article(request: Any, year: int) -> Any:
    from django.http import HttpResponse

    return HttpResponse(f"articles of {year}")


def _comment(request: Any, slug: str) -> Any:
    from django.http import HttpResponse

    return HttpResponse(f"comment {slug}")


def _urlpatterns() -> list[Any]:
    from django.urls import include, path

    return [
        path("articles/<int:year>/", _article),
        path("blog/", include([path("comments/<slug:slug>/", _comment)])),
    ]


django_app = _django()
urlpatterns = _urlpatterns()


# -- Quart --------------------------------------------------------------------------------------


def _quart() -> Any:
    from quart import Blueprint, Quart

    app = Quart(__name__)
    accounts = Blueprint("accounts", __name__, url_prefix="/accounts")

    @accounts.route("/<int:account_id>")
    async def account(account_id: int) -> str:
        return f"account {account_id}"

    app.register_blueprint(accounts)
    return app


quart_app = _quart()


# -- an app of its own --------------------------------------------------------------------------


async def _own(scope: Scope, receive: Receive, send: Send) -> None:
    """Routes by itself, and says which route it took (the documented way)."""
    if scope["type"] != "http":
        return
    parts = scope["path"].strip("/").split("/")
    if len(parts) == 2 and parts[0] == "reports":
        scope["extensions"]["monoceros.route"] = "/reports/{report}"
        await send_text(send, b"report")
    else:
        await send_text(send, b"none", status=404)


own_app = CopyScope(_own)
