"""The command line, driven with click's CliRunner; no server runs (Server is replaced)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import click
import pytest

import monoceros
from monoceros import cli, supervisor
from monoceros.buildinfo import describe
from monoceros.config import Config
from tests.unit.cli_helpers import FakeServer, configured, invoke

UVICORN_OPTIONS = [
    *("--host", "--port", "--uds", "--fd", "--workers", "--loop", "--lifespan", "--env-file"),
    *("--log-level", "--access-log", "--no-access-log", "--root-path", "--limit-concurrency"),
    *("--limit-max-requests", "--backlog", "--timeout-keep-alive", "--timeout-graceful-shutdown"),
    *("--ssl-keyfile", "--ssl-certfile", "--ssl-keyfile-password", "--ssl-ca-certs"),
    *("--ssl-cert-reqs", "--ssl-ciphers", "--header", "--server-header", "--no-server-header"),
    *("--date-header", "--no-date-header", "--factory", "--app-dir"),
    *("--proxy-headers", "--no-proxy-headers", "--forwarded-allow-ips"),
]
OUR_OPTIONS = [
    *("--limit-request-line", "--limit-request-fields", "--limit-request-header-size"),
    *("--limit-request-body", "--timeout-request-header"),
    *("--forwarded-headers", "--proxy-forwarded-host", "--proxy-forwarded-port"),
    "--proxy-forwarded-prefix",
    *("--reuse-port", "--limit-max-requests-jitter", "--limit-max-rss"),
    "--timeout-worker-healthcheck",
]


def test_help_lists_every_option() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    words = set(result.output.replace(",", " ").replace("/", " ").split())
    missing = [name for name in UVICORN_OPTIONS + OUR_OPTIONS if name not in words]
    assert not missing, result.output


def test_version_says_whether_the_hot_path_is_compiled() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output.startswith(f"monoceros {monoceros.__version__} ({describe()}) on ")


def test_a_monoceros_version_variable_does_not_trigger_version(configs: list[Config]) -> None:
    configured(configs, "examples.app:app", env={"MONOCEROS_VERSION": "1"})


def test_help_names_every_options_environment_variable() -> None:
    context = click.Context(cli.main, auto_envvar_prefix="MONOCEROS")
    for param in cli.main.get_params(context):
        if not isinstance(param, click.Option) or {"--help", "--version"} & set(param.opts):
            continue
        record = param.get_help_record(context)
        assert record is not None and "env var: MONOCEROS_" in record[1], param.name
    assert "MONOCEROS_TIMEOUT_KEEP_ALIVE" in invoke("--help").output


@pytest.mark.parametrize(
    ("args", "named"),
    [
        pytest.param(["--port", "70000"], "--port", id="port-range"),
        pytest.param(["--port", "eighty"], "--port", id="port-not-int"),
        pytest.param(["--loop", "foo"], "--loop", id="loop"),
        pytest.param(["--workers", "0"], "--workers", id="workers-zero"),
        pytest.param(["--root-path", "nope/"], "--root-path", id="root-path"),
        pytest.param(["--lifespan", "maybe"], "--lifespan", id="lifespan"),
        pytest.param(["--log-level", "loud"], "--log-level", id="log-level"),
        pytest.param(["--backlog", "0"], "--backlog", id="backlog"),
        pytest.param(["--fd", "-1"], "--fd", id="fd"),
        pytest.param(["--uds", "/tmp/s", "--fd", "3"], "--uds", id="uds-and-fd"),
        pytest.param(["--limit-concurrency", "0"], "--limit-concurrency", id="concurrency"),
        pytest.param(["--limit-request-body", "-1"], "--limit-request-body", id="body"),
        pytest.param(["--timeout-keep-alive", "0"], "--timeout-keep-alive", id="keep-alive"),
        pytest.param(
            ["--timeout-graceful-shutdown", "-1"], "--timeout-graceful-shutdown", id="graceful"
        ),
        pytest.param(["--ssl-cert-reqs", "3"], "--ssl-cert-reqs", id="cert-reqs"),
        pytest.param(["--ssl-keyfile", "k.pem"], "--ssl-keyfile", id="key-without-cert"),
        pytest.param(["--header", "no-colon"], "--header", id="header"),
        pytest.param(["--env-file", "."], "--env-file", id="env-file-directory"),
        pytest.param(["--forwarded-allow-ips", "10.0.0.1/8"], "10.0.0.1/8", id="trust-entry"),
        pytest.param(["--forwarded-allow-ips", "localhost"], "--forwarded-allow-ips", id="trust"),
        pytest.param(["--forwarded-headers", "x-real-ip"], "--forwarded-headers", id="family"),
        pytest.param(["--reload-delay", "-1"], "--reload-delay", id="reload-delay"),
        pytest.param(["--reload-dir", "/no/such/dir"], "--reload-dir", id="reload-dir"),
        pytest.param(["--interface", "cgi"], "--interface", id="interface"),
        pytest.param(["--http", "h3"], "--http", id="http"),
        pytest.param(["--loop", "trio"], "--loop", id="loop-name"),
        pytest.param(["--ssl-version", "99"], "--ssl-version", id="ssl-version"),
        pytest.param(["--ssl-version", "tls"], "--ssl-version", id="ssl-version-text"),
        pytest.param(["--h11-max-incomplete-event-size", "0"], "--h11-max", id="h11-size"),
        pytest.param(["--ws", "websockets-io"], "--ws", id="ws"),
        pytest.param(["--log-config", "/no/such.json"], "--log-config", id="log-config-missing"),
        pytest.param(["--env-file", "/no/such.env"], "--env-file", id="env-file-missing"),
        pytest.param(["--reload", "--workers", "x"], "--workers", id="workers-with-reload"),
    ],
)
def test_invalid_value_is_a_one_line_usage_error(
    configs: list[Config], args: list[str], named: str
) -> None:
    result = invoke("examples.app:app", *args)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    assert named in errors[0]
    assert "Traceback" not in result.output
    assert configs == []


def test_missing_app_is_a_usage_error(configs: list[Config]) -> None:
    result = invoke()
    assert result.exit_code == 2
    assert "Missing argument 'APP'" in result.output


@pytest.fixture
def supervised(configs: list[Config], monkeypatch: pytest.MonkeyPatch) -> list[Config]:
    """Configs the CLI handed to a (fake) Supervisor instead of a Server."""
    recorded: list[Config] = []

    class FakeSupervisor(FakeServer):
        configs: ClassVar[list[Config]] = recorded

    monkeypatch.setattr(supervisor, "Supervisor", FakeSupervisor)
    return recorded


@pytest.mark.parametrize(
    ("args", "env", "workers"),
    [
        pytest.param(("--workers", "2"), {}, 2, id="flag"),
        pytest.param((), {"WEB_CONCURRENCY": "3"}, 3, id="WEB_CONCURRENCY"),
        pytest.param((), {"WEB_CONCURRENCY": "3", "MONOCEROS_WORKERS": "2"}, 2, id="ours-wins"),
        pytest.param(("--limit-max-rss", "512"), {}, 1, id="max-rss"),
    ],
)
def test_workers_run_a_supervisor(
    configs: list[Config],
    supervised: list[Config],
    args: tuple[str, ...],
    env: dict[str, str],
    workers: int,
) -> None:
    result = invoke("examples.app:app", *args, env=env)
    assert result.exit_code == 0, result.output
    assert configs == []
    assert [config.workers for config in supervised] == [workers]


def test_worker_options(supervised: list[Config]) -> None:
    args = ("--workers", "2", "--limit-max-requests", "50", "--limit-max-requests-jitter", "5")
    more = ("--limit-max-rss", "300", "--timeout-worker-healthcheck", "9", "--reuse-port")
    assert invoke("examples.app:app", *args, *more, "--port", "8001").exit_code == 0
    (config,) = supervised
    assert (config.limit_max_requests, config.limit_max_requests_jitter) == (50, 5)
    assert (config.limit_max_rss, config.timeout_worker_healthcheck) == (300, 9.0)
    assert config.listen.reuse_port


def test_defaults(configs: list[Config]) -> None:
    config = configured(configs, "examples.app:app")
    assert config == Config.from_options("examples.app:app", headers=[])


def test_command_line_reaches_config(
    configs: list[Config], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "app.env").write_text("")
    config = configured(
        configs,
        "examples.app:app",
        *("--host", "::1", "--port", "0", "--backlog", "16", "--loop", "asyncio"),
        *("--lifespan", "on", "--log-level", "debug", "--no-access-log", "--root-path", "/api"),
        *("--limit-concurrency", "3", "--limit-max-requests", "9", "--limit-request-line", "99"),
        *("--limit-request-fields", "8", "--limit-request-header-size", "999"),
        *("--limit-request-body", "0", "--timeout-request-header", "1.5"),
        *("--timeout-keep-alive", "2", "--timeout-graceful-shutdown", "0.5"),
        *("--ssl-certfile", "c.pem", "--ssl-keyfile", "k.pem", "--ssl-keyfile-password", "pw"),
        *("--ssl-ca-certs", "ca.pem", "--ssl-cert-reqs", "1", "--ssl-ciphers", "ECDHE"),
        *("--header", "X-A:1", "--header", "X-B: 2", "--no-server-header", "--no-date-header"),
        *("--factory", "--app-dir", "src", "--env-file", "app.env"),
    )
    assert config.listen.host == "::1" and config.listen.port == 0
    assert config.listen.backlog == 16
    assert (config.loop, config.lifespan, config.log_level) == ("asyncio", "on", "debug")
    assert config.access_log is False and config.root_path == "/api"
    assert (config.limit_concurrency, config.limit_max_requests) == (3, 9)
    limits = config.limits
    assert (limits.max_request_line, limits.max_header_count, limits.max_header_bytes) == (
        99,
        8,
        999,
    )
    assert (limits.max_body_bytes, limits.header_timeout, limits.keep_alive_timeout) == (0, 1.5, 2)
    assert config.timeout_graceful_shutdown == 0.5
    tls = config.tls
    assert (tls.certfile, tls.keyfile, tls.keyfile_password) == ("c.pem", "k.pem", "pw")
    assert (tls.ca_certs, tls.cert_reqs, tls.ciphers) == ("ca.pem", 1, "ECDHE")
    assert config.headers == (("X-A", "1"), ("X-B", "2"))
    assert config.server_header is False and config.date_header is False
    assert config.factory is True and config.app_dir == "src"
    assert config.env_file == "app.env"


def test_uds_and_fd(configs: list[Config]) -> None:
    assert configured(configs, "a:b", "--uds", "/tmp/m.sock").listen.uds == "/tmp/m.sock"
    assert configured(configs, "a:b", "--fd", "3").listen.fd == 3


def test_exit_code_comes_from_server(
    configs: list[Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FakeServer, "run", lambda self: 3)
    assert invoke("examples.app:app").exit_code == 3


# -- MONOCEROS_* environment variables ---------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "args", "check", "expected"),
    [
        pytest.param({"MONOCEROS_PORT": "9001"}, [], "listen.port", 9001, id="port-env"),
        pytest.param(
            {"MONOCEROS_PORT": "9001"}, ["--port", "9002"], "listen.port", 9002, id="port-cli"
        ),
        pytest.param({}, [], "listen.port", 8000, id="port-default"),
        pytest.param(
            {"MONOCEROS_LIMIT_CONCURRENCY": "4"}, [], "limit_concurrency", 4, id="concurrency-env"
        ),
        pytest.param(
            {"MONOCEROS_LIMIT_CONCURRENCY": "4"},
            ["--limit-concurrency", "5"],
            "limit_concurrency",
            5,
            id="concurrency-cli",
        ),
        pytest.param({}, [], "limit_concurrency", None, id="concurrency-default"),
        pytest.param(
            {"MONOCEROS_ACCESS_LOG": "false"}, [], "access_log", False, id="access-log-env"
        ),
        pytest.param(
            {"MONOCEROS_ACCESS_LOG": "false"},
            ["--access-log"],
            "access_log",
            True,
            id="access-log-cli",
        ),
        pytest.param({}, [], "access_log", True, id="access-log-default"),
        pytest.param(
            {"MONOCEROS_HEADER": "X-A:1"}, [], "headers", (("X-A", "1"),), id="header-env"
        ),
        pytest.param(
            {"MONOCEROS_HEADER": "X-A:1 X-B:2"},
            [],
            "headers",
            (("X-A", "1"), ("X-B", "2")),
            id="headers-env",
        ),
        pytest.param(
            {"MONOCEROS_HEADER": "X-A:1"},
            ["--header", "X-C:3"],
            "headers",
            (("X-C", "3"),),
            id="header-cli",
        ),
        pytest.param({"MONOCEROS_HOST": "::1"}, [], "listen.host", "::1", id="host-env"),
        pytest.param({}, [], "proxy.forwarded_allow_ips", "127.0.0.1,::1", id="trust-default"),
        pytest.param(
            {"FORWARDED_ALLOW_IPS": "10.0.0.0/8"},
            [],
            "proxy.forwarded_allow_ips",
            "10.0.0.0/8",
            id="trust-uvicorn-env",
        ),
        pytest.param(
            {"FORWARDED_ALLOW_IPS": "10.0.0.0/8", "MONOCEROS_FORWARDED_ALLOW_IPS": "unix:"},
            [],
            "proxy.forwarded_allow_ips",
            "unix:",
            id="trust-our-env-wins",
        ),
        pytest.param(
            {"FORWARDED_ALLOW_IPS": "10.0.0.0/8", "MONOCEROS_FORWARDED_ALLOW_IPS": "unix:"},
            ["--forwarded-allow-ips", "*"],
            "proxy.forwarded_allow_ips",
            "*",
            id="trust-cli-wins",
        ),
        pytest.param(
            {"MONOCEROS_PROXY_HEADERS": "false"}, [], "proxy.enabled", False, id="proxy-off-env"
        ),
        pytest.param({}, ["--no-proxy-headers"], "proxy.enabled", False, id="proxy-off-cli"),
        pytest.param({}, [], "proxy.family", "x-forwarded", id="family-default"),
        pytest.param(
            {"MONOCEROS_FORWARDED_HEADERS": "both"}, [], "proxy.family", "both", id="family-env"
        ),
        pytest.param(
            {"MONOCEROS_PROXY_FORWARDED_PREFIX": "true"},
            [],
            "proxy.forwarded_prefix",
            True,
            id="prefix-env",
        ),
        pytest.param({}, ["--proxy-forwarded-host"], "proxy.forwarded_host", True, id="host-cli"),
        pytest.param({}, ["--proxy-forwarded-port"], "proxy.forwarded_port", True, id="port-cli"),
        pytest.param(
            {"MONOCEROS_TIMEOUT_GRACEFUL_SHUTDOWN": "0.5"},
            [],
            "timeout_graceful_shutdown",
            0.5,
            id="graceful-env",
        ),
        pytest.param({"MONOCEROS_LIFESPAN": "off"}, [], "lifespan", "off", id="lifespan-env"),
        pytest.param(
            {"MONOCEROS_SERVER_HEADER": "0"}, [], "server_header", False, id="server-header-env"
        ),
        pytest.param({"MONOCEROS_FACTORY": "true"}, [], "factory", True, id="factory-env"),
        pytest.param(
            {"MONOCEROS_SSL_KEYFILE_PASSWORD": "pw", "MONOCEROS_SSL_CERTFILE": "c.pem"},
            [],
            "tls.keyfile_password",
            "pw",
            id="ssl-password-env",
        ),
    ],
)
def test_precedence_command_line_env_default(
    configs: list[Config], env: dict[str, str], args: list[str], check: str, expected: Any
) -> None:
    value: Any = configured(configs, "examples.app:app", *args, env=env)
    for part in check.split("."):
        value = getattr(value, part)
    assert value == expected


def test_app_from_env(configs: list[Config]) -> None:
    env = {"MONOCEROS_APP": "examples.app:app"}
    assert configured(configs, env=env).app == "examples.app:app"
    assert configured(configs, "tests.apps:hello", env=env).app == "tests.apps:hello"


def test_invalid_env_value_is_a_usage_error(configs: list[Config]) -> None:
    result = invoke("examples.app:app", env={"MONOCEROS_PORT": "70000"})
    assert result.exit_code == 2
    assert "Error:" in result.output and "--port" in result.output
    assert "Traceback" not in result.output


def test_websocket_options_from_flags_and_env(configs: list[Config]) -> None:
    config = configured(
        configs,
        "examples.app:app",
        "--ws-max-size",
        "1024",
        "--ws-ping-interval",
        "2.5",
        "--ws-per-message-deflate",
        "false",
        env={"MONOCEROS_WS": "none", "MONOCEROS_WS_MAX_QUEUE": "8"},
    )
    assert config.ws.mode == "none" and not config.ws.enabled
    assert (config.ws.max_size, config.ws.max_queue) == (1024, 8)
    assert (config.ws.ping_interval, config.ws.ping_timeout) == (2.5, 20.0)
    assert config.ws.per_message_deflate is False
    assert configured(configs, "examples.app:app", "--ws", "wsproto").ws.mode == "wsproto"
    assert invoke("examples.app:app", "--ws", "h2").exit_code == 2
