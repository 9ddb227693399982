"""Validated settings, grouped by topic. Pure data: no imports of the app, no sockets, no logging.

`Config.from_options()` takes the flat, uvicorn-compatible option names (what the CLI and
`monoceros.run()` accept) and sorts them into the groups below.
"""

from __future__ import annotations

import importlib.util
import math
import ssl
from dataclasses import dataclass, field, fields, replace
from itertools import pairwise
from typing import Any, Literal, get_args

from monoceros.addresses import TrustedProxies
from monoceros.grammar import is_token
from monoceros.types import ASGIApp

# --loop: these, or a loop factory as "module:attribute" (as uvicorn takes it). uvicorn's
# zuvloop runs as uvloop here, and its hidden "none" as asyncio.
LOOPS = ("auto", "asyncio", "uvloop", "zuvloop", "none")
# --http: httptools parses every request; h11 and zttp are accepted and noted (differences.py).
HttpName = Literal["auto", "httptools", "h11", "zttp"]
LifespanMode = Literal["auto", "on", "off"]
# --interface: what the app is; auto tells ASGI 3, ASGI 2 and WSGI apart (interface.py).
Interface = Literal["auto", "asgi3", "asgi2", "wsgi"]
ForwardedFamily = Literal["x-forwarded", "forwarded", "both"]
# websockets-sansio is uvicorn's name for the websockets engine we run anyway (sans I/O).
WebSocketMode = Literal["auto", "none", "websockets", "websockets-sansio", "wsproto"]
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
# --log-schema: the field names of JSON lines (docs/observability/log-reference.md).
LogSchema = Literal["default", "ecs", "otel"]
# OpenTelemetry's default buckets for http.server.request.duration, in seconds.
# fmt: off
DURATION_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)
# fmt: on
MAX_DURATION_BUCKETS = 50
# The loop's heartbeat comes with the server's housekeeping tick (every 0.25 s): a shorter
# threshold would report a loop that is only between two ticks.
MIN_LOOP_BLOCK_THRESHOLD = 0.5
# --ssl-version: the ssl.PROTOCOL_* numbers a server can use (uvicorn's default is TLS_SERVER).
_SSL_PROTOCOLS = ("TLS", "TLSv1", "TLSv1_1", "TLSv1_2", "TLS_SERVER")
SSL_VERSIONS = {
    int(getattr(ssl, f"PROTOCOL_{name}")): name
    for name in _SSL_PROTOCOLS
    if hasattr(ssl, f"PROTOCOL_{name}")
}


@dataclass(frozen=True, slots=True)
class ListenSettings:
    """Where the application listener binds. `uds` or `fd`, when given, replace host and port."""

    host: str = "127.0.0.1"
    port: int = 8000
    uds: str | None = None
    fd: int | None = None
    backlog: int = 2048
    # --reuse-port: each worker binds its own SO_REUSEPORT socket instead of sharing one.
    reuse_port: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"--port must be between 0 and 65535, not {self.port}")
        if self.uds is not None and self.fd is not None:
            raise ValueError("--uds and --fd cannot be used together")
        if self.fd is not None and self.fd < 0:
            raise ValueError(f"--fd must be a file descriptor number, not {self.fd}")
        if self.backlog < 1:
            raise ValueError(f"--backlog must be at least 1, not {self.backlog}")
        if self.reuse_port and (self.uds is not None or self.fd is not None):
            raise ValueError("--reuse-port needs a TCP --host/--port, not --uds or --fd")


