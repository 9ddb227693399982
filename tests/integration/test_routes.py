"""`http_route` from real apps of each framework (tests/integration/route_apps.py), served by a
real server and read from its /metrics: the template of the route that matched, with the
prefixes of Mounts, routers and blueprints; "" for whatever matched no route, so random paths
never create series."""

from __future__ import annotations

import uuid

import httpx
import pytest

from monoceros.types import ASGIApp
from tests.integration import route_apps
from tests.integration.helpers import TIMEOUT
from tests.integration.observe_helpers import running_admin_url, scrape
from tests.utils import run_server

COUNT = "http_server_request_duration_seconds_count"

# app -> [(path requested, status, the http_route expected)]
CASES: dict[str, list[tuple[str, int, str]]] = {
    "starlette_app": [
        ("/items/7", 200, "/items/{item_id}"),
        ("/v2/users/ada", 200, "/v2/users/{uid}"),
        ("/tenants/acme/orders/9", 200, "/tenants/{tenant}/orders/{oid}"),
        ("/static/app.css", 200, "/static/{path}"),
    ],
    "starlette_copying": [
        ("/items/7", 200, "/items/{item_id}"),
        ("/v2/users/ada", 200, "/v2/users/{uid}"),
        ("/tenants/acme/orders/9", 200, "/tenants/{tenant}/orders/{oid}"),
        ("/static/app.css", 200, "/static/{path}"),
    ],
    "fastapi_app": [
        ("/api/orders/12", 200, "/api/orders/{order_id}"),
        ("/admin/probes/ready", 200, "/admin/probes/{probe}"),
    ],
    "litestar_app": [("/shelf/books/3", 200, "/shelf/books/{book_id}")],
    "django_app": [
        ("/articles/2026/", 200, "/articles/<int:year>/"),
        ("/blog/comments/first-one/", 200, "/blog/comments/<slug:slug>/"),
    ],
    "quart_app": [("/accounts/42", 200, "/accounts/<int:account_id>")],
    "own_app": [("/reports/q3", 200, "/reports/{report}")],
}
RANDOM_PATHS = 30


@pytest.mark.parametrize("name", sorted(CASES))
def test_route_templates_of_every_framework(name: str) -> None:
    app: ASGIApp = getattr(route_apps, name)
    with run_server(app, metrics_port=0) as server:
        with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
            for path, status, _ in CASES[name]:
                for _ in range(2):
                    assert client.get(path).status_code == status, path
            for _ in range(RANDOM_PATHS):
                assert client.get(f"/{uuid.uuid4().hex}/{uuid.uuid4().hex}").status_code == 404
        metrics = scrape(running_admin_url(server))
    counts: dict[tuple[str, str], float] = {}
    for sample in metrics.samples(COUNT):
        key = (sample.labels["http_route"], sample.labels["http_response_status_code"])
        counts[key] = counts.get(key, 0) + sample.value
    expected = {(route, str(status)): 2.0 for _, status, route in CASES[name]}
    expected[("", "404")] = RANDOM_PATHS  # one series for every path that matched nothing
    assert counts == expected
