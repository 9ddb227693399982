"""The parts of the documentation that are generated when the site is built (an mkdocs hook).

A page asks for one with a marker line, `<!-- generated: NAME -->`, replaced by:

- `settings`: every option of the `monoceros` command, from the click command itself: the
  flags, their type, default and environment variables as `monoceros --help` shows them;
- `metrics`: every metric family `/metrics` serves, from the collectors themselves (one
  server's and a worker group's), with type, labels and help text;
- `helm-values`: the chart's values, from the `## @section` and `## @param` lines of
  helm/monoceros/values.yaml (Bitnami readme-generator-for-helm's format), with each default
  read from the values themselves;
- `log-fields`: every field of the JSON log lines in each --log-schema, from the table in
  docs/hooks/log_fields.py (which the JSON schemas beside the page are written from);
- `dashboard`: the Grafana dashboard row by row, each panel with its description and queries,
  from grafana/dashboards/monoceros.json.

An unknown marker, or a value documented by no `## @param`, fails the build.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import click
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).parent))  # mkdocs loads this file alone: log_fields too

import log_fields  # noqa: E402

VALUES = REPO / "helm" / "monoceros" / "values.yaml"
DASHBOARD = REPO / "grafana" / "dashboards" / "monoceros.json"
MARKER = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.MULTILINE)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return MARKER.sub(lambda match: GENERATORS[match.group(1)](), markdown)


# ---- settings: the click command


def settings() -> str:
    from monoceros.cli import main

    context = click.Context(main, info_name="monoceros", auto_envvar_prefix="MONOCEROS")
    options = [p for p in main.get_params(context) if isinstance(p, click.Option)]
    rows = ["| Option | Environment variable | Default |", "| --- | --- | --- |"]
    sections = [
        "### `APP` { #app }",
        "",
        "The ASGI application, `module:attribute` (with `--factory`, a callable returning it).",
        "",
        "**Environment variable:** `MONOCEROS_APP` · **Required**",
    ]
    rows.append("| [`APP`](#app) | `MONOCEROS_APP` | required |")
    for option in options:
        record = option.get_help_record(context)
        assert record is not None, option.name
        extra = option.get_help_extra(context)
        anchor = option.opts[0].lstrip("-")
        envvars = ", ".join(f"`{name}`" for name in extra.get("envvars", ())) or "none"
        if option.is_bool_flag:  # as its environment variable takes it
            default = "`true`" if option.default else "`false`"
        else:
            default = f"`{extra['default']}`" if "default" in extra else "none"
        rows.append(f"| [`{option.opts[0]}`](#{anchor}) | {envvars} | {default} |")
        names = " / ".join(option.opts + option.secondary_opts)
        value = record[0].removeprefix(names).strip()  # click's metavar: TEXT, FLOAT RANGE, ...
        facts = [f"**Environment variable:** {envvars}", f"**Default:** {default}"]
        if value:
            facts.insert(0, f"**Value:** `{value}`")
        if "range" in extra:
            facts.append(f"**Range:** `{extra['range']}`")
        sections += [
            "",
            f"### `{names}` {{ #{anchor} }}",
            "",
            (option.help or "").replace("[", "\\["),
            "",
            " · ".join(facts),
        ]
    return "\n".join([*rows, "", *sections])


# ---- metrics: the collectors


def metrics() -> str:
    from monoceros.observe.group import SUPERVISOR, GroupCollector, GroupStatus, process_families
    from monoceros.observe.metrics import MetricsSnapshot, Series
    from monoceros.observe.scrape import build_registry

    # One of everything, so that every family has a sample and shows its labels.
    snapshot = MetricsSnapshot(
        series={("GET", 200, "/items/{item_id}", "https", "1.1", ""): Series()},
        rejections={413: 1},
        websocket_closes={1000: 1},
    )
    processes = {SUPERVISOR: process_families(), "1": process_families()}
    group = GroupCollector(lambda: GroupStatus(snapshot, "started", 2, {"crashed": 1}, processes))
    per_process = {family.name for family in process_families()}
    group_only = (
        {family.name for family in group.collect()}
        - per_process
        - {family.name for family in _single(snapshot)}
    )
    rows = ["| Metric | Type | Labels | Meaning |", "| --- | --- | --- | --- |"]
    for family in build_registry(group, process=False).collect():
        names = sorted({sample.name for sample in family.samples})
        labels = sorted({k for sample in family.samples for k in sample.labels} - {"le", "worker"})
        shown = names[0] if len(names) == 1 else family.name
        suffixes = [name.removeprefix(family.name) for name in names]
        meaning = family.documentation.replace("|", "\\|")
        if family.unit:
            meaning += f" Unit: {family.unit}."
        if family.name in group_only:
            meaning += " Only with `--workers` (the supervisor's)."
        elif family.name in per_process:
            meaning += " With `--workers`, per process: label `worker`."
        label_text = ", ".join(f"`{label}`" for label in labels) or "none"
        series = "" if len(names) == 1 else " (" + ", ".join(f"`{n}`" for n in suffixes) + ")"
        rows.append(f"| `{shown}`{series} | {family.type} | {label_text} | {meaning} |")
    return "\n".join(rows)


def _single(snapshot: Any) -> list[Any]:
    from monoceros.observe.scrape import render

    return list(render(snapshot, "started"))


# ---- helm-values: the chart's ## @param lines


def helm_values() -> str:
    values = yaml.safe_load(VALUES.read_text())
    out: list[str] = []
    documented: set[str] = set()
    for line in VALUES.read_text().splitlines():
        if line.startswith("## @section "):
            out += ["", f"### {line.removeprefix('## @section ')}", ""]
            out += ["| Name | Description | Value |", "| --- | --- | --- |"]
        elif line.startswith("## @param "):
            key, _, description = line.removeprefix("## @param ").partition(" ")
            # readme-generator-for-helm's modifiers ([object], [array,default: ...]) are for it.
            description = re.sub(r"^\[[^\]]*\]\s*", "", description)
            documented.add(key)
            value = json.dumps(_lookup(values, key))
            description = description.replace("|", "\\|")
            out.append(f"| `{key}` | {description} | `{value}` |")
    undocumented = sorted(
        leaf for leaf in _leaves(values) if not any(_within(leaf, key) for key in documented)
    )
    if undocumented:
        raise ValueError(f"values.yaml: no `## @param` for {', '.join(undocumented)}")
    return "\n".join(out)


def _lookup(values: dict[str, Any], key: str) -> Any:
    node: Any = values
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"values.yaml: `## @param {key}` names no value")
        node = node[part]
    return node


def _within(leaf: str, key: str) -> bool:
    return leaf == key or leaf.startswith(key + ".")


def _leaves(values: dict[str, Any], prefix: str = "") -> set[str]:
    """Every documented-level key: a value that is not a non-empty map of further values."""
    keys: set[str] = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            keys |= _leaves(value, path + ".")
        else:
            keys.add(path)
    return keys


# ---- dashboard: grafana/dashboards/monoceros.json


def dashboard() -> str:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    out: list[str] = []
    for panel in panels:
        if panel["type"] == "row":
            out += ["", f"### {panel['title']}", ""]
            continue
        queries = " ".join(f"`{target['expr']}`" for target in panel["targets"])
        description = panel.get("description")
        if not description:
            raise ValueError(f"dashboard panel {panel['title']!r} has no description")
        out += [f"**{panel['title']}** ({panel['type']}): {description}", "", queries, ""]
    return "\n".join(out)


GENERATORS = {
    "settings": settings,
    "metrics": metrics,
    "helm-values": helm_values,
    "log-fields": log_fields.reference,
    "dashboard": dashboard,
}
