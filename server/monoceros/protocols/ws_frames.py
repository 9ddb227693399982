"""`--ws auto`: RFC 6455 framing of our own, with the `websockets` package for the rest.

The opening handshake, and permessage-deflate when a client asks for it, stay with websockets
(ws_websockets.py). A session without an extension, which is what most non-browser clients
and every HTTP/2 WebSocket open, is framed here: its sans-I/O parser costs about 35,000
instructions to read a 16-byte message (a generator per frame, a Frame object, checks in
Python), this about a tenth of that (bench/README.md, "WebSocket framing").

What a server must check of the frames it reads (RFC 6455 section 5): every client frame is
masked; no reserved bit is set (no extension gives them a meaning here); opcodes are the six
defined; control frames are whole (FIN) and at most 125 bytes; continuation frames continue
a message and only they do; a close frame's code is one a peer may send and its reason UTF-8.
Any violation closes the session with 1002 (1007 for the reason), as websockets does. A frame
longer than --ws-max-size is refused by its header, before its payload is read (1009). Text is
checked for UTF-8 by the caller's `MessageAssembler`, which sees whole messages.
"""

from __future__ import annotations

from typing import Final

from websockets.utils import apply_mask  # C (SIMD) where websockets' extension is built

from monoceros.config import WebSocketSettings
from monoceros.protocols.ws_engine import (
    MAX_CONTROL_PAYLOAD,
    Closed,
    Event,
    Headers,
    Part,
    Pong,
    Rejection,
    check_close,
    may_send,
)
from monoceros.protocols.ws_websockets import WebsocketsEngine

CONTINUATION: Final = 0x0
TEXT: Final = 0x1
BINARY: Final = 0x2
CLOSE: Final = 0x8
PING: Final = 0x9
PONG: Final = 0xA

NO_STATUS: Final = 1005  # a close frame without a code (never sent as one)
PROTOCOL_ERROR: Final = 1002
INVALID_DATA: Final = 1007
MESSAGE_TOO_BIG: Final = 1009


class ProtocolViolation(Exception):
    """A frame the peer may not send; the session closes with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def frame_head(opcode: int, length: int) -> bytes:
    """An unmasked, final frame's header (a server never masks)."""
    if length < 126:
        return bytes((0x80 | opcode, length))
    if length < 0x10000:
        return bytes((0x80 | opcode, 126)) + length.to_bytes(2, "big")
    return bytes((0x80 | opcode, 127)) + length.to_bytes(8, "big")


def close_payload(code: int, reason: str) -> bytes:
    """A close frame's payload: the code, then as much of the reason as fits in 125 bytes
    (cut between characters: the server's own reasons, when it fails a session)."""
    encoded = reason.encode()[: MAX_CONTROL_PAYLOAD - 2]
    encoded = encoded.decode(errors="ignore").encode()
    return code.to_bytes(2, "big") + encoded


def parse_close(payload: bytes) -> tuple[int, str]:
    """A received close frame's code and reason (1005 and "" when it has none)."""
    if not payload:
        return NO_STATUS, ""
    if len(payload) == 1:
        raise ProtocolViolation(PROTOCOL_ERROR, "close frame too short")
    code = int.from_bytes(payload[:2], "big")
    if not may_send(code):
        raise ProtocolViolation(PROTOCOL_ERROR, f"invalid close code {code}")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        raise ProtocolViolation(INVALID_DATA, "invalid UTF-8 in close reason") from None
    return code, reason


