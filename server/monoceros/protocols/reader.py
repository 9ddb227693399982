"""HTTP/1.1 requests off the wire: httptools' callbacks, the limits, and where a read may be cut.
One `RequestReader` per connection.

The reader turns bytes into `RequestCycle`s, in order, in `queue`; the connection (http.py)
starts them, answers what the reader refuses, and owns the transport. A request is queued once
its head has parsed; the connection starts it once the bytes in hand of its body have parsed
too, so a request whose framing the parser refuses never reaches the app.
"""

from __future__ import annotations

from typing import Final

import httptools

from monoceros.protocols.channel import ResponseChannel
from monoceros.protocols.context import ConnectionContext
from monoceros.protocols.cycle import RequestCycle
from monoceros.protocols.events import RequestFinished, TraceContext, rejected_record
from monoceros.protocols.flow_control import HIGH_WATER
from monoceros.protocols.request_fields import (
    CONNECTION,
    CONTENT_LENGTH,
    EXPECT,
    HOST,
    PROXY,
    REFERER,
    TE,
    TRACEPARENT,
    TRANSFER_ENCODING,
    UPGRADE,
    USER_AGENT,
    classify,
)
from monoceros.protocols.scope import (
    METHODS,
    ConnectionFacts,
    InvalidTarget,
    rejected_scope,
    request_scope,
    valid_request_id,
    websocket_scope,
)
from monoceros.types import ServerScope

# Parsed requests that may wait behind the one being answered. What a client pipelines beyond
# them waits as the bytes it arrived as, with reading paused, and is parsed as they are
# answered (uvicorn queues one, h11 parses one at a time): a read full of tiny requests costs
# its own size in memory, not a RequestCycle per request.
MAX_QUEUED: Final = 1
NO_LIMIT: Final = 1 << 30  # `room` when a piece cannot begin more than one request

# What `RequestReader.feed` reports, besides the offset in the piece after the head of a
# request that asked for an upgrade.
PARSED: Final = 0
REFUSED: Final = -1  # `refused` holds the status owed
OVERFLOW: Final = -2  # a request began beyond `room`: nothing of the piece started; rewind
TUNNEL: Final = -3  # a CONNECT was parsed: what follows is not HTTP

# A request head ends at the first CRLF CRLF; a read may be cut after one.
_HEAD_END: Final = b"\r\n\r\n"
# The framing head that lets the parser read the body of a request whose upgrade it skipped.
_LENGTH_FRAMING: Final = b"PUT / HTTP/1.1\r\ncontent-length: %d\r\n\r\n"
_CHUNKED_FRAMING: Final = b"PUT / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"


def _as_before(value: bytes, before: bytes) -> bytes:
    """`before` if `value` equals it: the object whose hash is computed already."""
    return before if value == before else value


