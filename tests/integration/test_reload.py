"""--reload, from a real process tree: an edited app serves its new response, files outside
the watched directories change nothing, a broken save is one line and the next good one serves,
and signals end the whole tree."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.helpers import TIMEOUT
from tests.utils import ServerProcess

APP = """
import os


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = f"{VERSION} {os.getpid()}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


VERSION = "%s"
"""


def write_app(directory: Path, version: str) -> None:
    (directory / "reloaded_app.py").write_text(APP % version)


def answer(url: str) -> tuple[str, int]:
    version, pid = httpx.get(url, timeout=TIMEOUT).text.split()
    return version, int(pid)


def wait_for_version(url: str, version: str, within: float) -> int:
    """Poll until the app answers `version`; return the serving process's pid."""
    deadline = time.monotonic() + within
    while True:
        try:
            seen, pid = answer(url)
        except httpx.TransportError:
            seen, pid = "", 0  # between two server processes
        if seen == version:
            return pid
        assert time.monotonic() < deadline, f"still {seen!r} after {within} s"
        time.sleep(0.05)


@pytest.fixture
def watched(tmp_path: Path) -> Path:
    directory = tmp_path / "watched"
    directory.mkdir()
    write_app(directory, "v1")
    return directory


def reloading_args(watched: Path) -> tuple[str, ...]:
    """The app in `watched`, served with --reload watching that directory."""
    return ("reloaded_app:app", "--reload", "--reload-dir", str(watched), "--app-dir", str(watched))


@pytest.fixture
def reloading(watched: Path) -> Iterator[tuple[ServerProcess, str]]:
    args = reloading_args(watched)
    with ServerProcess(*args, "--port", "0") as process:
        url = process.wait_listening(TIMEOUT)
        yield process, url


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_an_edit_serves_within_two_seconds(
    reloading: tuple[ServerProcess, str], watched: Path
) -> None:
    process, url = reloading
    first = wait_for_version(url, "v1", TIMEOUT)
    write_app(watched, "v2")
    second = wait_for_version(url, "v2", within=2.0)
    assert second != first and gone(first)
    assert "Detected changes in" in process.output and "reloaded_app.py" in process.output


def test_files_outside_the_watched_directories_change_nothing(
    reloading: tuple[ServerProcess, str], watched: Path
) -> None:
    process, url = reloading
    pid = wait_for_version(url, "v1", TIMEOUT)
    write_app(watched.parent, "elsewhere")  # beside the watched directory, not in it
    (watched / "notes.txt").write_text("not *.py")  # in it, but not a watched kind of file
    (watched / ".hidden.py").write_text("x = 1")  # excluded by default: .*
    time.sleep(1.5)
    assert answer(url) == ("v1", pid)
    assert "Detected changes" not in process.output


def test_a_broken_save_then_a_fixed_one(
    reloading: tuple[ServerProcess, str], watched: Path
) -> None:
    process, url = reloading
    wait_for_version(url, "v1", TIMEOUT)
    (watched / "reloaded_app.py").write_text(APP % "v2" + "\nbroken = (\n")
    process.wait_for_line("could not start .*: waiting for a change", TIMEOUT)
    errors = [line for line in process.lines if '"level":"error"' in line]
    assert len(errors) == 1 and "SyntaxError" in errors[0], process.output
    assert "Traceback" not in process.output
    write_app(watched, "v3")
    wait_for_version(url, "v3", within=TIMEOUT)
    assert process.process.poll() is None  # the watcher lived through it


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_end_the_whole_tree(
    reloading: tuple[ServerProcess, str], sig: signal.Signals
) -> None:
    process, url = reloading
    server_pid = wait_for_version(url, "v1", TIMEOUT)
    process.signal(sig)
    assert process.wait(TIMEOUT) == 0, process.output
    deadline = time.monotonic() + 5
    while not gone(server_pid):
        assert time.monotonic() < deadline, "the server process outlived its reloader"
        time.sleep(0.05)
    assert "Finished reloader process" in process.output


def test_the_server_process_goes_when_the_reloader_is_killed(watched: Path, tmp_path: Path) -> None:
    args = reloading_args(watched)
    # Killed outright, the reloader cannot remove a temporary metrics directory: it gets one here.
    metrics = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    with ServerProcess(*args, "--port", "0", env=metrics) as process:
        server_pid = wait_for_version(process.wait_listening(TIMEOUT), "v1", TIMEOUT)
        process.process.kill()
        process.wait(TIMEOUT)
    deadline = time.monotonic() + 10
    while not gone(server_pid):
        assert time.monotonic() < deadline, "an orphan server process"
        time.sleep(0.05)


def test_reload_wins_over_workers(watched: Path) -> None:
    args = reloading_args(watched)
    with ServerProcess(*args, "--port", "0", "--workers", "3") as process:
        url = process.wait_listening(TIMEOUT)
        pids = {answer(url)[1] for _ in range(6)}
        process.signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0
    assert len(pids) == 1
    assert "--workers 3 is ignored with --reload: one server process" in process.output


def test_include_and_exclude_patterns(watched: Path) -> None:
    (watched / "generated").mkdir()
    args = reloading_args(watched)
    args += ("--reload-include", "*.html", "--reload-exclude", str(watched / "generated"))
    with ServerProcess(*args, "--port", "0") as process:
        url = process.wait_listening(TIMEOUT)
        pid = wait_for_version(url, "v1", TIMEOUT)
        (watched / "generated" / "cache.py").write_text("x = 1")
        time.sleep(1.5)
        assert answer(url) == ("v1", pid)
        (watched / "page.html").write_text("<p>new</p>")
        process.wait_for_line("Detected changes in .*page.html", TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while answer(url)[1] == pid:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        process.signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0
