"""uvicorn's command line, as the installed uvicorn (a dev dependency) declares it, against
ours: a new uvicorn option, or a new value of one, fails here before a user meets it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
import uvicorn
from uvicorn.main import main as uvicorn_main

from monoceros.config import Config
from monoceros.differences import startup_notes
from tests.unit.cli_helpers import configured, invoke

UVICORN_COMMAND: click.Command = uvicorn_main
UVICORN_OPTIONS = [param for param in UVICORN_COMMAND.params if isinstance(param, click.Option)]


def option_strings(command: click.Command) -> set[str]:
    return {
        name
        for param in command.params
        if isinstance(param, click.Option)
        for name in (*param.opts, *param.secondary_opts)
    }


def test_every_uvicorn_option_is_ours() -> None:
    from monoceros.cli import main

    missing = option_strings(UVICORN_COMMAND) - option_strings(main)
    assert missing == set(), f"uvicorn {uvicorn.__version__} has options we lack"


def test_the_app_argument_is_read_from_both_variables() -> None:
    from monoceros.cli import main

    (theirs,) = [p for p in UVICORN_COMMAND.params if isinstance(p, click.Argument)]
    (ours,) = [p for p in main.params if isinstance(p, click.Argument)]
    assert theirs.envvar in ours.envvar


def uvicorn_choices() -> list[Any]:
    """(option, value) for each value uvicorn lists for an option: click.Choice, or the
    `[a|b|c]` metavar of its str-typed --loop, --http and --ws."""
    cases = []
    for param in UVICORN_OPTIONS:
        if isinstance(param.type, click.Choice):
            values = [str(choice) for choice in param.type.choices]
        elif param.metavar and param.metavar.startswith("["):
            values = param.metavar.strip("[]").split("|")
        else:
            continue
        cases += [
            pytest.param(param.opts[0], value, id=f"{param.opts[0]}={value}") for value in values
        ]
    return cases


@pytest.mark.parametrize(("option", "value"), uvicorn_choices())
def test_every_uvicorn_choice_is_accepted(configs: list[Config], option: str, value: str) -> None:
    config = configured(configs, "examples.app:app", option, value)
    assert config is not None


def uvicorn_defaults() -> list[Any]:
    """uvicorn's default of each option that has a value, given explicitly."""
    cases = []
    for param in UVICORN_OPTIONS:
        if param.is_flag or param.default is None or param.multiple:
            continue
        default = param.default
        value = str(int(default) if isinstance(default, bool) else default)
        cases.append(pytest.param(param.opts[0], value, id=param.opts[0]))
    return cases


@pytest.mark.parametrize(("option", "value"), uvicorn_defaults())
def test_uvicorn_defaults_are_accepted(configs: list[Config], option: str, value: str) -> None:
    configured(configs, "examples.app:app", option, value)


def test_a_command_line_with_every_uvicorn_option(
    configs: list[Config],
    tmp_path: Path,
) -> None:
    """One uvicorn command with each option it has: accepted, and each lands somewhere."""
    env_file = tmp_path / "app.env"
    env_file.write_text("A=1\n")
    log_config = tmp_path / "logging.json"
    log_config.write_text('{"version": 1}')
    samples = {
        "--uds": None,  # not with --fd
        "--fd": "3",
        "--env-file": str(env_file),
        "--log-config": str(log_config),
        "--log-level": "trace",
        "--limit-concurrency": "10",
        "--limit-max-requests": "100",
        "--timeout-graceful-shutdown": "5",
        "--ssl-keyfile": "key.pem",
        "--ssl-certfile": "cert.pem",
        "--ssl-keyfile-password": "pw",
        "--ssl-ca-certs": "ca.pem",
        "--ssl-ciphers": "ECDHE+AESGCM",
        "--header": "x-a:1",
        "--forwarded-allow-ips": "10.0.0.0/8",
        "--reload-dir": str(tmp_path),
        "--reload-include": "*.html",
        "--reload-exclude": "*.log",
        "--h11-max-incomplete-event-size": "4096",
        "--workers": "2",
        "--root-path": "/api",
        "--app-dir": str(tmp_path),
    }
    args: list[str] = []
    for param in UVICORN_OPTIONS:
        option = param.opts[0]
        if option in ("--help", "--version"):
            continue
        if param.is_flag:
            args.append(option)
            continue
        value = samples.get(option, param.default)
        if value is None:
            continue
        args += [option, str(int(value) if isinstance(value, bool) else value)]
    config = configured(configs, "examples.app:app", *args)
    assert config.reload.enabled and config.reload.dirs == (str(tmp_path),)
    assert config.interface == "auto" and config.reset_contextvars and config.http2.enabled
    assert config.limits.max_header_bytes == 4096
    assert config.observe.use_colors is True
    notes = startup_notes(config)
    assert any(note.startswith("--workers 2 is ignored with --reload") for note in notes)


@pytest.mark.parametrize(
    ("args", "starts"),
    [
        pytest.param(("--http", "h11"), "--http h11: monoceros parses HTTP/1.1 with httptools"),
        pytest.param(("--http", "zttp"), "--http zttp"),
        pytest.param(("--loop", "zuvloop"), "--loop zuvloop: monoceros runs uvloop"),
        pytest.param(
            ("--h11-max-incomplete-event-size", "100"),
            "--h11-max-incomplete-event-size 100: taken as --limit-request-header-size 100",
        ),
        pytest.param(
            ("--h11-max-incomplete-event-size", "100", "--limit-request-header-size", "200"),
            "--h11-max-incomplete-event-size 100: ignored",
        ),
        pytest.param(("--reload-include", "*.html"), "--reload-dir, --reload-include"),
        pytest.param(("--use-colors", "--log-format", "json"), "--use-colors: JSON lines"),
    ],
)
def test_options_served_differently_say_so_in_one_line(
    configs: list[Config],
    args: tuple[str, ...],
    starts: str,
) -> None:
    notes = startup_notes(configured(configs, "examples.app:app", *args))
    assert [note for note in notes if note.startswith(starts)] != [], notes
    assert all("\n" not in note for note in notes)