class Reject(Exception):
    """Raised from parser callbacks: answer with `status` and close."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Overflow(Exception):
    """Raised from on_message_begin: a request began beyond those that may wait parsed."""


class RequestReader:
    def __init__(
        self,
        context: ConnectionContext,
        channel: ResponseChannel,
        facts: ConnectionFacts,
        peer_trusted: bool,
    ) -> None:
        self.context = context
        self.channel = channel  # what the requests' cycles answer through
        self.facts = facts
        # Whether headers from this peer (X-Request-ID, proxy headers) may be believed.
        self.peer_trusted = peer_trusted
        # The limits read per field and per request, copied: each read of the config's own
        # (plain Python) object would be an attribute lookup by name.
        limits = context.limits
        self._max_request_line: int = limits.max_request_line
        self._max_header_count: int = limits.max_header_count
        self._max_header_bytes: int = limits.max_header_bytes
        self._max_body_bytes: int = limits.max_body_bytes
        self.parser = httptools.HttpRequestParser(self)
        self.queue: list[RequestCycle] = []  # parsed, not started
        self.message: RequestCycle | None = None  # the request whose body is being parsed
        # How many parsed requests may wait when the parser begins another (the connection
        # sets it before each piece), and whether a WebSocket upgrade may take the connection.
        self.room = MAX_QUEUED + 1
        self.websocket_allowed = False
        self.refused = 0  # the status owed for input the parser refused
        # A WebSocket upgrade we take over waits here as its scope for HttpParserUpgrade. Any
        # other upgrade is ignored (RFC 9110 section 7.8), and a body it announced is parsed
        # afterwards: its framing head is kept here, and parsed as a request nobody sees.
        self.upgrade_scope: ServerScope | None = None
        self._upgrade: bytes | None = None  # the Upgrade header's value, while it matters
        self._body_after_upgrade = b""
        self._continuing = False
        # Whether the parser may be inside a chunked body's trailer section (a chunk header
        # with no data after it yet): its bytes count against the head's budget.
        self._in_trailers = False
        # The Host and User-Agent of this connection's last request: a client sends the same
        # ones each time, and the access log looks them up by hash. Handing on the first
        # request's bytes objects, whose hashes are kept, spares hashing the new ones (a
        # browser's User-Agent: ~450 instructions) for a comparison.
        self._last_host = b""
        self._last_user_agent = b""
        self._reset_head(parsing=False)

    def _reset_head(self, parsing: bool = True) -> None:
        self.parsing_head = parsing
        # The parser that reads this request's head: `parser`, until a fresh one takes over
        # to read the body of an upgrade we ignore (its method and version are asked after).
        self._head_parser = self.parser
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._trailer_fields = 0
        self._section_fed = 0  # bytes fed while a head (or a trailer section) was unfinished
        self._hosts = 0
        self._expect_continue = False
        self._request_id: bytes | None = None
        self._keep_alive_token = False  # a Connection (or Proxy-Connection) said keep-alive
        # X-Forwarded-*, Forwarded, as they came: for proxy.py, if the peer is trusted.
        self._proxy_fields: list[tuple[bytes, bytes]] | None = None
        self._traceparent: bytes | None = None
        self._host: bytes | None = None
        self._user_agent: bytes | None = None
        self._referer: bytes | None = None
        self._content_length = -1
        self._transfer_encoding: bytes | None = None
        self._te: bytes | None = None

    # -- feeding -------------------------------------------------------------------------------

    def feed(self, piece: bytes | memoryview) -> int:
        """Feed one piece to the parser: PARSED, REFUSED, OVERFLOW, TUNNEL, or the offset
        in `piece` after the head of a request that asked for an upgrade."""
        counting = self.parsing_head or self._in_trailers
        if counting and self._section_fed > self._field_budget():
            self.refused = 431
            return REFUSED
        try:
            self.parser.feed_data(piece)
        except httptools.HttpParserUpgrade as exc:
            return self._upgrade_requested(exc.args[0])
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Overflow):
                return OVERFLOW
            self.refused = cause.status if isinstance(cause, Reject) else 400
            return REFUSED
        except httptools.HttpParserError:
            self.refused = 400
            return REFUSED
        if counting and (self.parsing_head or self._in_trailers):
            self._section_fed += len(piece)
        return PARSED

    def piece_end(self, data: bytes, start: int, end: int) -> int:
        """Where the next piece of `data` ends: after the body being parsed if its length is
        known, else after the next CRLF CRLF (so at most one request head ends per piece)."""
        message = self.message
        if message is not None and not self.parsing_head and self._transfer_encoding is None:
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

    def take_first(self) -> RequestCycle:
        """The first request of the queue, out of it."""
        queue = self.queue
        first = queue[0]
        if len(queue) == 1:
            # Nearly always: clear() hands the list's storage back to Python's allocator;
            # pop() would shrink it to nothing through the C allocator's realloc, and the next
            # request's append grow it back the same way (~400 instructions a request).
            queue.clear()
        else:
            del queue[0]
        return first

    def rewind(self, queued: int) -> None:
        """Forget the requests the last piece began (none has started): the parser was
        between requests where that piece began, and a fresh one is too."""
        del self.queue[queued:]
        self.message = None
        self._upgrade = None
        self._body_after_upgrade = b""
        self.parser = httptools.HttpRequestParser(self)
        self._reset_head(parsing=False)

    def _upgrade_requested(self, offset: int) -> int:
        """The parser stopped after a request that asked for an upgrade (or a CONNECT)."""
        if self.upgrade_scope is not None:
            return offset  # a WebSocket session takes the connection from here
        if self._upgrade is None:
            return TUNNEL
        # An upgrade we do not perform: HTTP/1.1 goes on. The parser skipped the request's
        # body, so a fresh parser is given the body's framing head first, and the body that
        # follows goes to the request's cycle. Fresh, because the old one refuses any byte
        # after a request that ends its connection (HTTP/1.0 without keep-alive); the cycle
        # already holds the request's own keep-alive, method and version, and the callbacks
        # leave the request's head as it was read while `_continuing`.
        self._upgrade = None
        framing, self._body_after_upgrade = self._body_after_upgrade, b""
        if framing:
            self._continuing = True
            self.parser = httptools.HttpRequestParser(self)
            self.parser.feed_data(framing)
        return offset

    def _field_budget(self) -> int:
        """Bytes the parser may read of one head (or one trailer section) before 431."""
        return self._max_request_line + self._max_header_bytes + 4096

    # -- httptools callbacks -------------------------------------------------------------------

    # The framing head of an ignored upgrade's body (`_continuing`) is ours, not the
    # request: the request's head (its target, fields, limits) stays as it was read.

    def on_message_begin(self) -> None:
        if self._continuing:
            return
        if len(self.queue) >= self.room:
            raise _Overflow
        self._reset_head()

    def on_url(self, url: bytes) -> None:
        if self._continuing:
            return
        self._url += url
        if len(self._url) > self._max_request_line:
            raise Reject(414)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.parsing_head:
            if not self._continuing:
                self._trailer_field(name, value)
            return
        if value and (value[-1] == 32 or value[-1] == 9):
            # RFC 9112 section 5: whitespace after the value is not part of it (httptools
            # drops only the whitespace before).
            value = value.rstrip(b" \t")
        field = classify(name)
        name = field.name
        kind = field.kind
        if kind == HOST:
            self._hosts += 1
            value = self._host = self._last_host = _as_before(value, self._last_host)
        elif kind == CONTENT_LENGTH:
            self._content_length = int(value)
        elif kind == TRANSFER_ENCODING:
            codings = self._transfer_encoding
            self._transfer_encoding = value if codings is None else codings + b"," + value
        elif kind == EXPECT and value.lower() == b"100-continue":
            self._expect_continue = True
        elif name == self.context.request_id_header:
            self._request_id = value
        elif kind == UPGRADE:
            self._upgrade = value
        elif kind == TE:
            self._te = value
        elif kind == CONNECTION:
            tokens = value.lower()
            # Most say only this token: compared first, the search (1,100 instructions) is
            # left to lists of tokens.
            if tokens == b"keep-alive" or b"keep-alive" in tokens:
                self._keep_alive_token = True
        elif kind == TRACEPARENT:  # a second one makes both invalid (empty)
            self._traceparent = value if self._traceparent is None else b""
        elif kind == PROXY:
            proxy_fields = self._proxy_fields
            if proxy_fields is None:
                proxy_fields = self._proxy_fields = []
            proxy_fields.append((name, value))
        elif kind == USER_AGENT:
            value = self._user_agent = self._last_user_agent = _as_before(
                value, self._last_user_agent
            )
        elif kind == REFERER:
            self._referer = value
        self._headers.append((name, value))
        self._header_bytes += len(name) + len(value)
        if len(self._headers) > self._max_header_count:
            raise Reject(431)
        if self._header_bytes > self._max_header_bytes:
            raise Reject(431)

    def _trailer_field(self, name: bytes, value: bytes) -> None:
        """A field of a chunked body's trailer section: not passed to the app, but counted
        with the head against the same limits (431 beyond)."""
        self._trailer_fields += 1
        self._header_bytes += len(name) + len(value)
        if len(self._headers) + self._trailer_fields > self._max_header_count:
            raise Reject(431)
        if self._header_bytes > self._max_header_bytes:
            raise Reject(431)

    def on_headers_complete(self) -> None:
        self.parsing_head = False
        if self._continuing:  # the framing head of an ignored upgrade's body
            self._continuing = False
            return
        context = self.context
        parser = self.parser
        keep_alive = parser.should_keep_alive()
        # Asking the parser for the version formats a string: a tenth of a small request's
        # parsing. Only HTTP/1.1 (of the versions llhttp takes: 0.9, 1.0, 1.1, 2.0) keeps a
        # connection alive without a keep-alive token, so that verdict alone tells it.
        sure = keep_alive and not self._keep_alive_token
        # str: the parser's own result is untyped, and compared untyped it is compared the
        # generic way (each `version == "1.1"` below a rich comparison and a truth test).
        version: str = "1.1" if sure else parser.get_http_version()
        if version != "1.1" and version != "1.0":
            raise Reject(400)  # HTTP/0.9 or 2.0 spelled in an HTTP/1 request line
        if self._hosts > 1 or (self._hosts == 0 and version == "1.1"):
            raise Reject(400)  # RFC 9112 section 3.2: exactly one Host on HTTP/1.1
        max_body = self._max_body_bytes
        if max_body and self._content_length > max_body:
            raise Reject(413)
        codings = self._transfer_encoding
        if codings is not None and codings.lower() != b"chunked":
            raise Reject(transfer_coding_status(codings))
        raw_method: bytes = parser.get_method()  # typed, as `version` is
        # GET compared first: hashing the parser's new bytes costs several comparisons.
        method = (
            "GET"
            if raw_method == b"GET"
            else (METHODS.get(raw_method) or raw_method.decode("ascii"))
        )
        try:
            scope = request_scope(
                self.facts,
                method,
                version,
                self._url,
                self._headers,
                context.root_path,
                context.app_state,
            )
        except InvalidTarget:
            raise Reject(400) from None
        if self._te is not None and version == "1.1" and _takes_trailers(self._te):
            scope["extensions"]["http.response.trailers"] = {}
        if self._upgrade is not None and parser.should_upgrade():
            # `Connection: upgrade` too: HttpParserUpgrade follows this callback.
            if self._takes_websocket(method):
                self.upgrade_scope = websocket_scope(scope)
                self._resolve_proxy_fields(self.upgrade_scope)
                return
            # Ignored: the parser will skip the body, so keep its framing to feed it later.
            if codings is not None:
                self._body_after_upgrade = _CHUNKED_FRAMING
            elif self._content_length > 0:
                self._body_after_upgrade = _LENGTH_FRAMING % self._content_length
        else:
            self._upgrade = None
        self._resolve_proxy_fields(scope)
        # RFC 9110 section 10.1.1: no 100 (Continue) to an HTTP/1.0 client.
        expect_continue = self._expect_continue and version == "1.1"
        cycle = RequestCycle(scope, self.channel, context, keep_alive, expect_continue)
        if context.observer is not None:  # for the access line (a tuple: none when unobserved)
            cycle.named_fields = (self._host, self._user_agent, self._referer)
        self.message = cycle
        if self._content_length <= 0 and codings is None:
            # No body follows (RFC 9112 section 6.3): the request is complete already, and
            # its response may keep the connection alive.
            cycle.more_body = False
        if context.request_id_header:
            cycle.request_id = self.choose_request_id()
        if self._traceparent is not None or context.generate_traces:
            cycle.trace = self.trace_context()
        self.queue.append(cycle)

    def _resolve_proxy_fields(self, scope: ServerScope) -> None:
        # Without a proxy's fields there is nothing to resolve (most requests: a direct
        # client, or a proxy that sent none).
        fields = self._proxy_fields
        if fields is not None and self.peer_trusted:
            proxy = self.context.proxy
            if proxy is not None:
                host = proxy.resolve(scope, fields)
                if host is not None:  # --proxy-forwarded-host: the proxy's
                    self._host = host

    def _takes_websocket(self, method: str) -> bool:
        """An `Upgrade: websocket` GET we take over: --ws allows it, and the connection
        allows it (nothing in flight on it, the server not shutting down)."""
        return (
            self.websocket_allowed
            and self.context.ws is not None
            and method == "GET"
            and self._upgrade is not None  # for the type checker: the caller made sure
            and self._upgrade.lower() == b"websocket"
            and not self.queue
        )

    def on_body(self, body: bytes) -> None:
        self._in_trailers = False
        cycle = self.message
        assert cycle is not None
        max_body = self._max_body_bytes
        if max_body and cycle.bytes_received + len(body) > max_body:
            raise Reject(413)
        cycle.body_received(body)
        if cycle.buffered > HIGH_WATER:
            self.channel.flow.pause_reading()

    def on_chunk_header(self) -> None:
        # The last chunk (size 0) is followed by the trailer section, not by data: until data
        # comes, the bytes fed count against the head's budget.
        self._in_trailers = True
        self._section_fed = 0

    def on_message_complete(self) -> None:
        self._in_trailers = False
        if self._body_after_upgrade:
            return  # an ignored upgrade: its body is parsed next (`_upgrade_requested`)
        cycle = self.message
        if cycle is None:
            return  # a WebSocket upgrade: HttpParserUpgrade follows
        self.message = None
        if cycle.more_body:
            cycle.message_complete()

    # -- what is known of the request being parsed ---------------------------------------------

    def choose_request_id(self) -> str:
        """The proxy's id when a trusted peer sent a sane one, else a fresh random one."""
        given = self._request_id
        if given is not None and self.peer_trusted and valid_request_id(given):
            return given.decode("ascii")
        return self.context.request_ids.next()

    def trace_context(self) -> TraceContext | None:
        """The trace context of the request being parsed (ConnectionContext.trace_for)."""
        return self.context.trace_for(self._traceparent)

    def asked_for_head(self) -> bool:
        """Whether the request being parsed is known to be a HEAD (its error response is then
        a head alone)."""
        return bool(self._url) and self._head_parser.get_method() == b"HEAD"  # method, then URL

    def rejected_record(self, status: int, size: int) -> RequestFinished:
        """The access-log record of a request the server answered itself with `status`."""
        method = version = ""
        if self._url:  # the method was parsed (it comes before the target)
            method = self._head_parser.get_method().decode("latin-1")
            version = self._head_parser.get_http_version()
        scope = rejected_scope(self.facts, method, version, self._url, self._headers)
        return rejected_record(scope, status, size, self.facts.client)


def _takes_trailers(te: bytes) -> bool:
    """`TE: trailers` (among other codings, any case): the client takes a trailer section."""
    return any(item.strip(b" \t").lower() == b"trailers" for item in te.split(b","))


def transfer_coding_status(codings: bytes) -> int:
    """The status for a Transfer-Encoding other than plain `chunked` (RFC 9112 section 6):
    501 for codings we do not implement applied before a final chunked, 400 where chunked
    is not last or comes twice (the body's length cannot be known)."""
    names = [name.strip(b" \t").lower() for name in codings.split(b",")]
    if names[-1] == b"chunked" and b"chunked" not in names[:-1] and all(names[:-1]):
        return 501
    return 400
