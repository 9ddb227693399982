"""Click types of the options whose values no built-in type checks: each refuses a bad value
with click's one-line usage error, naming the option."""

from __future__ import annotations

from typing import Any

import click

from monoceros.config import LOOPS


class LoopType(click.ParamType):  # type: ignore[type-arg,unused-ignore]
    """--loop: one of LOOPS, or a loop factory as module:attribute (imported at startup)."""

    name = "loop"
    metavar = "[" + "|".join(LOOPS) + "|MODULE:ATTR]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        module, sep, attribute = str(value).partition(":")
        if value in LOOPS or (sep and module and attribute):
            return value
        self.fail(f"{value!r} is not one of {', '.join(LOOPS)} nor module:attribute", param, ctx)


class HeaderType(click.ParamType):  # type: ignore[type-arg,unused-ignore]
    """--header NAME:VALUE. From the environment, a value with a newline holds one header per
    line, so that values may have spaces; without one it is split at whitespace, as click
    (and so uvicorn) splits every repeatable option."""

    name = "NAME:VALUE"

    def split_envvar_value(self, rv: str) -> list[str]:
        if "\n" in rv:
            return [line.strip() for line in rv.splitlines() if line.strip()]
        return rv.split()
