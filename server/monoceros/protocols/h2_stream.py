"""One HTTP/2 stream: the ResponseChannel a request's cycle answers through, and that cycle's
HTTP/2 framing.

`H2RequestCycle` is `RequestCycle` (the ASGI conversation, its state machine, errors and the
record) with HTTP/2's framing in place of HTTP/1.1's: a response head is a HEADERS frame, the
body DATA frames, trailers a last HEADERS frame; there is no keep-alive to decide and no chunk
to frame. Frames are zttp's to build; the stream's connection (http2.py) flushes them.
"""

from __future__ import annotations

from typing import IO, Any, Final, cast

from monoceros.protocols.channel import ResponseChannel, copy_file
from monoceros.protocols.context import ConnectionContext
from monoceros.protocols.cycle import (
    INTERNAL_ERROR_BODY,
    RESPONSE_TRANSITIONS,
    MessageDict,
    RequestCycle,
    ResponseState,
    transition_table,
)
from monoceros.protocols.flow_control import FlowControl
from monoceros.protocols.head import (
    InvalidResponseHead,
    field_value,
    no_body_allowed,
    response_fields,
)
from monoceros.types import ServerScope

# RFC 9113 section 7 error codes we send.
INTERNAL_ERROR = 0x2
CANCEL = 0x8


class StreamHost:
    """What a stream asks of its connection (http2.py's Http2Protocol)."""

    def frames_queued(self, size: int = 0) -> None:
        """zttp has frames to send (`size` bytes of DATA among them): flush them (soon)."""
        raise NotImplementedError

    def stream_ended(self, stream: H2Stream) -> None:
        """The stream's last frame (END_STREAM) is queued: it finishes once that is sent."""
        raise NotImplementedError

    def stream_finished(self, stream: H2Stream) -> None:
        raise NotImplementedError

    def reset_stream(self, stream: H2Stream, error_code: int) -> None:
        raise NotImplementedError

    def stream_reading(self, stream: H2Stream, paused: bool) -> None:
        """The stream's unread body passed (or fell back under) its bound."""
        raise NotImplementedError

    def now(self) -> float:
        """The server's coarse clock (ServerState.now), for the stream's deadlines."""
        raise NotImplementedError


class StreamTunnel:
    """What runs on a stream opened by an extended CONNECT (RFC 8441), in place of a request's
    cycle: a WebSocket session (h2_websocket.py) takes the stream's DATA and its end."""

    def data_received(self, data: bytes) -> None:
        raise NotImplementedError

    def peer_ended(self) -> None:
        """END_STREAM from the peer: TCP's FIN, for the session."""
        raise NotImplementedError

    def stream_gone(self) -> None:
        """RST_STREAM, or the connection went: TCP's RST."""
        raise NotImplementedError


