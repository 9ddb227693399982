"""Checks an installed monoceros as a user gets it: the hot path is compiled, and it serves.

Run with the Python of the environment monoceros was installed into, from anywhere but a
checkout (so that the installed package is the one imported):

    python .ci/check_install.py            # compiled, says so at startup, serves a request
    python .ci/check_install.py --plain    # plain Python, warns why at startup, serves

The release workflow runs it on every wheel cibuildwheel builds (`test-command`), and
`make test` on the wheel `make dist` built, installed into a fresh virtualenv with no C compiler
on the PATH (tests/integration/test_dist.py). Standard library only: the environment has
monoceros and its dependencies, nothing else.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"installed and serving"})
"""
TIMEOUT = 30.0


def main(plain: bool) -> int:
    version = subprocess.run(
        [sys.executable, "-m", "monoceros", "--version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(version)
    expected = "(plain Python: " if plain else "(hot path compiled with mypyc)"
    if expected not in version:
        return fail(f"expected {expected!r} in: {version}")
    startup = "Running as plain Python" if plain else "Hot path compiled with mypyc"
    with tempfile.TemporaryDirectory() as directory:
        Path(directory, "smoke_app.py").write_text(APP)
        return serve_one_request(directory, startup)


def serve_one_request(app_dir: str, startup: str) -> int:
    command = [sys.executable, "-m", "monoceros", "smoke_app:app", "--app-dir", app_dir]
    options = ["--host", "127.0.0.1", "--port", "0", "--metrics-port", "0", "--log-format", "json"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        command + options, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    lines: list[str] = []
    listening = threading.Event()

    def read() -> None:
        assert server.stdout is not None
        for line in server.stdout:
            lines.append(line.rstrip("\n"))
            if "Listening on" in line:
                listening.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not listening.wait(TIMEOUT):
            return fail("the server did not start:\n" + "\n".join(lines))
        url = re.search(r"Listening on (http://\S+)", "\n".join(lines))
        assert url is not None
        with urllib.request.urlopen(url.group(1) + "/", timeout=TIMEOUT) as response:
            body = response.read()
        if response.status != 200 or body != b"installed and serving":
            return fail(f"unexpected answer {response.status} {body!r}")
    finally:
        server.terminate()
        code = server.wait(TIMEOUT)
        reader.join(TIMEOUT)
    build_lines = [line for line in lines if startup in line]
    if code != 0 or len(build_lines) != 1:
        return fail(f"exit code {code}, startup lines:\n" + "\n".join(lines))
    print(f"served {body!r} from {url.group(1)}; startup line: {build_lines[0]}")
    return 0


def fail(message: str) -> int:
    print(f"check_install: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    started = time.monotonic()
    status = main(plain=sys.argv[1:] == ["--plain"])
    outcome = "ok" if status == 0 else "FAILED"
    print(f"check_install: {outcome} in {time.monotonic() - started:.1f}s")
    sys.exit(status)
