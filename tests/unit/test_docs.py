"""The documentation against what it documents, where a page is written by hand: the access-log
fields against the renderer, every alert against its runbook section, the README's size and its
links into the site. (The settings, metrics and Helm values references are generated at build
time: docs/hooks/generated.py; tests/integration/test_docs_site.py opens the built site.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from monoceros.observe.access import Literals, render_request, render_session
from monoceros.protocols.events import RequestFinished, SessionFinished
from tests.utils import REPO

DOCS = Path(REPO, "docs")
SITE_URL: str = yaml.safe_load(Path(REPO, "mkdocs.yml").read_text())["site_url"]
RULE_FILES = [
    Path(REPO, "docker", "prometheus", "rules", "monoceros.yml"),
    Path(REPO, "docker", "prometheus", "rules", "nginx.yml"),  # the Compose stack's nginx
    Path(REPO, "helm", "monoceros", "rules", "monoceros.yml"),
]
SCOPE: dict[str, Any] = {
    "type": "http",
    "method": "GET",
    "path": "/",
    "query_string": b"",
    "headers": [(b"host", b"example.com")],
    "scheme": "https",
    "http_version": "1.1",
    "client": ("203.0.113.7", 1234),
}


def table_fields(page: Path, heading: str) -> list[str]:
    """The first column of the table under `heading` (up to the next heading)."""
    text = page.read_text()
    section = text.split(f"\n{heading}\n", 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `(\w+)` \|", section, re.MULTILINE)


def rendered_fields(line: bytes) -> list[str]:
    return list(json.loads(line))


@pytest.mark.parametrize(
    ("heading", "line"),
    [
        pytest.param(
            "## Request lines",
            render_request(
                RequestFinished(SCOPE, 200, "complete", 0.1, 1, 2, ("10.0.0.1", 80), "r"),
                b"t",
                1,
                Literals(),
            ),
            id="request",
        ),
        pytest.param(
            "## WebSocket session lines",
            render_session(
                SessionFinished(SCOPE, 101, 1000, 0.1, 1, 2, 3, 4, ("10.0.0.1", 80), "r"),
                b"t",
                1,
                Literals(),
            ),
            id="websocket",
        ),
    ],
)
def test_the_log_page_lists_every_access_log_field_in_order(heading: str, line: bytes) -> None:
    assert table_fields(DOCS / "observability" / "logs.md", heading) == rendered_fields(line)


def alerts(rule_file: Path) -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(rule_file.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


def runbook_sections() -> set[str]:
    page = (DOCS / "observability" / "alerts.md").read_text()
    return set(re.findall(r"^## (\w+)$", page, re.MULTILINE)) - {"Recording"}


@pytest.mark.parametrize("rule_file", RULE_FILES, ids=lambda path: "/".join(path.parts[-3:]))
def test_every_alert_links_to_its_runbook_section(rule_file: Path) -> None:
    found = alerts(rule_file)
    assert found, rule_file
    assert set(found) <= runbook_sections()
    for name, rule in found.items():
        expected = f"{SITE_URL}observability/alerts/#{name.lower()}"
        assert rule["annotations"].get("runbook_url") == expected, name


def test_every_runbook_section_has_its_alert() -> None:
    assert set().union(*(alerts(path) for path in RULE_FILES)) == runbook_sections()


def test_the_readme_is_short_and_its_site_links_name_real_pages() -> None:
    readme = Path(REPO, "README.md").read_text()
    assert len(readme.encode()) <= 8 * 1024
    links = re.findall(re.escape(SITE_URL) + r"([\w/.-]*?)(?:#([\w-]+))?\)", readme)
    assert len(links) >= 8, links
    for page, anchor in links:
        page = page.rstrip("/")
        found = [path for path in (DOCS / f"{page}.md", DOCS / page / "index.md") if path.exists()]
        assert found, page
        if anchor:
            assert anchor in anchors(found[0].read_text()), f"{page}#{anchor}"


def anchors(markdown: str) -> set[str]:
    """The ids of a page's headings, as the toc extension makes them (or as `{ #id }` sets)."""
    ids = set()
    for heading in re.findall(r"^#+ (.+)$", markdown, re.MULTILINE):
        explicit = re.search(r"\{ #([\w-]+) \}", heading)
        text = re.sub(r"[^\w\s-]", "", heading.replace("`", "")).strip().lower()
        ids.add(explicit.group(1) if explicit else re.sub(r"[-\s]+", "-", text))
    return ids
