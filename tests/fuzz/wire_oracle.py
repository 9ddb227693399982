"""What a fuzz harness believes about the bytes a server wrote: the responses in them, parsed by
h11 as the client that sent the requests would parse them. Anything h11 cannot parse, bytes
after the last response, or a response cut short by anything but an abort is an
`AssertionError`: a finding. No monoceros import (see tests/fuzz/run.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import h11

# What the server answers itself (never the harness apps): after one, nothing more is written
# and the connection closes.
SERVER_ERRORS = frozenset((400, 408, 413, 414, 431, 500, 501, 503))


@dataclass
class Parsed:
    status: int
    close: bool  # the response says `connection: close`
    complete: bool


def read_responses(written: bytes, methods: list[str], eof: bool) -> tuple[list[Parsed], bytes]:
    """The responses in `written` to requests made with `methods`, in order, and what is left
    unparsed after the last. `eof`: the connection ended after `written`. Raises
    AssertionError on anything that is not well-formed HTTP/1.1."""
    client = h11.Connection(h11.CLIENT)
    client.receive_data(written)
    if eof:
        client.receive_data(b"")
    parsed: list[Parsed] = []
    for method in methods:
        if parsed:
            if not (client.our_state is h11.DONE and client.their_state is h11.DONE):
                break  # the last response ended the connection
            client.start_next_cycle()
        client.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
        client.send(h11.EndOfMessage())
        response: Parsed | None = None
        while True:
            try:
                event = client.next_event()
            except h11.RemoteProtocolError as exc:
                raise AssertionError(f"malformed response ({exc}) in {written!r}") from None
            if event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                if response is not None:
                    parsed.append(response)  # cut short
                return parsed, b""
            if isinstance(event, h11.Response):
                close = any(
                    name == b"connection" and b"close" in value.lower()
                    for name, value in event.headers.raw_items()
                )
                response = Parsed(event.status_code, close, False)
            elif isinstance(event, h11.EndOfMessage):
                assert response is not None
                response.complete = True
                parsed.append(response)
                break
            elif event is h11.PAUSED:  # a 2xx to CONNECT: what follows is not HTTP
                raise AssertionError(f"a tunnel was opened: {written!r}")
    return parsed, client.trailing_data[0]


def check_exchange(
    written: bytes, methods: list[str], *, closed: bool, aborted: bool
) -> list[Parsed]:
    """The invariants of one connection's output, given the methods of the requests that
    reached the app, in order. `closed`: the server closed the connection; `aborted`: it cut
    it (a response under way may then be incomplete).

    - every byte belongs to a well-formed response (h11), one per request that reached the
      app, plus at most one the server answered itself, last;
    - a response the server answered itself (a rejected request) is the last, says
      `connection: close`, and the connection is closed;
    - only an abort leaves a response incomplete, or a request that reached the app
      unanswered."""
    eof = closed and not aborted  # after an abort, a response may end anywhere
    parsed, rest = read_responses(written, methods, eof=eof)
    if len(parsed) == len(methods) and (rest or (len(methods) == 0 and written)):
        # One more: the server's own answer to a request the app never saw. Its method is
        # not known here; a HEAD's answer is a head alone.
        try:
            parsed, rest = read_responses(written, [*methods, "GET"], eof=eof)
            as_get = parsed[-1].complete and not rest
        except AssertionError:
            as_get = False
        if not as_get:
            parsed, rest = read_responses(written, [*methods, "HEAD"], eof=eof)
        assert len(parsed) == len(methods) + 1, f"bytes after the last response: {written!r}"
        assert parsed[-1].status in SERVER_ERRORS, f"unasked response {parsed[-1]}: {written!r}"
    assert not rest, f"bytes after the last response: {rest!r} in {written!r}"
    for index, response in enumerate(parsed):
        last = index == len(parsed) - 1
        if not response.complete:
            assert last and aborted, f"response {index} cut short without an abort: {written!r}"
        if response.status in SERVER_ERRORS:
            assert last, f"a response after the server's {response.status}: {written!r}"
            assert response.close, f"{response.status} without connection: close: {written!r}"
            assert closed, f"the connection stayed open after a {response.status}"
    if closed and not aborted:
        assert len(parsed) >= len(methods), f"closed with requests unanswered: {written!r}"
    return parsed
