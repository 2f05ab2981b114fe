"""How the drivers batch the core: micro-batch size and the garbage collector's pace.

>>> import gc
>>> before = gc.get_threshold()
>>> with batch_gc():
...     gc.get_threshold()[0] >= GC_GEN0
True
>>> gc.get_threshold() == before
True
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["GC_GEN0", "MICRO_BATCH", "batch_gc"]

MICRO_BATCH = 64  # orders per ``monitor_batch`` call in the drivers
GC_GEN0 = 20_000  # allocations between young collections while batches run (Python: 700)


@contextmanager
def batch_gc(gen0: int = GC_GEN0) -> Iterator[None]:
    """Fewer young collections while the drivers run batches, and the objects alive at
    entry (modules, models, catalog) frozen out of the full ones.

    A batch keeps its orders, findings and decisions alive until it ends; with Python's
    default of a young collection every 700 allocations, each walks them again, and
    the cyclic collector took 17-23% of a worker's CPU (benchmarks/README.md). Nothing
    the core builds needs the cycle collector to be freed promptly. Nested or inside a
    caller's own ``gc.freeze()``, it leaves the freeze to whoever made it.
    """
    thresholds = gc.get_threshold()
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    gc.set_threshold(max(thresholds[0], gen0), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if freeze:
            gc.unfreeze()
