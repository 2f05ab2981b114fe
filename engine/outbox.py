"""A batch's output records, sent as one Kafka record batch per topic partition.

Faust's ``send_soon`` builds a pending message, two futures, a buffer entry and a
publishing coroutine for every record before aiokafka appends it to a record batch:
per record that cost about as much as scoring the order. The stream driver
collects one input batch's decisions, rejections and profile changelog writes here
and appends them to aiokafka's record batches itself (``create_batch`` and
``send_batch``, aiokafka's public batch API), one per topic partition, each record
on the partition aiokafka's default partitioner would pick (murmur2 of the key).

At-least-once is kept: an agent sends the outbox before it takes its next batch
(so before that batch's offsets are acknowledged), and Faust flushes the producer,
which waits for every record batch in its accumulator, before it commits offsets.
Sends are serialised (the agents share one outbox), so a key's changelog records
reach the broker in the order they were added. Once a send fails or the broker
refuses a record batch the outbox is failed: ``check`` (run by the driver after
the producer's flush, before any commit) raises, so no offset is committed past
a lost record, and the worker is crashed to be restarted from the last commit;
Faust's ``send_soon`` would only set the error on a future nobody awaits.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka.partitioner import murmur2

__all__ = ["Outbox", "OutputLost", "key_hash"]

log = logging.getLogger(__name__)

_HASHES: dict[bytes, int] = {}  # murmur2 of a key (DEA numbers repeat: hash each once)
_HASHES_MAX = 200_000


class OutputLost(RuntimeError):
    """Output records may not have reached the broker: commit nothing more."""


def key_hash(key: bytes) -> int:
    """The positive murmur2 hash aiokafka's default partitioner takes the modulo of.

    >>> key_hash(b"BP1234563") % 6 == (murmur2(b"BP1234563") & 0x7FFFFFFF) % 6
    True
    """
    h = _HASHES.get(key)
    if h is None:
        if len(_HASHES) >= _HASHES_MAX:
            _HASHES.clear()
        h = _HASHES[key] = murmur2(key) & 0x7FFFFFFF
    return h


class Outbox:
    """Records to send after a batch, by topic; ``send`` hands them to the producer.

    ``producer`` returns the started ``aiokafka.AIOKafkaProducer`` (Faust's, so its
    flush before a commit covers these records); ``crash`` is called once with the
    error that failed the outbox.
    """

    __slots__ = ("_producer", "_crash", "_records", "_failed", "_inflight", "_lock")

    def __init__(self, producer, crash) -> None:
        self._producer = producer
        self._crash = crash
        self._records: dict[str, list[tuple[bytes, bytes]]] = {}
        self._failed: BaseException | None = None
        self._inflight: list[asyncio.Future] = []
        self._lock: asyncio.Lock | None = None  # made on first send, in the worker's loop

    def add(self, topic: str, key: bytes, value: bytes) -> None:
        records = self._records.get(topic)
        if records is None:
            records = self._records[topic] = []
        records.append((key, value))

    def __len__(self) -> int:
        return sum(len(r) for r in self._records.values())

    def fail(self, exc: BaseException) -> None:
        """Records may be lost (a failed send, a batch not processed to its end)."""
        if self._failed is None:
            self._failed = exc
            log.error(
                "output records may be lost (%r): no offset will be committed from "
                "now on; stopping the worker so it restarts from the last commit",
                exc,
            )
            self._crash(exc)

    def track(self, fut: asyncio.Future) -> None:
        """A record sent another way (Faust's ``send_soon``): ``settle`` waits for it too.

        Faust's producer flush before a commit does not wait for ``send_soon``: its buffer's
        flush returns once 0.1 s pass without a record leaving the buffer, records still in it.
        """
        self._inflight.append(fut)

    async def settle(self, timeout: float) -> None:
        """Wait until every record sent so far is acknowledged; raise ``OutputLost`` if one
        was refused or is not acknowledged within ``timeout`` seconds."""
        pending = [f for f in self._inflight if not f.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=timeout)
            if late:
                self.fail(OutputLost(f"{len(late)} output sends not acknowledged in {timeout} s"))
        self.check()

    def check(self) -> None:
        """Raise ``OutputLost`` if a send failed or a delivered batch was refused."""
        still = []
        for fut in self._inflight:
            if not fut.done():
                still.append(fut)
            elif not fut.cancelled() and fut.exception() is not None:
                self.fail(fut.exception())
        self._inflight = still
        if self._failed is not None:
            raise OutputLost("output records were not delivered") from self._failed

    async def send(self) -> int:
        """Hand every collected record to the producer's accumulator; returns the count."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one send at a time: records leave in the order added
            self.check()
            if not self._records:
                return 0
            records, self._records = self._records, {}
            try:
                return await self._send(records)
            except BaseException as exc:
                self.fail(exc)
                raise

    async def _send(self, records: dict[str, list[tuple[bytes, bytes]]]) -> int:
        producer = self._producer()
        sent = 0
        for topic, rows in records.items():
            partitions = sorted(await producer.partitions_for(topic))
            count = len(partitions)
            batches: dict[int, object] = {}  # one open record batch per partition
            for key, value in rows:
                p = partitions[key_hash(key) % count]
                batch = batches.get(p)
                if batch is None:
                    batch = batches[p] = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None) is None:
                    await self._submit(producer, batch, topic, p)  # full: the next one
                    batch = batches[p] = producer.create_batch()
                    batch.append(key=key, value=value, timestamp=None)
            for p, batch in batches.items():
                await self._submit(producer, batch, topic, p)
            sent += len(rows)
        return sent

    async def _submit(self, producer, batch, topic: str, partition: int) -> None:
        delivered = await producer.send_batch(batch, topic, partition=partition)
        self._inflight.append(delivered)
        n = batch.record_count()
        delivered.add_done_callback(lambda fut: self._on_delivered(fut, topic, partition, n))

    def _on_delivered(self, fut: asyncio.Future, topic: str, partition: int, n: int) -> None:
        if fut.cancelled() or fut.exception() is None:
            return
        log.error(
            "%d output records to %s[%d] were refused: %r", n, topic, partition, fut.exception()
        )
        self.fail(fut.exception())
