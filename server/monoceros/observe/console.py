"""The access line of the console format, for people: compact, in the shape of structlog's
console lines (timestamp, [level], message), coloured when --use-colors says so.

    2026-11-25T13:12:41.016007Z [info     ] GET /items/1?page=2 200 0.8ms
    2026-11-25T13:12:44.250112Z [info     ] WEBSOCKET /ws 101 close 1000 3.21s

The path and query are escaped as in the JSON line, so a control character cannot start a
line of its own.
"""

from __future__ import annotations

from monoceros.observe.access import Timestamps, error_type
from monoceros.observe.literals import json_literal
from monoceros.protocols.events import RequestFinished, SessionFinished, reported_status

RESET = "\x1b[0m"
BRIGHT = "\x1b[1m"
DIM = "\x1b[2m"
RED = "\x1b[31m"
GREEN = "\x1b[32m"
YELLOW = "\x1b[33m"
CYAN = "\x1b[36m"
# structlog pads levels to the longest name it knows ("exception", 9 letters).
LEVEL_WIDTH = 9


class ConsoleAccessLine:
    def __init__(self, colors: bool) -> None:
        self.colors = colors
        self._timestamps = Timestamps()  # the JSON line's: the same stamp, made the same way

    def request(self, record: RequestFinished, ended: int) -> bytes:
        """`ended`: when the request finished (time.time_ns())."""
        scope = record.scope
        status = reported_status(record)
        level = "error" if record.outcome == "error" else "info"
        target = _target(scope.get("path"), scope.get("query_string"))
        parts = [
            self._paint(str(record.method), BRIGHT),
            target,
            self._paint(str(status), _status_color(status)),
            self._paint(duration_text(record.duration), DIM),
        ]
        failure = error_type(record, status)
        if failure is not None and not failure.isdigit():
            parts.append(self._paint(failure, RED))
        return self._line(level, " ".join(parts), ended)

    def session(self, record: SessionFinished, ended: int) -> bytes:
        scope = record.scope
        parts = [
            self._paint("WEBSOCKET", BRIGHT),
            _target(scope.get("path"), scope.get("query_string")),
            self._paint(str(record.status), _status_color(record.status)),
            f"close {record.close_code}",
            self._paint(duration_text(record.duration), DIM),
        ]
        return self._line("info", " ".join(parts), ended)

    def _line(self, level: str, message: str, ended: int) -> bytes:
        stamp = (b"%s%s%sZ" % self._timestamps.at(ended)).decode()
        shown = self._paint(level.ljust(LEVEL_WIDTH), RED if level == "error" else GREEN)
        return f"{self._paint(stamp, DIM)} [{shown}] {message}\n".encode("utf-8", "replace")

    def _paint(self, text: str, color: str) -> str:
        return f"{color}{text}{RESET}" if self.colors else text


def duration_text(seconds: float) -> str:
    """0.8ms, 42ms, 1.25s."""
    if seconds < 0.01:
        return f"{seconds * 1000:.1f}ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    return f"{seconds:.2f}s"


def _target(path: object, query: object) -> str:
    text = "" if path is None else _escaped(path)  # None: the app took it from its scope
    if query:
        text += "?" + _escaped(query)
    return text


def _escaped(value: object) -> str:
    """`value` as the JSON line would show it (a string), without the quotes."""
    return json_literal(value)[1:-1].decode("utf-8")


def _status_color(status: int) -> str:
    if status >= 500:
        return RED
    if status >= 400:
        return YELLOW
    if status >= 300:
        return CYAN
    return GREEN
