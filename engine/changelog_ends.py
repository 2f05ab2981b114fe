"""Table recovery that reads each changelog partition to its last record.

Faust restores a table by reading its changelog up to the end offset the broker
reports (``ListOffsets``) at the start of recovery, and it re-reads a partition
it keeps across a rebalance from where its last recovery stopped. Any record past
that reported end is never applied: the in-memory table is left at an older
value, the input offsets behind the newer one are already committed, and the next
orders of that registrant are decided against a profile that misses some orders.

Kafka reports the offset after the last record. The embedded Tansu broker
reports the offset after the *first* record of the last record batch, so with
batched producer writes a partition's tail of up to a batch is cut off. The
end is therefore confirmed by reading: fetch from the reported end minus one
and take the offset after the last record returned. On Kafka that is the same
number; on Tansu it is the real end. It costs one small fetch per changelog
partition per rebalance.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP

__all__ = ["read_end_offsets", "ChangelogRecovery", "ChangelogTableManager"]

log = logging.getLogger(__name__)


async def read_end_offsets(
    bootstrap: str, reported: Mapping[TP, int | None], timeout_s: float = 10.0
) -> dict[TP, int | None]:
    """Offsets after each partition's last record, confirmed by reading from ``reported - 1``.

    Never below ``reported``: a partition that returns nothing (empty, or ending in a
    control record) keeps the broker's answer.
    """
    ends = dict(reported)
    probe = {tp: end for tp, end in reported.items() if end}
    if not probe:
        return ends
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_uncommitted",
    )
    await consumer.start()
    try:
        parts = {tp: TopicPartition(tp.topic, tp.partition) for tp in probe}
        consumer.assign(list(parts.values()))
        for tp, end in probe.items():
            consumer.seek(parts[tp], end - 1)
        waiting = set(probe)
        deadline = time.monotonic() + timeout_s
        while waiting and time.monotonic() < deadline:
            got = await consumer.getmany(*(parts[tp] for tp in waiting), timeout_ms=200)
            for tp in list(waiting):
                records = got.get(parts[tp])
                if records:
                    ends[tp] = max(ends[tp], records[-1].offset + 1)
                    waiting.discard(tp)
                elif await consumer.position(parts[tp]) >= probe[tp]:
                    waiting.discard(tp)  # nothing readable at end - 1 (a control record)
        if waiting:
            log.warning("changelog end not confirmed by reading for %d partitions", len(waiting))
    finally:
        await consumer.stop()
    return ends


class ChangelogRecovery(Recovery):
    """Faust's recovery, with each changelog partition's end confirmed by reading."""

    async def _build_highwaters(self, consumer, tps, destination, title: str) -> None:
        reported = await consumer.highwaters(*tps)
        try:
            ends = await read_end_offsets(_bootstrap(self.app), reported)
        except Exception as exc:  # recovery must go on: keep the broker's ends, say so
            log.warning("changelog ends not confirmed by reading (%r): using ListOffsets", exc)
            ends = dict(reported)
        moved = {tp: (reported[tp], end) for tp, end in ends.items() if end != reported.get(tp)}
        if moved:
            log.info(
                "%s changelog ends past ListOffsets's answer on %d partitions: %s",
                title,
                len(moved),
                ", ".join(f"{tp.topic}:{tp.partition} {a}->{b}" for tp, (a, b) in moved.items()),
            )
        destination.clear()
        # Faust's "highwater" is the last record's offset (end - 1)
        destination.update({tp: end - 1 if end is not None else -1 for tp, end in ends.items()})


class ChangelogTableManager(TableManager):
    """Faust's table manager with ``ChangelogRecovery``: ``faust.App(TableManager=...)``."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = ChangelogRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery


def _bootstrap(app) -> str:
    return ",".join(f"{url.host}:{url.port or 9092}" for url in app.conf.broker)