@dataclass(frozen=True, slots=True)
class TLSSettings:
    """Paths and choices for TLS; `enabled` once a certificate is given."""

    keyfile: str | None = None
    certfile: str | None = None
    keyfile_password: str | None = None
    ca_certs: str | None = None
    cert_reqs: int = int(ssl.CERT_NONE)
    ciphers: str | None = None  # None: OpenSSL's defaults, as uvicorn 0.30+
    version: int = int(ssl.PROTOCOL_TLS_SERVER)

    def __post_init__(self) -> None:
        if self.keyfile is not None and self.certfile is None:
            raise ValueError("--ssl-keyfile needs --ssl-certfile")
        if self.cert_reqs not in (ssl.CERT_NONE, ssl.CERT_OPTIONAL, ssl.CERT_REQUIRED):
            raise ValueError(f"--ssl-cert-reqs must be 0, 1 or 2, not {self.cert_reqs}")
        if self.version not in SSL_VERSIONS:
            choices = ", ".join(f"{number} ({name})" for number, name in SSL_VERSIONS.items())
            raise ValueError(f"--ssl-version must be one of {choices}, not {self.version}")

    @property
    def enabled(self) -> bool:
        return self.certfile is not None


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Per-connection limits. uvicorn has none of the size limits; the defaults follow the
    servers that do: Apache's LimitRequestLine (8190 bytes) and LimitRequestFields (100),
    nginx's large_client_header_buffers (4 x 8k, so 32 KiB of headers).

    The slow-client deadlines. `header_timeout`: the whole head, 10 s (Apache's
    RequestReadTimeout allows header=20, nginx's client_header_timeout 60 s; behind a proxy
    the head arrives at once, and facing clients 20 s is generous to a slowloris).
    `body_timeout`: the longest silence between two reads of a request body the app waits
    for, 30 s (nginx's client_body_timeout is 60 s between reads; Apache's RequestReadTimeout
    body=20 for the first byte, then extended as data comes), answered 408 when nothing of
    the response is out yet. `send_timeout`: the longest a response may wait on a client that
    stopped reading (the transport's buffer full), 30 s, then the connection is cut (nginx's
    send_timeout and Apache's Timeout are 60 s between two writes). Both count silence, not
    the whole transfer: a slow client that keeps going is never cut."""

    max_request_line: int = 8190
    max_header_count: int = 100
    max_header_bytes: int = 32768
    max_body_bytes: int = 100 * 1024 * 1024  # 0 means no limit
    header_timeout: float = 10.0
    keep_alive_timeout: float = 5.0
    body_timeout: float = 30.0
    send_timeout: float = 30.0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if value < 0 or (value == 0 and item.name != "max_body_bytes"):
                raise ValueError(f"{_LIMIT_OPTIONS[item.name]} must be positive, not {value}")


# What zttp's SETTINGS frame advertises as SETTINGS_MAX_CONCURRENT_STREAMS.
MAX_HTTP2_STREAMS = 128


@dataclass(frozen=True, slots=True)
class Http2Settings:
    """HTTP/2 (protocols/http2.py): h2c by prior knowledge on the plain-text port, and `h2`
    offered by ALPN with TLS. Needs the `zttp` package (`pip install 'monoceros[http2]'`)."""

    enabled: bool = False  # --http2
    # Streams one connection may have open: zttp advertises 128 in its SETTINGS (not
    # configurable), so a lower bound here refuses the streams beyond it (REFUSED_STREAM).
    max_concurrent_streams: int = 128

    def __post_init__(self) -> None:
        if self.enabled and importlib.util.find_spec("zttp") is None:
            raise ValueError("--http2 needs zttp: pip install 'monoceros[http2]'")
        if not 1 <= self.max_concurrent_streams <= MAX_HTTP2_STREAMS:
            raise ValueError(
                f"--http2-max-concurrent-streams must be 1 to {MAX_HTTP2_STREAMS}, "
                f"not {self.max_concurrent_streams}"
            )


@dataclass(frozen=True, slots=True)
class WebSocketSettings:
    """WebSockets (protocols/websocket.py), with uvicorn's option names and defaults; the
    16 MiB message limit is uvicorn's too. `mode="none"` answers upgrades as plain HTTP."""

    mode: WebSocketMode = "auto"
    max_size: int = 16 * 1024 * 1024
    max_queue: int = 32
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    per_message_deflate: bool = True

    def __post_init__(self) -> None:
        if self.mode not in get_args(WebSocketMode):
            choices = ", ".join(get_args(WebSocketMode))
            raise ValueError(f"--ws must be one of {choices}, not {self.mode!r}")
        if self.mode == "wsproto" and importlib.util.find_spec("wsproto") is None:
            raise ValueError("--ws wsproto needs wsproto: pip install 'monoceros[wsproto]'")
        if self.max_size < 1:
            raise ValueError(f"--ws-max-size must be positive, not {self.max_size}")
        if self.max_queue < 1:
            raise ValueError(f"--ws-max-queue must be positive, not {self.max_queue}")
        for name in ("ping_interval", "ping_timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"--ws-{name.replace('_', '-')} must be positive, not {value}")

    @property
    def enabled(self) -> bool:
        return self.mode != "none"


@dataclass(frozen=True, slots=True)
class ObserveSettings:
    """Logs, metrics and the admin listener (`/metrics`, `/healthz`, `/readyz`)."""

    log_format: Literal["json", "console"] | None = None  # None: json unless stdout is a tty
    log_schema: LogSchema = "default"  # the field names of JSON lines
    log_config: str | None = None
    use_colors: bool | None = None  # console format; None: colours when stdout is a terminal
    metrics: bool = True
    metrics_host: str = "127.0.0.1"  # never follows --host: /metrics is published only when asked
    metrics_port: int = 9000
    request_id_header: str = "X-Request-ID"  # empty: no request ids
    # A trace of its own for a request without a valid traceparent header (logs only).
    trace_id_generate: bool = False
    # Upper bounds of http_server_request_duration_seconds's buckets, increasing.
    metrics_duration_buckets: tuple[float, ...] = DURATION_BUCKETS
    # Paths whose requests write no access-log line: exact, or a prefix when ending in "*".
    access_log_exclude: tuple[str, ...] = ()
    # Seconds the event loop may go without running before a warning (with where it is
    # stuck) and monoceros_event_loop_blocked_total; 0: not watched (observe/watchdog.py).
    # Generous by default: a loop blocked 5 s has failed every request in flight meanwhile.
    loop_block_threshold: float = 5.0

    def __post_init__(self) -> None:
        threshold = self.loop_block_threshold
        if threshold != 0 and threshold < MIN_LOOP_BLOCK_THRESHOLD:
            raise ValueError(
                f"--loop-block-threshold must be 0 (off) or at least "
                f"{MIN_LOOP_BLOCK_THRESHOLD}, not {threshold}"
            )
        if self.log_format not in (None, "json", "console"):
            raise ValueError(f"--log-format must be json or console, not {self.log_format!r}")
        if self.log_schema not in get_args(LogSchema):
            choices = ", ".join(get_args(LogSchema))
            raise ValueError(f"--log-schema must be one of {choices}, not {self.log_schema!r}")
        buckets = self.metrics_duration_buckets
        if not 0 < len(buckets) <= MAX_DURATION_BUCKETS or any(
            not low < high < math.inf for low, high in pairwise((0.0, *buckets))
        ):
            raise ValueError(
                "--metrics-duration-buckets must be 1 to "
                f"{MAX_DURATION_BUCKETS} increasing positive numbers of seconds, not "
                + ",".join(map(str, buckets))
            )
        for path in self.access_log_exclude:
            if not path.startswith("/"):
                raise ValueError(
                    f"--access-log-exclude takes paths (/healthz, /static/*), not {path!r}"
                )
        if not 0 <= self.metrics_port <= 65535:
            raise ValueError(f"--metrics-port must be between 0 and 65535, not {self.metrics_port}")
        if self.request_id_header and not is_token(self.request_id_header):
            raise ValueError(f"--request-id-header {self.request_id_header!r} is not a header name")


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """Which proxy headers are believed, and from whom (proxy.py; docs/proxy.md).

    The default trusts the loopback addresses, as uvicorn does, and reads only X-Forwarded-*:
    `Forwarded` is honoured only when asked for, because a proxy that does not know it passes
    a client's forged one through untouched. Plain data: `proxy.ProxyResolver` is what the
    server builds from it."""

    enabled: bool = True  # --proxy-headers
    forwarded_allow_ips: str = "127.0.0.1,::1"  # comma-separated
    family: ForwardedFamily = "x-forwarded"  # --forwarded-headers; "both": Forwarded first
    forwarded_host: bool = False  # X-Forwarded-Host / Forwarded host= -> the Host header
    forwarded_port: bool = False  # X-Forwarded-Port -> scope["server"] port
    forwarded_prefix: bool = False  # X-Forwarded-Prefix -> scope["root_path"]
    # --proxy-protocol: peers in forwarded_allow_ips must open each connection with a PROXY
    # protocol header (v1 or v2); its source becomes the client.
    proxy_protocol: bool = False

    def __post_init__(self) -> None:
        try:
            TrustedProxies.parse(self.forwarded_allow_ips)  # refused here, named, not later
        except ValueError as exc:
            raise ValueError(f"--forwarded-allow-ips: {exc}") from None
        if self.family not in ("x-forwarded", "forwarded", "both"):
            raise ValueError(
                f"--forwarded-headers must be x-forwarded, forwarded or both, not {self.family!r}"
            )


@dataclass(frozen=True, slots=True)
class ReloadSettings:
    """`--reload` (reloader.py): restart the server process when a watched file changes.
    Directories and patterns mean what they mean in uvicorn; the reloader resolves them
    against the file system."""

    enabled: bool = False
    dirs: tuple[str, ...] = ()
    includes: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    delay: float = 0.25

    def __post_init__(self) -> None:
        if self.delay < 0:
            raise ValueError(f"--reload-delay must not be negative, not {self.delay}")
        if self.enabled and importlib.util.find_spec("watchfiles") is None:
            raise ValueError("--reload needs watchfiles: pip install 'monoceros[reload]'")


@dataclass(frozen=True, slots=True)
class Config:
    """Everything one server process needs to know, validated once."""

    app: str | ASGIApp
    factory: bool = False
    app_dir: str = "."
    env_file: str | None = None
    listen: ListenSettings = field(default_factory=ListenSettings)
    tls: TLSSettings = field(default_factory=TLSSettings)
    limits: HttpLimits = field(default_factory=HttpLimits)
    observe: ObserveSettings = field(default_factory=ObserveSettings)
    proxy: ProxySettings = field(default_factory=ProxySettings)
    ws: WebSocketSettings = field(default_factory=WebSocketSettings)
    http2: Http2Settings = field(default_factory=Http2Settings)
    reload: ReloadSettings = field(default_factory=ReloadSettings)
    loop: str = "auto"
    http: HttpName = "auto"
    # uvicorn's h11 buffer limit; taken as --limit-request-header-size (differences.py).
    h11_max_incomplete_event_size: int | None = None
    interface: Interface = "auto"
    reset_contextvars: bool = False  # each request in a fresh contextvars.Context
    lifespan: LifespanMode = "auto"
    root_path: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    server_header: bool = True
    date_header: bool = True
    access_log: bool = True
    log_level: str = "info"
    limit_concurrency: int | None = None
    limit_max_requests: int | None = None
    timeout_graceful_shutdown: float | None = None
    # Seconds between SIGTERM (readiness turns 503) and closing the listener, so load
    # balancers stop sending first.
    shutdown_delay: float = 0.0
    workers: int = 1
    # Recycling and supervision (supervisor.py): a worker's request limit is
    # limit_max_requests + a random 0..jitter, so workers do not all restart at once.
    limit_max_requests_jitter: int = 0
    limit_max_rss: int | None = None  # MB of resident memory before a worker is recycled
    timeout_worker_healthcheck: float = 30.0

    def __post_init__(self) -> None:
        if self.loop not in LOOPS and not _is_import_string(self.loop):
            raise ValueError(
                f"--loop must be one of {', '.join(LOOPS)} or a loop factory as "
                f'"module:attribute", not {self.loop!r}'
            )
        if self.http not in get_args(HttpName):
            choices = ", ".join(get_args(HttpName))
            raise ValueError(f"--http must be one of {choices}, not {self.http!r}")
        if self.interface not in get_args(Interface):
            choices = ", ".join(get_args(Interface))
            raise ValueError(f"--interface must be one of {choices}, not {self.interface!r}")
        if self.interface == "wsgi" and importlib.util.find_spec("a2wsgi") is None:
            raise ValueError("--interface wsgi needs a2wsgi: pip install 'monoceros[wsgi]'")
        size = self.h11_max_incomplete_event_size
        if size is not None and size < 1:
            raise ValueError(f"--h11-max-incomplete-event-size must be positive, not {size}")
        if self.lifespan not in ("auto", "on", "off"):
            raise ValueError(f"--lifespan must be auto, on or off, not {self.lifespan!r}")
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"--log-level must be one of {', '.join(LOG_LEVELS)}")
        if self.root_path and (not self.root_path.startswith("/") or self.root_path.endswith("/")):
            raise ValueError(
                f"--root-path must start with / and not end with /: {self.root_path!r}"
            )
        for name in ("limit_concurrency", "limit_max_requests", "timeout_graceful_shutdown"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, not {value}")
        if self.shutdown_delay < 0:
            raise ValueError(f"--shutdown-delay must not be negative, not {self.shutdown_delay}")
        if self.workers < 1:
            raise ValueError(f"--workers must be at least 1, not {self.workers}")
        if (self.supervised or self.reload.enabled) and not isinstance(self.app, str):
            raise ValueError(
                "--reload, --workers > 1 and --limit-max-rss need the app as an import string "
                '("module:attribute"), not an app object: each server process imports it'
            )
        if self.workers > 1 and self.listen.reuse_port and self.listen.port == 0:
            raise ValueError("--reuse-port with --workers > 1 needs a fixed --port, not 0")
        jitter = self.limit_max_requests_jitter
        if jitter < 0:
            raise ValueError(f"--limit-max-requests-jitter must not be negative, not {jitter}")
        if self.limit_max_rss is not None and self.limit_max_rss <= 0:
            raise ValueError(f"--limit-max-rss must be positive, not {self.limit_max_rss}")
        healthcheck = self.timeout_worker_healthcheck
        if healthcheck <= 0:
            raise ValueError(f"--timeout-worker-healthcheck must be positive, not {healthcheck}")
        for name, value in self.headers:
            problem = header_problem(name, value)
            if problem is not None:
                raise ValueError(f"--header {name!r}: {problem}")

    @classmethod
    def from_options(cls, app: str | ASGIApp, **options: Any) -> Config:
        """Build a Config from uvicorn-style flat option names (`host=`, `ssl_certfile=`, ...)."""
        groups: dict[str, dict[str, Any]] = {
            "listen": {},
            "tls": {},
            "limits": {},
            "observe": {},
            "proxy": {},
            "ws": {},
            "http2": {},
            "reload": {},
        }
        top: dict[str, Any] = {}
        for name, value in options.items():
            if name in _GROUPED_OPTIONS:
                group, attribute = _GROUPED_OPTIONS[name]
                groups[group][attribute] = value
            elif name in _TOP_LEVEL_OPTIONS:
                top[name] = value
            else:
                raise TypeError(f"unknown option {name!r}")
        # uvicorn's h11 buffer bounds the request head: ours is --limit-request-header-size,
        # which wins when it is given too (differences.py says which was taken).
        h11_size = top.get("h11_max_incomplete_event_size")
        default_size = HttpLimits.__dataclass_fields__["max_header_bytes"].default
        ours = groups["limits"].get("max_header_bytes")
        if h11_size is not None and h11_size > 0 and ours in (None, default_size):
            groups["limits"]["max_header_bytes"] = h11_size
        if "headers" in top:
            top["headers"] = tuple(parse_header_option(item) for item in top["headers"])
        for name in ("dirs", "includes", "excludes"):  # uvicorn.run takes a str or a list
            value = groups["reload"].get(name)
            if value is not None:
                groups["reload"][name] = (value,) if isinstance(value, str) else tuple(value)
        observe = groups["observe"]
        buckets = observe.get("metrics_duration_buckets")
        if isinstance(buckets, str):  # as the command line and the environment give it
            observe["metrics_duration_buckets"] = parse_buckets(buckets)
        elif buckets is not None:
            observe["metrics_duration_buckets"] = tuple(float(bound) for bound in buckets)
        excluded = observe.get("access_log_exclude")
        if isinstance(excluded, str):
            observe["access_log_exclude"] = (excluded,)
        elif excluded is not None:
            observe["access_log_exclude"] = tuple(excluded)
        allowed = groups["proxy"].get("forwarded_allow_ips")
        if allowed is not None and not isinstance(allowed, str):
            groups["proxy"]["forwarded_allow_ips"] = ",".join(allowed)  # uvicorn.run takes lists
        return cls(
            app=app,
            listen=ListenSettings(**groups["listen"]),
            tls=TLSSettings(**groups["tls"]),
            limits=HttpLimits(**groups["limits"]),
            observe=ObserveSettings(**groups["observe"]),
            proxy=ProxySettings(**groups["proxy"]),
            ws=WebSocketSettings(**groups["ws"]),
            http2=Http2Settings(**groups["http2"]),
            reload=ReloadSettings(**groups["reload"]),
            **top,
        )

    @property
    def supervised(self) -> bool:
        """Run a supervisor and worker processes (supervisor.py) rather than one server."""
        return self.workers > 1 or self.limit_max_rss is not None

    def replace(self, **changes: Any) -> Config:
        return replace(self, **changes)


def parse_buckets(text: str) -> tuple[float, ...]:
    """`--metrics-duration-buckets 0.01,0.1,1`: seconds, comma-separated."""
    try:
        return tuple(float(item) for item in text.split(",") if item.strip())
    except ValueError:
        raise ValueError(
            f"--metrics-duration-buckets takes numbers of seconds separated by commas, not {text!r}"
        ) from None


def parse_header_option(item: str | tuple[str, str]) -> tuple[str, str]:
    """`--header name:value` as uvicorn takes it (Config checks what it says)."""
    if isinstance(item, tuple):
        return item
    name, sep, value = item.partition(":")
    if not sep or not name.strip():
        raise ValueError(f"--header must look like name:value, not {item!r}")
    return name.strip(), value.strip()


def header_problem(name: str, value: str) -> str | None:
    """What is wrong with a default header (every response carries it), or None."""
    if not is_token(name):
        return "the name must be an HTTP token (RFC 9110 section 5.6.2)"
    if any((char < " " and char != "\t") or char == "\x7f" for char in value):
        return f"the value {value!r} holds a control character"  # CR or LF would split heads
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return f"the value {value!r} is not Latin-1 text"
    return None


# Flat option name -> (group, attribute). One table, so the CLI and run() agree.
_GROUPED_OPTIONS: dict[str, tuple[str, str]] = {
    "host": ("listen", "host"),
    "port": ("listen", "port"),
    "uds": ("listen", "uds"),
    "fd": ("listen", "fd"),
    "backlog": ("listen", "backlog"),
    "reuse_port": ("listen", "reuse_port"),
    "ssl_keyfile": ("tls", "keyfile"),
    "ssl_certfile": ("tls", "certfile"),
    "ssl_keyfile_password": ("tls", "keyfile_password"),
    "ssl_ca_certs": ("tls", "ca_certs"),
    "ssl_cert_reqs": ("tls", "cert_reqs"),
    "ssl_ciphers": ("tls", "ciphers"),
    "ssl_version": ("tls", "version"),
    "limit_request_line": ("limits", "max_request_line"),
    "limit_request_fields": ("limits", "max_header_count"),
    "limit_request_header_size": ("limits", "max_header_bytes"),
    "limit_request_body": ("limits", "max_body_bytes"),
    "timeout_request_header": ("limits", "header_timeout"),
    "timeout_keep_alive": ("limits", "keep_alive_timeout"),
    "timeout_request_body": ("limits", "body_timeout"),
    "timeout_send": ("limits", "send_timeout"),
    "log_format": ("observe", "log_format"),
    "log_schema": ("observe", "log_schema"),
    "log_config": ("observe", "log_config"),
    "use_colors": ("observe", "use_colors"),
    "metrics": ("observe", "metrics"),
    "metrics_host": ("observe", "metrics_host"),
    "metrics_port": ("observe", "metrics_port"),
    "request_id_header": ("observe", "request_id_header"),
    "trace_id_generate": ("observe", "trace_id_generate"),
    "metrics_duration_buckets": ("observe", "metrics_duration_buckets"),
    "access_log_exclude": ("observe", "access_log_exclude"),
    "loop_block_threshold": ("observe", "loop_block_threshold"),
    "proxy_headers": ("proxy", "enabled"),
    "forwarded_allow_ips": ("proxy", "forwarded_allow_ips"),
    "forwarded_headers": ("proxy", "family"),
    "proxy_forwarded_host": ("proxy", "forwarded_host"),
    "proxy_forwarded_port": ("proxy", "forwarded_port"),
    "proxy_forwarded_prefix": ("proxy", "forwarded_prefix"),
    "proxy_protocol": ("proxy", "proxy_protocol"),
    "ws": ("ws", "mode"),
    "ws_max_size": ("ws", "max_size"),
    "ws_max_queue": ("ws", "max_queue"),
    "ws_ping_interval": ("ws", "ping_interval"),
    "ws_ping_timeout": ("ws", "ping_timeout"),
    "ws_per_message_deflate": ("ws", "per_message_deflate"),
    "http2": ("http2", "enabled"),
    "http2_max_concurrent_streams": ("http2", "max_concurrent_streams"),
    "reload": ("reload", "enabled"),
    "reload_dirs": ("reload", "dirs"),
    "reload_includes": ("reload", "includes"),
    "reload_excludes": ("reload", "excludes"),
    "reload_delay": ("reload", "delay"),
}
# HttpLimits attribute -> the option that sets it, so errors name what the user typed.
_LIMIT_OPTIONS = {
    attribute: "--" + option.replace("_", "-")
    for option, (group, attribute) in _GROUPED_OPTIONS.items()
    if group == "limits"
}
_TOP_LEVEL_OPTIONS = frozenset(
    item.name
    for item in fields(Config)
    if item.name
    not in ("app", "listen", "tls", "limits", "observe", "proxy", "ws", "http2", "reload")
)


def _is_import_string(value: str) -> bool:
    module, sep, attribute = value.partition(":")
    return bool(sep and module and attribute)
