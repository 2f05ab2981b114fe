"""Where a consumer group stands in a partition, asked of Faust and, when Faust does not
know yet, of the broker: the offset reading starts from, and whether messages wait.

``engine.offset_guard`` expects each partition's offsets in turn from ``start_offset``
and checks a partition that hands nothing over with ``waiting``.
"""

from __future__ import annotations

import asyncio
import logging

__all__ = ["group_committed", "start_offset", "waiting", "seek_to", "leave_unacknowledged"]

log = logging.getLogger("engine.offset_guard")  # the guard's log: one place to read

COMMITTED_TIMEOUT_S = 10.0  # the broker's answer for a group's committed offset


async def start_offset(consumer, tp, first_offset: int, committed_of=None) -> int:
    """Where the partition's reading starts: the group's committed offset, else (the
    engine reads from the earliest offset) the partition's first offset; raised to
    the first offset when retention deleted the committed one's message (the
    consumer resets to the first offset then: expecting the deleted one would seek
    forever).

    Faust's map of committed offsets is read first; when it has none, the broker is
    asked: Faust reads a committed 0 as none, and after a takeover table recovery
    resumes the flow before it seeks to the committed offsets, so events can arrive
    before Faust has filled its map (seen in the kill-and-recover test). Expecting
    the first offset then would read committed orders again. When the broker does
    not answer, the first offset handed over is trusted (a missing first message
    is then not caught; the log says so).
    """
    committed = consumer._committed_offset.get(tp)
    try:
        if committed is None:
            committed = await (committed_of or group_committed)(consumer, tp)
            if committed:
                log.info(
                    "input %s[%d]: committed offset %d from the broker (Faust had none yet)",
                    tp.topic,
                    tp.partition,
                    committed,
                )
        earliest = (await consumer.earliest_offsets(tp)).get(tp)
    except Exception as exc:  # the broker did not answer
        log.warning(
            "input %s[%d]: committed or first offset unknown (%r); expecting %d",
            tp.topic,
            tp.partition,
            exc,
            first_offset if committed is None else committed,
        )
        return first_offset if committed is None else committed
    if committed is None or committed < 0:
        return first_offset if earliest is None else earliest
    if earliest is not None and committed < earliest:
        log.error(
            "input %s[%d]: offsets %d-%d were deleted by the topic's retention before "
            "this group read them; reading from %d",
            tp.topic,
            tp.partition,
            committed,
            earliest - 1,
            earliest,
        )
        return earliest
    return committed


async def group_committed(consumer, tp) -> int | None:
    """The group's committed offset of ``tp``, from the broker (aiokafka's ``committed``,
    run in Faust's consumer thread); None when the group has committed none."""
    from faust.transport.drivers.aiokafka import ensure_aiokafka_TP

    thread = consumer._thread
    client = thread._ensure_consumer()
    # aiokafka retries a missing coordinator without end: bounded, so the caller can fall
    # back (a rebalance waits for the batch the caller holds)
    return await asyncio.wait_for(
        thread.call_thread(client.committed, ensure_aiokafka_TP(tp)), COMMITTED_TIMEOUT_S
    )


async def waiting(consumer, tps: dict, committed_of=None) -> dict:
    """``{tp: (start, end)}`` for the partitions of ``tps`` where offsets ``start`` ..
    ``end - 1`` wait to be read; ``tps`` maps each to the next offset the agent expects,
    or None (then the group's committed offset); ``start`` is raised to the partition's
    first offset. One broker request for all first and end offsets; raises when the
    broker does not answer."""
    starts = {
        tp: e if e is not None else consumer._committed_offset.get(tp) for tp, e in tps.items()
    }
    ask = [tp for tp, committed in starts.items() if committed is None]
    if ask:  # concurrently; a partition whose answer failed is left out this time
        answers = await asyncio.gather(
            *((committed_of or group_committed)(consumer, tp) for tp in ask),
            return_exceptions=True,
        )
        for tp, answer in zip(ask, answers, strict=True):
            if isinstance(answer, BaseException):
                del starts[tp]
            else:
                starts[tp] = answer
    if not starts:
        return {}
    tps = starts
    firsts = await consumer.earliest_offsets(*tps)
    ends = await consumer.highwaters(*tps)
    spans = {}
    for tp, committed in starts.items():
        first = firsts.get(tp) or 0
        start = first if committed is None else max(committed, first)
        end = ends.get(tp)
        if end is not None and end > start:
            spans[tp] = (start, end)
    return spans


async def seek_to(consumer, tp, at: int) -> None:
    """Seek in the consumer's thread (unlike Faust's ``seek``); a failure (e.g. revoked
    meanwhile) is logged, and the timer's checks seek again if still needed."""
    try:
        await consumer.seek_wait({tp: at})
    except Exception as exc:
        log.warning("input %s[%d]: seek to %d failed: %r", tp.topic, tp.partition, at, exc)


def leave_unacknowledged(consumer, msg) -> None:
    """Faust acknowledges every event of a batch after the agent; a skipped message must
    not count as processed: mark it acknowledged already (Faust's ack then does nothing)
    and stop tracking it (or a rebalance would wait for its acknowledgement)."""
    msg.acked = True
    consumer._unacked_messages.discard(msg)
