"""Topic set-up on any Kafka-protocol broker: create what is missing, check what exists;
and ``publish_one`` for the CLI's single messages (an officer's review).

A table's changelog must have as many partitions as its source topic (DESIGN.md
section 4), so an existing topic with another partition count is an error that
names the topic and the ``kafka.partitions`` key, not something to work around.
"""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

__all__ = ["ensure_topics", "bootstrap_servers", "publish_one", "TopicError"]


class TopicError(RuntimeError):
    """Topics cannot be used as configured."""


def bootstrap_servers(broker_url: str) -> str:
    """``kafka://h1:9092;kafka://h2:9092`` -> ``h1:9092,h2:9092``.

    >>> bootstrap_servers("kafka://127.0.0.1:9092;kafka://b2:9093")
    '127.0.0.1:9092,b2:9093'
    """
    hosts = []
    for part in broker_url.replace(",", ";").split(";"):
        part = part.strip()
        if part:
            hosts.append(part.split("://", 1)[-1])
    return ",".join(hosts)


async def ensure_topics(
    broker_url: str, names: list[str], partitions: int, replication: int = 1, timeout: float = 20
) -> None:
    """Create missing topics with ``partitions``; refuse existing ones with another count."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers(broker_url), request_timeout_ms=int(timeout * 1000)
    )
    try:
        await asyncio.wait_for(admin.start(), timeout)
    except (TimeoutError, KafkaError, OSError) as exc:
        raise TopicError(
            f"cannot reach the Kafka broker at {broker_url} ({type(exc).__name__}): "
            "check --broker / [kafka] broker and that the broker is running"
        ) from None
    try:
        # describe only topics that exist: a metadata request for a missing topic
        # auto-creates it with the broker's default partition count on some brokers
        present = set(await admin.list_topics()) & set(names)
        meta = await admin.describe_topics(sorted(present)) if present else []
        existing = {}
        for t in meta:
            if t.get("error_code", 0) == 0 and t.get("partitions"):
                existing[t["topic"]] = len(t["partitions"])
        for name, count in existing.items():
            if count != partitions:
                raise TopicError(
                    f"topic {name!r} has {count} partitions but [kafka] partitions = {partitions}; "
                    "set kafka.partitions to match (all som topics must have the same count)"
                )
        missing = [n for n in names if n not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(n, num_partitions=partitions, replication_factor=replication)
                    for n in missing
                ]
            )
    finally:
        await admin.close()


async def publish_one(broker_url: str, topic: str, key: bytes, value: bytes) -> dict:
    """Send one message and wait for it: its ``{"partition", "offset"}``."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers(broker_url),
                                request_timeout_ms=10_000)
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()
    return {"partition": meta.partition, "offset": meta.offset}
