"""glibc's allocator, set once the server is serving, for a process whose memory rises and falls
with its requests in flight.

glibc hands the top of its heap back to the kernel as soon as 128 KiB of it is free
(M_TRIM_THRESHOLD), and the next allocations take it back a page fault at a time. A server's
heap swings with its requests: 64 connections echoing 16 KiB move it by megabytes many times a
second, and with glibc's defaults each such request paid about three page faults, a tenth of
its CPU time (bench/README.md, "Memory allocator"). From here on up to TRIM_THRESHOLD of free
heap stays with the process, and blocks below MMAP_THRESHOLD come from the heap rather than
from mmap (a fresh mapping, faulted in, per block): the threshold glibc's own adaptive one
would settle on after freeing one such block. Setting either fixes both, so both are set.

Left alone where the C library is not glibc (musl, macOS), and where the operator set these
thresholds through glibc's environment, which wins. The cost: up to TRIM_THRESHOLD of freed
memory per allocator arena stays in the process's resident memory (--limit-max-rss counts it).
"""

from __future__ import annotations

import os
from typing import Final

TRIM_THRESHOLD: Final = 8 << 20
MMAP_THRESHOLD: Final = 4 << 20

# mallopt's parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3
# How an operator sets these without us: glibc's variables, or its tunables.
_OPERATOR_VARIABLES: Final = (
    b"MALLOC_TRIM_THRESHOLD_=",
    b"MALLOC_MMAP_THRESHOLD_=",
    b"MALLOC_TOP_PAD_=",
    b"MALLOC_MMAP_MAX_=",
)
_OPERATOR_TUNABLES: Final = (
    b"glibc.malloc.trim_threshold",
    b"glibc.malloc.mmap_threshold",
    b"glibc.malloc.top_pad",
    b"glibc.malloc.mmap_max",
)


def keep_freed_memory() -> str:
    """Set glibc's thresholds (see the module's docstring); says what was done, for the
    startup log."""
    if not _glibc_version():
        return "not glibc: the allocator left as it is"
    if _operator_tuned(_startup_environment()):
        return "glibc's allocator left as its environment variables set it"
    import ctypes  # here: imported for this one call

    mallopt = ctypes.CDLL(None).mallopt
    if not (
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    ):
        return "glibc refused the allocator's thresholds"
    return (
        f"glibc's allocator keeps up to {TRIM_THRESHOLD >> 20} MiB of freed memory, and serves "
        f"blocks under {MMAP_THRESHOLD >> 20} MiB from its heap"
    )


def _operator_tuned(environment: list[bytes]) -> bool:
    for entry in environment:
        if entry.startswith(_OPERATOR_VARIABLES):
            return True
        if entry.startswith(b"GLIBC_TUNABLES=") and any(t in entry for t in _OPERATOR_TUNABLES):
            return True
    return False


def _startup_environment() -> list[bytes]:
    """The environment glibc read when the process started: --env-file adds to os.environ
    later, too late for glibc."""
    try:
        with open("/proc/self/environ", "rb") as environ:
            return environ.read().split(b"\0")
    except OSError:  # no /proc: what the process has now is the best guess
        return [b"%s=%s" % item for item in os.environb.items()]


def _glibc_version() -> str:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (ValueError, OSError):  # not a name this system knows
        return ""
