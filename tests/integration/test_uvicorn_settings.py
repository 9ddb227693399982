"""uvicorn's --env-file, --log-config, --log-level trace and --use-colors semantics, from real
subprocesses."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.integration.helpers import TIMEOUT
from tests.integration.test_startup_errors import assert_fails_clearly
from tests.integration.test_transports import serving
from tests.utils import ServerProcess, free_port

ENV_APP = """
import json
import os

SEEN = {name: value for name, value in os.environ.items() if name.startswith("DOTENV_")}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": json.dumps(SEEN).encode()})
"""

# python-dotenv's documented syntax (its README, "File format"), one case a line.
ENV_FILE = r"""
# a comment, and a blank line

DOTENV_PLAIN=plain value
export DOTENV_EXPORTED=exported
DOTENV_SINGLE='single ${DOTENV_PLAIN} \n kept'
DOTENV_DOUBLE="double\tescape"
DOTENV_EXPANDED="${DOTENV_PLAIN}/more"
DOTENV_DEFAULTED=${DOTENV_NOT_SET:-fallback}
DOTENV_FROM_PROCESS=${DOTENV_SET_BY_PROCESS}
DOTENV_INLINE=value # an inline comment
DOTENV_EMPTY=
DOTENV_PEM="-----BEGIN KEY-----
line one
line two
-----END KEY-----"
DOTENV_KEPT=from the file
"""


def test_env_file_with_python_dotenv_syntax(
    write_module: Callable[[str, str], str], tmp_path: Path
) -> None:
    directory = write_module("dotenv_app", ENV_APP)
    env_file = tmp_path / "app.env"
    env_file.write_text(ENV_FILE)
    env = {"DOTENV_SET_BY_PROCESS": "from the process", "DOTENV_KEPT": "the process wins"}
    args = ("--app-dir", directory, "--port", "0", "--env-file", str(env_file))
    with serving("dotenv_app:app", *args, env=env) as (process, url):
        seen = httpx.get(url, timeout=TIMEOUT).json()
    assert seen == {
        "DOTENV_PLAIN": "plain value",
        "DOTENV_EXPORTED": "exported",
        "DOTENV_SINGLE": r"single plain value \n kept",  # no escapes in single quotes
        "DOTENV_DOUBLE": "double\tescape",
        "DOTENV_EXPANDED": "plain value/more",
        "DOTENV_DEFAULTED": "fallback",
        "DOTENV_FROM_PROCESS": "from the process",
        "DOTENV_SET_BY_PROCESS": "from the process",
        "DOTENV_INLINE": "value",
        "DOTENV_EMPTY": "",
        "DOTENV_PEM": "-----BEGIN KEY-----\nline one\nline two\n-----END KEY-----",
        "DOTENV_KEPT": "the process wins",
    }
    assert f"Loading environment from '{env_file}'" in process.output


def test_env_file_with_workers_is_read_once_and_inherited(
    write_module: Callable[[str, str], str], tmp_path: Path
) -> None:
    directory = write_module("dotenv_app", ENV_APP)
    env_file = tmp_path / "app.env"
    env_file.write_text("DOTENV_PLAIN=for every worker\n")
    args = ("--app-dir", directory, "--port", "0", "--env-file", str(env_file), "--workers", "2")
    with serving("dotenv_app:app", *args) as (process, url):
        process.wait_for_line("Worker .* is serving", TIMEOUT)
        assert httpx.get(url, timeout=TIMEOUT).json() == {"DOTENV_PLAIN": "for every worker"}
    assert process.output.count("Loading environment from") == 1


# -- --log-config -------------------------------------------------------------------------

FILTER_MODULE = """
import logging


class DropHealth(logging.Filter):
    '''A filter class that lives beside the app (--app-dir), as people write them.'''

    def filter(self, record):
        return "health" not in record.getMessage()
"""

LOGGING_APP = """
import logging

logger = logging.getLogger("uvicorn.error")  # what FastAPI tutorials log to


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        logger.info("health check registered")
        logger.info("cache warmed")
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
"""

DICT_CONFIG = {
    "version": 1,
    "filters": {"no_health": {"()": "log_filters.DropHealth"}},
    "loggers": {
        "uvicorn.error": {"level": "WARNING"},
        "uvicorn.access": {"level": "WARNING"},
    },
    "root": {"filters": []},
}

INI_CONFIG = """
[loggers]
keys=root,error

[handlers]
keys=

[formatters]
keys=

[logger_root]
handlers=

