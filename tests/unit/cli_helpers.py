"""Driving the command line with click's CliRunner; no server runs (see the `configs` fixture
in conftest.py, which replaces what monoceros.serve() would run)."""

from __future__ import annotations

from typing import ClassVar

from click.testing import CliRunner, Result

from monoceros import cli
from monoceros.config import Config


class FakeServer:
    """Stands in for Server, Supervisor and Reloader: records the Config, serves nothing."""

    configs: ClassVar[list[Config]] = []

    def __init__(self, config: Config) -> None:
        self.configs.append(config)

    def run(self) -> int:
        return 0


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli.main, list(args), env=env, prog_name="monoceros")


def configured(configs: list[Config], *args: str, env: dict[str, str] | None = None) -> Config:
    result = invoke(*args, env=env)
    assert result.exit_code == 0, result.output
    assert len(configs) == 1
    return configs.pop()
