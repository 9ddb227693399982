"""HTTP/2 on asyncio.Protocol + zttp: one `Http2Protocol` per connection, many streams.

HttpProtocol (http.py) hands a connection over when its first bytes are the HTTP/2 preface
(h2c by prior knowledge) or when TLS's ALPN chose `h2`. zttp, a sans-I/O HTTP/2 engine with a
Zig core (chosen by measurement: bench/h2_engines.py), parses frames and HPACK, acks SETTINGS,
answers PING, and refuses what breaks the protocol (malformed frames, rapid resets,
CONTINUATION floods, oversized header lists) with a GOAWAY. This class runs the streams: an
`H2Stream` and an `H2RequestCycle` per request (h2_stream.py), the server's limits, flow
control towards the app, deadlines, and graceful shutdown.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, Final, cast

import zttp

from monoceros.config import MAX_HTTP2_STREAMS
from monoceros.protocols.context import ConnectionContext
from monoceros.protocols.cycle import admit
from monoceros.protocols.events import TraceContext, rejected_record
from monoceros.protocols.flow_control import HIGH_WATER
from monoceros.protocols.h2_stream import CANCEL, H2RequestCycle, H2Stream, StreamHost
from monoceros.protocols.head import STATUS_LINES
from monoceros.protocols.observer import BODY_TIMEOUT, REJECTION_REASONS
from monoceros.protocols.scope import (
    METHODS,
    ConnectionFacts,
    InvalidTarget,
    rejected_scope,
    request_scope,
    valid_request_id,
    websocket_scope,
)
from monoceros.protocols.state import ServerState
from monoceros.protocols.tracecontext import HEADER as TRACEPARENT
from monoceros.types import ASGIApp, ServerScope

# RFC 9113 section 7 error codes.
NO_ERROR: Final = 0x0
PROTOCOL_ERROR: Final = 0x1
REFUSED_STREAM: Final = 0x7
ENHANCE_YOUR_CALM: Final = 0xB
# How late a deadline may fire (the server's housekeeping tick), and how often, at least, a
# connection with open streams looks for silent clients (--timeout-request-body, and
# --timeout-send for a window kept shut).
TICK: Final = 0.25
STALL_CHECK: Final = 1.0
# Control frames (SETTINGS, PING, WINDOW_UPDATE) a peer may send per second before the
# connection is closed with ENHANCE_YOUR_CALM: zttp answers each SETTINGS and PING, so a flood
# of them would make us write as fast as it reads.
MAX_CONTROL_FRAMES_PER_SECOND: Final = 1000
# Frames are written once per loop turn, or at once past this many DATA bytes: an app that
# sends chunk after chunk without yielding then meets the transport's back-pressure in send()
# instead of buffering its whole response in memory (HTTP/1.1 writes each chunk at once).
FLUSH_THRESHOLD: Final = 64 * 1024
# Streams one connection may open before it is closed gracefully (GOAWAY, then the client
# opens a new connection, as nginx does after keepalive_requests, 1000). zttp treats its
# 4096th stream on a connection as a flood and fails the connection with every stream on it;
# this leaves room below that for a full MAX_HTTP2_STREAMS in flight when GOAWAY goes out.
MAX_STREAMS_PER_CONNECTION: Final = 4096 - 2 * MAX_HTTP2_STREAMS


class Http2Protocol(StreamHost, asyncio.Protocol):
    def __init__(
        self,
        app: ASGIApp,
        context: ConnectionContext,
        state: ServerState,
        facts: ConnectionFacts,
        peer_trusted: bool,
        peer: tuple[str, int] | None,
    ) -> None:
        settings = context.http2
        assert settings is not None  # HttpProtocol hands over only with --http2
        self.app = app
        self.context = context
        self.state = state
        # On HTTP/2 every response may end with trailers: the connection's scopes all say so
        # (websocket_scope leaves the extension out of a WebSocket's).
        facts.extensions["http.response.trailers"] = {}
        self.facts = facts
        self.peer_trusted = peer_trusted
        self.peer = peer
        self.max_streams = settings.max_concurrent_streams
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport
        self.connection: Any = zttp.Connection(zttp.SERVER, zttp.HTTP2)
        self.streams: dict[int, H2Stream] = {}
        self.deadline = math.inf
        self.closing = False  # GOAWAY sent: no new streams, close once the open ones finish
        self.closed = False
        self._last_stream_id = 0
        self._served = 0
        self._opened = 0  # streams the client has opened, refused ones too
        self._flush_scheduled = False
        self._unflushed = 0  # DATA bytes queued since the last flush
        self._writing_paused = False
        self._writing_paused_since = 0.0  # the clock when the transport's buffer filled up
        self._idle_until = math.inf  # the keep-alive deadline, while no stream is open
        self._reading_paused = False
        self._paused_streams = 0  # streams whose unread body is over its bound
        self._control_frames = 0
        self._control_second = 0.0

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Called by HttpProtocol on hand-over (the HTTP/1.1 side counted the connection)."""
        self.transport = cast(asyncio.Transport, transport)
        self.state.connections.add(self)
        self.connection.initiate_connection()
        self._flush()
        self._idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.deadline = math.inf
        self._streams_gone()
        self.state.connection_closed(self)
        if self.context.observer is not None:
            self.context.observer.connection_closed()

    def data_received(self, data: bytes) -> None:
        connection = self.connection
        try:
            connection.receive_data(data)
            while True:
                event = connection.next_event()
                if event is zttp.NEED_DATA:
                    break
                self._event(event)
        except zttp.ProtocolError:
            # zttp has queued a GOAWAY with the reason: send it and close.
            self._flush()
            self._close()
            return
        self._flush()

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._writing_paused_since = self.state.now
        for stream in self.streams.values():
            stream.flow.pause_writing()
        self._set_deadline(self.deadline)  # the peer reads nothing just now: --timeout-send

    def resume_writing(self) -> None:
        self._writing_paused = False
        for stream in self.streams.values():
            if not stream.window_closed:
                stream.flow.resume_writing()

    # -- events --------------------------------------------------------------------------------

    def _event(self, event: Any) -> None:
        kind = type(event)
        if kind is zttp.Request:
            self._request(event)
        elif kind is zttp.Data:
            stream = self.streams.get(event.stream_id)
            if stream is not None and not stream.ending:  # else answered: nobody reads it
                if stream.cycle is not None:
                    self._body(stream, stream.cycle, event.data)
                elif stream.tunnel is not None:
                    stream.tunnel.data_received(event.data)
        elif kind is zttp.EndOfMessage:
            stream = self.streams.get(event.stream_id)
            if stream is not None and not stream.ending:
                if stream.cycle is not None and stream.cycle.more_body:
                    stream.cycle.message_complete()
                elif stream.tunnel is not None:
                    stream.tunnel.peer_ended()
        elif kind is zttp.RstStream:
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                self._gone(stream)
        elif kind is zttp.WindowUpdate:
            self._control_frame()
            self._window_update(event.stream_id)
        elif kind is zttp.Settings:
            self._control_frame()
            self._window_update(0)  # a larger SETTINGS_INITIAL_WINDOW_SIZE opens windows too
        elif kind is zttp.Ping:
            self._control_frame()
        elif kind is zttp.GoAway:
            self.closing = True
            if not self.streams:
                self._close()
        elif event is zttp.CONNECTION_CLOSED:
            self._close()

    def _request(self, event: Any) -> None:
        # Each of the event's attributes is read once: a read is a call into zttp.
        stream_id: int = event.stream_id
        self._opened += 1
        if self.closing or len(self.streams) >= self.max_streams:
            self.connection.stream(stream_id).reset(REFUSED_STREAM)
            return
        self._last_stream_id = stream_id
        stream = H2Stream(self, self.connection, stream_id, self.peer)
        self.streams[stream_id] = stream
        if self._opened >= MAX_STREAMS_PER_CONNECTION:
            self.shutdown()  # this stream is served; the client goes on on a new connection
        raw_headers = event.headers
        headers = raw_headers if type(raw_headers) is list else list(raw_headers)
        target: bytes = event.target
        protocol: bytes | None = event.protocol
        status = self._refusal(target, protocol, headers)
        if status:
            self._refuse(stream, event, headers, status)
            return
        context = self.context
        raw_method: bytes = event.method
        method = METHODS.get(raw_method) or raw_method.decode("ascii")
        try:
            scope = request_scope(
                self.facts, method, "2", target, headers, context.root_path, context.app_state
            )
        except InvalidTarget:
            self._refuse(stream, event, headers, 400)
            return
        if protocol is not None:
            scope = websocket_scope(scope)
        if self.peer_trusted and context.proxy is not None:
            context.proxy.resolve_scope(scope)
        if protocol is not None:
            self._websocket(stream, scope, headers)
            return
        end_stream: bool = event.end_stream
        expect_continue = not end_stream and _expects_continue(headers)
        cycle = H2RequestCycle(scope, stream, context, expect_continue)
        stream.cycle = cycle
        if end_stream:
            cycle.more_body = False
        if context.request_id_header:
            cycle.request_id = self._request_id(headers)
        cycle.trace = self._trace(headers)
        self._start(cycle)

    def _refusal(
        self, target: bytes, protocol: bytes | None, headers: list[tuple[bytes, bytes]]
    ) -> int:
        """The status the server answers a request with itself, or 0: HTTP/1.1's limits, with
        HTTP/2's framing (RFC 9113 section 8.1.1 leaves the status to the server)."""
        limits = self.context.limits
        if protocol is not None and (
            protocol != b"websocket" or self.context.ws is None or self.state.draining
        ):
            return 501  # extended CONNECT for what we do not tunnel (RFC 8441 section 4)
        if len(target) > limits.max_request_line:
            return 414
        size = 0
        for name, value in headers:
            size += len(name) + len(value)
            if (
                name == b"content-length"
                and limits.max_body_bytes
                and value.isdigit()
                and int(value) > limits.max_body_bytes
            ):
                return 413
        if len(headers) > limits.max_header_count or size > limits.max_header_bytes:
            return 431
        return 0

    def _websocket(
        self, stream: H2Stream, scope: ServerScope, headers: list[tuple[bytes, bytes]]
    ) -> None:
        """An extended CONNECT for a WebSocket: the stream carries its session."""
        from monoceros.protocols.h2_websocket import H2WebSocket, StreamTransport

        transport = StreamTransport(self, stream, self.transport)
        stream.tunnel = transport
        context = self.context
        request_id = self._request_id(headers) if context.request_id_header else None
        session = H2WebSocket(
            self.app,
            context,
            self.state,
            scope,
            transport,
            self.peer,
            request_id,
            self._trace(headers),
        )
        if self._writing_paused:
            session.flow.pause_writing()
        self.deadline = min(self.deadline, self.state.now + STALL_CHECK)
        session.start(b"")

    def _request_id(self, headers: list[tuple[bytes, bytes]]) -> str:
        if self.peer_trusted:
            wanted = self.context.request_id_header
            for name, value in headers:
                if name == wanted and valid_request_id(value):
                    return value.decode("ascii")
        return self.context.request_ids.next()

    def _trace(self, headers: list[tuple[bytes, bytes]]) -> TraceContext | None:
        """The trace context of a request with these headers (none from two traceparents)."""
        value: bytes | None = None
        for name, field_value in headers:
            if name == TRACEPARENT:
                value = field_value if value is None else b""
        return self.context.trace_for(value)

    def _start(self, cycle: H2RequestCycle) -> None:
        app = admit(self.app, self.context, self.state, cycle.scope, self._served > 0)
        self._served += 1
        if self._writing_paused:
            cycle.stream.flow.pause_writing()
        self.deadline = min(self.deadline, self.state.now + STALL_CHECK)
        cycle.task = self.state.start_task(self.loop, cycle.run(app, self.state))

    def _body(self, stream: H2Stream, cycle: H2RequestCycle, data: bytes) -> None:
        if data:  # an empty DATA frame is no progress
            stream.last_heard = self.state.now
        max_body = self.context.limits.max_body_bytes
        if max_body and cycle.bytes_received + len(data) > max_body:
            self._body_refused(stream, cycle, 413, REJECTION_REASONS[413])
            return
        cycle.body_received(data)
        if cycle.buffered > HIGH_WATER and not stream.reading_paused:
            stream.flow.pause_reading()

    def _body_refused(
        self, stream: H2Stream, cycle: H2RequestCycle, status: int, reason: str
    ) -> None:
        """The body went past a limit (or stopped arriving: `reason` tells the observer which)
        while the app had the request: a `status` answer if nothing of the response went
        out, else the stream is reset."""
        observer = self.context.observer
        if observer is not None:
            observer.request_rejected(None, reason)
        if cycle.response_begun():
            cycle.abandon(cycle.status, "aborted")
            self.reset_stream(stream, CANCEL)
            return
        cycle.abandon(status, "rejected")
        self._answer(stream, status)
        self.reset_stream(stream, NO_ERROR)  # the rest of the upload is not wanted

    def _refuse(
        self, stream: H2Stream, event: Any, headers: list[tuple[bytes, bytes]], status: int
    ) -> None:
        """Answer a request with `status` ourselves; the app never hears of it."""
        size = self._answer(stream, status)
        self.stream_ended(stream)
        observer = self.context.observer
        if observer is not None:
            method = event.method.decode("latin-1")
            scope = rejected_scope(self.facts, method, "2", event.target, headers)
            record = rejected_record(scope, status, size, self.peer)
            observer.request_rejected(record, REJECTION_REASONS.get(status, "bad_request"))

    def _answer(self, stream: H2Stream, status: int) -> int:
        phrase = STATUS_LINES[status][13:-2]
        fields = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"%d" % len(phrase)),
            *self.context.default_headers.fields(),
        ]
        stream.send_head(status, fields, False)
        stream.send_data(phrase)
        stream.end()
        return len(phrase)

    def _gone(self, stream: H2Stream) -> None:
        """The peer reset the stream: its app sees a disconnect."""
        _disconnect(stream)
        self.stream_finished(stream)

    def _window_update(self, stream_id: int) -> None:
        if stream_id == 0:
            for stream in list(self.streams.values()):
                stream.window_opened()
        elif stream_id in self.streams:
            self.streams[stream_id].window_opened()

    def _control_frame(self) -> None:
        now = self.state.now
        if now - self._control_second >= 1.0:
            self._control_second = now
            self._control_frames = 0
        self._control_frames += 1
        if self._control_frames > MAX_CONTROL_FRAMES_PER_SECOND:
            self.connection.close(ENHANCE_YOUR_CALM, self._last_stream_id)
            self._flush()
            self._close()

    # -- StreamHost ----------------------------------------------------------------------------

    def frames_queued(self, size: int = 0) -> None:
        self._unflushed += size
        if self._unflushed > FLUSH_THRESHOLD:
            self._flush()
        elif not self._flush_scheduled and not self.closed:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def stream_ended(self, stream: H2Stream) -> None:
        if stream.window_closed and not self.closed:
            # Its last frames wait for the peer's window: until they are out the connection
            # is not idle, a graceful shutdown waits, and --timeout-send counts. What it holds
            # unread is nobody's now: reading goes on (the WINDOW_UPDATE must get in).
            stream.ending = True
            stream.resume_reading()
        else:
            self.stream_finished(stream)

    def stream_finished(self, stream: H2Stream) -> None:
        if stream.finished:
            return
        stream.resume_reading()
        stream.finished = True
        self.streams.pop(stream.stream_id, None)
        stream.release()
        self._after_stream()

    def reset_stream(self, stream: H2Stream, error_code: int) -> None:
        if not stream.finished and not self.closed:
            stream.frames.reset(error_code)
            self.frames_queued()
        stream.flow.connection_lost()  # an app waiting in send() for window hears of it
        if stream.cycle is not None:
            stream.cycle.client_gone()
        self.stream_finished(stream)

    def stream_reading(self, stream: H2Stream, paused: bool) -> None:
        # zttp grants flow-control credit as it reads, so the bound on what waits unread is
        # the socket's: reading pauses while any stream holds more than its share.
        self._paused_streams += 1 if paused else -1
        if self.closed:
            return
        if self._paused_streams > 0 and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()
        elif self._paused_streams <= 0 and self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()
            now = self.state.now
            for other in self.streams.values():
                other.last_heard = now  # their silence while we did not read was ours

    def now(self) -> float:
        return self.state.now

    def _after_stream(self) -> None:
        if self.streams:
            return
        if self.closing:
            self._close()
        else:
            self._idle()

    # -- writing, deadlines, shutdown ----------------------------------------------------------

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._unflushed = 0
        if self.closed or self.transport.is_closing():
            return  # nothing goes out after the close (_close flushed what came before it)
        data = self.connection.data_to_send()
        if data:
            self.transport.write(data)

    def _idle(self) -> None:
        self._idle_until = self.state.now + self.context.limits.keep_alive_timeout
        self._set_deadline(self._idle_until + TICK)

    def _set_deadline(self, deadline: float) -> None:
        """Set the deadline, or an earlier one if the transport's buffer is full: a peer that
        reads nothing for --timeout-send is cut off, whatever else the connection waits for."""
        if self._writing_paused:
            deadline = min(deadline, self._cut_off_at())
        self.deadline = deadline

    def _cut_off_at(self) -> float:
        """When a peer whose socket is full (writing paused) has read nothing for too long."""
        return self._writing_paused_since + self.context.limits.send_timeout + TICK

    def check_deadline(self, now: float) -> None:
        """The server's housekeeping tick, once `self.deadline` has passed: an idle connection
        closes; a client that reads nothing for --timeout-send is cut off (the connection, if
        it leaves the socket full; else the stream whose window it keeps shut); a request body
        that stops arriving for --timeout-request-body is answered 408 (or its stream reset,
        once the response has begun)."""
        limits = self.context.limits
        if self._writing_paused and now >= self._cut_off_at():
            self._cut_off()
            return
        if not self.streams:
            if self.closing or now >= self._idle_until:
                self.shutdown()
            else:
                self._set_deadline(self._idle_until + TICK)  # woken by a write pause that has ended
            return
        next_check = now + STALL_CHECK
        for stream in list(self.streams.values()):
            if stream.window_closed:
                stalled_until = stream.stalled_since + limits.send_timeout + TICK
                if now >= stalled_until:
                    self._stalled(stream)
                    continue
                next_check = min(next_check, stalled_until)
            cycle = stream.cycle
            if (
                cycle is None
                or stream.ending  # answered: the rest of its body is not waited for
                or not cycle.more_body
                # The wait is ours, not the client's: it waits for the 100 Continue the app's
                # first receive() sends, or we stopped reading because the app reads nothing.
                # Its silence counts from the 100, or from when we read again.
                or cycle.expect_continue
                or self._reading_paused
            ):
                continue
            silent_until = stream.last_heard + limits.body_timeout + TICK
            if now >= silent_until:
                self._body_refused(stream, cycle, 408, BODY_TIMEOUT)
            else:
                next_check = min(next_check, silent_until)
        if self.streams:  # else the last stream's end set the keep-alive deadline
            self._set_deadline(next_check)

    def _stalled(self, stream: H2Stream) -> None:
        """The peer kept the stream's window shut for --timeout-send: RST_STREAM, and its app
        (waiting in send()) sees a disconnect."""
        cycle = stream.cycle
        if cycle is not None:
            cycle.abandon(cycle.status, "aborted")
        self.reset_stream(stream, CANCEL)
        if stream.tunnel is not None:
            stream.tunnel.stream_gone()

    def _cut_off(self) -> None:
        """The peer has read nothing for --timeout-send and the socket is full: what is
        buffered will never be read, so the connection is aborted (close() would wait on
        it). Its apps see a disconnect; the responses under way are logged as aborted."""
        for stream in self.streams.values():
            cycle = stream.cycle
            if cycle is not None and cycle.response_begun():
                cycle.abandon(cycle.status, "aborted")
        self.deadline = math.inf
        self.abort()

    def shutdown(self) -> None:
        """GOAWAY with the last stream id: streams under way finish, new ones are refused,
        and the connection closes when the last one is done (RFC 9113 section 6.8)."""
        if self.closed:
            return
        if not self.closing:
            self.closing = True
            self.connection.close(NO_ERROR, self._last_stream_id)
            self._flush()
        if not self.streams:
            self._close()

    def _close(self) -> None:
        self.closing = True
        if not self.closed:
            self._flush()  # what the last stream queued goes out before the close
            # The transport writes what it holds first: --timeout-send bounds that wait.
            self._set_deadline(math.inf)
            self.transport.close()
            # Streams still open never finish (the connection failed, or a flood cut it off):
            # their apps see a disconnect now, not a send into the closed transport.
            self._streams_gone()

    def _streams_gone(self) -> None:
        """The connection is gone, or going: every open stream's app sees a disconnect."""
        streams = list(self.streams.values())
        self.streams.clear()
        for stream in streams:
            stream.finished = True
            _disconnect(stream)
            stream.release()

    def abort(self) -> None:
        if not self.closed:
            self.transport.abort()


def _disconnect(stream: H2Stream) -> None:
    """Whatever waits on the stream hears that it is gone: a send() held for window, the app's
    receive(), a WebSocket session."""
    stream.flow.connection_lost()
    if stream.cycle is not None:
        stream.cycle.client_gone()
    if stream.tunnel is not None:
        stream.tunnel.stream_gone()


def _expects_continue(headers: list[tuple[bytes, bytes]]) -> bool:
    """`Expect: 100-continue` (RFC 9110 section 10.1.1): zttp does not report it on HTTP/2."""
    return any(name == b"expect" and value.lower() == b"100-continue" for name, value in headers)
