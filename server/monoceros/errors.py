"""Errors that end the process before it serves, each with a one-line message and an exit code."""


class StartupError(Exception):
    """The server cannot start; `str(error)` is the one line shown to the operator."""

    exit_code = 1


class LifespanStartupFailed(StartupError):
    """The app's lifespan startup failed (uvicorn uses exit code 3 for this too)."""

    exit_code = 3


class ClientDisconnected(OSError):
    """Raised by `send()` once the client is gone, as ASGI spec 2.4 asks of servers."""
