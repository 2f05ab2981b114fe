"""Profiles in the stream driver's Faust Table, seen as the mapping the core expects.

The table holds each registrant's profile as its serialised state (bytes in, bytes out:
Faust's codecs pass them through on write and on changelog recovery). Live profile
objects are kept beside it, so a profile is parsed once after recovery, not per event;
the changelog gets one write per registrant a batch touched, through the batch's outbox.
"""

from __future__ import annotations

import json
import random

from engine.outbox import Outbox
from engine.profile import RegistrantProfile

__all__ = ["TableProfiles", "dump_profile", "profile_sizes"]


def dump_profile(profile: RegistrantProfile) -> bytes:
    """The changelog value of a profile (a named function: profiles show the write's cost)."""
    return profile.dumps_state()


class TableProfiles:
    """The Table seen as the ``profiles`` mapping the core expects.

    The table holds each profile's serialised state as bytes (key and value
    type ``bytes``, so Faust's codecs pass them through untouched on write and
    on changelog recovery). Live objects are cached beside it, keyed by the
    identity of the bytes they were read from, so a profile is parsed once
    after recovery and never per event.
    """

    __slots__ = ("table", "live", "dirty", "outbox", "changelog")

    def __init__(self, table, outbox: Outbox) -> None:
        self.table = table
        self.outbox = outbox
        self.changelog = table.changelog_topic.get_topic_name()
        self.live: dict[bytes, tuple[bytes, RegistrantProfile]] = {}
        self.dirty: dict[bytes, RegistrantProfile] = {}

    def get(self, dea: str) -> RegistrantProfile | None:
        key = dea.encode()
        hot = self.dirty.get(key)
        if hot is not None:
            return hot
        raw = self.table.get(key)
        if raw is None:
            return None
        hit = self.live.get(key)
        if hit is not None and hit[0] is raw:
            return hit[1]
        profile = RegistrantProfile.from_state(json.loads(raw))
        self.live[key] = (raw, profile)
        return profile

    def __setitem__(self, dea: str, profile: RegistrantProfile) -> None:
        self.dirty[dea.encode()] = profile

    def flush(self) -> None:
        """One changelog write per registrant touched in the batch.

        What ``table[key] = raw`` does (store the value, send it to the changelog keyed
        like the table's partitioner would), with the changelog record going out in the
        batch's outbox instead of one ``send_soon`` each. Faust's own setter would also
        record the changelog offset for a persistent store: the table is ``memory://``,
        which keeps none (a RocksDB store would need that callback back). Offsets are
        committed only after the batch (and after the producer is flushed), so writing at
        the end of the batch keeps at-least-once intact.
        """
        store, outbox, changelog = self.table.data, self.outbox, self.changelog
        for key, profile in self.dirty.items():
            raw = dump_profile(profile)
            self.live[key] = (raw, profile)
            store[key] = raw
            outbox.add(changelog, key, raw)
        self.dirty.clear()


def profile_sizes(table, sample: int = 32) -> tuple[int, list[int]]:
    """Profile count and the serialized sizes of a random sample (for a state-size estimate)."""
    keys = list(table.keys())
    picked = random.sample(keys, min(sample, len(keys)))
    sizes = []
    for key in picked:
        value = table.get(key)
        if value is not None:
            sizes.append(len(key) + len(value))  # values are the serialised state bytes
    return len(keys), sizes
