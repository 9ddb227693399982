"""Every way a start can fail ends the process with a non-zero code and one clear line."""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.helpers import TIMEOUT, TLSFiles
from tests.utils import ServerProcess


def error_lines(process: ServerProcess) -> list[str]:
    """Error lines in either log format: JSON lines at level error, or console/CLI text."""
    errors = []
    for line in process.lines:
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("level") == "error":
                errors.append(record["event"])
        elif " ERROR " in line or "[error" in line or line.startswith("Error:"):
            errors.append(line)
    return errors


def assert_fails_clearly(*args: str, message: str, code: int = 1) -> ServerProcess:
    with ServerProcess(*args) as process:
        assert process.wait(TIMEOUT) == code, process.output
    assert "Traceback" not in process.output, process.output
    errors = error_lines(process)
    assert len(errors) == 1, process.output
    assert message in errors[0], process.output
    assert "Listening on" not in process.output
    return process


def test_module_missing() -> None:
    assert_fails_clearly("nope.missing:app", message='Could not import module "nope.missing"')


def test_attribute_missing() -> None:
    assert_fails_clearly(
        "examples.app:nope", message='Attribute "nope" not found in module "examples.app"'
    )


def test_bad_import_string() -> None:
    assert_fails_clearly("examples.app", message='Import string "examples.app" must be in format')


def test_not_callable(write_module: Callable[[str, str], str]) -> None:
    directory = write_module("not_callable_app", "app = 42\n")
    assert_fails_clearly(
        "not_callable_app:app",
        "--app-dir",
        directory,
        message='ASGI app "not_callable_app:app" is not callable (it is int)',
    )


def test_import_raises(write_module: Callable[[str, str], str]) -> None:
    directory = write_module(
        "raising_app", "raise RuntimeError('no DATABASE_URL')\nasync def app(s, r, w): pass\n"
    )
    assert_fails_clearly(
        "raising_app:app",
        "--app-dir",
        directory,
        message='Error importing module "raising_app": RuntimeError: no DATABASE_URL',
    )


def test_import_of_missing_dependency_names_the_module(
    write_module: Callable[[str, str], str],
) -> None:
    directory = write_module("needs_dependency", "import not_installed_anywhere\n")
    assert_fails_clearly(
        "needs_dependency:app",
        "--app-dir",
        directory,
        message="No module named 'not_installed_anywhere'",
    )


def test_factory_raises(write_module: Callable[[str, str], str]) -> None:
    directory = write_module(
        "bad_factory", "def create():\n    raise ValueError('missing setting')\n"
    )
    assert_fails_clearly(
        "bad_factory:create",
        "--factory",
        "--app-dir",
        directory,
        message='Error calling factory "bad_factory:create": ValueError: missing setting',
    )


def test_factory_not_callable(write_module: Callable[[str, str], str]) -> None:
    directory = write_module("factory_value", "create = 'text'\n")
    assert_fails_clearly(
        "factory_value:create",
        "--factory",
        "--app-dir",
        directory,
        message='Factory "factory_value:create" is not callable',
    )


def test_port_in_use() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert_fails_clearly(
            "examples.app:app",
            "--port",
            str(port),
            message=f"Cannot listen on 127.0.0.1:{port}: address already in use",
        )


def test_tls_certificate_missing() -> None:
    assert_fails_clearly(
        "examples.app:app",
        "--port",
        "0",
        "--ssl-certfile",
        "/nonexistent",
        message="Cannot read --ssl-certfile /nonexistent: No such file or directory",
    )


def test_tls_key_missing(tls: TLSFiles) -> None:
    assert_fails_clearly(
        "examples.app:app",
        *("--port", "0", "--ssl-certfile", tls.cert, "--ssl-keyfile", "/nonexistent.key"),
        message="Cannot read --ssl-keyfile /nonexistent.key: No such file or directory",
    )


