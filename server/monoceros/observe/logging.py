"""Logging setup for the server's own records and the access log.

Server and application records go through stdlib `logging`, configured here once.
"""

from __future__ import annotations

import logging
import sys

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

_LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE,
}


def configure_logging(level: str) -> None:
    """Send `monoceros.*` records to stderr at `level` (uvicorn's `--log-level` names)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s [%(name)s] %(message)s", "%Y-%m-%dT%H:%M:%S%z")
    )
    root = logging.getLogger("monoceros")
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level])
    root.propagate = False
