"""Metric tallies: what every connection, request and WebSocket session adds to `/metrics`,
on the hot path. `HttpMetrics` is fed through the observer port (protocols/observer.py).

Why not prometheus-client's Histogram here: `.labels(...).observe()` costs ~1.7 us (a lock
and a label lookup) and a request feeds three histograms and a gauge, ~6 us, more than the
rest of our per-request work. Requests are instead tallied into plain lists (each bucket
found by comparing native numbers, not `bisect`), and counts are plain ints.
`observe/scrape.py` turns a `MetricsSnapshot` of them into metric families when `/metrics` is
scraped.

This module is compiled (setup.py), so its classes derive from nothing outside monoceros:
mypyc may build it where the dependencies cannot be seen, and a compiled class with an
unseen base crashes. The prometheus-client side lives in the plain `scrape.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from monoceros.config import DURATION_BUCKETS
from monoceros.observe.routes import RouteFinder, route_of
from monoceros.protocols.events import RequestFinished, SessionFinished, reported_status
from monoceros.types import ServerScope

# Body sizes in bytes: powers of four from 64 B to 64 MiB.
SMALLEST_SIZE_BUCKET: Final = 64
SIZE_BUCKET_FACTOR: Final = 4
SIZE_BUCKET_COUNT: Final = 11
SIZE_BUCKETS = tuple(
    float(SMALLEST_SIZE_BUCKET * SIZE_BUCKET_FACTOR**i) for i in range(SIZE_BUCKET_COUNT)
)
# The method labels, in the order of the tallies of requests in flight; any other method is
# _OTHER. Typed as a tuple of any length: mypyc keeps a fixed-length one unboxed, and boxes it
# anew each time it is indexed by a variable (a tuple made per request).
METHOD_LABELS: Final[tuple[str, ...]] = (
    *("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"),
    "_OTHER",
)
_METHOD_INDEX: Final = {method: index for index, method in enumerate(METHOD_LABELS[:-1])}
_OTHER_INDEX: Final = len(METHOD_LABELS) - 1
# The schemes of HTTP requests (proxy resolution gives no other), in the same tallies' order.
SCHEMES: Final = ("http", "https")
ACTIVE_SLOTS: Final = len(METHOD_LABELS) * len(SCHEMES)
# Beyond this many label sets, new ones are folded into one overflow series per status.
MAX_SERIES = 2000
OVERFLOW_ROUTE = "_overflow"
# A request series' labels: method, status, route, scheme, HTTP version ("1.1", "2"), and the
# error type ("" unless the app raised or the status is 5xx).
SeriesKey = tuple[str, int, str, str, str, str]
# The last traced request of a duration bucket: trace id, span id, seconds (an exemplar).
Exemplar = tuple[str, str, float]


class Series:
    """Non-cumulative bucket counts (+Inf last) and sums for one label set, and the duration
    buckets' exemplars (bucket index -> the last traced request in it; None until one)."""

    __slots__ = (
        "duration",
        "duration_sum",
        "exemplars",
        "request_size",
        "request_sum",
        "response_size",
        "response_sum",
    )

    def __init__(self, duration_buckets: int = len(DURATION_BUCKETS)) -> None:
        self.duration = [0] * (duration_buckets + 1)
        self.request_size = [0] * (len(SIZE_BUCKETS) + 1)
        self.response_size = [0] * (len(SIZE_BUCKETS) + 1)
        self.duration_sum = 0.0
        self.request_sum = 0
        self.response_sum = 0
        self.exemplars: dict[int, Exemplar] | None = None

    def add(self, other: Series) -> None:
        for mine, theirs in (
            (self.duration, other.duration),
            (self.request_size, other.request_size),
            (self.response_size, other.response_size),
        ):
            for index, count in enumerate(theirs):
                mine[index] += count
        self.duration_sum += other.duration_sum
        self.request_sum += other.request_sum
        self.response_sum += other.response_sum
        if other.exemplars:
            if self.exemplars is None:
                self.exemplars = {}
            self.exemplars.update(other.exemplars)


def duration_bucket(seconds: float, bounds: tuple[float, ...] = DURATION_BUCKETS) -> int:
    """The index of the first of `bounds` >= seconds (len(): +Inf)."""
    index = 0
    for bound in bounds:
        if seconds <= bound:
            break
        index += 1
    return index


def size_bucket(size: int) -> int:
    """The index of the first SIZE_BUCKETS bound >= size (len(): +Inf)."""
    index = 0
    bound = SMALLEST_SIZE_BUCKET
    while size > bound and index < SIZE_BUCKET_COUNT:
        bound *= SIZE_BUCKET_FACTOR
        index += 1
    return index


def _add(counts: list[int], index: int, amount: int) -> None:
    # Not `counts[index] += amount`: mypyc compiles that to a generic object addition.
    counts[index] = counts[index] + amount


