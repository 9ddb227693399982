"""The two sans-I/O HTTP/2 libraries a Python server can stand on, measured alone: the cost of
serving one small request (parse HEADERS and HPACK, send a response's HEADERS and DATA) when a
client keeps 100 streams open on one connection.

This is why `--http2` runs on zttp (server/monoceros/protocols/http2.py, docs/http2.md).
Usage: .venv/bin/python bench/h2_engines.py [--rounds N]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from importlib.metadata import version

import h2.config
import h2.connection
import h2.events
import h2.stream
import zttp

STREAMS = 100  # open at once, as a browser or an h2load client keeps them
BATCHES = 20
REQUEST = [
    (b":method", b"GET"),
    (b":path", b"/"),
    (b":scheme", b"http"),
    (b":authority", b"localhost"),
    (b"user-agent", b"bench"),
    (b"accept", b"*/*"),
]
RESPONSE_FIELDS = [(b"content-type", b"text/plain"), (b"content-length", b"13")]
BODY = b"Hello, World!"


def client_bytes() -> list[bytes]:
    """The preface, then BATCHES reads of STREAMS requests each, as a client writes them."""
    config = h2.config.H2Configuration(client_side=True, header_encoding=None)
    client = h2.connection.H2Connection(config)
    client.initiate_connection()
    reads = [client.data_to_send()]
    for _ in range(BATCHES):
        for _ in range(STREAMS):
            stream_id = client.get_next_available_stream_id()
            client.send_headers(stream_id, REQUEST, end_stream=True)
            # As if answered, so the client may open the next batch.
            machine = client.streams[stream_id].state_machine
            machine.process_input(h2.stream.StreamInputs.RECV_HEADERS)
            machine.process_input(h2.stream.StreamInputs.RECV_END_STREAM)
        reads.append(client.data_to_send())
    return reads


def serve_with_h2(reads: list[bytes]) -> int:
    config = h2.config.H2Configuration(client_side=False, header_encoding=None)
    server = h2.connection.H2Connection(config)
    server.initiate_connection()
    served = 0
    for data in reads:
        for event in server.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                stream_id = event.stream_id
                server.send_headers(stream_id, [(b":status", b"200"), *RESPONSE_FIELDS])
                server.send_data(stream_id, BODY, end_stream=True)
                served += 1
        server.data_to_send()
    return served


def serve_with_zttp(reads: list[bytes]) -> int:
    server = zttp.Connection(zttp.SERVER, zttp.HTTP2)
    server.initiate_connection()
    served = 0
    for data in reads:
        server.receive_data(data)
        while (event := server.next_event()) is not zttp.NEED_DATA:
            if type(event) is zttp.Request:
                stream = server.stream(event.stream_id)
                stream.send_response(200, RESPONSE_FIELDS, False)
                stream.send_data(BODY)
                stream.end_message()
                served += 1
        server.data_to_send()
    return served


def best_of(serve: Callable[[list[bytes]], int], reads: list[bytes], rounds: int) -> float:
    """Microseconds per request, the best of `rounds` runs (the least disturbed)."""
    assert serve(reads) == STREAMS * BATCHES  # every request answered, before timing
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        serve(reads)
        best = min(best, time.perf_counter() - started)
    return best / (STREAMS * BATCHES) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    reads = client_bytes()
    h2_cost = best_of(serve_with_h2, reads, args.rounds)
    zttp_cost = best_of(serve_with_zttp, reads, args.rounds)
    print(f"{STREAMS} streams at a time, {STREAMS * BATCHES} requests, best of {args.rounds}:")
    for name, cost in (("h2", h2_cost), ("zttp", zttp_cost)):
        print(f"  {name:>4} {version(name):<8} {cost:7.1f} us per request")
    print(f"  zttp costs {h2_cost / zttp_cost:.0f}x less")


if __name__ == "__main__":
    main()
