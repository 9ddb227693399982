"""The interface between `WebSocketProtocol` and the sans-I/O library behind `--ws`.

`WebSocketProtocol` (websocket.py) runs the ASGI conversation, the transport, flow control and
keepalive; an engine does the RFC 6455 part: it checks the opening handshake, writes the 101
response, parses frames into `Part`, `Pong` and `Closed` events, and frames what we send.
Output collects in the engine until `data_to_send()`; an empty chunk there means "close TCP".

`--ws auto` is ws_frames.py: websockets for the handshake and compressed sessions, our own
framing for the rest. `--ws websockets` is the library throughout (ws_websockets.py): echoing
a message through its `ServerProtocol` costs 4.2 µs for 16 bytes and 12.6 µs for 64 KiB,
through wsproto 13.0 µs and 101 µs (3-9x more; bench/ws_engines.py). wsproto (ws_wsproto.py)
stays available for uvicorn users who chose it, as the optional extra `monoceros[wsproto]`.
"""

from __future__ import annotations

import codecs
from typing import Final, NamedTuple, Protocol

from monoceros.types import Message

Headers = list[tuple[bytes, bytes]]


# Events are plain classes, not named tuples: compiled, one is made in a few instructions
# (a named tuple is built through Python), and a WebSocket message makes at least one.
class Part:
    """A piece of a data message, in order; `fin` on the last one."""

    __slots__ = ("data", "fin", "text")

    def __init__(self, data: bytes | str, text: bool, fin: bool) -> None:
        self.data = data  # str from engines that decode text themselves (wsproto)
        self.text = text
        self.fin = fin


class Pong:
    __slots__ = ("payload",)

    def __init__(self, payload: bytes) -> None:
        self.payload = payload


class Closed:
    """The closing handshake, reported once: the peer's close frame (already answered), or
    the code with which the engine failed the connection over a protocol error."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


class Rejection(NamedTuple):
    """Why an opening handshake is refused: the HTTP status and the headers that explain it."""

    status: int
    headers: Headers
    body: bytes


Event = Part | Pong | Closed


class Engine(Protocol):
    def handshake(self, head: bytes) -> Rejection | None:
        """Check the upgrade request (its head as bytes); None when it can be accepted."""

    def accept(self, subprotocol: str | None, headers: Headers) -> None: ...

    def accept_without_handshake(self) -> None:
        """Frame from now on, with no extension: the session was opened by HTTP/2's extended
        CONNECT (RFC 8441), whose answer is a HEADERS frame the connection sends itself."""

    def receive(self, data: bytes) -> list[Event]: ...

    def send_message(self, data: bytes | str) -> None: ...

    def ping(self, payload: bytes) -> None: ...

    def close(self, code: int, reason: str) -> bool:
        """Start the closing handshake; False if it has already started."""

    def fail(self, code: int, reason: str) -> None:
        """Close at once over a violation the engine cannot see itself (size, UTF-8)."""

    def data_to_send(self) -> list[bytes]: ...


# A control frame's payload is at most this long (RFC 6455 5.5): a close frame's reason, 2 less.
MAX_CONTROL_PAYLOAD: Final = 125


# The codes below 3000 an endpoint may put in a close frame (RFC 6455 7.4, and IANA's registry
# for 1012-1014): not 1004-1006 or 1015 (reserved, or meaning "no frame"), nor unassigned ones.
SENDABLE_CLOSE_CODES: Final = frozenset(
    (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014)
)


def may_send(code: int) -> bool:
    """Whether an endpoint may put `code` in a close frame (either side: the same rules)."""
    return code in SENDABLE_CLOSE_CODES or 3000 <= code < 5000


def check_close(code: int, reason: str) -> None:
    """The app's close code and reason, refused as websockets refuses them: ValueError, so
    the app's send() raises and the session closes with 1011."""
    if not may_send(code):
        raise ValueError(f"close code {code} may not be sent")
    if len(reason.encode()) > MAX_CONTROL_PAYLOAD - 2:
        raise ValueError(f"close reason longer than {MAX_CONTROL_PAYLOAD - 2} bytes")


class MessageTooBig(Exception):
    pass


class MessageAssembler:
    """Joins a message's parts, enforcing `--ws-max-size` on the whole message (an engine sees
    frames). Text is decoded once when it comes whole; a fragmented text message is decoded
    part by part, so invalid UTF-8 ends the session (1007) as soon as it arrives."""

    __slots__ = ("_decoder", "_max_size", "_parts", "_text", "size")

    def __init__(self, max_size: int) -> None:
        self._max_size = max_size
        self._parts: list[bytes | str] = []
        self._text = False
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self.size = 0

    def add(self, part: Part) -> Message | None:
        """The complete message once `part` is its last, else None."""
        data = part.data
        if not self._parts:
            self._text = part.text
            self.size = 0
        self.size += len(data) if type(data) is not str else len(data.encode())
        if self.size > self._max_size:
            raise MessageTooBig
        if part.fin and not self._parts:  # unfragmented: nearly every message
            whole = data
        else:
            if self._text and not isinstance(data, str):
                if not self._parts:
                    self._decoder.reset()
                data = self._decoder.decode(data, part.fin)  # UnicodeDecodeError: 1007
            self._parts.append(data)
            if not part.fin:
                return None
            parts, self._parts = self._parts, []
            if isinstance(data, str):
                whole = "".join(p for p in parts if isinstance(p, str))
            else:
                whole = b"".join(p for p in parts if not isinstance(p, str))
        if not self._text:
            return {"type": "websocket.receive", "bytes": whole}
        if not isinstance(whole, str):
            whole = whole.decode()
        return {"type": "websocket.receive", "text": whole}
