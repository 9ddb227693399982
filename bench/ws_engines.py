"""The two sans-I/O WebSocket libraries behind `--ws`, measured alone: the cost of echoing
one masked text message (parse the client's frame, frame the reply), per message size.

This is why `--ws auto` means websockets (see server/monoceros/protocols/ws_engine.py).
Usage: .venv/bin/python bench/ws_engines.py
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from websockets.client import ClientProtocol
from websockets.frames import Frame
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri
from wsproto.connection import Connection, ConnectionType
from wsproto.events import TextMessage


def client_frame(text: str) -> bytes:
    client = ClientProtocol(parse_uri("ws://localhost/"))
    client.state = State.OPEN  # framing only: no handshake needed on the client side
    client.send_text(text.encode())
    return b"".join(client.data_to_send())


def websockets_echo() -> Callable[[bytes], int]:
    """An echo through websockets' ServerProtocol, after a real handshake."""
    server = ServerProtocol()
    handshake = ClientProtocol(parse_uri("ws://localhost/"))
    handshake.send_request(handshake.connect())
    server.receive_data(b"".join(handshake.data_to_send()))
    server.send_response(server.accept(server.events_received()[0]))  # type: ignore[arg-type]
    server.data_to_send()

    def echo(frame: bytes) -> int:
        server.receive_data(frame)
        echoed = 0
        for event in server.events_received():
            assert isinstance(event, Frame)
            server.send_text(bytes(event.data))
            echoed += 1
        server.data_to_send()
        return echoed

    return echo


def wsproto_echo() -> Callable[[bytes], int]:
    """An echo through wsproto's frame protocol (what follows its handshake)."""
    server = Connection(ConnectionType.SERVER)

    def echo(frame: bytes) -> int:
        server.receive_data(frame)
        echoed = 0
        for event in server.events():
            assert isinstance(event, TextMessage)
            server.send(TextMessage(data=event.data))
            echoed += 1
        return echoed

    return echo


def seconds_per_message(echo: Callable[[bytes], int], frame: bytes, count: int) -> float:
    echoed = 0
    started = time.perf_counter()
    for _ in range(count):
        echoed += echo(frame)
    elapsed = time.perf_counter() - started
    assert echoed == count
    return elapsed / count


def main() -> None:
    print("| message | websockets | wsproto | wsproto / websockets |")
    print("| --: | --: | --: | --: |")
    for size, count in ((16, 50_000), (1024, 50_000), (65536, 3_000)):
        frame = client_frame(os.urandom(size // 2).hex())
        fast = min(seconds_per_message(websockets_echo(), frame, count) for _ in range(3))
        slow = min(seconds_per_message(wsproto_echo(), frame, count) for _ in range(3))
        print(f"| {size:,} B | {fast * 1e6:.1f} µs | {slow * 1e6:.1f} µs | {slow / fast:.1f}x |")


if __name__ == "__main__":
    main()