class FramesEngine:
    """The `Engine` of `--ws auto` (ws_engine.py): websockets until the session opens, then
    our framing unless an extension was negotiated."""

    def __init__(self, settings: WebSocketSettings) -> None:
        self.max_size = settings.max_size
        self._library: WebsocketsEngine | None = WebsocketsEngine(settings)
        self._output: list[bytes] = []
        self._partial = bytearray()  # a frame not all received yet
        self._needed = 0  # its whole length, once its header is here
        self._message_text: bool | None = None  # the message being received: text or not
        self._close_sent = False
        self._ended = False  # end of stream queued: nothing more is read or written

    # -- the opening handshake: websockets' -----------------------------------------------------

    def handshake(self, head: bytes) -> Rejection | None:
        assert self._library is not None
        return self._library.handshake(head)

    def accept(self, subprotocol: str | None, headers: Headers) -> None:
        library = self._library
        assert library is not None
        library.accept(subprotocol, headers)
        if library.extensions_negotiated():
            return  # permessage-deflate: websockets frames this session
        self._output.extend(library.data_to_send())
        self._library = None

    def accept_without_handshake(self) -> None:
        self._library = None  # HTTP/2 (RFC 8441) negotiates no extension

    # -- frames in ------------------------------------------------------------------------------

    def receive(self, data: bytes) -> list[Event]:
        if self._library is not None:
            return self._library.receive(data)
        events: list[Event] = []
        if self._ended:
            return events
        partial = self._partial
        if partial:
            partial += data
            if len(partial) < self._needed:  # a long frame arriving read by read: no copy
                return events
            data = bytes(partial)
            partial.clear()
        self._needed = 0
        try:
            done = self._read_frames(data, events)
        except ProtocolViolation as violation:
            self.fail(violation.code, violation.reason)
            events.append(Closed(violation.code, violation.reason))
            return events
        if done < len(data):
            partial += data[done:] if done else data
        return events

    def _read_frames(self, data: bytes, events: list[Event]) -> int:
        """Read the whole frames in `data` into `events`; how many bytes they took."""
        start, end = 0, len(data)
        while start < end and not self._ended:
            if end - start < 2:
                break
            # The length is read as websocket.frame_size reads it: a shared function returning
            # (length, offset) cost 3% more instructions per message (33,647 against 32,632).
            first, second = data[start], data[start + 1]
            opcode = first & 0x0F
            length = second & 0x7F
            at = start + 2
            if length == 126:
                if end - at < 2:
                    break
                length = int.from_bytes(data[at : at + 2], "big")
                at += 2
            elif length == 127:
                if end - at < 8:
                    break
                length = int.from_bytes(data[at : at + 8], "big")
                at += 8
            self._check_head(first, second, opcode, length)
            if end - at < 4 + length:  # the payload is still coming
                self._needed = at + 4 + length - start
                break
            mask = data[at : at + 4]
            at += 4
            payload = data[at : at + length]
            if length:
                payload = apply_mask(payload, mask)
            start = at + length
            self._frame(opcode, bool(first & 0x80), payload, events)
        return start

    def _check_head(self, first: int, second: int, opcode: int, length: int) -> None:
        if first & 0x70:
            raise ProtocolViolation(PROTOCOL_ERROR, "reserved bits must be 0")
        if not second & 0x80:
            raise ProtocolViolation(PROTOCOL_ERROR, "incorrect masking")
        if opcode >= CLOSE:
            if opcode > PONG:
                raise ProtocolViolation(PROTOCOL_ERROR, f"invalid opcode {opcode}")
            if not first & 0x80:
                raise ProtocolViolation(PROTOCOL_ERROR, "fragmented control frame")
            if length > MAX_CONTROL_PAYLOAD:
                raise ProtocolViolation(PROTOCOL_ERROR, "control frame too long")
            return
        if opcode > BINARY:
            raise ProtocolViolation(PROTOCOL_ERROR, f"invalid opcode {opcode}")
        if (opcode == CONTINUATION) != (self._message_text is not None):
            raise ProtocolViolation(
                PROTOCOL_ERROR,
                "unexpected continuation frame"
                if opcode == CONTINUATION
                else "expected a continuation frame",
            )
        if length > self.max_size:
            raise ProtocolViolation(MESSAGE_TOO_BIG, f"frame of {length} bytes exceeds limit")

    def _frame(self, opcode: int, fin: bool, payload: bytes, events: list[Event]) -> None:
        if opcode <= BINARY:
            text = self._message_text if opcode == CONTINUATION else opcode == TEXT
            self._message_text = None if fin else text
            events.append(Part(payload, bool(text), fin))
        elif opcode == PING:  # answered until a close is received, ours sent or not (5.5.2)
            self._send(PONG, payload)
        elif opcode == PONG:
            events.append(Pong(payload))
        else:
            code, reason = parse_close(payload)
            if not self._close_sent:  # echo it (RFC 6455 5.5.1)
                self._send(CLOSE, b"" if code == NO_STATUS else payload[:2])
                self._close_sent = True
            self._end()
            events.append(Closed(code, reason))

    # -- frames out -----------------------------------------------------------------------------

    def send_message(self, data: bytes | str) -> None:
        if self._library is not None:
            self._library.send_message(data)
        elif isinstance(data, str):
            self._send(TEXT, data.encode())
        else:
            self._send(BINARY, data)

    def ping(self, payload: bytes) -> None:
        if self._library is not None:
            self._library.ping(payload)
        elif not self._close_sent:
            self._send(PING, payload)

    def close(self, code: int, reason: str) -> bool:
        if self._library is not None:
            return self._library.close(code, reason)
        if self._close_sent:
            return False
        check_close(code, reason)
        self._send(CLOSE, close_payload(code, reason))
        self._close_sent = True
        return True

    def fail(self, code: int, reason: str) -> None:
        if self._library is not None:
            self._library.fail(code, reason)
            return
        if not self._close_sent and not self._ended:
            self._send(CLOSE, close_payload(code, reason))
            self._close_sent = True
        self._end()

    def data_to_send(self) -> list[bytes]:
        if self._library is not None:
            return self._library.data_to_send()
        output, self._output = self._output, []
        return output

    def _send(self, opcode: int, payload: bytes) -> None:
        if not self._ended:
            self._output.append(frame_head(opcode, len(payload)) + payload)

    def _end(self) -> None:
        """The server closes TCP first (RFC 6455 7.1.1): an empty chunk says so."""
        if not self._ended:
            self._ended = True
            self._output.append(b"")
