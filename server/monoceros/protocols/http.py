"""HTTP/1.1 on asyncio.Protocol + httptools: one `HttpProtocol` per connection.

The connection owns the transport, keep-alive, pipelining and the connection's deadlines; its
`RequestReader` (reader.py) turns bytes into requests, and a `RequestCycle` (cycle.py) holds
one request's ASGI conversation, answering through this connection as its ResponseChannel.
"""

from __future__ import annotations

import asyncio
import enum
import math
from typing import IO, Final, cast

from monoceros.protocols.channel import ResponseChannel, copy_file
from monoceros.protocols.context import ConnectionContext
from monoceros.protocols.cycle import RequestCycle, admit
from monoceros.protocols.flow_control import FlowControl
from monoceros.protocols.head import error_response
from monoceros.protocols.observer import BODY_TIMEOUT, REJECTION_REASONS
from monoceros.protocols.reader import (
    MAX_QUEUED,
    NO_LIMIT,
    OVERFLOW,
    PARSED,
    REFUSED,
    TUNNEL,
    RequestReader,
)
from monoceros.protocols.scope import ConnectionFacts
from monoceros.protocols.state import ServerState
from monoceros.protocols.websocket import WebSocketProtocol
from monoceros.protocols.write_batch import WriteBatch
from monoceros.types import ASGIApp, ServerScope

# How late a deadline may fire: the server's housekeeping tick (see server.py).
TICK: Final = 0.25
# How long a connection accepted just before a graceful shutdown may take to send its request.
FRESH_CONNECTION_GRACE: Final = 0.5
# What an HTTP/2 client sends first (RFC 9113 section 3.4): with --http2, a connection that
# starts with it is handed to http2.py.
HTTP2_PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class ConnectionState(enum.Enum):
    IDLE = "waiting for a request (keep-alive deadline)"
    READING_HEAD = "receiving a request head (header deadline)"
    BUSY = "a request is with the app (body and send deadlines: the client's silences)"
    # A client that reads nothing would hold a closing transport (and its buffer) for good.
    CLOSING = "closed by us, the client yet to read what is buffered (send deadline)"
    CLOSED = "closed"


