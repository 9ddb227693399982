"""What `monoceros --version` and the startup line say about the build (monoceros/buildinfo.py)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from monoceros.buildinfo import NO_RECORD, BuildInfo, build_info, from_record, log_build
from tests.utils import REPO

EXPECT_COMPILED = os.environ.get("MONOCEROS_EXPECT_COMPILED") == "1"


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        pytest.param(None, BuildInfo(False, NO_RECORD), id="no-record"),
        pytest.param(
            {"compiled": [], "reason": "no C compiler found"},
            BuildInfo(False, "no C compiler found"),
            id="plain-with-reason",
        ),
        pytest.param(
            {"compiled": ["monoceros.config"], "reason": ""},
            BuildInfo(False, "built compiled, but monoceros.config loads as Python"),
            id="compiled-but-shadowed",
        ),
        pytest.param(
            {"compiled": ["orjson.orjson"], "reason": ""}, BuildInfo(True, ""), id="extension"
        ),
    ],
)
def test_the_record_is_checked_against_the_loaded_modules(
    record: dict[str, Any] | None, expected: BuildInfo
) -> None:
    assert from_record(record) == expected


def test_this_installation() -> None:
    # `make pytest-compiled` runs against build/compiled, the rest against the editable install.
    info = build_info()
    assert info.compiled is EXPECT_COMPILED
    assert info.reason == ("" if EXPECT_COMPILED else NO_RECORD)


@pytest.mark.parametrize(
    ("info", "level", "words"),
    [
        pytest.param(BuildInfo(True, ""), logging.INFO, "compiled with mypyc", id="compiled"),
        pytest.param(
            BuildInfo(False, "no C compiler found"),
            logging.WARNING,
            "plain Python (no C compiler found)",
            id="plain",
        ),
    ],
)
def test_startup_line(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    info: BuildInfo,
    level: int,
    words: str,
) -> None:
    monkeypatch.setattr("monoceros.buildinfo.build_info", lambda: info)
    logger = logging.getLogger("monoceros.test-build")
    with caplog.at_level(logging.INFO, logger=logger.name):
        log_build(logger)
    assert [(record.levelno, words in record.getMessage()) for record in caplog.records] == [
        (level, True)
    ]


def test_runs_without_the_optional_engines() -> None:
    """zttp (`--http2`) and wsproto are optional: with neither importable, the build check,
    the CLI and an HTTP/1.1 request all work (the compiled build included: http2.py is
    compiled, and imports zttp)."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["zttp"] = None  # an import of it now fails, as if not installed
        sys.modules["wsproto"] = None
        import httpx
        from monoceros.buildinfo import build_info
        from tests.utils import run_server
        from tests.apps import hello

        build_info()
        with run_server(hello) as server:
            print(httpx.get(server.url).status_code)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["200"]
