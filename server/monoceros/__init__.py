"""monoceros: a production ASGI server on uvloop and httptools."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from monoceros.config import Config
from monoceros.server import Server
from monoceros.types import ASGIApp

__all__ = ["Config", "Server", "__version__", "run"]


def run(app: str | ASGIApp, **options: Any) -> None:
    """Serve `app` with uvicorn-style options, e.g. `run(app, host="0.0.0.0", port=8000)`.

    Raises SystemExit with a non-zero code when the server cannot start, as uvicorn.run does.
    """
    from monoceros.observe.logging import configure_logging, resolve_log_format

    config = Config.from_options(app, **options)
    configure_logging(config.log_level, resolve_log_format(config), config.observe.log_config)
    if config.supervised:
        from monoceros.supervisor import Supervisor

        code = Supervisor(config).run()
    else:
        code = Server(config).run()
    if code:
        raise SystemExit(code)
