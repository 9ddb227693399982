"""HTTP/1.1 on asyncio.Protocol + httptools: one `HttpProtocol` per connection.

The connection parses, enforces limits, builds the scope and hands each request to a
`RequestCycle` (cycle.py). It owns keep-alive, pipelining and the connection's deadlines;
the cycle owns one request's ASGI conversation.
"""

from __future__ import annotations

import asyncio
import enum
import math
from typing import IO, Any, Final, cast
from urllib.parse import unquote

import httptools

from monoceros.protocols.cycle import RequestCycle, service_unavailable
from monoceros.protocols.events import RequestFinished
from monoceros.protocols.flow_control import HIGH_WATER, FlowControl
from monoceros.protocols.head import error_response
from monoceros.protocols.state import ServerState
from monoceros.protocols.websocket import WebSocketProtocol
from monoceros.proxy import resolve_scope
from monoceros.types import ASGIApp, Scope

# How late a deadline may fire: the server's housekeeping tick (see server.py).
TICK: Final = 0.25
# How long a connection accepted just before a graceful shutdown may take to send its request.
FRESH_CONNECTION_GRACE: Final = 0.5
FILE_CHUNK: Final = 256 * 1024
# Parsed requests that may wait behind the one being answered. What a client pipelines beyond
# them waits as the bytes it arrived as, with reading paused, and is parsed as they are
# answered (uvicorn queues one, h11 parses one at a time): a read full of tiny requests costs
# its own size in memory, not a RequestCycle per request.
MAX_QUEUED: Final = 1
# A request head ends at the first CRLF CRLF; it is where parsing may stop.
_HEAD_END: Final = b"\r\n\r\n"
_METHODS = {
    method.encode(): method
    for method in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT")
}
_HTTP_VERSIONS = ("1.1", "1.0")


class ConnectionState(enum.Enum):
    IDLE = "waiting for a request (keep-alive deadline)"
    READING_HEAD = "receiving a request head (header deadline)"
    BUSY = "a request is with the app (no deadline)"
    CLOSED = "closed"


class _Overflow(Exception):
    """Raised from on_message_begin: a request began beyond those that may wait parsed."""


# What HttpProtocol._parse reports (besides an offset after an upgrade request's head).
_PARSED: Final = 0
_STOPPED: Final = -1
_OVERFLOW: Final = -2
_NO_LIMIT: Final = 1 << 30


