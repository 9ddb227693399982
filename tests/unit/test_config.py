"""Config.from_options: every flat (uvicorn-style) option lands in the right place, and every
invalid value is refused with a ValueError that names the option."""

from __future__ import annotations

import ssl
from typing import Any

import pytest

from monoceros.cli import main
from monoceros.config import Config, parse_header_option

# flat option -> (value, dotted attribute path on Config, expected value there)
MAPPING: dict[str, tuple[Any, str, Any]] = {
    "host": ("::1", "listen.host", "::1"),
    "port": (9001, "listen.port", 9001),
    "uds": ("/tmp/x.sock", "listen.uds", "/tmp/x.sock"),
    "fd": (3, "listen.fd", 3),
    "backlog": (10, "listen.backlog", 10),
    "workers": (1, "workers", 1),
    "reuse_port": (True, "listen.reuse_port", True),
    "limit_max_requests_jitter": (5, "limit_max_requests_jitter", 5),
    "limit_max_rss": (256, "limit_max_rss", 256),
    "timeout_worker_healthcheck": (9.5, "timeout_worker_healthcheck", 9.5),
    "loop": ("asyncio", "loop", "asyncio"),
    "http": ("h11", "http", "h11"),
    "lifespan": ("on", "lifespan", "on"),
    "env_file": (".env", "env_file", ".env"),
    "log_level": ("debug", "log_level", "debug"),
    "access_log": (False, "access_log", False),
    "root_path": ("/api", "root_path", "/api"),
    "limit_concurrency": (5, "limit_concurrency", 5),
    "limit_max_requests": (7, "limit_max_requests", 7),
    "limit_request_line": (100, "limits.max_request_line", 100),
    "limit_request_fields": (12, "limits.max_header_count", 12),
    "limit_request_header_size": (2048, "limits.max_header_bytes", 2048),  # wins over h11's
    "limit_request_body": (0, "limits.max_body_bytes", 0),
    "timeout_request_header": (1.5, "limits.header_timeout", 1.5),
    "timeout_keep_alive": (2.5, "limits.keep_alive_timeout", 2.5),
    "timeout_request_body": (4.5, "limits.body_timeout", 4.5),
    "timeout_send": (6.5, "limits.send_timeout", 6.5),
    "timeout_graceful_shutdown": (0.5, "timeout_graceful_shutdown", 0.5),
    "shutdown_delay": (2.0, "shutdown_delay", 2.0),
    "log_format": ("console", "observe.log_format", "console"),
    "log_config": ("logging.json", "observe.log_config", "logging.json"),
    "metrics": (False, "observe.metrics", False),
    "metrics_host": ("0.0.0.0", "observe.metrics_host", "0.0.0.0"),
    "metrics_port": (9100, "observe.metrics_port", 9100),
    "request_id_header": ("X-Trace", "observe.request_id_header", "X-Trace"),
    "log_schema": ("ecs", "observe.log_schema", "ecs"),
    "trace_id_generate": (True, "observe.trace_id_generate", True),
    "metrics_duration_buckets": (
        "0.01, 0.1,1,10",  # as the command line and MONOCEROS_METRICS_DURATION_BUCKETS give it
        "observe.metrics_duration_buckets",
        (0.01, 0.1, 1.0, 10.0),
    ),
    "access_log_exclude": (
        ["/healthz", "/static/*"],
        "observe.access_log_exclude",
        ("/healthz", "/static/*"),
    ),
    "loop_block_threshold": (2.0, "observe.loop_block_threshold", 2.0),
    "ssl_keyfile": ("key.pem", "tls.keyfile", "key.pem"),
    "ssl_certfile": ("cert.pem", "tls.certfile", "cert.pem"),
    "ssl_keyfile_password": ("secret", "tls.keyfile_password", "secret"),
    "ssl_ca_certs": ("ca.pem", "tls.ca_certs", "ca.pem"),
    "ssl_cert_reqs": (2, "tls.cert_reqs", ssl.CERT_REQUIRED),
    "ssl_ciphers": ("ECDHE+AESGCM", "tls.ciphers", "ECDHE+AESGCM"),
    "headers": (["X-A:1", ("X-B", "2")], "headers", (("X-A", "1"), ("X-B", "2"))),
    "server_header": (False, "server_header", False),
    "date_header": (False, "date_header", False),
    "factory": (True, "factory", True),
    "app_dir": ("src", "app_dir", "src"),
    "proxy_headers": (False, "proxy.enabled", False),
    "forwarded_allow_ips": (
        ["10.0.0.0/8", "unix:"],
        "proxy.forwarded_allow_ips",
        "10.0.0.0/8,unix:",
    ),
    "forwarded_headers": ("both", "proxy.family", "both"),
    "proxy_forwarded_host": (True, "proxy.forwarded_host", True),
    "proxy_forwarded_port": (True, "proxy.forwarded_port", True),
    "proxy_forwarded_prefix": (True, "proxy.forwarded_prefix", True),
    "proxy_protocol": (True, "proxy.proxy_protocol", True),
    "ws": ("none", "ws.mode", "none"),
    "ws_max_size": (1024, "ws.max_size", 1024),
    "ws_max_queue": (4, "ws.max_queue", 4),
    "ws_ping_interval": (5.0, "ws.ping_interval", 5.0),
    "ws_ping_timeout": (3.0, "ws.ping_timeout", 3.0),
    "ws_per_message_deflate": (False, "ws.per_message_deflate", False),
    "http2": (True, "http2.enabled", True),
    "http2_max_concurrent_streams": (64, "http2.max_concurrent_streams", 64),
    "reload": (True, "reload.enabled", True),
    "reload_dirs": (["src", "lib"], "reload.dirs", ("src", "lib")),
    "reload_includes": ("*.html", "reload.includes", ("*.html",)),
    "reload_excludes": (["*.log"], "reload.excludes", ("*.log",)),
    "reload_delay": (0.5, "reload.delay", 0.5),
    "interface": ("asgi2", "interface", "asgi2"),
    "use_colors": (True, "observe.use_colors", True),
    "ssl_version": (int(ssl.PROTOCOL_TLS), "tls.version", int(ssl.PROTOCOL_TLS)),
    "h11_max_incomplete_event_size": (4096, "h11_max_incomplete_event_size", 4096),
    "reset_contextvars": (True, "reset_contextvars", True),
}