def test_same_meaning_options_are_silent(configs: list[Config]) -> None:
    config = configured(
        configs,
        "examples.app:app",
        *("--http", "httptools", "--ws", "websockets-sansio", "--loop", "asyncio"),
        *("--ssl-version", "17", "--reset-contextvars", "--interface", "asgi3"),
    )
    assert startup_notes(config) == []


# -- UVICORN_* variables -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "args", "attribute", "expected"),
    [
        pytest.param({"UVICORN_HOST": "0.0.0.0"}, (), "listen.host", "0.0.0.0", id="theirs"),
        pytest.param(
            {"UVICORN_HOST": "0.0.0.0", "MONOCEROS_HOST": "::1"},
            (),
            "listen.host",
            "::1",
            id="ours-wins",
        ),
        pytest.param(
            {"UVICORN_HOST": "0.0.0.0", "MONOCEROS_HOST": "::1"},
            ("--host", "10.1.1.1"),
            "listen.host",
            "10.1.1.1",
            id="command-line-wins",
        ),
        pytest.param({}, (), "listen.host", "127.0.0.1", id="default"),
        pytest.param({"UVICORN_WORKERS": "3", "WEB_CONCURRENCY": "5"}, (), "workers", 3, id="w"),
        pytest.param({"UVICORN_PROXY_HEADERS": "false"}, (), "proxy.enabled", False, id="flag"),
        pytest.param(
            {"UVICORN_FORWARDED_ALLOW_IPS": "10.0.0.0/8", "FORWARDED_ALLOW_IPS": "*"},
            (),
            "proxy.forwarded_allow_ips",
            "10.0.0.0/8",
            id="trust",
        ),
        pytest.param(
            {"UVICORN_HEADERS": "x-a:1 x-b:2"},
            (),
            "headers",
            (("x-a", "1"), ("x-b", "2")),
            id="headers",
        ),
        pytest.param({"UVICORN_RELOAD": "true"}, (), "reload.enabled", True, id="reload"),
        pytest.param({"UVICORN_INTERFACE": "asgi2"}, (), "interface", "asgi2", id="interface"),
    ],
)
def test_uvicorn_variables_come_after_ours(
    configs: list[Config],
    env: dict[str, str],
    args: tuple[str, ...],
    attribute: str,
    expected: Any,
) -> None:
    value: Any = configured(configs, "examples.app:app", *args, env=env)
    for part in attribute.split("."):
        value = getattr(value, part)
    assert value == expected


def test_uvicorn_app_variable(configs: list[Config]) -> None:
    assert configured(configs, env={"UVICORN_APP": "examples.app:app"}).app == "examples.app:app"
    env = {"UVICORN_APP": "a:b", "MONOCEROS_APP": "examples.app:app"}
    assert configured(configs, env=env).app == "examples.app:app"


def test_the_startup_log_names_each_uvicorn_variable_read(
    configs: list[Config],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import monoceros

    seen: list[list[str]] = []
    monkeypatch.setattr(monoceros.cli, "serve", lambda config, notes: seen.append(notes) or 0)
    env = {
        "UVICORN_APP": "examples.app:app",
        "UVICORN_PORT": "9001",
        "UVICORN_HOST": "0.0.0.0",
        "MONOCEROS_HOST": "::1",  # ours is read: UVICORN_HOST is not
        "UVICORN_ACCESS_LOG": "",  # empty: not read
    }
    result = invoke(env=env)
    assert result.exit_code == 0, result.output
    assert seen == [
        [
            "Read UVICORN_APP (uvicorn's name for MONOCEROS_APP)",
            "Read UVICORN_PORT (uvicorn's name for MONOCEROS_PORT)",
        ]
    ]


def test_a_bad_uvicorn_variable_is_a_one_line_usage_error(configs: list[Config]) -> None:
    result = invoke("examples.app:app", env={"UVICORN_PORT": "eighty"})
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "UVICORN_PORT" in errors[0]


# -- --header from the environment -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("x-a:1", (("x-a", "1"),), id="one"),
        pytest.param("x-a:1 x-b:2", (("x-a", "1"), ("x-b", "2")), id="whitespace"),
        pytest.param(
            "strict-transport-security:max-age=63072000; includeSubDomains\n",
            (("strict-transport-security", "max-age=63072000; includeSubDomains"),),
            id="one-line-with-spaces",
        ),
        pytest.param(
            "x-a: one two\n\n  content-security-policy: default-src 'self'; img-src *\n",
            (("x-a", "one two"), ("content-security-policy", "default-src 'self'; img-src *")),
            id="lines",
        ),
    ],
)
def test_header_variable(
    configs: list[Config],
    value: str,
    expected: tuple[tuple[str, str], ...],
) -> None:
    config = configured(configs, "examples.app:app", env={"MONOCEROS_HEADER": value})
    assert config.headers == expected


def test_uvicorn_variables_are_offered_for_uvicorns_options_only() -> None:
    from monoceros.cli import main
    from monoceros.envvars import OUR_OPTIONS

    theirs = {param.name for param in UVICORN_OPTIONS}
    ours = {param.name for param in main.params if isinstance(param, click.Option)}
    assert ours - theirs - {"help", "version"} == OUR_OPTIONS