def method_index(method: str) -> int:
    """`method`'s place in METHOD_LABELS."""
    if method == "GET":  # nearly every request: a compare costs a tenth of the lookup
        return 0
    return _METHOD_INDEX.get(method, _OTHER_INDEX)


def active_slot(method: str, scheme: str) -> int:
    """Where a request of `method` and `scheme` is tallied among the requests in flight: its
    method's label at `slot // 2`, its scheme at `slot % 2`."""
    return method_index(method) * 2 + (scheme == "https")


def method_label(method: str) -> str:
    return METHOD_LABELS[method_index(method)]


def error_label(record: RequestFinished, status: int) -> str:
    """OpenTelemetry's error.type: the exception's class if the app raised, else a 5xx status
    (a server error), else "" (none)."""
    if record.error_type is not None:
        return record.error_type
    return str(status) if status >= 500 else ""


class HttpMetrics:
    """The tallies of one server process, fed one event at a time (the Observer's methods)."""

    def __init__(self, duration_buckets: tuple[float, ...] = DURATION_BUCKETS) -> None:
        self.duration_buckets = duration_buckets
        # The app's own RouteFinder (observe/route_hooks.py), once it is loaded.
        self.find_route: RouteFinder | None = None
        self.series: dict[SeriesKey, Series] = {}
        # The last request's labels and their series: a server answers most requests alike,
        # and comparing six labels costs far less than boxing and hashing the key. It starts
        # with a status no request has, so the first request looks its series up.
        self._last_key: SeriesKey = ("", -1, "", "", "", "")
        self._last_series = Series(0)
        # A run: requests of the last series that fell in the same three buckets (duration,
        # request size, response size), counted here and added to the last series' lists
        # when the run ends or `settle` is called. Counting one is a native add; adding to the
        # three lists of boxed ints cost 700 instructions (each count past 256 a new int).
        self._run_buckets = (-1, -1, -1)
        self._run_length = 0
        self.app_exceptions = 0
        # Requests in flight, by active_slot(): no label key is built per request.
        self.active_requests = [0] * ACTIVE_SLOTS
        self.connections_accepted = 0
        self.connections_open = 0
        self.keepalive_reuses = 0
        self.rejections: dict[str, int] = {}  # reason -> count
        self.connection_rejections: dict[str, int] = {}  # reason -> count
        self.websocket_sessions = 0
        self.websocket_closes: dict[int, int] = {}  # close code -> sessions
        self.loop_blocks = 0

    def loop_blocked(self) -> None:
        """The event loop went longer than --loop-block-threshold without running (counted
        by the watchdog's thread, observe/watchdog.py)."""
        self.loop_blocks += 1

    def connection_opened(self) -> None:
        self.connections_accepted += 1
        self.connections_open += 1

    def connection_closed(self) -> None:
        self.connections_open -= 1

    def connection_rejected(self, reason: str) -> None:
        rejections = self.connection_rejections
        rejections[reason] = rejections.get(reason, 0) + 1

    def request_started(self, scope: ServerScope, reused: bool) -> None:
        _add(self.active_requests, active_slot(scope["method"], scope["scheme"]), 1)
        if reused:
            self.keepalive_reuses += 1

    def request_finished(self, record: RequestFinished) -> None:
        # As it started, whatever the app did to its scope since.
        slot = active_slot(record.method, record.scheme)
        _add(self.active_requests, slot, -1)
        self._tally(record, METHOD_LABELS[slot >> 1])

    def request_rejected(self, record: RequestFinished | None, reason: str) -> None:
        self.rejections[reason] = self.rejections.get(reason, 0) + 1

    def session_started(self) -> None:
        self.websocket_sessions += 1

    def session_finished(self, record: SessionFinished) -> None:
        self.websocket_sessions -= 1
        code = record.close_code
        self.websocket_closes[code] = self.websocket_closes.get(code, 0) + 1

    def observe(self, record: RequestFinished) -> None:
        """Tally a finished request into its series."""
        self._tally(record, method_label(record.method))

    def _tally(self, record: RequestFinished, method: str) -> None:
        if record.outcome == "rejected":
            return  # answered by the server itself: monoceros_requests_rejected_total has it
        scope = record.scope
        status = reported_status(record)
        if record.outcome == "error":
            self.app_exceptions += 1
        error = error_label(record, status)
        version = scope.get("http_version")
        if type(version) is not str:
            version = ""  # an app took it from its scope: a label must be a str to be scraped
        route = route_of(scope, self.find_route)
        key: SeriesKey = (method, status, route, record.scheme, version, error)
        if key == self._last_key:
            series = self._last_series
        else:
            series = self._series_of(key)
            self.settle()  # the run was the last series'
            self._last_key = key
            self._last_series = series
        duration = record.duration
        received = record.bytes_received
        sent = record.bytes_sent
        bucket = duration_bucket(duration, self.duration_buckets)
        buckets = (bucket, size_bucket(received), size_bucket(sent))  # unboxed: a C struct
        if buckets != self._run_buckets:
            self.settle()
            self._run_buckets = buckets
        self._run_length += 1
        series.duration_sum += duration
        series.request_sum += received
        series.response_sum += sent
        trace = record.trace
        if trace is not None:
            exemplars = series.exemplars
            if exemplars is None:
                exemplars = series.exemplars = {}
            exemplars[bucket] = (trace[0], trace[1], duration)

    def settle(self) -> None:
        """Add the current run to its series' bucket counts: before anything reads them."""
        length = self._run_length
        if length:
            series = self._last_series
            duration, request, response = self._run_buckets
            _add(series.duration, duration, length)
            _add(series.request_size, request, length)
            _add(series.response_size, response, length)
            self._run_length = 0

    def _series_of(self, key: SeriesKey) -> Series:
        """The series `key` is tallied in, made if new (past MAX_SERIES, its status's
        overflow series)."""
        key = _scrapable(key)
        series = self.series.get(key)
        if series is None:
            if len(self.series) >= MAX_SERIES:
                method, status, _, scheme, version, error = key
                key = (method, status, OVERFLOW_ROUTE, scheme, version, error)
                series = self.series.get(key)
            if series is None:
                series = self.series[key] = Series(len(self.duration_buckets))
        return series