def _get(config: Config, path: str) -> Any:
    value: Any = config
    for part in path.split("."):
        value = getattr(value, part)
    return value


# Options that cannot be combined with the rest of the table (--uds): each is tested alone.
APART = ("fd", "reuse_port")


@pytest.mark.parametrize("name", sorted(MAPPING))
def test_each_flat_option_maps(name: str) -> None:
    value, path, expected = MAPPING[name]
    extra: dict[str, Any] = {"ssl_certfile": "cert.pem"} if name == "ssl_keyfile" else {}
    if name == "fd":
        extra["uds"] = None
    config = Config.from_options("mod:app", **{name: value}, **extra)
    assert _get(config, path) == expected


def test_all_options_together() -> None:
    config = Config.from_options(
        "mod:app", **{name: value for name, (value, _, _) in MAPPING.items() if name not in APART}
    )
    for name, (_, path, expected) in MAPPING.items():
        if name not in APART:
            assert _get(config, path) == expected, name


def test_every_cli_option_is_a_config_option() -> None:
    """The CLI and monoceros.run() accept the same names: each CLI option is in the table."""
    cli_names = {param.name for param in main.params if param.name not in ("app", "version")}
    assert cli_names - {"help"} <= set(MAPPING)


def test_defaults() -> None:
    config = Config.from_options("mod:app")
    assert config.app == "mod:app"
    assert (config.listen.host, config.listen.port) == ("127.0.0.1", 8000)
    assert config.listen.uds is None and config.listen.fd is None
    assert not config.tls.enabled
    assert config.lifespan == "auto" and config.loop == "auto"
    assert config.headers == ()
    assert config.server_header and config.date_header and config.access_log
    assert config.timeout_graceful_shutdown is None


def test_tls_enabled_by_certfile() -> None:
    assert Config.from_options("mod:app", ssl_certfile="cert.pem").tls.enabled


def test_replace() -> None:
    config = Config.from_options("mod:app", port=1)
    assert config.replace(root_path="/x").root_path == "/x"
    assert config.root_path == ""


