"""What a connection reports, and the only way it reports: the port between `protocols/` and
`observe/`, which implements it. Nothing in `protocols/` counts, logs or knows a metric; it
calls these methods at the moments they name.

Pairing: every `request_started` is followed by exactly one `request_finished` (whatever its
outcome); `request_rejected` stands alone for input the server answered itself before any app
saw it, or, with no record, for a request it turned away (`--limit-concurrency`) or one whose
body it refused after the app had started (that request's own record then still comes through
`request_finished`). Every `session_started` is followed by one `session_finished`.
"""

from __future__ import annotations

from typing import Final, Protocol

from monoceros.protocols.events import RequestFinished, SessionFinished
from monoceros.types import ServerScope

# Why the server answered a request itself, by the status it sent: the `reason` passed to
# `Observer.request_rejected` (and the label of monoceros_requests_rejected_total).
REJECTION_REASONS: Final[dict[int, str]] = {
    400: "bad_request",
    408: "header_timeout",
    413: "body_too_large",
    414: "uri_too_long",
    431: "headers_too_large",
    501: "unsupported_coding",
    503: "overload",
}
# A request body that stopped arriving for --timeout-request-body (answered 408 when no
# response had begun).
BODY_TIMEOUT: Final = "body_timeout"
# Every reason `request_rejected` may be given (the metric's label values).
REASONS: Final = (*REJECTION_REASONS.values(), BODY_TIMEOUT)


# Why a connection was refused before any request: `Observer.connection_rejected`'s reason
# (the label of monoceros_connections_rejected_total).
CONNECTION_REJECTION_REASONS: Final = (
    "proxy_header_missing",  # a peer that must send a PROXY header sent HTTP instead
    "proxy_header_invalid",  # malformed, or longer than we accept
    "proxy_header_timeout",  # not complete within the header deadline
    "proxy_header_untrusted",  # a peer not in --forwarded-allow-ips sent one
)


class Observer(Protocol):
    def connection_opened(self) -> None: ...

    def connection_closed(self) -> None: ...

    def connection_rejected(self, reason: str) -> None:
        """A connection refused before any request (a PROXY protocol header missing, invalid,
        late or from a peer not trusted to send one); `connection_closed` follows."""

    def request_started(self, scope: ServerScope, reused: bool) -> None:
        """A request goes to the app, its `scope` as the server made it (the app has not run
        yet); `reused`: not the connection's first."""

    def request_finished(self, record: RequestFinished) -> None: ...

    def request_rejected(self, record: RequestFinished | None, reason: str) -> None: ...

    def session_started(self) -> None:
        """A WebSocket upgrade request was handed to a session (accepted or not)."""

    def session_finished(self, record: SessionFinished) -> None: ...


class Unobserved:
    """Notes nothing: a base for an observer that cares about some events only (this module
    is not compiled, so a Python class may derive from it). A connection whose context has
    no observer at all (the admin listener's) builds no records."""

    def connection_opened(self) -> None:
        pass

    def connection_closed(self) -> None:
        pass

    def connection_rejected(self, reason: str) -> None:
        pass

    def request_started(self, scope: ServerScope, reused: bool) -> None:
        pass

    def request_finished(self, record: RequestFinished) -> None:
        pass

    def request_rejected(self, record: RequestFinished | None, reason: str) -> None:
        pass

    def session_started(self) -> None:
        pass

    def session_finished(self, record: SessionFinished) -> None:
        pass
