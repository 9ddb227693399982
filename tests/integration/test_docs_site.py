"""The documentation site as a reader gets it: built with `mkdocs build --strict`, served over
HTTP on 127.0.0.1, opened in headless Chromium (Debian's package) driven through the DevTools
protocol. The home page, the settings reference and the metrics reference render, and the
site's search finds an option by name. Without Chromium these tests skip, except under CI=true.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import http.server
import itertools
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
import yaml
from websockets.sync.client import ClientConnection, connect

from monoceros.cli import main
from monoceros.observe.group import GroupCollector, GroupStatus
from monoceros.observe.metrics import MetricsSnapshot
from tests.integration.deploy_helpers import unavailable
from tests.utils import REPO

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
]
TIMEOUT = 30.0
SCREENSHOTS = Path(REPO, "build", "docs-screenshots")  # for people to look at; not checked


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The site built afresh and served on an ephemeral port; its base URL."""
    directory = tmp_path_factory.mktemp("site")
    mkdocs = Path(sys.executable).with_name("mkdocs")
    subprocess.run(
        [mkdocs, "build", "--strict", "--quiet", "--site-dir", str(directory)],
        cwd=REPO,
        check=True,
        timeout=120,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": str(mkdocs.parent)},
    )
    handler = functools.partial(QuietHandler, directory=str(directory))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{server.server_address[1]}/"
        server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class Browser:
    """One Chromium page, driven over the DevTools protocol (a flat session on one socket)."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.call("Page.enable", session=True)
        self.call("Runtime.enable", session=True)
        self.call(  # a desktop window: the layout with the sidebars
            "Emulation.setDeviceMetricsOverride",
            session=True,
            width=1280,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )

    def call(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        message: dict[str, Any] = {"id": next(self.ids), "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        self.connection.send(json.dumps(message))
        while True:
            reply = json.loads(self.connection.recv(timeout=TIMEOUT))
            if reply.get("id") == message["id"]:
                assert "error" not in reply, reply
                result: dict[str, Any] = reply["result"]
                return result
            self.events.append(reply)

    def open(self, url: str) -> None:
        self.events.clear()
        self.call("Page.navigate", session=True, url=url)
        self.wait_for_event("Page.loadEventFired")

    def wait_for_event(self, method: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not any(event.get("method") == method for event in self.events):
            assert time.monotonic() < deadline, f"no {method}"
            self.events.append(json.loads(self.connection.recv(timeout=TIMEOUT)))

    def evaluate(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate", session=True, expression=expression, returnByValue=True
        )
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def wait_for(self, expression: str) -> Any:
        """Poll a page expression until it is truthy (the page updates itself: search)."""
        deadline = time.monotonic() + TIMEOUT
        while not (value := self.evaluate(expression)):
            assert time.monotonic() < deadline, f"never true: {expression}"
            time.sleep(0.1)
        return value

    def exceptions(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("method") == "Runtime.exceptionThrown"]

    def screenshot(self, name: str) -> None:
        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / f"{name}.png").write_bytes(base64.b64decode(data))


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    if chromium is None:
        unavailable("chromium is not installed (apt-get install -y chromium)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    process = subprocess.Popen(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + TIMEOUT
        while not (port_file.exists() and len(port_file.read_text().splitlines()) == 2):
            assert process.poll() is None, "chromium exited"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()
        with connect(f"ws://127.0.0.1:{port}{path}", max_size=None) as connection:
            yield Browser(connection)
    finally:
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_the_home_page_renders(site: str, browser: Browser) -> None:
    browser.open(site)
    assert browser.evaluate("document.title").startswith("monoceros")
    heading = browser.evaluate("document.querySelector('article h1').firstChild.textContent")
    assert heading == "monoceros"
    nav = browser.evaluate("[...document.querySelectorAll('.md-nav__link')].length")
    assert nav > 10
    assert browser.exceptions() == []
    browser.screenshot("home")


def test_the_settings_reference_lists_every_option(site: str, browser: Browser) -> None:
    browser.open(site + "reference/settings/")
    context = click.Context(main, auto_envvar_prefix="MONOCEROS")
    options = [p for p in main.get_params(context) if isinstance(p, click.Option)]
    anchors = browser.evaluate("[...document.querySelectorAll('article h3[id]')].map(h => h.id)")
    assert anchors == ["app"] + [option.opts[0].lstrip("-") for option in options]
    text = browser.evaluate("document.querySelector('article').innerText")
    assert "MONOCEROS_TIMEOUT_KEEP_ALIVE" in text and "WEB_CONCURRENCY" in text
    assert browser.exceptions() == []
    browser.screenshot("settings")


def test_the_metrics_reference_lists_every_metric(site: str, browser: Browser) -> None:
    browser.open(site + "observability/metrics/")
    rows = browser.evaluate(
        "[...document.querySelectorAll('article table tbody tr td:first-child code')]"
        ".map(c => c.textContent)"
    )
    snapshot = MetricsSnapshot()
    families = GroupCollector(lambda: GroupStatus(snapshot, "started", 1, {}, {})).collect()
    expected = {family.name for family in families}
    shown = {name.removesuffix("_total").removesuffix("_info") for name in rows}
    assert expected <= shown, expected - shown
    assert {"process_cpu_seconds_total", "python_gc_collections_total"} <= set(rows)
    browser.screenshot("metrics")


def test_the_log_fields_reference_lists_every_field_and_links_the_schemas(
    site: str, browser: Browser
) -> None:
    browser.open(site + "reference/log-fields/")
    rows = set(
        browser.evaluate(
            "[...document.querySelectorAll('article table tbody tr td:first-child code')]"
            ".map(c => c.textContent)"
        )
    )
    for name in ("body_bytes_sent", "http.response.body.bytes", "severity_number", "trace.id"):
        assert name in rows, name
    for schema in ("default", "ecs", "otel"):
        response = httpx.get(f"{site}reference/log-schemas/{schema}.json", timeout=10)
        assert response.json()["$id"].endswith(f"/reference/log-schemas/{schema}.json")
    browser.screenshot("log-fields")


def test_the_search_finds_an_option_by_name(site: str, browser: Browser) -> None:
    browser.open(site)
    browser.evaluate("document.querySelector('input.md-search__input').focus()")
    browser.call("Input.insertText", session=True, text="timeout-keep-alive")
    links = browser.wait_for(
        "[...document.querySelectorAll('.md-search-result__item a')].map(a => a.pathname + a.hash)"
    )
    assert "/reference/settings/#timeout-keep-alive" in links, links
    browser.screenshot("search")
    browser.open(site + "reference/settings/#timeout-keep-alive")
    browser.screenshot("settings-option")


def test_every_runbook_anchor_exists_in_the_built_site(site: str, browser: Browser) -> None:
    browser.open(site + "observability/alerts/")
    ids = set(browser.evaluate("[...document.querySelectorAll('h2[id]')].map(h => h.id)"))
    rules = yaml.safe_load(Path(REPO, "docker", "prometheus", "rules", "monoceros.yml").read_text())
    for rule in (rule for group in rules["groups"] for rule in group["rules"] if "alert" in rule):
        assert rule["annotations"]["runbook_url"].rsplit("#", 1)[1] in ids, rule["alert"]
