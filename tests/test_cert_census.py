"""The certificate-expiry census over the profiles table (``engine.cert_census``)."""

from __future__ import annotations

from datetime import UTC, datetime

from engine.cert_census import CertCensus
from engine.outbox import key_hash
from engine.profile import RegistrantProfile

NOW = datetime(2026, 11, 23, tzinfo=UTC)
DAY = 86400


def _state(expires_in_days: float | None, serial: str = "1a") -> bytes:
    p = RegistrantProfile()
    p.apply("25X000001", 20000, "d" * 16, [("oxycodone", 100.0, 0.9, 1350.0)])
    if expires_in_days is not None:
        p.note_certificate(NOW.timestamp() + expires_in_days * DAY, serial)
    return p.dumps_state()


def _store(days: list[float | None]) -> dict[bytes, bytes]:
    return {f"BP{i:07d}".encode(): _state(d) for i, d in enumerate(days)}


def test_counts_per_window_including_the_expired():
    census = CertCensus(lambda: store, 4)
    store = _store([3, 30, 44, 46, 400, -10, None])
    assert census.expiring_counts(NOW, (45, 7)) == {45: 4, 7: 2}
    store[b"BP0000006"] = b"[5,not json"  # a state it cannot read counts as no certificate
    store[b"BP0000007"] = _state(2, serial='odd"serial')  # the slow way (a full parse)
    assert census.expiring_counts(NOW, (45,)) == {45: 5}


def test_new_bytes_under_a_key_are_read_again():
    store = _store([5])
    census = CertCensus(lambda: store, 4)
    assert census.expiring_counts(NOW, (45,)) == {45: 1}
    store[b"BP0000000"] = _state(400)  # renewed (by this worker or another's changelog)
    assert census.expiring_counts(NOW, (45,)) == {45: 0}


def test_only_the_active_partitions_count():
    store = _store([1] * 40)
    census = CertCensus(lambda: store, 4)
    assert census.expiring_counts(NOW, (45,)) == {45: 40}  # before any assignment: all
    census.assigned([0, 2])
    mine = sum(key_hash(k) % 4 in (0, 2) for k in store)
    assert 0 < mine < 40
    assert census.expiring_counts(NOW, (45,)) == {45: mine}  # standby keys are not ours


def test_a_scrape_reads_for_a_bounded_time_and_finishes_later():
    store = _store([1] * 2000)
    census = CertCensus(lambda: store, 4)
    first = census.expiring_counts(NOW, (45,), budget_s=0.0)[45]
    assert first < 2000  # the budget stopped the reading
    counts = [census.expiring_counts(NOW, (45,), budget_s=0.002)[45] for _ in range(500)]
    assert counts[-1] == 2000 and counts == sorted(counts)
