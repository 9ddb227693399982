"""Proxy headers end to end: the scope an app sees over real sockets, first straight from the
test (which plays the proxy), then behind a real nginx configured with docker/nginx/.

Behind nginx the test's client binds 127.0.0.3, so the client address (127.0.0.3) and
nginx's address (127.0.0.1, the peer monoceros sees) differ. nginx needs the Debian package:
without it these tests skip, except under CI=true, where they fail."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from monoceros.types import ASGIApp
from tests.apps import echo_scope
from tests.integration.helpers import TIMEOUT, TLSFiles
from tests.utils import REPO, ServerProcess, free_port, run_server

NGINX_DIR = Path(REPO) / "docker" / "nginx"
CLIENT = "127.0.0.3"  # where the test's requests to nginx come from


def get_scope(url: str, headers: dict[str, str] | None = None, **client: Any) -> dict[str, Any]:
    with httpx.Client(timeout=TIMEOUT, **client) as http:
        response = http.get(url, headers=headers)
    assert response.status_code == 200, response.text
    scope: dict[str, Any] = response.json()
    return scope


def header_values(scope: dict[str, Any], name: str) -> list[str]:
    return [value for key, value in scope["headers"] if key == name]


# -- straight to monoceros: the test is the proxy ----------------------------------------------


FORWARDED_BY_THE_TEST = {
    "x-forwarded-for": "203.0.113.7, 10.0.0.2",
    "x-forwarded-proto": "https",
    "x-forwarded-host": "example.com",
    "x-forwarded-port": "443",
    "x-forwarded-prefix": "/api",
}


def test_trusted_peer_by_default() -> None:
    """127.0.0.1 is trusted by default; the app sees the client, scheme and the real peer."""
    with run_server(echo_scope, forwarded_allow_ips="127.0.0.1,10.0.0.0/8") as server:
        scope = get_scope(server.url + "/users", FORWARDED_BY_THE_TEST)
    assert scope["client"] == ["203.0.113.7", 0]
    assert scope["scheme"] == "https"
    peer = scope["extensions"]["monoceros.peer"]
    assert peer["address"][0] == "127.0.0.1" and peer["trusted"] is True
    # Host, port and prefix are opt-in.
    assert header_values(scope, "host") == [f"127.0.0.1:{server.port}"]
    assert scope["server"] == ["127.0.0.1", server.port]
    assert (scope["root_path"], scope["path"]) == ("", "/users")


def test_opt_ins_set_host_port_and_prefix() -> None:
    options = {"proxy_forwarded_host": True, "proxy_forwarded_port": True}
    with run_server(echo_scope, proxy_forwarded_prefix=True, **options) as server:
        scope = get_scope(server.url + "/users?page=2", FORWARDED_BY_THE_TEST)
    assert header_values(scope, "host") == ["example.com"]
    assert scope["server"] == ["127.0.0.1", 443]
    assert (scope["root_path"], scope["path"]) == ("/api", "/api/users")
    assert (scope["raw_path"], scope["query_string"]) == ("/api/users", "page=2")


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"forwarded_allow_ips": "10.0.0.0/8"}, id="peer-not-listed"),
        pytest.param({"proxy_headers": False}, id="no-proxy-headers"),
        pytest.param({"forwarded_allow_ips": "unix:"}, id="tcp-peer-not-unix"),
    ],
)
def test_untrusted_peer_changes_nothing(options: dict[str, Any]) -> None:
    opt_ins = {"proxy_forwarded_host": True, "proxy_forwarded_prefix": True}
    with run_server(echo_scope, **options, **opt_ins) as server:
        scope = get_scope(server.url + "/users", FORWARDED_BY_THE_TEST)
    assert scope["client"][0] == "127.0.0.1"
    assert scope["scheme"] == "http"
    assert header_values(scope, "host") == [f"127.0.0.1:{server.port}"]
    assert scope["root_path"] == ""
    assert scope["extensions"]["monoceros.peer"]["trusted"] is False


def test_forwarded_header_family() -> None:
    headers = {
        "forwarded": 'for="[2001:db8::7]:4711";proto=https, for=10.0.0.2',
        "x-forwarded-for": "198.51.100.9",
    }
    trust = "127.0.0.1,10.0.0.0/8"
    with run_server(echo_scope, forwarded_allow_ips=trust, forwarded_headers="both") as server:
        scope = get_scope(server.url + "/", headers)
    assert scope["client"] == ["2001:db8::7", 4711]
    assert scope["scheme"] == "https"


def test_keep_alive_requests_each_resolved() -> None:
    """Trust is decided per connection; each request on it is resolved from its own headers."""
    with run_server(echo_scope) as server, httpx.Client(timeout=TIMEOUT) as http:
        first = http.get(server.url, headers={"x-forwarded-for": "203.0.113.7"}).json()
        second = http.get(server.url).json()
    assert first["client"] == ["203.0.113.7", 0]
    assert second["client"][0] == "127.0.0.1"
    assert first["extensions"]["monoceros.peer"] == second["extensions"]["monoceros.peer"]


@pytest.mark.parametrize(
    ("trust", "client"),
    [
        pytest.param("unix:", ["203.0.113.7", 0], id="unix-trusted"),
        pytest.param("127.0.0.1", None, id="unix-not-listed"),
    ],
)
def test_unix_socket_peer(tmp_path: Path, trust: str, client: list[Any] | None) -> None:
    path = str(tmp_path / "app.sock")
    headers = {"x-forwarded-for": "203.0.113.7", "x-forwarded-port": "443"}
    with run_server(echo_scope, uds=path, forwarded_allow_ips=trust, proxy_forwarded_port=True):
        scope = get_scope("http://example.com/", headers, transport=httpx.HTTPTransport(uds=path))
    assert scope["client"] == client
    assert scope["extensions"]["monoceros.peer"]["address"] is None
    # No socket address on a unix socket: a forwarded port names the Host the client asked for.
    assert scope["server"] == (["example.com", 443] if client else None)


def test_access_log_shows_client_and_peer() -> None:
    """The CLI path: FORWARDED_ALLOW_IPS as uvicorn reads it, and both addresses logged."""
    env = {"FORWARDED_ALLOW_IPS": "127.0.0.1"}
    args = ("--log-format", "json", "--port", "0", "--access-log")
    with ServerProcess("tests.apps:echo_scope", *args, env=env) as process:
        url = process.wait_listening(TIMEOUT)
        scope = get_scope(url + "/", {"x-forwarded-for": "203.0.113.7"})
        line = process.wait_for_line(r'"client":"203\.0\.113\.7","client_port":null', TIMEOUT)
    assert scope["client"] == ["203.0.113.7", 0]
    assert '"peer":"127.0.0.1","peer_port":' in line.string


# -- behind a real nginx --------------------------------------------------------------------


def nginx_binary() -> str:
    path = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if path is None:
        message = "nginx is not installed (apt-get install -y nginx)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def render_nginx_conf(prefix: Path, http: str) -> Path:
    """A main config for an unprivileged nginx under `prefix`: pid and temp paths there, the
    project's maps included, and `http` (upstreams and servers) inside `http { }`."""
    temp = "\n".join(f"    {kind}_temp_path {prefix}/{kind}_temp;" for kind in TEMP_PATHS)
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"daemon off;\nworker_processes 1;\npid {prefix}/nginx.pid;\n"
        "events { worker_connections 64; }\n"
        f"http {{\n{temp}\n    access_log off;\n"
        f"    include {NGINX_DIR}/monoceros-maps.conf;\n{http}\n}}\n"
    )
    return conf


