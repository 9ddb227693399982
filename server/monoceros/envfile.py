"""`--env-file`: KEY=VALUE lines loaded into the environment before the app is imported.

A small reader instead of a python-dotenv dependency: comments, blank lines, an optional
`export ` prefix, and single- or double-quoted values. Variables already set win, as in dotenv.
"""

from __future__ import annotations

import os

from monoceros.errors import StartupError


def parse_env_file(text: str, *, source: str = "env file") -> dict[str, str]:
    values: dict[str, str] = {}
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "a").isalnum():
            raise StartupError(f"{source}, line {number}: expected KEY=VALUE, got {raw_line!r}")
        value = value.strip()
        if value[:1] in ("'", '"'):
            # A quoted value ends at its closing quote; only a comment may follow it.
            end = value.find(value[0], 1)
            rest = value[end + 1 :].lstrip() if end > 0 else ""
            if end < 0 or (rest and not rest.startswith("#")):
                raise StartupError(f"{source}, line {number}: unbalanced quotes in {raw_line!r}")
            value = value[1:end]
        else:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


def load_env_file(path: str) -> None:
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise StartupError(f"Cannot read --env-file {path}: {exc.strerror}") from exc
    for key, value in parse_env_file(text, source=path).items():
        os.environ.setdefault(key, value)
