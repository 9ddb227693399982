"""allocator.py leaves glibc's thresholds to an operator who set them in the environment."""

from __future__ import annotations

import pytest

from monoceros.allocator import _operator_tuned


@pytest.mark.parametrize(
    "entry",
    [
        b"MALLOC_TRIM_THRESHOLD_=131072",
        b"MALLOC_MMAP_THRESHOLD_=65536",
        b"MALLOC_TOP_PAD_=0",
        b"MALLOC_MMAP_MAX_=0",
        b"GLIBC_TUNABLES=glibc.malloc.trim_threshold=131072",
        b"GLIBC_TUNABLES=glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=65536",
    ],
)
def test_the_operators_thresholds_win(entry: bytes) -> None:
    assert _operator_tuned([b"PATH=/usr/bin", entry, b""])


@pytest.mark.parametrize(
    "entry",
    [
        b"MALLOC_ARENA_MAX=2",  # another setting: ours still apply
        b"GLIBC_TUNABLES=glibc.malloc.arena_max=2",
        b"MY_MALLOC_TRIM_THRESHOLD_=1",
        b"NOTE=MALLOC_TRIM_THRESHOLD_=1",
    ],
)
def test_other_settings_leave_them_to_us(entry: bytes) -> None:
    assert not _operator_tuned([b"PATH=/usr/bin", entry, b""])
