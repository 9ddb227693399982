"""Where log lines go: one buffered stream to stdout, flushed once per event-loop turn.

A write per line would cost a syscall per request (and containers run with
PYTHONUNBUFFERED). Lines written while the loop runs are collected and written together by
a callback scheduled for the end of the current turn, or at once past 64 KiB; nothing waits
longer than one loop turn, and `close()` flushes what is left at exit.

`immediate` (the console format, for people): every line goes out as it is written, after
whatever print() left in sys.stdout, so the two come out in the order they were written.
Log records may come from any thread (an app logging from a thread pool, the loop watchdog
while the loop is blocked): `write_from_any_thread` buffers those of the loop's thread and
writes the others at once, since the buffer and the loop's callbacks are the loop thread's
alone. The access log writes from the loop's thread only, through `write`.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from typing import BinaryIO, Final

FLUSH_THRESHOLD: Final = 64 * 1024


class LineBuffer:
    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout.buffer
        # What print() writes goes through sys.stdout's own buffer first (when ours is under it).
        self._text = sys.stdout if stream is None else None
        self.immediate = False
        # A list joined once per flush: appending a line is a pointer, where `bytearray +=`
        # copied each one (and, compiled, went through the generic in-place add).
        self._lines: list[bytes] = []
        self._size = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._scheduled = False
        self._lock = threading.Lock()  # one thread at a time in write_now

    def attach(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Buffer while `loop` runs; with None, every write goes straight out."""
        self.flush()
        self._loop = loop
        self._loop_thread = threading.get_ident() if loop is not None else 0

    def write_from_any_thread(self, line: bytes) -> None:
        if self._loop_thread == threading.get_ident():
            self.write(line)
        else:  # the loop may not flush for a while, and its buffer is not this thread's
            self.write_now(line)

    def write_now(self, line: bytes) -> None:
        """Write `line` at once (from any thread)."""
        with self._lock:
            self._write_out(line)

    def hold(self) -> None:
        """Lines written until `release()` wait for it: the observers' batch of access lines
        goes out in one write at its end, where a flush left to the loop would cost another
        turn (at light load, a turn per request)."""
        self._scheduled = True  # a flush is due: at release()

    def release(self) -> None:
        self.flush()

    def write(self, line: bytes) -> None:
        self._lines.append(line)
        self._size += len(line)
        if self.immediate:
            self.flush()
            return
        if self._scheduled and self._size <= FLUSH_THRESHOLD:
            # The common case under load: a flush is already due this turn. (Should the loop
            # close before it runs, close() writes what is left: the server calls it first.)
            return
        loop = self._loop
        if loop is None or self._size > FLUSH_THRESHOLD or loop.is_closed():
            self.flush()
        else:
            self._scheduled = True
            loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if not self._lines:
            return
        lines, self._lines, self._size = self._lines, [], 0
        self._write_out(b"".join(lines))  # stdout's BufferedWriter keeps whole writes whole

    def _write_out(self, data: bytes) -> None:
        try:
            if self.immediate and self._text is not None:
                self._text.flush()
            self._stream.write(data)
            self._stream.flush()
        except (BrokenPipeError, ValueError):
            # The reader went away (or stdout was closed): drop logs rather than crash
            # the server; point stdout at devnull so the interpreter's exit flush is quiet.
            self._stream = open(os.devnull, "wb")  # noqa: SIM115

    def close(self) -> None:
        self.attach(None)
