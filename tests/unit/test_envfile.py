"""--env-file: the small dotenv reader."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from monoceros.envfile import load_env_file, parse_env_file
from monoceros.errors import StartupError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("A=1", {"A": "1"}, id="plain"),
        pytest.param("A=1\nB=2\n", {"A": "1", "B": "2"}, id="two"),
        pytest.param("# comment\n\n   \nA=1\n  # indented comment", {"A": "1"}, id="comments"),
        pytest.param("export A=1", {"A": "1"}, id="export"),
        pytest.param("export   A=1", {"A": "1"}, id="export-spaces"),
        pytest.param("  A = 1  ", {"A": "1"}, id="spaces-around"),
        pytest.param("A=", {"A": ""}, id="empty"),
        pytest.param("A=a=b", {"A": "a=b"}, id="equals-in-value"),
        pytest.param("A='x y'", {"A": "x y"}, id="single-quotes"),
        pytest.param('A="x y"', {"A": "x y"}, id="double-quotes"),
        pytest.param("A='# not a comment'", {"A": "# not a comment"}, id="hash-in-quotes"),
        pytest.param("A=1 # comment", {"A": "1"}, id="inline-comment"),
        pytest.param("A=a#b", {"A": "a#b"}, id="hash-without-space"),
        pytest.param('A="x y" # comment', {"A": "x y"}, id="quoted-inline-comment"),
        pytest.param('A="it\'s"', {"A": "it's"}, id="other-quote-inside"),
        pytest.param("A=1\nA=2", {"A": "2"}, id="last-wins"),
        pytest.param("MY_VAR_2=x", {"MY_VAR_2": "x"}, id="underscore-digits"),
    ],
)
def test_parse(text: str, expected: dict[str, str]) -> None:
    assert parse_env_file(text) == expected


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param("just words", 1, id="no-equals"),
        pytest.param("A=1\n\n=value", 3, id="empty-key"),
        pytest.param("# c\nA B=1", 2, id="space-in-key"),
        pytest.param("A-B=1", 1, id="dash-in-key"),
        pytest.param('A="unterminated', 1, id="unterminated-quote"),
    ],
)
def test_bad_line_names_the_line(text: str, line: int) -> None:
    with pytest.raises(StartupError) as info:
        parse_env_file(text, source="app.env")
    assert f"app.env, line {line}:" in str(info.value)


def test_load_sets_missing_variables_and_existing_ones_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "app.env"
    path.write_text("MONOCEROS_TEST_NEW=from-file\nMONOCEROS_TEST_SET=from-file\n")
    monkeypatch.delenv("MONOCEROS_TEST_NEW", raising=False)
    monkeypatch.setenv("MONOCEROS_TEST_SET", "from-environment")
    load_env_file(str(path))
    assert os.environ["MONOCEROS_TEST_NEW"] == "from-file"
    assert os.environ["MONOCEROS_TEST_SET"] == "from-environment"
    monkeypatch.delenv("MONOCEROS_TEST_NEW")


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match=r"Cannot read --env-file .*missing\.env"):
        load_env_file(str(tmp_path / "missing.env"))


def test_load_bad_line_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.env"
    path.write_text("A=1\noops\n")
    with pytest.raises(StartupError, match=r"bad\.env, line 2: expected KEY=VALUE"):
        load_env_file(str(path))
