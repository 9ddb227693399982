"""monoceros: a production ASGI server on uvloop and httptools."""

from __future__ import annotations

from typing import Any

from monoceros._version import __version__
from monoceros.config import Config
from monoceros.server import Server
from monoceros.types import ASGIApp

__all__ = ["Config", "Server", "__version__", "run", "serve"]


def serve(config: Config) -> int:
    """Configure logging, then run one server or (with --workers) a supervisor until it
    stops; return the exit code. Both `run()` and the command line come through here."""
    import logging

    from monoceros.buildinfo import log_build
    from monoceros.observe.logging import configure_logging_for

    configure_logging_for(config)
    log_build(logging.getLogger("monoceros.error"))
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
