"""`monoceros [OPTIONS] APP`: uvicorn's command line, plus our limits.

Every option is declared once here; its default comes from the settings dataclass that owns
it, and every option can also be set as MONOCEROS_<NAME> (click's auto_envvar_prefix), which
`--help` shows. The settings reference of the documentation is generated from this command
(docs/hooks/reference.py).
"""

from __future__ import annotations

import platform
import sys
from dataclasses import MISSING, fields
from typing import Any, get_args

import click

from monoceros import __version__, serve
from monoceros.buildinfo import describe
from monoceros.config import (
    DURATION_BUCKETS,
    LOG_LEVELS,
    MAX_HTTP2_STREAMS,
    Config,
    ForwardedFamily,
    Http2Settings,
    HttpLimits,
    HttpName,
    Interface,
    ListenSettings,
    LogSchema,
    ObserveSettings,
    ProxySettings,
    ReloadSettings,
    TLSSettings,
    WebSocketMode,
    WebSocketSettings,
)
from monoceros.envvars import assign_envvars, uvicorn_variables_read
from monoceros.errors import StartupError
from monoceros.option_types import HeaderType, LoopType


def _default(settings: type, name: str) -> Any:
    for item in fields(settings):
        if item.name == name:
            if item.default is not MISSING:
                return item.default
            if item.default_factory is not MISSING:
                return item.default_factory()
    raise LookupError(name)


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    python = f"{platform.python_implementation()} {platform.python_version()}"
    click.echo(f"monoceros {__version__} ({describe()}) on {python}")
    ctx.exit()