def _scrapable(key: SeriesKey) -> SeriesKey:
    """`key` with the labels an app can choose left empty if they are no UTF-8 text (a lone
    surrogate): a scrape encodes every label, and one it cannot would fail every scrape after.
    Checked once per label set: the tally's next request alike does not come here."""
    method, status, route, scheme, version, error = key
    return (method, status, _utf8(route), scheme, _utf8(version), _utf8(error))


def _utf8(label: str) -> str:
    if label.isascii():
        return label
    try:
        label.encode("utf-8")
    except UnicodeEncodeError:
        return ""
    return label


@dataclass(slots=True)
class MetricsSnapshot:
    """Everything `/metrics` shows from one process's traffic, as plain picklable data: what a
    worker sends its supervisor, and what the supervisor sums over workers (`add`)."""

    series: dict[SeriesKey, Series] = field(default_factory=dict)
    app_exceptions: int = 0
    connections_accepted: int = 0
    keepalive_reuses: int = 0
    rejections: dict[str, int] = field(default_factory=dict)  # reason -> count
    connection_rejections: dict[str, int] = field(default_factory=dict)  # reason -> count
    websocket_closes: dict[int, int] = field(default_factory=dict)  # close code -> sessions
    loop_blocks: int = 0
    # Gauges: only live processes contribute (`add(..., gauges=False)` for exited ones).
    active_requests: list[int] = field(default_factory=lambda: [0] * ACTIVE_SLOTS)
    connections_open: int = 0
    websocket_sessions: int = 0

    def add(self, other: MetricsSnapshot, *, gauges: bool = True) -> None:
        for key, theirs in other.series.items():
            ours = self.series.get(key)
            if ours is None:
                ours = self.series[key] = Series(len(theirs.duration) - 1)
            ours.add(theirs)
        self.app_exceptions += other.app_exceptions
        self.connections_accepted += other.connections_accepted
        self.keepalive_reuses += other.keepalive_reuses
        self.loop_blocks += other.loop_blocks
        _add_counts(self.rejections, other.rejections)
        _add_counts(self.connection_rejections, other.connection_rejections)
        _add_counts(self.websocket_closes, other.websocket_closes)
        if gauges:
            for slot, count in enumerate(other.active_requests):
                self.active_requests[slot] += count
            self.connections_open += other.connections_open
            self.websocket_sessions += other.websocket_sessions


def _add_counts(into: dict[Any, int], other: dict[Any, int]) -> None:
    for key, count in other.items():
        into[key] = into.get(key, 0) + count


def snapshot_of(http: HttpMetrics) -> MetricsSnapshot:
    """A view of one process's tallies (shared, not copied: pickling copies), settled."""
    http.settle()
    return MetricsSnapshot(
        series=http.series,
        app_exceptions=http.app_exceptions,
        connections_accepted=http.connections_accepted,
        keepalive_reuses=http.keepalive_reuses,
        rejections=http.rejections,
        connection_rejections=http.connection_rejections,
        active_requests=http.active_requests,
        connections_open=http.connections_open,
        websocket_closes=http.websocket_closes,
        websocket_sessions=http.websocket_sessions,
        loop_blocks=http.loop_blocks,
    )
