"""monoceros: a production ASGI server on uvloop and httptools."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monoceros._version import __version__
from monoceros.config import Config
from monoceros.server import Server
from monoceros.types import ASGIApp

__all__ = ["Config", "Server", "__version__", "run", "serve"]


def serve(config: Config, notes: Sequence[str] = ()) -> int:
    """Configure logging, then run one server, a supervisor (--workers) or a reloader
    (--reload) until it stops; return the exit code. Both `run()` and the command line come
    through here; `notes` are lines for the startup log (the command line's: which UVICORN_*
    variables it read)."""
    import logging

    from monoceros.buildinfo import log_build
    from monoceros.differences import startup_notes
    from monoceros.importer import make_importable
    from monoceros.observe.logging import configure_logging_for

    make_importable(config.app_dir)  # first: --log-config may name classes from there
    configure_logging_for(config)
    logger = logging.getLogger("monoceros.error")
    log_build(logger)
    for note in notes:
        logger.info("%s", note)
    for note in startup_notes(config):
        logger.warning("%s", note)
    if config.env_file:  # here, once: server processes started from here inherit it
        from monoceros.environment import load_env_file  # python-dotenv: 5 ms, if asked for

        load_env_file(config.env_file)
    if config.reload.enabled:
        from monoceros.reloader import Reloader

        return Reloader(config).run()
    if config.supervised:
        from monoceros.supervisor import Supervisor

        return Supervisor(config).run()
    return Server(config).run()


def run(app: str | ASGIApp, **options: Any) -> None:
    """Serve `app` with uvicorn-style options, e.g. `run(app, host="0.0.0.0", port=8000)`.

    Raises SystemExit with a non-zero code when the server cannot start, as uvicorn.run does.
    """
    code = serve(Config.from_options(app, **options))
    if code:
        raise SystemExit(code)
