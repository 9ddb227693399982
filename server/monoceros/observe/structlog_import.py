"""structlog, imported once the log format is known, and without rich when the logs are JSON.

structlog imports rich at import time when it is installed (FastAPI's `[standard]` extra brings
it), for console tracebacks and pretty-printed locals: about 35 ms of a 140 ms start-up, paid
before the first request. JSON lines never use it (their tracebacks are plain text from
`format_exc_info`), so for them structlog is imported with rich hidden. Only that import is
affected: the app can import rich as usual afterwards. What it changes: an app that renders its
own logs with structlog's ConsoleRenderer while the server writes JSON gets plain tracebacks.
"""

from __future__ import annotations

import sys

# The console-traceback renderers structlog looks for at import time.
CONSOLE_RENDERERS = ("rich", "better_exceptions")


def load_structlog(*, console: bool) -> None:
    """Import structlog, without its console renderers unless the logs are for a console."""
    if "structlog" in sys.modules or console:
        return
    hidden = [name for name in CONSOLE_RENDERERS if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # `import rich` now raises ImportError
    try:
        import structlog  # noqa: F401
    finally:
        for name in hidden:
            del sys.modules[name]
