"""Observability: logs, metrics and the admin listener, fed from one place.

The protocol hands each finished request, as one `RequestFinished` record, to the single
callable `combine()` builds (ServerState.on_request_finished): it updates the metrics and
writes the access-log line. Nothing else logs requests.
"""

from __future__ import annotations

from collections.abc import Callable

from monoceros.protocols.events import RequestFinished

RequestObserver = Callable[[RequestFinished], None]


def combine(*observers: RequestObserver | None) -> RequestObserver | None:
    """One callable for the protocol to call, or None when nothing observes requests."""
    active = [observer for observer in observers if observer is not None]
    if not active:
        return None
    if len(active) == 1:
        return active[0]
    first, second = active[0], active[1]
    if len(active) == 2:

        def both(record: RequestFinished) -> None:
            first(record)
            second(record)

        return both

    def every(record: RequestFinished) -> None:
        for observer in active:
            observer(record)

    return every
