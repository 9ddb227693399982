"""The documentation against what it documents: the log fields' table against the renderers and
the committed JSON schemas, every alert against its runbook section, the README's size and its
links into the site. (The settings, metrics, log fields and Helm values references are generated
at build time: docs/hooks/generated.py; tests/integration/test_docs_site.py opens the built
site; tests/integration/test_log_schemas.py holds real lines to the JSON schemas.)"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml

from monoceros.observe.access import SCHEMAS, render_request, render_session
from monoceros.observe.literals import Literals
from monoceros.observe.log_schemas import ECS_VERSION
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


def log_fields() -> ModuleType:
    """docs/hooks/log_fields.py: the table of every log field, in each schema."""
    spec = importlib.util.spec_from_file_location("log_fields", DOCS / "hooks" / "log_fields.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


FIELDS = log_fields()
TIMESTAMP = (b"2026-01-01T00:00:00.", b"000", b"000")  # as Timestamps.at() gives it
REQUEST = RequestFinished(
    SCOPE, "GET", "https", 200, "complete", 0.1, 1, 2, ("10.0.0.1", 80), "r", None, None
)
SESSION = SessionFinished(SCOPE, 101, 1000, 0.1, 1, 2, 3, 4, ("10.0.0.1", 80), "r", None)


def access_line(kind: str, schema: str) -> dict[str, Any]:
    number = SCHEMAS.index(schema)
    if kind == "request":
        line = render_request(REQUEST, TIMESTAMP, b"1", Literals(), number)
    else:
        line = render_session(SESSION, TIMESTAMP, b"1", Literals(), number)
    result: dict[str, Any] = json.loads(line)
    return result


@pytest.mark.parametrize("schema", SCHEMAS)
@pytest.mark.parametrize("kind", ["request", "websocket"])
def test_the_field_table_lists_every_access_log_field_in_order(kind: str, schema: str) -> None:
    listed = [name for name, _ in FIELDS.fields(schema, kind)]
    assert listed == list(access_line(kind, schema))


@pytest.mark.parametrize("schema", SCHEMAS)
def test_the_committed_json_schemas_are_the_table_s(schema: str) -> None:
    """`make log-schemas` writes them; they must not drift from the table."""
    committed = DOCS / "reference" / "log-schemas" / f"{schema}.json"
    assert committed.read_text() == FIELDS.schema_text(schema), "run `make log-schemas`"
    jsonschema.Draft202012Validator.check_schema(json.loads(committed.read_text()))


@pytest.mark.parametrize("schema", SCHEMAS)
@pytest.mark.parametrize("kind", ["request", "websocket"])
def test_a_json_schema_takes_its_lines_and_refuses_others(kind: str, schema: str) -> None:
    validator = jsonschema.Draft202012Validator(FIELDS.json_schema(schema))
    line = access_line(kind, schema)
    assert not list(validator.iter_errors(line))
    first = next(iter(FIELDS.fields(schema, kind)[6:]))[0]  # a field of the kind's own
    assert list(validator.iter_errors({k: v for k, v in line.items() if k != first}))
    assert list(validator.iter_errors({**line, "unknown": 1}))
    other = "default" if schema != "default" else "ecs"
    assert list(validator.iter_errors(access_line(kind, other)))


def test_the_ecs_templates_name_the_version_the_other_lines_do() -> None:
    assert access_line("request", "ecs")["ecs.version"] == ECS_VERSION
    assert access_line("websocket", "ecs")["ecs.version"] == ECS_VERSION


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
