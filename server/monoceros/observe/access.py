"""The access log: one line per finished request, written from here only."""

from __future__ import annotations

import logging

from monoceros.protocols.events import RequestFinished

logger = logging.getLogger("monoceros.access")


def log_request(record: RequestFinished) -> None:
    scope = record.scope
    client = scope["client"]
    query = scope["query_string"]
    target = scope["path"] + ("?" + query.decode("latin-1") if query else "")
    logger.info(
        '%s - "%s %r HTTP/%s" %d %s %dB %.2fms',
        f"{client[0]}:{client[1]}" if client else "-",
        scope["method"],
        target,  # repr: a %0A in the path must not start a new log line
        scope["http_version"],
        record.status,
        record.outcome,
        record.bytes_sent,
        record.duration * 1000,
    )