class Reject(Exception):
    """Raised from parser callbacks: answer with `status` and close."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class HttpProtocol(asyncio.Protocol):
    def __init__(self, app: ASGIApp, state: ServerState, scheme: str = "http") -> None:
        self.app = app
        self.state = state
        self.limits = state.settings.limits
        self.root_path = state.settings.root_path
        self.scheme = scheme
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport
        self.flow: FlowControl
        self.peer: tuple[str, int] | None = None
        self.server_address: tuple[str, int] | None = None
        self.conn_state = ConnectionState.IDLE
        self.deadline = math.inf
        self.closing = False
        self.cycle: RequestCycle | None = None  # the request the app is answering
        # Parsed, waiting for their turn (a list: it holds one or two, and mypyc's list
        # operations are native where a deque's are method calls).
        self._pipeline: list[RequestCycle] = []
        self._unparsed = b""  # received beyond MAX_QUEUED requests: parsed as they are answered
        self._message: RequestCycle | None = None  # the request whose body is being parsed
        # The status owed for input the parser refused (0: none); once set, nothing more is
        # parsed on this connection.
        self._refused = 0
        self._max_requests = state.settings.limit_max_requests
        self._request_id_header = state.settings.request_id_header
        # Whether headers from this peer (X-Request-ID, proxy headers) may be believed.
        self.peer_trusted = False
        self._proxy = state.settings.proxy
        # scope["extensions"]["monoceros.peer"]: the direct peer, whatever proxy headers say.
        self._peer_extension: dict[str, object] = {}
        self._served = 0  # requests started on this connection
        self._limit_concurrency = state.settings.limit_concurrency
        # An `Upgrade` header's value, so other requests pay one attribute test. A WebSocket
        # upgrade we serve waits here as its scope for HttpParserUpgrade; any other upgrade
        # is ignored (RFC 9110 section 7.8), and a body it announced is parsed afterwards.
        self._upgrade: bytes | None = None
        self._upgrade_scope: Scope | None = None
        self._body_after_upgrade = b""  # the framing head of that body, for the parser
        self._continuing = False  # the parser is reading that framing head: not a request
        self._ws = state.settings.ws
        # Fields of a chunked body's trailer section so far (its bytes count in _header_bytes),
        # and whether the parser may be inside that section (a chunk header with no data yet).
        self._trailer_fields = 0
        self._in_trailers = False
        # How many parsed requests may wait when the parser begins another (`_feed` sets it).
        self._room = MAX_QUEUED + 1
        self._reset_head(parsing=False)

    def _reset_head(self, parsing: bool = True) -> None:
        self._parsing_head = parsing
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._section_fed = 0  # bytes fed while a head (or a trailer section) was unfinished
        self._hosts = 0
        self._expect_continue = False
        self._request_id: bytes | None = None
        self._content_length = -1
        self._transfer_encoding: bytes | None = None
        self._trailer_fields = 0

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but quack like one.
        self.transport = transport = cast(asyncio.Transport, transport)
        self.flow = FlowControl(transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.peer = (str(peer[0]), int(peer[1]))
            local = transport.get_extra_info("sockname")
            self.server_address = (str(local[0]), int(local[1]))
        # Trust is decided once per connection; only a trusted peer's requests pay for proxy.py.
        proxy = self._proxy
        self.peer_trusted = proxy.enabled and proxy.trusted.trusts_peer(self.peer)
        self._peer_extension = {"address": self.peer, "trusted": self.peer_trusted}
        state = self.state
        state.connections.add(self)
        state.connections_accepted += 1
        self._wait_for_request(self.limits.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn_state = ConnectionState.CLOSED
        self.deadline = math.inf
        self.flow.connection_lost()
        if self.cycle is not None:
            self.cycle.client_gone()
        for waiting in self._pipeline:
            waiting.client_gone()
        self._pipeline.clear()
        self._unparsed = b""
        self.state.connection_closed(self)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # the connection is being answered with an error and closed
        if self._unparsed:  # requests are waiting already: these bytes wait behind them
            self._unparsed += data
            self.flow.pause_reading()
            return
        self._feed(data)

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    # -- parsing -------------------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        """Parse `data`. A request starts once the bytes in hand of its body have parsed
        cleanly too, so one whose framing the parser refuses never reaches the app.

        Between requests, all of `data` goes to the parser at once (one request per read is
        the common case), with `on_message_begin` refusing to begin more requests than may
        wait; if it must refuse, nothing parsed from `data` has started yet, so a fresh
        parser takes the same bytes again piece by piece, each piece ending where a request
        head may end. What is left past MAX_QUEUED waiting requests waits unparsed."""
        start, end = 0, len(data)
        careful = False
        while start < end:
            message = self._message
            if message is None and len(self._pipeline) >= MAX_QUEUED:
                self._unparsed = data[start:]
                self.flow.pause_reading()
                return
            if careful or message is not None or self._parsing_head:
                stop = self._piece_end(data, start, end)
                self._room = _NO_LIMIT  # a piece completes at most one request head
            else:
                stop = end
                self._room = MAX_QUEUED if self.cycle is not None else MAX_QUEUED + 1
            queued = len(self._pipeline)
            piece = data if stop - start == end else memoryview(data)[start:stop]
            outcome = self._parse(piece)
            if outcome == _OVERFLOW:
                self._rewind(queued)
                careful = True
                continue
            if outcome == _STOPPED:  # refused (a 400 is owed after them), or a CONNECT
                if self.cycle is None and self._pipeline:
                    self._start(self._pipeline.pop(0))
                return
            if outcome == _PARSED:
                start = stop
            elif self._upgrade_scope is not None:
                self._switch_to_websocket(self._upgrade_scope, data[start + outcome :])
                return
            else:
                start += outcome  # an upgrade we ignored: HTTP/1.1 goes on after its head
            if self.cycle is None and self._pipeline:
                waiting = self._pipeline[0]
                if waiting is not self._message or start >= end:
                    self._start(self._pipeline.pop(0))

    def _rewind(self, queued: int) -> None:
        """Forget the requests the last piece began (none has started): the parser was
        between requests where that piece began, and a fresh one is too."""
        while len(self._pipeline) > queued:
            self._pipeline.pop()
        self._message = None
        self._upgrade = None
        self._body_after_upgrade = b""
        self.parser = httptools.HttpRequestParser(self)
        self._reset_head(parsing=False)

    def _piece_end(self, data: bytes, start: int, end: int) -> int:
        """Where the next piece of `data` ends: after the body being parsed if its length is
        known, else after the next CRLF CRLF (so at most one request head ends per piece)."""
        message = self._message
        if message is not None and not self._parsing_head and self._transfer_encoding is None:
            remaining = self._content_length - message.bytes_received
            if remaining > 0:
                return min(end, start + remaining)
        if data[start : start + 1] in (b"\n", b"\r"):
            # A CRLF CRLF (of a head, or of a chunked body's end) may have begun in the
            # previous read: end the piece at the first LF, so no second one ends in it.
            lf = data.find(b"\n", start, start + 3)
            if lf >= 0:
                return lf + 1
        found = data.find(_HEAD_END, start)
        return end if found < 0 else found + 4

    def _parse(self, piece: bytes | memoryview) -> int:
        """Feed one piece to the parser: _PARSED, _STOPPED (refused, or closing), _OVERFLOW
        (a request began beyond `self._room`), or the offset in `piece` after the head of a
        request that asked for an upgrade."""
        counting = self._parsing_head or self._in_trailers
        if counting and self._section_fed > self._field_budget():
            self._reject(431)
            return _STOPPED
        try:
            self.parser.feed_data(piece)
        except httptools.HttpParserUpgrade as exc:
            return self._upgrade_requested(exc.args[0])
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Overflow):
                return _OVERFLOW
            self._reject(cause.status if isinstance(cause, Reject) else 400)
            return _STOPPED
        except httptools.HttpParserError:
            self._reject(400)
            return _STOPPED
        if counting and (self._parsing_head or self._in_trailers):
            self._section_fed += len(piece)
        return _PARSED

    def _upgrade_requested(self, offset: int) -> int:
        """The parser stopped after a request that asked for an upgrade (or a CONNECT) at
        `offset` in the piece: where to go on, or -1 to stop parsing."""
        if self._upgrade_scope is not None:
            return offset  # a WebSocket session takes over the connection (`_feed`)
        if self._upgrade is None:
            # CONNECT: answered as plain HTTP; what follows it is a tunnel's, not HTTP.
            self.closing = True
            self.flow.pause_reading()
            return _STOPPED
        # An upgrade we do not perform (RFC 9110 section 7.8): HTTP/1.1 goes on. The parser
        # skipped the request's body, so it is given the body's framing head first (a request
        # nobody sees), and the body that follows goes to the request's cycle.
        self._upgrade = None
        framing, self._body_after_upgrade = self._body_after_upgrade, b""
        if framing:
            self._continuing = True
            self.parser.feed_data(framing)
        return offset

    # -- httptools callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if len(self._pipeline) >= self._room and not self._continuing:
            raise _Overflow
        self._reset_head()
        if self.conn_state is ConnectionState.IDLE:
            self.conn_state = ConnectionState.READING_HEAD
            self.deadline = self.state.now + self.limits.header_timeout + TICK

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self.limits.max_request_line:
            raise Reject(414)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._parsing_head:
            self._trailer_field(name, value)
            return
        name = name.lower()
        if name == b"host":
            self._hosts += 1
        elif name == b"content-length":
            self._content_length = int(value)
        elif name == b"transfer-encoding":
            codings = self._transfer_encoding
            self._transfer_encoding = value if codings is None else codings + b"," + value
        elif name == b"expect" and value.lower() == b"100-continue":
            self._expect_continue = True
        elif name == self._request_id_header:
            self._request_id = value
        elif name == b"upgrade":
            self._upgrade = value
        self._headers.append((name, value))
        self._header_bytes += len(name) + len(value)
        if len(self._headers) > self.limits.max_header_count:
            raise Reject(431)
        if self._header_bytes > self.limits.max_header_bytes:
            raise Reject(431)

    def _trailer_field(self, name: bytes, value: bytes) -> None:
        """A field of a chunked body's trailer section: not passed to the app, but counted
        with the head against the same limits (431 beyond)."""
        self._trailer_fields += 1
        self._header_bytes += len(name) + len(value)
        if len(self._headers) + self._trailer_fields > self.limits.max_header_count:
            raise Reject(431)
        if self._header_bytes > self.limits.max_header_bytes:
            raise Reject(431)

    def on_headers_complete(self) -> None:
        self._parsing_head = False
        if self._continuing:  # the framing head of an ignored upgrade's body
            self._continuing = False
            return
        parser = self.parser
        version = parser.get_http_version()
        if version not in _HTTP_VERSIONS:
            raise Reject(400)  # HTTP/0.9 or 2.0 spelled in an HTTP/1 request line
        if self._hosts > 1 or (self._hosts == 0 and version == "1.1"):
            raise Reject(400)  # RFC 9112 section 3.2: exactly one Host on HTTP/1.1
        max_body = self.limits.max_body_bytes
        if max_body and self._content_length > max_body:
            raise Reject(413)
        codings = self._transfer_encoding
        if codings is not None and codings.lower() != b"chunked":
            raise Reject(transfer_coding_status(codings))
        raw_method = parser.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("ascii")
        target = self._url
        if target[:1] == b"/":  # origin-form, nearly every request
            raw_path, _, query = target.partition(b"?")
        else:
            raw_path, query = _split_target(target)
        path = raw_path.decode("ascii")
        if "%" in path:
            path = unquote(path)
        root_path = self.root_path
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": version,
            "server": self.server_address,
            "client": self.peer,
            "scheme": self.scheme,
            "method": method,
            "root_path": root_path,
            "path": root_path + path,
            "raw_path": raw_path,
            "query_string": query,
            "headers": self._headers,
            "state": self.state.app_state.copy(),
            "extensions": {"http.response.pathsend": {}, "monoceros.peer": self._peer_extension},
        }
        if self._upgrade is not None and parser.should_upgrade():
            # `Connection: upgrade` too: HttpParserUpgrade follows this callback.
            if self._serves_websocket(method):
                self._upgrade_scope = _websocket_scope(scope)
                if self.peer_trusted:
                    resolve_scope(self._upgrade_scope, self._proxy)
                return
            # Ignored: the parser will skip the body, so keep its framing to feed it later.
            if codings is not None:
                self._body_after_upgrade = _CHUNKED_FRAMING
            elif self._content_length > 0:
                self._body_after_upgrade = _LENGTH_FRAMING % self._content_length
        else:
            self._upgrade = None
        if self.peer_trusted:
            resolve_scope(scope, self._proxy)
        # RFC 9110 section 10.1.1: no 100 (Continue) to an HTTP/1.0 client.
        expect_continue = self._expect_continue and version == "1.1"
        cycle = RequestCycle(scope, self, parser.should_keep_alive(), expect_continue)
        self._message = cycle
        if self._content_length <= 0 and codings is None:
            # No body follows (RFC 9112 section 6.3): the request is complete already, and
            # its response may keep the connection alive.
            cycle.more_body = False
        if self._request_id_header:
            cycle.request_id = self._choose_request_id()
        # Started once the piece it came in has parsed cleanly (`_feed`).
        self._pipeline.append(cycle)

    def _serves_websocket(self, method: str) -> bool:
        """An `Upgrade: websocket` GET we take over: --ws allows it, nothing is in flight on
        the connection, and the server is not shutting down."""
        return (
            self._ws is not None
            and method == "GET"
            and self._upgrade is not None  # for the type checker: the caller made sure
            and self._upgrade.lower() == b"websocket"
            and self.cycle is None
            and not self._pipeline
            and not self.state.draining
        )

    def on_body(self, body: bytes) -> None:
        self._in_trailers = False
        cycle = self._message
        assert cycle is not None
        max_body = self.limits.max_body_bytes
        if max_body and cycle.bytes_received + len(body) > max_body:
            raise Reject(413)
        cycle.body_received(body)
        if cycle.buffered > HIGH_WATER:
            self.flow.pause_reading()

    def on_chunk_header(self) -> None:
        # The last chunk (size 0) is followed by the trailer section, not by data: until data
        # comes, the bytes fed count against the head's budget.
        self._in_trailers = True
        self._section_fed = 0

    def on_message_complete(self) -> None:
        self._in_trailers = False
        if self._body_after_upgrade:
            return  # an ignored upgrade: its body is parsed next (`_upgrade_requested`)
        cycle = self._message
        if cycle is None:
            return  # a WebSocket upgrade: HttpParserUpgrade follows
        self._message = None
        if cycle.more_body:
            cycle.message_complete()

    # -- driving requests ----------------------------------------------------------------------

    def _start(self, cycle: RequestCycle) -> None:
        self.cycle = cycle
        self.conn_state = ConnectionState.BUSY
        self.deadline = math.inf
        app = self.app
        state = self.state
        state.total_requests += 1
        if state.total_requests == self._max_requests:
            state.request_limit_reached()
        if self._served:
            state.keepalive_reuses += 1
        self._served += 1
        if self._limit_concurrency is not None and state.over_capacity():
            app = service_unavailable
            state.count_rejection(503)
        state.active_requests += 1
        # The app runs in a real Task of its own, from its first step to its last:
        # asyncio.current_task(), asyncio.timeout() and anyio's cancel scopes (Starlette's
        # BaseHTTPMiddleware, FastAPI) need one, and create_task gives it its own copy of the
        # context. The Task starts on this loop iteration's ready queue: running the first
        # step outside a Task is faster but breaks those libraries, and 3.12's
        # eager_start=True measured 10-25% slower per request than this on 3.12 and 3.13.
        state.track(self.loop.create_task(cycle.run(app)))

    def response_complete(self, cycle: RequestCycle) -> None:
        """The cycle's last byte is written: reuse the connection, or close it."""
        if cycle is not self.cycle or self.conn_state is ConnectionState.CLOSED:
            return
        self.cycle = None
        if not cycle.keep_alive or self.closing:
            self.close()
            return
        if self._pipeline:
            self._start(self._pipeline.pop(0))
        if self._unparsed:  # room in the queue again: parse what waited
            waiting, self._unparsed = self._unparsed, b""
            self._feed(waiting)
        self._read_on()

    def _read_on(self) -> None:
        """After a response: read the next request, or send the error owed after it.
        (A method of its own: in `response_complete`, `self.cycle` reads as None to mypyc,
        which the calls there have changed.)"""
        if self.cycle is not None:
            if not self._unparsed and not self._refused:
                self.flow.resume_reading()  # the next request may be read while this one runs
        elif self._refused:
            self._send_error(self._refused)  # owed after the responses before it
        else:
            self.flow.resume_reading()
            if self._parsing_head:
                self.conn_state = ConnectionState.READING_HEAD
                self.deadline = self.state.now + self.limits.header_timeout + TICK
            else:
                self._wait_for_request(self.limits.keep_alive_timeout)

    def _switch_to_websocket(self, scope: Scope, rest: bytes) -> None:
        """Hand the transport to a WebSocket session; this connection object is done."""
        assert self._ws is not None
        ws_request_id = self._choose_request_id() if self._request_id_header else None
        session = WebSocketProtocol(
            self.app, self.state, self._ws, scope, self.transport, self.peer, ws_request_id
        )
        self.transport.set_protocol(session)
        self.conn_state = ConnectionState.CLOSED
        self.deadline = math.inf
        self.state.connection_closed(self)  # first: the session counts as this connection
        session.start(rest)

    def _wait_for_request(self, timeout: float) -> None:
        self.conn_state = ConnectionState.IDLE
        self.deadline = self.state.now + timeout + TICK

    def _reject(self, status: int) -> None:
        """The parser refused the request being parsed: nothing more is parsed. The requests
        before it are answered first, in order; then `status`, and the connection closes."""
        self.flow.pause_reading()
        self._refused = status
        self._unparsed = b""
        message, self._message = self._message, None
        if message is not None and message is not self.cycle:
            self._pipeline.remove(message)  # never started: the app never hears of it
        if message is not None and message is self.cycle:
            # Its body broke while the app was answering it: the app sees a disconnect.
            self.state.count_rejection(status)
            if message.response_begun():
                message.abandon(message.status, "aborted")
                self.abort()  # a response is under way: cutting it short is the only signal
            else:
                message.abandon(status, "rejected")
                head_only = message.is_head
                self.transport.write(
                    error_response(status, self.state.default_headers, head_only=head_only)
                )
                self.close()
        elif self.cycle is None and not self._pipeline:
            self._send_error(status)
        # else: sent once the responses before it are out (`response_complete`)

    def _choose_request_id(self) -> str:
        """The proxy's id when a trusted peer sent a sane one, else a fresh random one."""
        given = self._request_id
        if given is not None and self.peer_trusted and _valid_request_id(given):
            return given.decode("ascii")
        return self.state.request_ids.next()

    def _send_error(self, status: int) -> None:
        """Answer the request being parsed with `status` ourselves, and close."""
        state = self.state
        state.count_rejection(status)
        method = self.parser.get_method() if self._url else b""  # parsed before the target
        response = error_response(status, state.default_headers, head_only=method == b"HEAD")
        self.transport.write(response)
        self.close()
        if state.on_request_finished is not None:
            state.on_request_finished(self._rejected_request(status, len(response)))

    def _rejected_request(self, status: int, size: int) -> RequestFinished:
        """What is known of a request the server answered itself (400, 408, 413, 414, 431,
        501), so the access log shows it like nginx would: the target as received, undecoded."""
        method = version = ""
        if self._url:  # the method was parsed (it comes before the target)
            method = self.parser.get_method().decode("latin-1")
            version = self.parser.get_http_version()
        target = self._url.decode("latin-1")
        path, _, query = target.partition("?")
        scope: Scope = {
            "type": "http",
            "method": method,
            "path": path,
            "query_string": query.encode("latin-1"),
            "headers": self._headers,
            "client": self.peer,
            "scheme": self.scheme,
            "http_version": version,
        }
        return RequestFinished(scope, status, "rejected", 0.0, 0, size, self.peer, None)

    # -- used by the cycle and the server ------------------------------------------------------

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    async def send_file(self, file: IO[bytes], size: int) -> None:
        if isinstance(self.loop, asyncio.BaseEventLoop) and self.scheme == "http":
            await self.loop.sendfile(self.transport, file, 0, size)
            return
        # uvloop has no sendfile(); and TLS must go through the transport anyway.
        remaining = size
        while remaining > 0:
            chunk = file.read(min(FILE_CHUNK, remaining))
            if not chunk:
                raise RuntimeError("file shrank while it was being sent")
            remaining -= len(chunk)
            self.transport.write(chunk)
            if self.flow.writing_paused:
                await self.flow.drain()

    def check_deadline(self, now: float) -> None:
        """Called by the server's housekeeping tick once `self.deadline` has passed."""
        if self.conn_state is ConnectionState.READING_HEAD:
            self._refused = 408
            self._send_error(408)
        elif self.conn_state is ConnectionState.IDLE:
            self.close()

    def shutdown(self) -> None:
        """Graceful shutdown: idle keep-alive connections close now, busy ones after their
        response. A connection that has not yet sent its first request was accepted a moment
        ago and its request is likely on the way: it gets FRESH_CONNECTION_GRACE to arrive
        (and is answered with `connection: close`) instead of a reset."""
        self.closing = True
        if self.conn_state is ConnectionState.IDLE:
            if self._served:
                self.close()
            else:
                self.deadline = min(self.deadline, self.state.now + FRESH_CONNECTION_GRACE + TICK)

    def close(self) -> None:
        if self.conn_state is not ConnectionState.CLOSED:
            self.deadline = math.inf
            self.transport.close()

    def abort(self) -> None:
        if self.conn_state is not ConnectionState.CLOSED:
            self.transport.abort()

    def _field_budget(self) -> int:
        """Bytes the parser may read of one head (or one trailer section) before 431."""
        return self.limits.max_request_line + self.limits.max_header_bytes + 4096