class HttpProtocol(ResponseChannel, asyncio.Protocol):
    def __init__(
        self, app: ASGIApp, context: ConnectionContext, state: ServerState, scheme: str = "http"
    ) -> None:
        self.app = app
        self.context = context
        self.state = state
        self.scheme = scheme
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport
        self.reader: RequestReader
        self.batch: WriteBatch
        self.peer = None
        self.conn_state = ConnectionState.IDLE
        self.deadline = math.inf
        self.closing = False
        self.cycle: RequestCycle | None = None  # the request the app is answering
        self._unparsed = b""  # received beyond MAX_QUEUED requests: parsed as they are answered
        # The status owed for input the reader refused (0: none); once set, nothing more is
        # read on this connection.
        self._refused = 0
        self._served = 0  # requests started on this connection
        # With --http2, the first bytes say which protocol the client speaks (h2c by prior
        # knowledge); held here while they might still be the start of the preface.
        self._sniffing = context.http2 is not None
        self._sniffed = b""
        # Read for every request: copied from the config's plain-Python limits once.
        self._header_timeout: float = context.limits.header_timeout
        self._keep_alive_timeout: float = context.limits.keep_alive_timeout

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but quack like one.
        self.transport = transport = cast(asyncio.Transport, transport)
        self.flow = FlowControl(transport)
        self.batch = WriteBatch(self.loop, transport)  # a streamed body's pieces, held
        context = self.context
        server = None
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.peer = (str(peer[0]), int(peer[1]))
            local = transport.get_extra_info("sockname")
            server = (str(local[0]), int(local[1]))
        # Trust is decided once per connection; only a trusted peer's requests pay for proxy.py.
        trusted = context.proxy is not None and context.proxy.trusts_peer(self.peer)
        facts = ConnectionFacts(self.peer, server, self.scheme, self.peer, trusted)
        self.reader = RequestReader(context, self, facts, trusted)
        self.state.connections.add(self)
        if context.observer is not None:
            context.observer.connection_opened()
        self._wait_for_request(self._header_timeout)
        if self._sniffing and self.scheme == "https":
            # TLS settled the protocol in its handshake (ALPN): no sniffing.
            self._sniffing = False
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
                self._switch_to_http2(b"")

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn_state = ConnectionState.CLOSED
        self.batch.drop()
        self.deadline = math.inf
        self.flow.connection_lost()
        if self.cycle is not None:
            self.cycle.client_gone()
        for waiting in self.reader.queue:
            waiting.client_gone()
        self.reader.queue.clear()
        self._unparsed = b""
        self.state.connection_closed(self)
        if self.context.observer is not None:
            self.context.observer.connection_closed()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # the connection is being answered with an error and closed
        if self.conn_state is ConnectionState.BUSY and not self.flow.writing_paused:
            # The client is sending (a body, or what it pipelines): its silence starts anew.
            self.deadline = self.state.now + self.context.limits.body_timeout + TICK
        if self._sniffing:
            data = self._sniffed + data
            seen = HTTP2_PREFACE[: len(data)]
            if data[: len(seen)] == seen:
                if len(data) < len(HTTP2_PREFACE):
                    self._sniffed = data
                    return
                self._switch_to_http2(data)
                return
            self._sniffing = False
            self._sniffed = b""
        if self._unparsed:  # requests are waiting already: these bytes wait behind them
            self._unparsed += data
            self.flow.pause_reading()
            return
        self._feed(data)

    def pause_writing(self) -> None:
        self.flow.pause_writing()
        if self.conn_state is ConnectionState.BUSY:
            self.deadline = self._busy_deadline()  # the client stopped reading: --timeout-send
        elif self.conn_state is ConnectionState.CLOSING:
            self.deadline = self.state.now + self.context.limits.send_timeout + TICK

    def resume_writing(self) -> None:
        self.flow.resume_writing()
        if self.conn_state is ConnectionState.BUSY:
            self.deadline = self._busy_deadline()
        elif self.conn_state is ConnectionState.CLOSING:
            self.deadline = math.inf  # it reads again: the transport closes once all is out

    # -- reading requests ----------------------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        """Give `data` to the reader, starting each request once what is in hand of it has
        parsed cleanly.

        Between requests, all of `data` goes to the parser at once (one request per read is
        the common case), and the reader refuses to begin more requests than may wait; if it
        must refuse, nothing parsed from `data` has started yet, so a fresh parser takes the
        same bytes again piece by piece, each piece ending where a request head may end.
        Past MAX_QUEUED waiting requests, the rest of `data` waits unparsed."""
        reader = self.reader
        queue = reader.queue
        start, end = 0, len(data)
        careful = False
        while start < end:
            message = reader.message
            if message is None and len(queue) >= MAX_QUEUED:
                self._unparsed = data[start:]
                self.flow.pause_reading()
                return
            if careful or message is not None or reader.parsing_head:
                stop = reader.piece_end(data, start, end)
                reader.room = NO_LIMIT  # a piece completes at most one request head
            else:
                stop = end
                reader.room = MAX_QUEUED if self.cycle is not None else MAX_QUEUED + 1
            reader.websocket_allowed = self.cycle is None and not self.state.draining
            queued = len(queue)
            piece = data if stop - start == end else memoryview(data)[start:stop]
            outcome = reader.feed(piece)
            if outcome == OVERFLOW:
                reader.rewind(queued)
                careful = True
                continue
            if outcome == PARSED:
                start = stop
            elif outcome > 0 and reader.upgrade_scope is not None:
                self._switch_to_websocket(reader.upgrade_scope, data[start + outcome :])
                return
            elif outcome > 0:
                start += outcome  # an upgrade we ignored: HTTP/1.1 goes on after its head
            else:
                self._stop_reading(outcome)
            # The first waiting request starts, unless the body of it still in hand is to be
            # parsed first.
            if self.cycle is None and queue:
                waiting = queue[0]
                if waiting is not reader.message or start >= end or outcome < 0:
                    self._start(reader.take_first())
            if outcome < 0:
                return
        if self.conn_state is ConnectionState.IDLE and reader.parsing_head:
            self.conn_state = ConnectionState.READING_HEAD
            self.deadline = self.state.now + self._header_timeout + TICK

    def _stop_reading(self, outcome: int) -> None:
        if outcome == REFUSED:
            self._reject(self.reader.refused)
        elif outcome == TUNNEL:
            # CONNECT: answered as plain HTTP; what follows it is a tunnel's, not HTTP.
            self.closing = True
            self.flow.pause_reading()

    # -- driving requests ----------------------------------------------------------------------

    def _start(self, cycle: RequestCycle) -> None:
        self.cycle = cycle
        self.conn_state = ConnectionState.BUSY
        self.deadline = self._busy_deadline()
        app = admit(self.app, self.context, self.state, cycle.scope, self._served > 0)
        self._served += 1
        # The app runs in a real Task of its own, from its first step to its last:
        # asyncio.current_task(), asyncio.timeout() and anyio's cancel scopes (Starlette's
        # BaseHTTPMiddleware, FastAPI) need one, and the Task gives it its own copy of the
        # context. The Task starts on this loop iteration's ready queue: running the first
        # step outside a Task is faster but breaks those libraries, and 3.12's
        # eager_start=True measured 10-25% slower per request than this on 3.12 and 3.13.
        cycle.task = self.state.start_task(self.loop, cycle.run(app, self.state))

    def response_complete(self, keep_alive: bool) -> None:
        """The current cycle's last byte is written: reuse the connection, or close it."""
        if self.cycle is None or self.conn_state is ConnectionState.CLOSED:
            return
        self.cycle = None
        if not keep_alive or self.closing:
            self.close()
            return
        if self.reader.queue:
            self._start(self.reader.take_first())
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
            if self.reader.parsing_head:
                self.conn_state = ConnectionState.READING_HEAD
                self.deadline = self.state.now + self._header_timeout + TICK
            else:
                self._wait_for_request(self._keep_alive_timeout)

    def _switch_to_websocket(self, scope: ServerScope, rest: bytes) -> None:
        """Hand the transport to a WebSocket session; this connection object is done."""
        context = self.context
        reader = self.reader
        request_id = reader.choose_request_id() if context.request_id_header else None
        session = WebSocketProtocol(
            self.app,
            context,
            self.state,
            scope,
            self.transport,
            self.peer,
            request_id,
            reader.trace_context(),
        )
        self.transport.set_protocol(session)
        self.conn_state = ConnectionState.CLOSED
        self.deadline = math.inf
        self.state.connection_closed(self)  # first: the session counts as this connection
        session.start(rest)

    def _switch_to_http2(self, data: bytes) -> None:
        """Hand the transport to an HTTP/2 connection (imported only when first needed: the
        zttp engine is an optional dependency)."""
        from monoceros.protocols.http2 import Http2Protocol

        self._sniffing = False
        reader = self.reader
        connection = Http2Protocol(
            self.app, self.context, self.state, reader.facts, reader.peer_trusted, self.peer
        )
        self.transport.set_protocol(connection)
        self.conn_state = ConnectionState.CLOSED
        self.deadline = math.inf
        self.state.connection_closed(self)  # the HTTP/2 connection counts itself
        connection.connection_made(self.transport)
        if data:
            connection.data_received(data)

    def _wait_for_request(self, timeout: float) -> None:
        self.conn_state = ConnectionState.IDLE
        self.deadline = self.state.now + timeout + TICK

    def _reject(self, status: int, reason: str = "") -> None:
        """The reader refused the request being parsed (or its body stopped coming: `reason`
        tells the observer which): nothing more is read. The requests before it are answered
        first, in order; then `status`, and the connection closes."""
        self.flow.pause_reading()
        self._refused = status
        self._unparsed = b""
        reader = self.reader
        message, reader.message = reader.message, None
        if message is not None and message is not self.cycle:
            reader.queue.remove(message)  # never started: the app never hears of it
        if message is not None and message is self.cycle:
            # Its body broke while the app was answering it: the app sees a disconnect.
            if self.context.observer is not None:
                self.context.observer.request_rejected(None, reason or REJECTION_REASONS[status])
            if message.response_begun():
                message.abandon(message.status, "aborted")
                self.abort()  # a response is under way: cutting it short is the only signal
            else:
                message.abandon(status, "rejected")
                defaults = self.context.default_headers
                self.write(error_response(status, defaults, head_only=message.is_head))
                self.close()
        elif self.cycle is None and not reader.queue:
            self._send_error(status)
        # else: sent once the responses before it are out (`response_complete`)

    def _send_error(self, status: int) -> None:
        """Answer the request being parsed with `status` ourselves, and close."""
        context = self.context
        head_only = self.reader.asked_for_head()
        response = error_response(status, context.default_headers, head_only=head_only)
        self.write(response)
        self.close()
        if context.observer is not None:
            record = self.reader.rejected_record(status, len(response))
            context.observer.request_rejected(record, REJECTION_REASONS[status])

    # -- the ResponseChannel, and what the server asks -----------------------------------------

    def write(self, data: bytes) -> None:
        if self.batch.parts:
            self.batch.release((data,))  # after the pieces held, in the same call
        else:
            self.transport.write(data)

    def write_body(self, parts: tuple[bytes, ...], more: bool) -> None:
        if more:
            self.batch.hold(parts)
        elif self.batch.parts:
            self.batch.release(parts)
        else:
            self.transport.writelines(parts)  # uvloop: one writev, the parts not copied

    async def send_file(self, file: IO[bytes], size: int) -> None:
        self.batch.flush()
        if isinstance(self.loop, asyncio.BaseEventLoop) and self.scheme == "http":
            await self.loop.sendfile(self.transport, file, 0, size)
            return
        # uvloop has no sendfile(); and TLS must go through the transport anyway.
        await copy_file(file, size, self.transport.write, self.flow)

    def keep_alive_allowed(self) -> bool:
        return not self.closing

    def check_deadline(self, now: float) -> None:
        """Called by the server's housekeeping tick once `self.deadline` has passed."""
        if self.conn_state is ConnectionState.READING_HEAD:
            self._refused = 408
            self._send_error(408)
        elif self.conn_state is ConnectionState.IDLE:
            self.close()
        elif self.conn_state is ConnectionState.BUSY:
            self._check_client(now)
        elif self.conn_state is ConnectionState.CLOSING:
            self.transport.abort()  # what is buffered will never be read

    def _busy_deadline(self) -> float:
        """While a request is with the app, only the client's silences have a deadline: not
        reading the response (--timeout-send), or not sending the body the app waits for
        (--timeout-request-body)."""
        limits = self.context.limits
        if self.flow.writing_paused:
            return self.state.now + limits.send_timeout + TICK
        cycle = self.cycle
        if cycle is not None and cycle.more_body:
            return self.state.now + limits.body_timeout + TICK
        return math.inf

    def _check_client(self, now: float) -> None:
        """A busy connection's deadline passed: cut a client that stopped reading, answer one
        that stopped sending the body 408 (or cut it, once the response has begun); if what
        waits is the app, not the client (it is slow, or does not read its body, so reading
        is paused, or the client waits for the 100 Continue the app's first `receive` sends),
        nothing happens and the deadline moves on."""
        cycle = self.cycle
        if cycle is not None and self.flow.writing_paused:
            cycle.abandon(cycle.status, "aborted")
            self.abort()  # close() would wait for the client to read what is buffered
        elif (
            cycle is not None
            and cycle.more_body
            and not cycle.expect_continue
            and not self.flow.reading_paused
        ):
            if self.reader.message is cycle:
                self._reject(408, BODY_TIMEOUT)
            else:
                cycle.abandon(cycle.status, "aborted")
                self.abort()
        else:
            self.deadline = self._busy_deadline()

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
        state = self.conn_state
        if state is ConnectionState.CLOSED or state is ConnectionState.CLOSING:
            return
        self.deadline = math.inf
        self.batch.flush()
        self.transport.close()  # the transport writes what it holds first
        if self.flow.writing_paused:
            # ... to a client that reads nothing just now: --timeout-send bounds the wait.
            self.conn_state = ConnectionState.CLOSING
            self.deadline = self.state.now + self.context.limits.send_timeout + TICK

    def abort(self) -> None:
        if self.conn_state is not ConnectionState.CLOSED:
            self.batch.flush()  # what the app sent before it broke the response, then the cut
            self.transport.abort()
