"""Consumer lag per assigned partition: end offset minus the group's committed offset.

The same definition as ``kafka-consumer-groups --describe`` and Burrow, so the
numbers agree with the tools SREs already use. End offsets are asked of the
broker (``ListOffsets``) by a timer rather than taken from the last fetch: a
worker that stopped fetching would otherwise report a frozen, too-small lag.
A partition with no commit yet counts from its earliest offset, which is where
the group starts reading (``consumer_auto_offset_reset = earliest``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

__all__ = ["ConsumerLag"]


class ConsumerLag:
    """Latest lag per (topic, partition) of ``topics``; ``refresh`` runs on a timer."""

    def __init__(self, app, topics: Iterable[str], timeout_s: float = 5.0) -> None:
        self.app = app
        self.topics = frozenset(topics)
        self.timeout_s = timeout_s
        self.values: dict[tuple[str, int], int] = {}
        self.error: str | None = "not measured yet"
        self.refreshed_at: float | None = None

    def _committed(self, tp) -> int | None:
        """Offset the group will resume from: monitor's record of commits, else the consumer's."""
        seen = [self.app.monitor.tp_committed_offsets.get(tp)]
        own = getattr(self.app.consumer, "_committed_offset", None)  # set when seeking on assign
        if own is not None:
            seen.append(own.get(tp))
        known = [o for o in seen if o is not None]
        return max(known) if known else None

    async def refresh(self) -> None:
        """Ask the broker for end offsets of assigned partitions; keep the error if it fails."""
        try:
            consumer = self.app.consumer
            tps = sorted(
                (tp for tp in consumer.assignment() if tp.topic in self.topics),
                key=lambda tp: (tp.topic, tp.partition),
            )
            values: dict[tuple[str, int], int] = {}
            if tps:
                ends = await asyncio.wait_for(consumer.highwaters(*tps), self.timeout_s)
                committed = {tp: self._committed(tp) for tp in tps}
                missing = [tp for tp, c in committed.items() if c is None]
                if missing:
                    first = await asyncio.wait_for(
                        consumer.earliest_offsets(*missing), self.timeout_s
                    )
                    committed.update({tp: first.get(tp, 0) for tp in missing})
                for tp in tps:
                    end = ends.get(tp)
                    if end is not None:
                        values[(tp.topic, tp.partition)] = max(0, end - (committed[tp] or 0))
        except Exception as exc:  # a lag gauge must never take the worker down
            self.error = f"{type(exc).__name__}: {exc}"[:200]
            return
        self.values, self.error, self.refreshed_at = values, None, time.monotonic()
