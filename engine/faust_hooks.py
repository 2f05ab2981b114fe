"""Where the stream driver hooks into Faust: committed offsets, the producer, crashing.

Kept apart from ``engine.stream`` (which wires topics, agents and pages) because each
of these leans on Faust or aiokafka internals pinned in pyproject.toml; the other such
places are ``engine.offset_guard`` (input offsets) and ``engine.changelog_ends``
(table recovery).
"""

from __future__ import annotations

import faust
from faust.types import TP

from engine.outbox import Outbox

__all__ = ["aiokafka_producer", "check_outbox_before_commit", "committed_check", "crash_app"]


def committed_check(app: faust.App):
    """``(tp_label, offset) -> bool``: has the group committed past this input offset?"""
    tps: dict[str, TP] = {}

    def is_committed(tp_label: str, offset: int) -> bool:
        tp = tps.get(tp_label)
        if tp is None:
            topic, _, partition = tp_label.rpartition(":")
            tp = tps[tp_label] = TP(topic, int(partition))
        committed = app.consumer._committed_offset.get(tp)  # next offset to read
        return committed is not None and offset < committed

    return is_committed


def crash_app(app: faust.App, exc: BaseException, tasks: set) -> None:
    """Crash the worker (it restarts from the last commit); ``tasks`` holds the task."""
    task = app.loop.create_task(app.crash(exc))
    tasks.add(task)
    task.add_done_callback(tasks.discard)


def check_outbox_before_commit(app: faust.App, outbox: Outbox) -> None:
    """Faust flushes its producer before every offset commit (and before table recovery):
    after that flush, wait until every output record is acknowledged and raise if one was
    refused, failed or is late, so the commit does not happen."""
    producer = app.producer
    flush = producer.flush
    timeout = float(app.conf.producer_request_timeout)

    async def flush_then_settle() -> None:
        await flush()
        await outbox.settle(timeout)

    producer.flush = flush_then_settle


def aiokafka_producer(app: faust.App):
    """Faust's started aiokafka producer (its flush before a commit covers the outbox)."""
    producer = getattr(app.producer, "_producer", None)
    if producer is None:
        raise RuntimeError(
            "Faust's aiokafka producer is not started (faust-streaming changed? this driver "
            "is tested with the version pinned in pyproject.toml)"
        )
    return producer
