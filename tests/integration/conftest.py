"""Fixtures for the subprocess tests."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.helpers import TLSFiles


@pytest.fixture
def write_module(tmp_path: Path) -> Callable[[str, str], str]:
    """Write `<name>.py` with `source` under tmp_path; return the directory (for --app-dir)."""

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        return str(tmp_path)

    return write


@pytest.fixture
def tls(tmp_path: Path) -> TLSFiles:
    return TLSFiles(tmp_path)
