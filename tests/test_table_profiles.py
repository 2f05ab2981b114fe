"""The profiles table as the core sees it: the certificate-expiry count over its keys."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from engine.profile import RegistrantProfile
from engine.table_profiles import TableProfiles

NOW = datetime(2026, 11, 23, tzinfo=UTC)
DAY = 86400


class _Table(dict):
    """The few parts of a Faust Table that TableProfiles uses (keys, values, data)."""

    def __init__(self) -> None:
        super().__init__()
        self.data = self
        self.changelog_topic = SimpleNamespace(get_topic_name=lambda: "som-profiles-changelog")


def _state(expires_in_days: float | None) -> bytes:
    p = RegistrantProfile()
    p.apply("25X000001", 20000, "d" * 16, [("oxycodone", 100.0, 0.9, 1350.0)])
    if expires_in_days is not None:
        p.note_certificate(NOW.timestamp() + expires_in_days * DAY, "1a")
    return p.dumps_state()


def test_recovered_profiles_are_counted_a_budget_at_a_time():
    table = _Table()
    for i, days in enumerate([3, 30, 44, 46, 400, -10, None]):
        table[f"BP{i:07d}".encode()] = _state(days)  # as recovered from the changelog
    profiles = TableProfiles(table, outbox=None)
    assert profiles.expiring_count(NOW, 45, budget=3) <= 3
    assert profiles.expiring_count(NOW, 45) == 4  # 3, 30, 44 days and the expired one
    assert profiles.expiring_count(NOW, 7) == 2
    del table[b"BP0000000"]  # its partition went to another worker
    assert profiles.expiring_count(NOW, 45) == 3


def test_a_renewal_written_by_the_worker_replaces_the_expiring_certificate():
    table = _Table()
    table[b"BP0000001"] = _state(5)
    outbox = SimpleNamespace(add=lambda *args: None)
    profiles = TableProfiles(table, outbox)
    assert profiles.expiring_count(NOW, 45) == 1
    profile = profiles.get("BP0000001")
    profile.note_certificate(NOW.timestamp() + 400 * DAY, "2b")  # an order under the new one
    profiles["BP0000001"] = profile
    profiles.flush()
    assert profiles.expiring_count(NOW, 45) == 0
