"""What `monoceros --version` and the startup line say about the build (monoceros/buildinfo.py)."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest

from monoceros.buildinfo import NO_RECORD, BuildInfo, build_info, from_record, log_build

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
