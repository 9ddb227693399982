from __future__ import annotations

import importlib.util
import os

import pytest

import monoceros
from monoceros import environment, importer, reloader, supervisor
from monoceros.config import Config
from monoceros.observe import logging as observe_logging
from tests.unit.cli_helpers import FakeServer


@pytest.fixture
def configs(monkeypatch: pytest.MonkeyPatch) -> list[Config]:
    """The Configs the command line hands to monoceros.serve(), which runs nothing: no logging
    set up, no env file loaded, no server, supervisor or reloader started."""
    recorded: list[Config] = []
    monkeypatch.setattr(FakeServer, "configs", recorded)
    monkeypatch.setattr(monoceros, "Server", FakeServer)
    monkeypatch.setattr(reloader, "Reloader", FakeServer)
    monkeypatch.setattr(supervisor, "Supervisor", FakeServer)
    monkeypatch.setattr(observe_logging, "configure_logging_for", lambda *args, **kwargs: None)
    monkeypatch.setattr(environment, "load_env_file", lambda path: None)
    monkeypatch.setattr(importer, "make_importable", lambda app_dir: None)
    # Whatever the developer's shell exports must not leak into these tests.
    for name in list(os.environ):
        if name.startswith(("MONOCEROS_", "UVICORN_")) or name in (
            "FORWARDED_ALLOW_IPS",
            "WEB_CONCURRENCY",
        ):
            monkeypatch.delenv(name)
    return recorded


@pytest.fixture
def hidden_packages(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Names added to the returned set are not installed, as importlib.util.find_spec (what
    the config checks optional extras with) sees it."""
    hidden: set[str] = set()
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name in hidden else real_find_spec(name, *args),
    )
    return hidden
