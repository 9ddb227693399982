"""The published JSON schemas of the log lines (docs/reference/log-schemas/), for the tests
that hold lines to them."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "docs" / "reference" / "log-schemas"


@functools.cache
def _validator(schema: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads((SCHEMA_DIR / f"{schema}.json").read_text()))


def assert_valid(line: dict[str, Any], schema: str) -> None:
    """`line` holds to `schema` ("default", "ecs", "otel"); else every error, with where."""
    errors = [
        f"{'/'.join(map(str, e.path))}: {e.message}" for e in _validator(schema).iter_errors(line)
    ]
    assert not errors, f"{line}\n" + "\n".join(errors)