@contextlib.contextmanager
def run_nginx(conf: Path, port: int) -> Iterator[None]:
    """`nginx -p PREFIX -c CONF -e stderr` in the foreground until the block ends."""
    prefix = conf.parent
    log = (prefix / "nginx.log").open("w+")
    args = [nginx_binary(), "-p", str(prefix), "-c", str(conf), "-e", "stderr"]
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:  # nginx has no readiness signal: wait until its port accepts
            if process.poll() is not None:
                log.seek(0)
                pytest.fail(f"nginx exited with {process.returncode}:\n{log.read()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                pytest.fail("nginx did not start listening")
            time.sleep(0.02)
        yield
    finally:
        process.terminate()
        process.wait(TIMEOUT)
        log.close()


def nginx_server(listen: str, upstream_port: int, location: str = "") -> str:
    return f"""
    upstream monoceros {{
        server 127.0.0.1:{upstream_port};
        keepalive 8;
    }}
    server {{
        listen {listen};
        location / {{
            include {NGINX_DIR}/monoceros-proxy.conf;
            proxy_pass http://monoceros;
        }}
        {location}
    }}"""


@contextlib.contextmanager
def nginx_in_front(
    tmp_path: Path, upstream_port: int, location: str = "", tls: TLSFiles | None = None
) -> Iterator[str]:
    """nginx proxying to monoceros on `upstream_port`; yields nginx's URL (https when it
    terminates TLS with `tls`)."""
    port = free_port()
    listen = f"127.0.0.1:{port}"
    if tls is not None:
        listen += f" ssl;\n        ssl_certificate {tls.cert};\n"
        listen += f"        ssl_certificate_key {tls.key}"
    conf = render_nginx_conf(tmp_path, nginx_server(listen, upstream_port, location))
    with run_nginx(conf, port):
        yield f"{'http' if tls is None else 'https'}://127.0.0.1:{port}"


@contextlib.contextmanager
def behind_nginx(
    tmp_path: Path,
    location: str = "",
    tls: TLSFiles | None = None,
    app: ASGIApp = echo_scope,
    **options: Any,
) -> Iterator[str]:
    """monoceros (serving `app`) behind nginx; yields nginx's URL."""
    nginx_binary()
    with (
        run_server(app, **options) as server,
        nginx_in_front(tmp_path, server.port, location, tls) as url,
    ):
        yield url


def from_client() -> dict[str, Any]:
    """httpx options for a client at 127.0.0.3 (a fresh transport: a client closes its own)."""
    return {"transport": httpx.HTTPTransport(local_address=CLIENT)}


def test_nginx_passes_the_client_address_and_scheme(tmp_path: Path) -> None:
    with behind_nginx(tmp_path) as url:
        scope = get_scope(url + "/users", transport=httpx.HTTPTransport(local_address=CLIENT))
    assert scope["client"][0] == CLIENT
    assert scope["scheme"] == "http"
    assert header_values(scope, "x-forwarded-for") == [CLIENT]
    assert header_values(scope, "host") == [url.removeprefix("http://")]
    peer = scope["extensions"]["monoceros.peer"]
    assert peer["address"][0] == "127.0.0.1" and peer["trusted"] is True
    # Keepalive to the upstream: nginx sends no Connection header.
    assert header_values(scope, "connection") == []


def test_nginx_keeps_upstream_connections_alive(tmp_path: Path) -> None:
    with behind_nginx(tmp_path) as url:
        peers = [
            get_scope(url + "/", **from_client())["extensions"]["monoceros.peer"]["address"]
            for _ in range(3)
        ]
    assert peers[0] == peers[1] == peers[2], peers


SPOOFED = {
    "x-forwarded-for": "6.6.6.6",
    "x-forwarded-proto": "https",
    "x-forwarded-host": "evil.example",
    "x-forwarded-port": "1",
    "x-forwarded-prefix": "/evil",
    "forwarded": "for=6.6.6.6;proto=https;host=evil.example",
}


@pytest.mark.parametrize("family", ["x-forwarded", "forwarded", "both"])
def test_a_client_cannot_spoof_through_nginx(tmp_path: Path, family: str) -> None:
    """Every opt-in on, every header forged: nginx appends to or overwrites each one."""
    options: dict[str, Any] = {"proxy_forwarded_host": True, "proxy_forwarded_port": True}
    with behind_nginx(
        tmp_path, forwarded_headers=family, proxy_forwarded_prefix=True, **options
    ) as url:
        scope = get_scope(url + "/users", SPOOFED, **from_client())
    port = int(url.rpartition(":")[2])
    assert scope["client"][0] == CLIENT
    assert scope["scheme"] == "http"
    assert header_values(scope, "host") == [f"127.0.0.1:{port}"]
    assert scope["server"][1] == port
    assert (scope["root_path"], scope["path"]) == ("", "/users")
    assert header_values(scope, "forwarded") == [
        f"for=6.6.6.6;proto=https;host=evil.example, for={CLIENT};proto=http"
    ]


@pytest.mark.parametrize(
    ("trust", "client"),
    [
        pytest.param("127.0.0.1", CLIENT, id="only-nginx-trusted"),
        pytest.param("127.0.0.0/8", "6.6.6.6", id="client-trusted-too"),
        pytest.param("10.0.0.0/8", "127.0.0.1", id="nginx-not-trusted"),
    ],
)
def test_trust_decides_how_far_the_walk_goes(tmp_path: Path, trust: str, client: str) -> None:
    """The client's own X-Forwarded-For is read only if the client itself is trusted."""
    with behind_nginx(tmp_path, forwarded_allow_ips=trust) as url:
        scope = get_scope(url + "/", {"x-forwarded-for": "6.6.6.6"}, **from_client())
    assert scope["client"][0] == client


def test_nginx_tls_gives_https(tmp_path: Path) -> None:
    tls = TLSFiles(tmp_path)
    with behind_nginx(tmp_path, tls=tls) as url:
        transport = httpx.HTTPTransport(local_address=CLIENT, verify=tls.client_context())
        scope = get_scope(url + "/", transport=transport)
    assert scope["client"][0] == CLIENT
    assert scope["scheme"] == "https"


def test_nginx_stripping_a_prefix(tmp_path: Path) -> None:
    location = f"""location /api/ {{
            include {NGINX_DIR}/monoceros-proxy.conf;
            proxy_set_header X-Forwarded-Prefix /api;
            proxy_pass http://monoceros/;
        }}"""
    with behind_nginx(tmp_path, location, proxy_forwarded_prefix=True) as url:
        scope = get_scope(url + "/api/users", {"x-forwarded-prefix": "/evil"}, **from_client())
    assert header_values(scope, "x-forwarded-prefix") == ["/api"]
    assert (scope["root_path"], scope["path"], scope["raw_path"]) == (
        "/api",
        "/api/users",
        "/api/users",  # root_path in raw_path as in path, as uvicorn does
    )


# -- behind nginx's stream module: a TCP balancer speaking the PROXY protocol --------------------

STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")


def stream_module() -> Path:
    if not STREAM_MODULE.exists():
        message = "nginx's stream module is not installed (apt-get install libnginx-mod-stream)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return STREAM_MODULE


def test_nginx_stream_sends_the_client_by_proxy_protocol(tmp_path: Path) -> None:
    """nginx as an L4 balancer (`proxy_protocol on`, which sends version 1): the app sees the
    client's address and port, the access log logs it as the client and nginx as the peer
    (docs/proxy.md). Version 2 is what AWS and HAProxy send: tests/protocol cover it."""
    module, port = stream_module(), free_port()
    with ServerProcess(
        "tests.apps:echo_scope", "--port", "0", "--log-format", "json", "--proxy-protocol"
    ) as process:
        upstream = int(process.wait_listening(TIMEOUT).rsplit(":", 1)[1])
        conf = tmp_path / "nginx.conf"
        conf.write_text(
            f"load_module {module};\ndaemon off;\nworker_processes 1;\n"
            f"pid {tmp_path}/nginx.pid;\nevents {{ worker_connections 64; }}\n"
            f"stream {{\n  server {{\n    listen 127.0.0.1:{port};\n"
            f"    proxy_pass 127.0.0.1:{upstream};\n    proxy_protocol on;\n  }}\n}}\n"
        )
        with run_nginx(conf, port):
            with socket.create_connection(("127.0.0.1", port), source_address=(CLIENT, 0)) as sock:
                client_port = sock.getsockname()[1]
                sock.sendall(b"GET /users HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                response = b""
                while chunk := sock.recv(65536):
                    response += chunk
            line = process.wait_for_line(r'"event":"request".*"path":"/users"', TIMEOUT).string
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    scope = json.loads(body)
    assert scope["client"] == [CLIENT, client_port]
    assert scope["server"] == ["127.0.0.1", port]  # where the client connected: nginx
    assert scope["extensions"]["monoceros.proxy_protocol"]["version"] == 1
    logged = json.loads(line)
    assert (logged["client"], logged["client_port"]) == (CLIENT, client_port)
    assert logged["peer"] == "127.0.0.1"  # nginx's own connection
