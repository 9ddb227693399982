"""The access log through stdlib `logging`, when a --log-config file gives the access logger
(`monoceros.access`, or `uvicorn.access`, which configures it) filters or handlers of its own.

Otherwise the access log bypasses `logging` altogether: each line is rendered to bytes and
written to the shared output, at a fraction of the cost of a LogRecord. With filters or
handlers configured, each line also becomes a LogRecord, shaped as uvicorn's access records
(its message and arguments: client address, method, path with query, HTTP version, status),
so that filters and formatters written for uvicorn work unchanged. It carries the line's own
fields as attributes too (`record.status`, `record.path`, `record.duration`, ...), and the
rendered line, which the process's own handler writes as it is: a filter that returns False
drops the line, a handler of the file's own gets the record, and `propagate: false` keeps the
line off stdout. This costs a LogRecord per request, only when configured.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from monoceros.protocols.events import RequestFinished, SessionFinished, reported_status
from monoceros.types import ServerScope

UVICORN_FORMAT = '%s - "%s %s HTTP/%s" %d'
UVICORN_WEBSOCKET_FORMAT = '%s - "WebSocket %s" %d'


def configured(logger: logging.Logger) -> bool:
    """Whether a --log-config file gave the access logger filters or handlers."""
    return bool(logger.filters or logger.handlers)


class LoggedAccess:
    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def request(self, record: RequestFinished, line: bytes) -> None:
        scope = record.scope
        status = reported_status(record)
        level = logging.ERROR if record.outcome == "error" else logging.INFO
        args = (
            _client(scope),
            record.method,
            _path_with_query(scope),
            scope.get("http_version"),
            status,
        )
        fields = {
            "method": record.method,
            "path": scope.get("path"),
            "status": status,
            "outcome": record.outcome,
            "duration": record.duration,
            "request_id": record.request_id,
        }
        self._emit(level, UVICORN_FORMAT, args, fields, line)

    def session(self, record: SessionFinished, line: bytes) -> None:
        scope = record.scope
        args = (_client(scope), _path_with_query(scope), record.status)
        fields = {
            "path": scope.get("path"),
            "status": record.status,
            "close_code": record.close_code,
            "duration": record.duration,
            "request_id": record.request_id,
        }
        self._emit(logging.INFO, UVICORN_WEBSOCKET_FORMAT, args, fields, line)

    def _emit(
        self,
        level: int,
        message: str,
        args: tuple[object, ...],
        fields: dict[str, object],
        line: bytes,
    ) -> None:
        logger = self.logger
        if not logger.isEnabledFor(level):
            return
        fields["monoceros_line"] = line
        log_record = logger.makeRecord(logger.name, level, "", 0, message, args, None, extra=fields)
        logger.handle(log_record)  # its filters, then the handlers up the hierarchy


def _client(scope: ServerScope) -> str:
    client = scope.get("client")
    if isinstance(client, tuple) and len(client) == 2:
        return f"{client[0]}:{client[1]}"
    return ""


def _path_with_query(scope: ServerScope) -> str:
    path = quote(str(scope.get("path", "")), errors="backslashreplace")  # an app's surrogates
    query = scope.get("query_string")
    if isinstance(query, bytes) and query:
        return f"{path}?{query.decode('ascii', 'replace')}"
    return path