def transfer_coding_status(codings: bytes) -> int:
    """The status for a Transfer-Encoding other than plain `chunked` (RFC 9112 section 6):
    501 for codings we do not implement applied before a final chunked, 400 where chunked
    is not last or comes twice (the body's length cannot be known)."""
    names = [name.strip(b" \t").lower() for name in codings.split(b",")]
    if names[-1] == b"chunked" and b"chunked" not in names[:-1] and all(names[:-1]):
        return 501
    return 400


# The framing head that lets the parser read the body of a request whose upgrade it skipped.
_LENGTH_FRAMING: Final = b"PUT / HTTP/1.1\r\ncontent-length: %d\r\n\r\n"
_CHUNKED_FRAMING: Final = b"PUT / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"


def _websocket_scope(scope: Scope) -> Scope:
    """An upgrade request's HTTP scope, as ASGI's websocket scope."""
    del scope["method"]
    scope["type"] = "websocket"
    scope["scheme"] = "wss" if scope["scheme"] == "https" else "ws"
    scope["extensions"] = {
        "websocket.http.response": {},
        "monoceros.peer": scope["extensions"]["monoceros.peer"],
    }
    return scope


def _valid_request_id(value: bytes) -> bool:
    """At most 200 visible ASCII characters: safe to log and to echo in a header."""
    return 0 < len(value) <= 200 and value.isascii() and value.translate(None, _ID_DELETE) == value


_ID_DELETE = bytes(range(0x21)) + b"\x7f"


def _split_target(target: bytes) -> tuple[bytes, bytes]:
    """Origin-form (`/path?query`) directly; absolute-form and `*` through httptools."""
    if target[:1] == b"/":
        raw_path, _, query = target.partition(b"?")
        return raw_path, query
    if target == b"*":
        return target, b""
    try:
        # Any: httptools gives None for a missing part where its stubs say bytes, and the
        # compiled build (setup.py) checks values against the types it knows.
        url: Any = httptools.parse_url(target)
    except httptools.HttpParserInvalidURLError:
        raise Reject(400) from None
    return url.path or b"/", url.query or b""