@pytest.mark.parametrize(
    ("options", "named"),
    [
        pytest.param({"port": 70000}, "--port", id="port-high"),
        pytest.param({"port": -1}, "--port", id="port-negative"),
        pytest.param({"backlog": 0}, "--backlog", id="backlog"),
        pytest.param({"uds": "/tmp/s", "fd": 3}, "--uds", id="uds-and-fd"),
        pytest.param({"fd": -1}, "--fd", id="fd-negative"),
        pytest.param({"ssl_keyfile": "key.pem"}, "--ssl-keyfile", id="key-without-cert"),
        pytest.param({"ssl_cert_reqs": 5}, "--ssl-cert-reqs", id="cert-reqs"),
        pytest.param({"loop": "foo"}, "--loop", id="loop"),
        pytest.param({"loop": "module:"}, "--loop", id="loop-import-string"),
        pytest.param({"http": "h3"}, "--http", id="http"),
        pytest.param({"interface": "cgi"}, "--interface", id="interface"),
        pytest.param({"ssl_version": 16}, "--ssl-version", id="ssl-version-client"),
        pytest.param({"reload_delay": -1}, "--reload-delay", id="reload-delay"),
        pytest.param({"h11_max_incomplete_event_size": 0}, "--h11-max", id="h11-size"),
        pytest.param({"lifespan": "maybe"}, "--lifespan", id="lifespan"),
        pytest.param({"log_level": "loud"}, "--log-level", id="log-level"),
        pytest.param({"root_path": "api"}, "--root-path", id="root-path-no-slash"),
        pytest.param({"root_path": "/api/"}, "--root-path", id="root-path-trailing-slash"),
        pytest.param({"limit_concurrency": 0}, "--limit-concurrency", id="limit-concurrency"),
        pytest.param({"limit_max_requests": -1}, "--limit-max-requests", id="max-requests"),
        pytest.param(
            {"timeout_graceful_shutdown": 0}, "--timeout-graceful-shutdown", id="graceful"
        ),
        pytest.param({"workers": 0}, "--workers", id="workers"),
        pytest.param({"limit_request_line": 0}, "--limit-request-line", id="request-line"),
        pytest.param({"limit_request_fields": 0}, "--limit-request-fields", id="fields"),
        pytest.param(
            {"limit_request_header_size": 0}, "--limit-request-header-size", id="header-size"
        ),
        pytest.param({"limit_request_body": -1}, "--limit-request-body", id="body"),
        pytest.param({"timeout_request_header": 0}, "--timeout-request-header", id="head-time"),
        pytest.param({"timeout_keep_alive": -1}, "--timeout-keep-alive", id="keep-alive"),
        pytest.param({"headers": ["no-colon"]}, "--header", id="header-no-colon"),
        pytest.param({"headers": ["Bad Name:1"]}, "--header", id="header-bad-name"),
        pytest.param({"headers": [("X-A", "a\r\nb")]}, "--header", id="header-crlf"),
        pytest.param({"forwarded_allow_ips": "nope"}, "--forwarded-allow-ips", id="trust"),
        pytest.param({"forwarded_headers": "x-real-ip"}, "--forwarded-headers", id="family"),
        pytest.param({"ws": "h2"}, "--ws", id="ws"),
        pytest.param({"ws_max_size": 0}, "--ws-max-size", id="ws-max-size"),
        pytest.param({"ws_max_queue": 0}, "--ws-max-queue", id="ws-max-queue"),
        pytest.param({"ws_ping_interval": 0}, "--ws-ping-interval", id="ws-ping-interval"),
        pytest.param({"ws_ping_timeout": -1}, "--ws-ping-timeout", id="ws-ping-timeout"),
        pytest.param({"log_schema": "gcp"}, "--log-schema", id="log-schema"),
        *[
            pytest.param({"metrics_duration_buckets": value}, "--metrics-duration", id=name)
            for name, value in [
                ("buckets-words", "fast,slow"),
                ("buckets-decreasing", "1,0.5"),
                ("buckets-repeated", "0.1,0.1"),
                ("buckets-zero", "0,1"),
                ("buckets-infinite", "1,inf"),
                ("buckets-none", ""),
                ("buckets-too-many", ",".join(str(n) for n in range(1, 60))),
            ]
        ],
        pytest.param({"access_log_exclude": ["healthz"]}, "--access-log-exclude", id="exclude"),
    ],
)
def test_invalid_value_names_the_option(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError) as info:
        Config.from_options("mod:app", **options)
    assert named in str(info.value)


