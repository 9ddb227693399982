"""`--reload`: a supervisor (supervisor.py) of one server process that restarts it when a
watched file changes, as uvicorn's reloader does.

- What is watched means what it means in uvicorn: `--reload-dir` (default: the working
  directory), plus directories named by `--reload-include` patterns; files matching `*.py` and
  the `--reload-include` patterns, but not `.*`, `.py[cod]`, `.sw.*`, `~*` nor the
  `--reload-exclude` patterns (a default pattern given as the other kind drops out of the
  defaults); a `--reload-exclude` directory is left out whole.
- watchfiles watches in a thread, which hands each batch of changes to the supervisor's loop
  and then waits `--reload-delay` seconds before looking again.
- On a change the server process is stopped (SIGTERM: it drains as on any shutdown) and, once
  it has exited, a new one started. One that cannot start (a syntax error in the edited file)
  logs its one-line error; nothing is retried until the next change.
- Everything else is the supervisor's: signals stop the whole tree, and a server process whose
  supervisor dies shuts itself down; the admin listener serves across restarts.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from monoceros.config import Config, ReloadSettings
from monoceros.supervisor import Supervisor
from monoceros.worker import Worker

logger = logging.getLogger("monoceros.error")

DEFAULT_INCLUDES = ("*.py",)
DEFAULT_EXCLUDES = (".*", ".py[cod]", ".sw.*", "~*")


@dataclass(frozen=True)
class WatchedFiles:
    """The directories to watch, and which changed files in them count."""

    dirs: tuple[Path, ...]
    includes: tuple[str, ...]
    excludes: tuple[str, ...]
    exclude_dirs: tuple[Path, ...]

    @classmethod
    def resolve(cls, settings: ReloadSettings, cwd: Path) -> WatchedFiles:
        includes = [p for p in DEFAULT_INCLUDES if p not in settings.excludes]
        includes += [p for p in settings.includes if p not in settings.excludes]
        excludes = [p for p in DEFAULT_EXCLUDES if p not in settings.includes]
        exclude_dirs = _directories_named(settings.excludes, cwd)
        excludes += [p for p in settings.excludes if (cwd / p).resolve() not in exclude_dirs]
        candidates = [(cwd / d).resolve() for d in settings.dirs]
        candidates += _directories_named(settings.includes, cwd)
        dirs = [
            d
            for d in _outermost(candidates)
            if not any(d == x or x in d.parents for x in exclude_dirs)
        ]
        if not dirs:
            if settings.dirs:
                logger.warning(
                    "--reload-dir %s: no directory to watch there; watching %s",
                    ", ".join(settings.dirs),
                    cwd,
                )
            dirs = [cwd.resolve()]
        return cls(
            tuple(sorted(dirs)),
            tuple(dict.fromkeys(includes)),
            tuple(dict.fromkeys(excludes)),
            tuple(exclude_dirs),
        )

    def __call__(self, path: Path) -> bool:
        """Whether a change to `path` restarts the server."""
        for pattern in self.includes:
            if not path.match(pattern):
                continue
            if str(path).endswith(pattern):  # a file named outright: excludes do not apply
                return True
            if any(directory in path.parents for directory in self.exclude_dirs):
                return False
            return not any(path.match(exclude) for exclude in self.excludes)
        return False


def _directories_named(patterns: tuple[str, ...], cwd: Path) -> list[Path]:
    """The existing directories a pattern names, itself or by glob from `cwd` (".*" aside:
    it is meant for hidden files, not every hidden directory)."""
    found = []
    for pattern in patterns:
        if pattern == ".*":
            continue
        path = (cwd / pattern).resolve()
        if path.is_dir():
            found.append(path)
        else:
            found += [match.resolve() for match in cwd.glob(pattern) if match.is_dir()]
    return found


def _outermost(directories: list[Path]) -> list[Path]:
    """Existing directories, none inside another (watching the outer one sees it)."""
    kept: list[Path] = []
    for directory in sorted(set(directories), key=lambda path: len(path.parts)):
        if directory.is_dir() and not any(parent in kept for parent in directory.parents):
            kept.append(directory)
    return kept


class Reloader(Supervisor):
    role = "reloader"
    serving_what = "one server process, restarted on changes"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.target = 1  # --reload wins over --workers, as in uvicorn
        self.watched = WatchedFiles.resolve(config.reload, Path.cwd())
        self.changes: deque[list[Path]] = deque()
        self.awaiting_change = False  # a server process could not start: wait for an edit
        self._stop_watching = threading.Event()

    async def serve(self) -> int:
        logger.info(
            "Will watch for changes in these directories: %s",
            [str(directory) for directory in self.watched.dirs],
        )
        loop = asyncio.get_running_loop()
        watcher = threading.Thread(
            target=self._watch, args=(loop,), name="monoceros-reload", daemon=True
        )
        watcher.start()
        try:
            return await super().serve()
        finally:
            self._stop_watching.set()
            watcher.join(5.0)

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """The watcher thread: hand each batch of relevant changes to the loop."""
        from watchfiles import watch

        for changes in watch(
            *self.watched.dirs,
            watch_filter=None,
            stop_event=self._stop_watching,
            yield_on_timeout=True,
            ignore_permission_denied=True,
        ):
            paths = sorted({Path(path) for _, path in changes if self.watched(Path(path))})
            if paths:
                try:
                    loop.call_soon_threadsafe(self._record_changes, paths)
                except RuntimeError:  # the loop has closed: we are done
                    return
            if self._stop_watching.wait(self.config.reload.delay):
                return

    def _record_changes(self, paths: list[Path]) -> None:
        assert self._wakeup is not None
        self.changes.append(paths)
        self._wakeup.set()

    def _act(self, loop: asyncio.AbstractEventLoop) -> float | None:
        while self.changes:
            self._restart(self.changes.popleft())
        return super()._act(loop)

    def _restart(self, paths: list[Path]) -> None:
        if self.stopping:
            return
        logger.warning("Detected changes in %s: reloading", ", ".join(map(_shown, paths)))
        self.awaiting_change = False
        self.failures = 0
        self.next_start = 0.0
        for worker in self.workers:
            if worker.stop_reason is None:
                self._stop(worker, "reload")

    def _converge(self, loop: asyncio.AbstractEventLoop, now: float) -> None:
        # The old process is gone before the new one starts, as in uvicorn: an app that
        # holds a port or a file in its lifespan is never running twice.
        if self.awaiting_change or any(w.stop_reason is not None for w in self.workers):
            return
        super()._converge(loop, now)

    def _failed_start(
        self, loop: asyncio.AbstractEventLoop, worker: Worker, code: int | None
    ) -> None:
        self.awaiting_change = True
        logger.warning(
            "Server process [%d] could not start (exit code %s): waiting for a change",
            worker.pid,
            code,
        )


def _shown(path: Path) -> str:
    try:
        return f"'{path.relative_to(Path.cwd())}'"
    except ValueError:
        return f"'{path}'"