class H2Stream(ResponseChannel):
    def __init__(
        self, host: StreamHost, connection: Any, stream_id: int, peer: tuple[str, int] | None
    ) -> None:
        self.host = host
        # zttp's handle on this stream (from the zttp H2Connection), which sends its frames:
        # taken once, as it checks the stream anew at every use.
        self.frames: Any = connection.stream(stream_id)
        self.stream_id = stream_id
        self.peer = peer
        # Reading: the unread body's bound (FlowControl calls pause_reading/resume_reading
        # here); writing: paused while the peer's window is closed or the transport is full.
        self.flow = FlowControl(cast(Any, self))
        self.window_closed = False
        # The clock when the peer's window last held all our parked bytes back (it closed, or
        # it opened too little to let any out): --timeout-send counts from it.
        self.stalled_since = 0.0
        self.parked = 0  # body bytes zttp holds for want of window
        # The clock when the request body last arrived (or could first have, once the stream
        # opened or the 100 Continue went out): --timeout-request-body counts from it.
        self.last_heard = host.now()
        self.reading_paused = False
        # Our END_STREAM is queued, behind bytes parked for want of window: the stream stays
        # open (and counted) until they are out, or --timeout-send resets it.
        self.ending = False
        self.finished = False
        self.cycle: H2RequestCycle | None = None
        self.tunnel: StreamTunnel | None = None  # a WebSocket session, instead of a cycle

    # -- for FlowControl: this stream's share of the connection's reading -----------------

    def pause_reading(self) -> None:
        if not self.reading_paused and not self.finished and not self.ending:
            self.reading_paused = True
            self.host.stream_reading(self, True)

    def resume_reading(self) -> None:
        if self.reading_paused:
            self.reading_paused = False
            self.host.stream_reading(self, False)

    def release(self) -> None:
        """Its connection is done with the stream: nothing more is read or written on it.
        The stream, its flow control and its cycle refer to one another; dropping the
        references back to the stream lets reference counting free all three once the app's
        Task lets go of the cycle. Left to the garbage collector, they took a fifth of the
        server's time under load (bench/README.md, "HTTP/2's streams and the collector"). (A
        session's tunnel stays: it may yet be told the stream is gone, and there is one per
        WebSocket, not per request.)"""
        self.flow.connection_lost()  # a send() still waiting for window (reset) hears of it
        self.cycle = None

    # -- frames ------------------------------------------------------------------------------

    def send_head(self, status: int, fields: list[tuple[bytes, bytes]], end: bool) -> None:
        self.frames.send_response(status, fields, end)
        self.host.frames_queued()

    def informational(self, status: int, fields: list[tuple[bytes, bytes]]) -> None:
        self.frames.send_informational(status, fields)
        self.host.frames_queued()

    def send_data(self, data: bytes) -> None:
        frames = self.frames
        frames.send_data(data)
        self.host.frames_queued(len(data))
        parked = frames.pending_bytes
        if parked:  # past the peer's window: parked until it grants more
            if not self.window_closed:
                self.window_closed = True
                self.stalled_since = self.host.now()
                self.flow.pause_writing()
            self.parked = parked

    def end(self, trailers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.frames.end_message(trailers)
        self.host.frames_queued()

    def window_opened(self) -> None:
        """A WINDOW_UPDATE came: parked bytes may have gone out. Any that did restart the
        stall clock: --timeout-send counts a peer's silence, not a slow read."""
        if not self.window_closed:
            return
        parked = self.frames.pending_bytes
        if not parked:
            self.window_closed = False
            self.parked = 0
            self.flow.resume_writing()
            if self.ending:
                self.host.stream_finished(self)
        elif parked < self.parked:
            self.parked = parked
            self.stalled_since = self.host.now()

    # -- the ResponseChannel -----------------------------------------------------------------

    def write(self, data: bytes) -> None:
        raise RuntimeError("HTTP/1.1 bytes on an HTTP/2 stream")

    async def send_file(self, file: IO[bytes], size: int) -> None:
        await copy_file(file, size, self.send_data, self.flow)

    def keep_alive_allowed(self) -> bool:
        return True

    def response_complete(self, keep_alive: bool) -> None:
        self.host.stream_ended(self)

    def abort(self) -> None:
        """Cut the response: RST_STREAM, the only signal once a response broke mid-way."""
        self.host.reset_stream(self, INTERNAL_ERROR)


class H2RequestCycle(RequestCycle):
    """The body goes out as DATA frames as it comes; the stream ends with an empty DATA
    frame, or with the trailers' HEADERS frame (HTTP/2 always has room for trailers)."""

    __slots__ = ("stream",)

    def __init__(
        self,
        scope: ServerScope,
        stream: H2Stream,
        context: ConnectionContext,
        expect_continue: bool,
    ) -> None:
        super().__init__(scope, stream, context, True, expect_continue)
        self.stream = stream
        self._table = _H2_TRANSITIONS

    def _send_continue(self) -> None:
        self.stream.informational(100, [])
        self.stream.last_heard = self.stream.host.now()  # the client sends its body only now

    def _send_head(self, body_length: int | None) -> None:
        """The HEADERS frame: the app's fields (checked, lowercased) and ours."""
        context = self.context
        rid = self.request_id
        extra = None if rid is None else (context.request_id_header, rid.encode())
        self.expect_continue = False  # no interim response once the final one has begun
        try:
            fields, content_length = response_fields(
                self.status,
                self._headers,
                context.default_headers,
                body_length=body_length,
                extra=extra,
            )
        except InvalidResponseHead as exc:
            raise RuntimeError(f"Invalid response from ASGI application: {exc}") from None
        self._send_body = not self.is_head and not no_body_allowed(self.status)
        self._remaining = content_length if self._send_body else None
        self.response = ResponseState.STREAMING
        self.stream.send_head(self.status, fields, False)

    def _h2_early_hint(self, message: MessageDict) -> None:
        try:
            fields = [(b"link", field_value(link)) for link in message.get("links", ())]
        except InvalidResponseHead as exc:
            raise RuntimeError(f"Invalid early hint from ASGI application: {exc}") from None
        if fields:
            self.stream.informational(103, fields)

    def _h2_first_body(self, message: MessageDict) -> None:
        body: bytes = message.get("body", b"")
        more_body: bool = message.get("more_body", False)
        self._send_head(None if more_body else len(body))
        self._h2_more_body(message)

    def _h2_more_body(self, message: MessageDict) -> None:
        body: bytes = message.get("body", b"")
        if body and self._send_body:
            self._count_body(len(body))
            self.stream.send_data(body)
        if not message.get("more_body", False):
            self._end_of_body()

    def _end_of_body(self) -> None:
        if self._trailers:
            self.response = ResponseState.TRAILERS_PENDING
            return
        if self._remaining:
            self.stream.abort()  # fewer bytes than its Content-Length: a malformed response
        else:
            self.stream.end()
        self._complete()

    def _send_trailer_section(self) -> None:
        self.stream.end(self._trailer_fields if self._send_body else None)

    def _send_file_head(self, size: int) -> bool:
        self._send_head(size)
        return self._send_body

    def _send_internal_error(self) -> None:
        self.status = 500
        self._headers = ((b"content-type", b"text/plain; charset=utf-8"),)
        self._trailers = False
        self._send_head(len(INTERNAL_ERROR_BODY))
        if self._send_body:
            self._count_body(len(INTERNAL_ERROR_BODY))
            self.stream.send_data(INTERNAL_ERROR_BODY)
        self.stream.end()
        self._complete(outcome="error")


_H2_TRANSITIONS: Final = transition_table(
    RESPONSE_TRANSITIONS
    | {
        (ResponseState.WAITING_START, "http.response.early_hint"): H2RequestCycle._h2_early_hint,
        (ResponseState.HEAD_PENDING, "http.response.body"): H2RequestCycle._h2_first_body,
        (ResponseState.STREAMING, "http.response.body"): H2RequestCycle._h2_more_body,
    }
)