[logger_error]
qualname=uvicorn.error
level=WARNING
handlers=
"""


def write_log_config(directory: Path, kind: str) -> Path:
    if kind == "json":
        path = directory / "logging.json"
        path.write_text(json.dumps(DICT_CONFIG))
    elif kind == "yaml":
        import yaml  # type: ignore[import-untyped]

        path = directory / "logging.yaml"
        path.write_text(yaml.safe_dump(DICT_CONFIG))
    else:
        path = directory / "logging.ini"
        path.write_text(INI_CONFIG)
    return path


@pytest.mark.parametrize("kind", ["json", "yaml", "ini"])
def test_log_config_names_uvicorns_loggers(
    write_module: Callable[[str, str], str], tmp_path: Path, kind: str
) -> None:
    """uvicorn.error at WARNING quiets monoceros.error's info lines (and the app's lines on
    uvicorn.error); uvicorn.access at WARNING turns the access log off."""
    directory = write_module("logging_app", LOGGING_APP)
    write_module("log_filters", FILTER_MODULE)
    log_config = write_log_config(tmp_path, kind)
    port = free_port()
    args = ("--app-dir", directory, "--port", str(port), "--log-config", str(log_config))
    with ServerProcess("logging_app:app", *args) as process:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + TIMEOUT
        while True:  # no "Listening on" line to wait for: that is what the config silenced
            try:
                assert httpx.get(url, timeout=TIMEOUT).text == "ok"
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, process.output
                time.sleep(0.05)
        process.signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0
    assert "Started server process" not in process.output  # monoceros.error: info is below
    assert "cache warmed" not in process.output  # the app's, on uvicorn.error
    if kind != "ini":
        assert '"event":"request"' not in process.output  # monoceros.access at WARNING


def test_log_config_filter_class_from_the_app_dir(
    write_module: Callable[[str, str], str], tmp_path: Path
) -> None:
    """The filter class is imported from --app-dir: the log config is applied after it is on
    sys.path. Attached to uvicorn.error, it filters monoceros.error's records too."""
    directory = write_module("logging_app", LOGGING_APP)
    write_module("log_filters", FILTER_MODULE)
    config = {
        "version": 1,
        "filters": {"no_health": {"()": "log_filters.DropHealth"}},
        "loggers": {"uvicorn.error": {"filters": ["no_health"]}},
    }
    path = tmp_path / "filters.json"
    path.write_text(json.dumps(config))
    args = ("--app-dir", directory, "--port", "0", "--log-config", str(path))
    with serving("logging_app:app", *args) as (process, url):
        assert httpx.get(url, timeout=TIMEOUT).text == "ok"
    assert "cache warmed" in process.output
    assert "health check registered" not in process.output


def test_log_config_filter_class_not_found_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "filters.json"
    path.write_text(json.dumps({"version": 1, "filters": {"f": {"()": "nowhere.Filter"}}}))
    assert_fails_clearly(
        "examples.app:app",
        *("--port", "0", "--log-config", str(path)),
        message=f"--log-config {path}: Unable to configure filter 'f'",
    )


# -- --log-level trace, --use-colors ------------------------------------------------------------


def test_trace_logs_connection_events_and_asgi_messages() -> None:
    args = ("examples.app:app", "--port", "0", "--log-level", "trace", "--no-access-log")
    with serving(*args) as (process, url):
        httpx.get(url + "/", timeout=TIMEOUT)
        process.wait_for_line("HTTP connection lost", TIMEOUT)
    trace = [json.loads(line) for line in process.lines if '"level":"trace"' in line]
    events = [record["event"] for record in trace]
    made = [e for e in events if re.fullmatch(r"127\.0\.0\.1:\d+ - HTTP connection made", e)]
    assert len(made) == 1
    assert any(e.startswith("ASGI [") and "Started scope={'type': 'http'" in e for e in events)
    assert any("Send {'type': 'http.response.start', 'status': 200" in e for e in events)
    assert any(re.fullmatch(r"ASGI \[\d+\] Completed", e) for e in events)
    assert "Traceback" not in process.output


def test_no_trace_lines_at_debug() -> None:
    with serving("examples.app:app", "--port", "0", "--log-level", "debug") as (process, url):
        httpx.get(url + "/", timeout=TIMEOUT)
    assert '"level":"trace"' not in process.output


@pytest.mark.parametrize(
    ("flag", "coloured"),
    [("--use-colors", True), ("--no-use-colors", False), (None, False)],  # None: not a terminal
)
def test_use_colors_drives_the_console_format(flag: str | None, coloured: bool) -> None:
    args = ["examples.app:app", "--port", "0", "--log-format", "console"]
    if flag:
        args.append(flag)
    with serving(*args) as (process, url):
        httpx.get(url + "/", timeout=TIMEOUT)
        process.wait_for_line("request", TIMEOUT)
    listening = next(line for line in process.lines if "Listening on" in line)
    access = next(line for line in process.lines if "monoceros.access" in line)
    assert ("\x1b[" in listening) is coloured
    assert ("\x1b[" in access) is coloured


def test_trace_follows_a_connection_upgraded_to_websocket() -> None:
    import asyncio

    from websockets.asyncio.client import connect

    args = ("examples.app:app", "--port", "0", "--log-level", "trace", "--no-access-log")
    with serving(*args) as (process, url):

        async def talk() -> str:
            async with connect(url.replace("http", "ws", 1) + "/ws") as websocket:
                await websocket.send("hi")
                return str(await websocket.recv())

        assert asyncio.run(talk()) == "hi"
        process.wait_for_line("WebSocket connection lost", TIMEOUT)
    events = [json.loads(line)["event"] for line in process.lines if '"level":"trace"' in line]
    peer = next(e.split(" - ")[0] for e in events if e.endswith("HTTP connection made"))
    assert f"{peer} - Upgrading to WebSocket" in events
    assert f"{peer} - WebSocket connection lost" in events
    assert f"{peer} - HTTP connection lost" not in events  # the session owns it by then