@click.command(
    context_settings={"auto_envvar_prefix": "MONOCEROS", "help_option_names": ["-h", "--help"]},
)
@click.argument("app", envvar=["MONOCEROS_APP", "UVICORN_APP"])
@click.option(
    "--host",
    default=_default(ListenSettings, "host"),
    show_default=True,
    help="Bind socket to this host (use :: for IPv6 and IPv4).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=_default(ListenSettings, "port"),
    show_default=True,
    help="Bind socket to this port (0 picks a free one).",
)
@click.option("--uds", default=None, help="Bind to a unix domain socket instead.")
@click.option(
    "--fd",
    type=click.IntRange(min=0),
    default=None,
    help="Serve on an already-bound socket with this file descriptor.",
)
@click.option(
    "--backlog",
    type=click.IntRange(min=1),
    default=_default(ListenSettings, "backlog"),
    show_default=True,
    help="Maximum number of pending connections.",
)
@click.option(
    "--reload",
    is_flag=True,
    default=_default(ReloadSettings, "enabled"),
    help="Restart the server when a watched file changes (development; pip install "
    "'monoceros[reload]').",
)
@click.option(
    "--reload-dir",
    "reload_dirs",
    multiple=True,
    type=click.Path(exists=True),
    help="Watch this directory (repeatable) instead of the working directory.",
)
@click.option(
    "--reload-include",
    "reload_includes",
    multiple=True,
    metavar="GLOB",
    help="Also restart for files matching this pattern (repeatable; '*.py' always, unless "
    "excluded); a pattern naming a directory watches it too.",
)
@click.option(
    "--reload-exclude",
    "reload_excludes",
    multiple=True,
    metavar="GLOB",
    help="Ignore files matching this pattern, or this directory (repeatable; '.*', "
    "'.py[cod]', '.sw.*' and '~*' always, unless included).",
)
@click.option(
    "--reload-delay",
    type=click.FloatRange(min=0),
    default=_default(ReloadSettings, "delay"),
    show_default=True,
    help="Seconds to wait after a restart before looking for changes again.",
)
# uvicorn reads WEB_CONCURRENCY after its own variable; so do we.
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=_default(Config, "workers"),
    show_default=True,
    help="Number of worker processes (a supervisor runs them); not with --reload. "
    "Also $WEB_CONCURRENCY.",
)
@click.option(
    "--reuse-port",
    is_flag=True,
    default=_default(ListenSettings, "reuse_port"),
    help="With --workers: each worker binds its own SO_REUSEPORT socket instead of sharing one.",
)
@click.option(
    "--timeout-worker-healthcheck",
    type=click.FloatRange(min=0, min_open=True),
    default=_default(Config, "timeout_worker_healthcheck"),
    show_default=True,
    help="Kill and replace a worker that does not answer the supervisor for this many seconds.",
)
@click.option(
    "--loop",
    type=LoopType(),
    metavar=LoopType.metavar,
    default=_default(Config, "loop"),
    show_default=True,
    help="Event loop: auto (uvloop if installed), asyncio, uvloop, or a loop factory as "
    "module:attribute; uvicorn's zuvloop runs uvloop.",
)
@click.option(
    "--http",
    type=click.Choice(get_args(HttpName)),
    default=_default(Config, "http"),
    show_default=True,
    help="HTTP/1.1 implementation: httptools (h11 and zttp are accepted and served by "
    "httptools, with a note at startup).",
)
@click.option(
    "--lifespan",
    type=click.Choice(["auto", "on", "off"]),
    default="auto",
    show_default=True,
    help="Lifespan protocol.",
)
@click.option(
    "--interface",
    type=click.Choice(get_args(Interface)),
    default=_default(Config, "interface"),
    show_default=True,
    help="What APP is: ASGI 3, ASGI 2, or WSGI (pip install 'monoceros[wsgi]'); auto tells "
    "them apart and refuses anything else at startup.",
)
@click.option(
    "--env-file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Load environment variables from this dotenv file before importing the app "
    "(python-dotenv; variables already set win).",
)
@click.option(
    "--log-level",
    type=click.Choice(LOG_LEVELS),
    default="info",
    show_default=True,
    help="Log level.",
)
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="Write one access-log line per request.",
)
@click.option(
    "--access-log-exclude",
    multiple=True,
    metavar="PATH",
    help="Write no access-log line for requests to this path, or below it when it ends in * "
    "(repeatable: /healthz, /static/*); they are still counted in the metrics.",
)
@click.option(
    "--use-colors/--no-use-colors",
    default=None,
    help="Colours in the console log format.  [default: when stdout is a terminal]",
)
@click.option("--root-path", default="", help="ASGI root_path for apps mounted below a prefix.")
@click.option(
    "--proxy-headers/--no-proxy-headers",
    default=_default(ProxySettings, "enabled"),
    show_default=True,
    help="Take the client address, scheme (and opted-in host, port, prefix) from proxy "
    "headers sent by --forwarded-allow-ips peers.",
)
# uvicorn reads FORWARDED_ALLOW_IPS after its own variable; so do we.
@click.option(
    "--forwarded-allow-ips",
    default=_default(ProxySettings, "forwarded_allow_ips"),
    show_default=True,
    metavar="LIST",
    help="Comma-separated peers whose proxy headers are believed: IP addresses, CIDR "
    "networks, 'unix:' (peers on a unix socket) or '*' (anyone). Also $FORWARDED_ALLOW_IPS.",
)
@click.option(
    "--forwarded-headers",
    type=click.Choice(get_args(ForwardedFamily)),
    default=_default(ProxySettings, "family"),
    show_default=True,
    help="Which headers name the client, scheme and host: X-Forwarded-*, RFC 7239 "
    "Forwarded, or both (Forwarded when the request has a valid one, else X-Forwarded-*).",
)
@click.option(
    "--proxy-forwarded-host",
    is_flag=True,
    default=_default(ProxySettings, "forwarded_host"),
    help="Let X-Forwarded-Host (or Forwarded host=) from a trusted proxy replace the Host "
    "header the app sees.",
)
@click.option(
    "--proxy-forwarded-port",
    is_flag=True,
    default=_default(ProxySettings, "forwarded_port"),
    help="Let X-Forwarded-Port from a trusted proxy set the port in scope['server'].",
)
@click.option(
    "--proxy-forwarded-prefix",
    is_flag=True,
    default=_default(ProxySettings, "forwarded_prefix"),
    help="Let X-Forwarded-Prefix from a trusted proxy set root_path (instead of --root-path).",
)
@click.option(
    "--proxy-protocol/--no-proxy-protocol",
    default=_default(ProxySettings, "proxy_protocol"),
    show_default=True,
    help="Behind a TCP load balancer (AWS NLB, HAProxy send-proxy, nginx stream "
    "proxy_protocol): peers in --forwarded-allow-ips must open each connection with a PROXY "
    "protocol v1 or v2 header, whose source becomes the client; others must not send one.",
)
@click.option(
    "--ws",
    type=click.Choice(list(get_args(WebSocketMode))),
    default=_default(WebSocketSettings, "mode"),
    show_default=True,
    help="WebSocket library: auto (= websockets, sans I/O: websockets-sansio is the same) or "
    "wsproto (pip install 'monoceros[wsproto]'); none answers upgrade requests as plain HTTP.",
)
@click.option(
    "--ws-max-size",
    type=click.IntRange(min=1),
    default=_default(WebSocketSettings, "max_size"),
    show_default=True,
    help="Largest WebSocket message in bytes; a larger one closes the session with 1009.",
)
@click.option(
    "--ws-max-queue",
    type=click.IntRange(min=1),
    default=_default(WebSocketSettings, "max_queue"),
    show_default=True,
    help="Received WebSocket messages held for the app before reading pauses.",
)
@click.option(
    "--ws-ping-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=_default(WebSocketSettings, "ping_interval"),
    show_default=True,
    help="Seconds between WebSocket keepalive pings.",
)
@click.option(
    "--ws-ping-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=_default(WebSocketSettings, "ping_timeout"),
    show_default=True,
    help="Seconds to wait for a pong before the peer is considered gone.",
)
@click.option(
    "--ws-per-message-deflate",
    type=bool,
    default=_default(WebSocketSettings, "per_message_deflate"),
    show_default=True,
    help="Offer the permessage-deflate extension.",
)
@click.option(
    "--http2/--no-http2",
    default=_default(Http2Settings, "enabled"),
    show_default=True,
    help="Serve HTTP/2 beside HTTP/1.1: h2c to clients that open with the HTTP/2 preface "
    "(prior knowledge), and h2 offered by ALPN with TLS (pip install 'monoceros[http2]').",
)
@click.option(
    "--http2-max-concurrent-streams",
    type=click.IntRange(min=1, max=MAX_HTTP2_STREAMS),
    default=_default(Http2Settings, "max_concurrent_streams"),
    show_default=True,
    help="Streams one HTTP/2 connection may have open; beyond, new ones are refused.",
)
@click.option(
    "--limit-concurrency",
    type=click.IntRange(min=1),
    default=None,
    help="Answer 503 beyond this many concurrent connections or tasks.",
)
@click.option(
    "--limit-max-requests",
    type=click.IntRange(min=1),
    default=None,
    help="Stop accepting and exit after this many requests; under a supervisor "
    "(--workers > 1, --limit-max-rss), replace the worker instead.",
)
@click.option(
    "--limit-max-requests-jitter",
    type=click.IntRange(min=0),
    default=_default(Config, "limit_max_requests_jitter"),
    show_default=True,
    help="Add a random 0..N to each worker's --limit-max-requests, so they do not all "
    "restart at once.",
)
@click.option(
    "--limit-max-rss",
    type=click.IntRange(min=1),
    default=None,
    metavar="MB",
    help="Replace a worker whose resident memory exceeds this many MB (runs a supervisor, "
    "even for one worker).",
)
@click.option(
    "--limit-request-line",
    type=click.IntRange(min=1),
    default=_default(HttpLimits, "max_request_line"),
    show_default=True,
    help="Maximum request-target length in bytes (414 beyond).",
)
@click.option(
    "--limit-request-fields",
    type=click.IntRange(min=1),
    default=_default(HttpLimits, "max_header_count"),
    show_default=True,
    help="Maximum number of request header fields (431 beyond).",
)
@click.option(
    "--limit-request-header-size",
    type=click.IntRange(min=1),
    default=_default(HttpLimits, "max_header_bytes"),
    show_default=True,
    help="Maximum size of all request header fields in bytes (431 beyond).",
)
@click.option(
    "--limit-request-body",
    type=click.IntRange(min=0),
    default=_default(HttpLimits, "max_body_bytes"),
    show_default=True,
    help="Maximum request body in bytes (413 beyond); 0 for no limit.",
)
@click.option(
    "--timeout-request-header",
    type=click.FloatRange(min=0, min_open=True),
    default=_default(HttpLimits, "header_timeout"),
    show_default=True,
    help="Seconds a client has to send a complete request head (408 after).",
)
@click.option(
    "--timeout-keep-alive",
    type=click.FloatRange(min=0, min_open=True),
    default=_default(HttpLimits, "keep_alive_timeout"),
    show_default=True,
    help="Close idle keep-alive connections after this many seconds.",
)
@click.option(
    "--timeout-request-body",
    type=click.FloatRange(min=0, min_open=True),
    default=_default(HttpLimits, "body_timeout"),
    show_default=True,
    help="Seconds a request body may stop arriving while the app waits for it (408 if no "
    "response has begun, else the connection is cut; over HTTP/2, the stream).",
)
@click.option(
    "--timeout-send",
    type=click.FloatRange(min=0, min_open=True),
    default=_default(HttpLimits, "send_timeout"),
    show_default=True,
    help="Seconds a response may wait on a client that stopped reading it; then the "
    "connection is cut (over HTTP/2, the stream whose window it keeps shut).",
)
@click.option(
    "--timeout-graceful-shutdown",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds to wait for in-flight requests on shutdown.",
)
@click.option("--ssl-keyfile", default=None, help="TLS private key file.")
@click.option("--ssl-certfile", default=None, help="TLS certificate (chain) file.")
@click.option("--ssl-keyfile-password", default=None, help="Password for the TLS key.")
@click.option("--ssl-ca-certs", default=None, help="CA certificates to verify clients with.")
@click.option(
    "--ssl-cert-reqs",
    type=click.IntRange(0, 2),
    default=_default(TLSSettings, "cert_reqs"),
    show_default=True,
    help="Client certificates: 0 none, 1 optional, 2 required.",
)
@click.option(
    "--ssl-ciphers",
    default=_default(TLSSettings, "ciphers"),
    help="OpenSSL cipher string.  [default: OpenSSL's]",
)
@click.option(
    "--ssl-version",
    type=int,
    default=_default(TLSSettings, "version"),
    show_default=True,
    help="TLS protocol, as ssl.PROTOCOL_* numbers: 17 (TLS_SERVER) negotiates the best version "
    "both sides have.",
)
@click.option(
    "--header",
    "headers",
    multiple=True,
    type=HeaderType(),
    help="Add a default response header (repeatable). From the environment: one header per "
    "line, or several on one line separated by whitespace.",
)
@click.option(
    "--server-header/--no-server-header",
    default=True,
    show_default=True,
    help="Send the Server header.",
)
@click.option(
    "--date-header/--no-date-header", default=True, show_default=True, help="Send the Date header."
)
@click.option(
    "--log-format",
    type=click.Choice(["json", "console"]),
    default=None,
    help="Log line format.  [default: json, or console when stdout is a terminal]",
)
@click.option(
    "--log-schema",
    type=click.Choice(get_args(LogSchema)),
    default=_default(ObserveSettings, "log_schema"),
    show_default=True,
    help="Field names of JSON log lines: ours, Elastic Common Schema, or OpenTelemetry's log "
    "data model and semantic conventions.",
)
@click.option(
    "--log-config",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="A logging config file (dictConfig .json/.yaml, or .ini), applied after ours; "
    "uvicorn.error and uvicorn.access in it configure monoceros.error and monoceros.access.",
)
@click.option(
    "--metrics/--no-metrics",
    default=True,
    show_default=True,
    help="Serve /metrics, /healthz and /readyz on the admin listener.",
)
@click.option(
    "--metrics-host",
    default=_default(ObserveSettings, "metrics_host"),
    show_default=True,
    help="Admin listener host; it does not follow --host, so /metrics stays local unless set.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=_default(ObserveSettings, "metrics_port"),
    show_default=True,
    help="Admin listener port (never the application port).",
)
@click.option(
    "--metrics-duration-buckets",
    metavar="SECONDS,...",
    default=",".join(map(str, DURATION_BUCKETS)),
    show_default=True,
    help="Upper bounds of http_server_request_duration_seconds's buckets, increasing "
    "(OpenTelemetry's by default).",
)
@click.option(
    "--trace-id-generate/--no-trace-id-generate",
    default=_default(ObserveSettings, "trace_id_generate"),
    show_default=True,
    help="Give a request without a valid W3C traceparent header a trace id and span id of its "
    "own, for its log lines (the app does not see them).",
)
@click.option(
    "--request-id-header",
    default=_default(ObserveSettings, "request_id_header"),
    show_default=True,
    help="Header carrying the request id (taken from trusted proxies, else generated); "
    "empty to turn request ids off.",
)
@click.option(
    "--loop-block-threshold",
    type=click.FloatRange(min=0),
    default=_default(ObserveSettings, "loop_block_threshold"),
    show_default=True,
    metavar="SECONDS",
    help="Warn (with where it is stuck) and count monoceros_event_loop_blocked_total when the "
    "event loop does not run for this long; 0 turns the watch off.",
)
@click.option(
    "--shutdown-delay",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds to keep serving after SIGTERM with /readyz already 503, before draining.",
)
@click.option(
    "--h11-max-incomplete-event-size",
    type=click.IntRange(min=1),
    default=None,
    help="uvicorn's h11 head buffer: taken as --limit-request-header-size unless that is given.",
)
@click.option(
    "--reset-contextvars",
    is_flag=True,
    default=_default(Config, "reset_contextvars"),
    help="Run each request in a fresh contextvars.Context: nothing set at import or in the "
    "lifespan shows through.",
)
@click.option(
    "--factory",
    is_flag=True,
    default=False,
    help="Treat APP as a factory: call it to get the ASGI app.",
)
@click.option(
    "--app-dir",
    default=".",
    show_default=True,
    help="Look for APP in this directory (added to sys.path).",
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    allow_from_autoenv=False,  # MONOCEROS_VERSION in the environment must not end the server
    callback=_print_version,
    help="Show the version, whether the hot path is compiled, and the Python; then exit.",
)
def main(app: str, **options: Any) -> None:
    """Serve the ASGI application APP, given as "module:attribute"."""
    try:
        config = Config.from_options(app, **options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        code = serve(config, uvicorn_variables_read(click.get_current_context()))
    except StartupError as exc:
        click.echo(f"Error: {exc}", err=True)
        code = exc.exit_code
    sys.exit(code)


# Each option's environment variables, named in `--help` (envvars.py).
assign_envvars(main)