def test_tls_certificate_garbage(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("this is not a certificate\n")
    assert_fails_clearly(
        "examples.app:app",
        *("--port", "0", "--ssl-certfile", str(garbage)),
        message=f"Cannot load TLS certificate {garbage}",
    )


def test_tls_key_does_not_match(tls: TLSFiles, tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    other = TLSFiles(tmp_path / "other")
    assert_fails_clearly(
        "examples.app:app",
        *("--port", "0", "--ssl-certfile", tls.cert, "--ssl-keyfile", other.key),
        message=f"Cannot load TLS certificate {tls.cert}",
    )


def test_tls_wrong_key_password(tls: TLSFiles) -> None:
    key = tls.encrypted_key(b"right")
    assert_fails_clearly(
        "examples.app:app",
        *("--port", "0", "--ssl-certfile", tls.cert, "--ssl-keyfile", key),
        *("--ssl-keyfile-password", "wrong"),
        message=f"Cannot load TLS certificate {tls.cert}",
    )


def test_tls_encrypted_key_without_password(tls: TLSFiles) -> None:
    key = tls.encrypted_key(b"right")
    assert_fails_clearly(
        "examples.app:app",
        *("--port", "0", "--ssl-certfile", tls.cert, "--ssl-keyfile", key),
        message="--ssl-keyfile-password",
    )


def test_env_file_missing(tmp_path: Path) -> None:
    missing = tmp_path / "missing.env"
    assert_fails_clearly(
        "examples.app:app",
        "--port",
        "0",
        "--env-file",
        str(missing),
        message=f"File '{missing}' does not exist",
        code=2,  # a usage error, as uvicorn's
    )


def test_env_file_bad_line(tmp_path: Path) -> None:
    env_file = tmp_path / "bad.env"
    env_file.write_text("A=1\nnot a setting\n")
    assert_fails_clearly(
        "examples.app:app",
        "--port",
        "0",
        "--env-file",
        str(env_file),
        message=f"--env-file {env_file}, line 2: cannot parse 'not a setting'",
    )


def test_header_value_with_a_control_character() -> None:
    # Every response would carry the line, split in two: refused before listening.
    assert_fails_clearly(
        "examples.app:app",
        "--port",
        "0",
        "--header",
        "X-A:one\rSet-Cookie: a=b",
        message="--header 'X-A': the value 'one\\rSet-Cookie: a=b' holds a control character",
        code=2,  # a usage error
    )


LIFESPAN_FAILS = """
async def app(scope, receive, send):
    assert scope["type"] == "lifespan"
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "cannot reach the database"})
"""

LIFESPAN_RAISES = """
async def app(scope, receive, send):
    await receive()
    raise RuntimeError("cache warm-up failed")
"""


def test_lifespan_startup_failed(write_module: Callable[[str, str], str]) -> None:
    directory = write_module("lifespan_fails", LIFESPAN_FAILS)
    assert_fails_clearly(
        "lifespan_fails:app",
        *("--app-dir", directory, "--lifespan", "on", "--port", "0"),
        message="Application startup failed: cannot reach the database",
        code=3,
    )


def test_lifespan_raises(write_module: Callable[[str, str], str]) -> None:
    directory = write_module("lifespan_raises", LIFESPAN_RAISES)
    assert_fails_clearly(
        "lifespan_raises:app",
        *("--app-dir", directory, "--lifespan", "on", "--port", "0"),
        message="Application startup failed: RuntimeError: cache warm-up failed",
        code=3,
    )


HTTP_ONLY_APPS = {
    "raises": "async def app(scope, receive, send):\n    raise RuntimeError('http only')\n",
    "returns": (
        "async def app(scope, receive, send):\n    if scope['type'] != 'http':\n        return\n"
    ),
}


@pytest.mark.parametrize("kind", sorted(HTTP_ONLY_APPS))
@pytest.mark.parametrize("mode", ["on", "auto"])
def test_app_without_lifespan_support(
    write_module: Callable[[str, str], str], mode: str, kind: str
) -> None:
    """An app that raises or returns on the lifespan scope before calling receive(): with
    `--lifespan on` that is a failed startup; with `auto` the server serves it without lifespan."""
    directory = write_module("http_only", HTTP_ONLY_APPS[kind])
    args = ("http_only:app", "--app-dir", directory, "--lifespan", mode, "--port", "0")
    if mode == "on":
        expected = {"raises": "RuntimeError: http only", "returns": "the app returned before"}
        assert_fails_clearly(*args, message=expected[kind], code=3)
        return
    with ServerProcess(*args) as process:
        process.wait_listening(TIMEOUT)
        process.signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0
    assert "ASGI 'lifespan' protocol appears unsupported." in process.output
    assert "Traceback" not in process.output
    assert error_lines(process) == []


def test_lifespan_traceback_with_log_level_debug(write_module: Callable[[str, str], str]) -> None:
    directory = write_module("lifespan_raises", LIFESPAN_RAISES)
    args = ("--app-dir", directory, "--lifespan", "on", "--port", "0", "--log-level", "debug")
    args += ("--log-format", "console")  # the traceback as a person reads it
    with ServerProcess("lifespan_raises:app", *args) as process:
        assert process.wait(TIMEOUT) == 3
    assert "Traceback" in process.output
    assert 'raise RuntimeError("cache warm-up failed")' in process.output
    assert "Application startup failed: RuntimeError: cache warm-up failed" in process.output