@pytest.mark.parametrize(
    ("package", "options", "extra"),
    [("wsproto", {"ws": "wsproto"}, "wsproto"), ("zttp", {"http2": True}, "http2")],
)
def test_optional_extra_without_its_package(
    hidden_packages: set[str], package: str, options: dict[str, Any], extra: str
) -> None:
    """`--ws wsproto` and `--http2` need an optional extra: without it, a startup error that
    says what to install; the server without the option does not need it."""
    hidden_packages.add(package)
    with pytest.raises(ValueError, match=rf"pip install 'monoceros\[{extra}\]'"):
        Config.from_options("mod:app", **options)
    assert Config.from_options("mod:app").app == "mod:app"


def test_run_takes_buckets_and_exclusions_as_python_values() -> None:
    config = Config.from_options("m:a", metrics_duration_buckets=[1, 2], access_log_exclude="/x")
    assert config.observe.metrics_duration_buckets == (1.0, 2.0)
    assert config.observe.access_log_exclude == ("/x",)


def test_unknown_option() -> None:
    with pytest.raises(TypeError, match="'reloader'"):
        Config.from_options("mod:app", reloader=True)


def test_h11_event_size_is_the_head_limit_unless_ours_is_given() -> None:
    assert (
        Config.from_options("m:a", h11_max_incomplete_event_size=99).limits.max_header_bytes == 99
    )
    both = Config.from_options(
        "m:a", h11_max_incomplete_event_size=99, limit_request_header_size=1000
    )
    assert both.limits.max_header_bytes == 1000


def test_reload_and_workers_need_an_import_string() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    with pytest.raises(ValueError, match="--reload"):
        Config.from_options(app, reload=True)


@pytest.mark.parametrize(
    ("package", "options", "extra"),
    [
        pytest.param("watchfiles", {"reload": True}, "reload", id="reload"),
        pytest.param("a2wsgi", {"interface": "wsgi"}, "wsgi", id="wsgi"),
    ],
)
def test_optional_extras_missing(
    hidden_packages: set[str], package: str, options: dict[str, Any], extra: str
) -> None:
    hidden_packages.add(package)
    with pytest.raises(ValueError, match=rf"pip install 'monoceros\[{extra}\]'"):
        Config.from_options("mod:app", **options)


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        pytest.param("X-A:1", ("X-A", "1"), id="plain"),
        pytest.param(" X-A : 1 ", ("X-A", "1"), id="spaces-stripped"),
        pytest.param("X-A:a:b", ("X-A", "a:b"), id="colon-in-value"),
        pytest.param("X-A:", ("X-A", ""), id="empty-value"),
        pytest.param(("X-A", "1"), ("X-A", "1"), id="tuple"),
    ],
)
def test_parse_header_option(item: Any, expected: tuple[str, str]) -> None:
    assert parse_header_option(item) == expected


@pytest.mark.parametrize("item", ["no-colon", ":value", "  :value", ""])
def test_parse_header_option_refuses(item: str) -> None:
    with pytest.raises(ValueError, match="--header"):
        parse_header_option(item)


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        # Every response carries these lines: a CR, LF or NUL would split each one.
        ("X-A:one\r\nSet-Cookie: a=b", "holds a control character"),
        ("X-A:one\ntwo", "holds a control character"),
        ("X-A:one\0", "holds a control character"),
        ("X-A:bell\x07", "holds a control character"),
        ("X-A:del\x7f", "holds a control character"),
        ("X A:1", "must be an HTTP token"),
        ("X-A:\u2603", "is not Latin-1 text"),  # it could not go on the wire
        (("X-A", "one\r\ntwo"), "holds a control character"),  # run(headers=[...]) too
        (("bad name", "1"), "must be an HTTP token"),
    ],
)
def test_a_header_that_cannot_go_on_every_response_is_refused(item: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=f"--header .*: .*{problem}"):
        Config.from_options("mod:app", headers=[item])


def test_a_header_may_hold_a_tab_and_latin1() -> None:
    config = Config.from_options("mod:app", headers=["X-A:a\tb caf\u00e9"])
    assert config.headers == (("X-A", "a\tb caf\u00e9"),)
