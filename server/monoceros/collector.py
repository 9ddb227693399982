"""Python's garbage collector, set once the app has started, for a process that serves for days.

Reference counting frees what a request makes; the cyclic collector only looks for cycles. Its
defaults cost a busy server dearly (measured in bench/README.md, "Garbage collection"):

- Everything that exists once the app has started (modules, the app, its startup state, about
  35,000 objects for the example app) lives as long as the process, yet every full collection
  walks it again: 9 ms each, and under load one came every tenth of a second, so the server's
  p99 latency was that pause. `gc.freeze()` moves these objects where no collection looks.
- The youngest generation is collected after 700 more allocations than frees. 64 requests in
  flight hold about that many containers, so it ran a thousand times a second, and each run
  moved the objects of requests still in flight into the older generations, which full
  collections then walked. From 7,000 up it runs only for what reference counting leaves.

The young generations are collected first, so the app's startup garbage is not frozen with
the rest. An app that set its own threshold above ours, or turned automatic collection off
(0), is left as it chose.
"""

from __future__ import annotations

import gc

YOUNG_GENERATION_THRESHOLD = 7000


def settle_after_startup() -> int:
    """Collect the young generations, freeze what survives, and raise the youngest
    generation's threshold.

    Returns the number of objects frozen (for the startup log)."""
    # The app's startup leaves its garbage in the young generations (0.4 ms to collect); a full
    # collection took 8 ms of every start and found nothing: the imports' ones had run.
    gc.collect(1)
    gc.freeze()
    young, middle, old = gc.get_threshold()
    if 0 < young < YOUNG_GENERATION_THRESHOLD:
        gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, old)
    return gc.get_freeze_count()
