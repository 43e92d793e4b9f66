"""The process's garbage-collector policy while arbtui runs (one place for every mode).

CPython's cyclic collector runs a young collection every 700 net allocations of
container objects and, now and then, a full walk of everything alive with the GIL
held. arbtui allocates containers on every quote (the level lists and tuples, the
decoded frame), and what a detector or a screen keeps is long-lived on purpose, so
at the defaults the collector lands on the quote path:

- role processes (measured in the Kafka benchmark's detect process, 5x50 at
  saturation): a decoded quote that was kept cost ~15 µs of CPU against ~1.8 µs
  for one that was dropped; the difference was young collections;
- the dashboard at 20 k quotes/s (``benchmarks/ui.py --trace``): Textual's per-frame
  objects outlived two young collections, were promoted and set off a full
  collection about once a second, 170-320 ms each; every key press slower than
  100 ms overlapped one.

Quotes and frames form no reference cycles (refcounting frees them when they are
superseded), nor do the catch model's watched windows (until issue 19 a leg pointed back
to its window, and every finished window, ~4-5 k objects/s at 5 k quotes/s, waited for
the collector: a young collection every ~10 s for good), so rarer young collections lose
nothing. What a young collection still costs is the survivors it walks: a starting session's
books and filling event ring (30-90 ms at 50 000 objects, docs/benchmarks.md). Everything alive once the
engine is up (modules, classes, config, the dashboard's widgets) is never garbage:
it is frozen out of the collector's walk.
"""

from __future__ import annotations

import gc
from collections.abc import Callable

#: Headless engine and role processes: no Textual frame garbage, only quotes and
#: events, so young collections can be very rare.
ENGINE_GEN0 = 50_000
#: With the dashboard: Textual's per-frame garbage should still die young, so
#: young collections stay frequent enough (5000) for it not to be promoted; a full
#: collection over what is promoted anyway (the engine's event ring, the log's
#: rows) costs ~80-115 ms, so it waits for 100 middle collections instead of 10
#: (none in 2 minutes at 20 k quotes/s instead of one every ~15 s; ~6 MB more RSS).
DASHBOARD_GEN0 = 5_000
DASHBOARD_GEN2 = 100


def tune_gc(gen0: int = ENGINE_GEN0, gen2: int | None = None) -> Callable[[], None]:
    """Freeze what is alive now out of the collector and raise the thresholds.

    Call once the engine (and screen) are up. ``gen2=None`` keeps the current full
    collection threshold. Returns the undo (tests and benchmarks run many engines in
    one process).
    """
    old = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(gen0, old[1], old[2] if gen2 is None else gen2)

    def restore() -> None:
        gc.set_threshold(*old)
        gc.unfreeze()

    return restore
