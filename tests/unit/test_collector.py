"""collector.settle_after_startup: what exists at startup is frozen, the youngest generation's
threshold raised, and an app's own choice kept."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from monoceros.collector import YOUNG_GENERATION_THRESHOLD, settle_after_startup


@pytest.fixture(autouse=True)
def restore_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def tracked(obj: object) -> bool:
    return any(candidate is obj for candidate in gc.get_objects())


def test_startup_objects_are_frozen_out_of_every_collection() -> None:
    gc.unfreeze()
    startup_state: dict[str, list[int]] = {"cache": [1, 2, 3]}
    assert tracked(startup_state)

    frozen = settle_after_startup()

    # Near, not equal: a frozen object that is freed leaves the permanent generation, and an
    # in-process test server's thread may be settling its own startup meanwhile.
    assert frozen > 0
    assert gc.get_freeze_count() == pytest.approx(frozen, rel=0.01)
    assert not tracked(startup_state)  # in the permanent generation: no collection walks it
    made_after: dict[str, list[int]] = {"request": []}
    assert tracked(made_after)  # what serving makes is collected as usual


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param((700, 10, 10), (YOUNG_GENERATION_THRESHOLD, 10, 10), id="default-raised"),
        pytest.param((2000, 5, 3), (YOUNG_GENERATION_THRESHOLD, 5, 3), id="older-kept"),
        pytest.param((50_000, 10, 10), (50_000, 10, 10), id="app-higher-kept"),
        pytest.param((0, 10, 10), (0, 10, 10), id="automatic-off-kept"),
    ],
)
def test_young_threshold(before: tuple[int, int, int], after: tuple[int, int, int]) -> None:
    gc.set_threshold(*before)
    settle_after_startup()
    assert gc.get_threshold() == after
