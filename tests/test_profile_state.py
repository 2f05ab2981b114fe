"""The profile's cached state encoding equals plain JSON of its state, whatever the order."""

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.profile import MAX_SEEN, RECENT, RETENTION_DAYS, SEEN_DAYS, RegistrantProfile

_order = st.tuples(
    st.integers(0, RETENTION_DAYS + 60),          # day offset (out of order allowed)
    st.sampled_from(["oxycodone", "alprazolam", "fentanyl"]),
    st.integers(1, 5000),                          # units
)


def _plain(p: RegistrantProfile) -> bytes:
    return json.dumps(p.to_state(), separators=(",", ":")).encode()


@settings(max_examples=60, deadline=None)
@given(st.lists(_order, min_size=1, max_size=80), st.integers(0, 3))
def test_dumps_state_matches_to_state_after_every_order(orders, every):
    p = RegistrantProfile()
    for i, (day, family, units) in enumerate(sorted(orders, key=lambda o: o[0] // 7)):
        units = float(units)  # as enrich gives them
        p.apply(f"25X{i:06d}", 20000 + day, "d" * 16, [(family, units, units / 997, units * 1.5)])
        if units % 7 == 0:  # now and then the order was held: its case is state too
            p.note_hold(family, 20000 + day, units, units / 997, f"25X{i:06d}", "size_own")
        if units % 5 == 0:  # and reviewed (a case changes in place)
            p.review_cases(f"25X{i:06d}", "cleared", f"2024-01-{1 + i % 28:02d}T00:00:00Z")
        # decisions kept until their offset is committed (here: three orders later), or
        # without an offset only the latest
        position = None if units % 3 == 0 else ("orders.signed:0", i)
        p.remember(f"25X{i:06d}", {"decision": "RELEASE", "i": i, "u": units}, position,
                   lambda tp, offset, i=i: offset < i - 3)
        if units % 4 == 0:  # signed by a certificate expiring on day 20400 + units % 9
            p.note_certificate((20400 + units % 9) * 86400.0 + 0.5, f"{int(units):x}")
        if units % 11 == 0 and i:  # an order number applied again (replaced in place)
            p.apply(f"25X{i - 1:06d}", 20000 + day, "f" * 16, [(family, 1.0, 0.001, 1.5)])
            p.remember(f"25X{i - 1:06d}", {"decision": "HOLD", "i": i}, None)
        if every == 0 or i % (every + 1) == 0:
            assert p.dumps_state() == _plain(p)
    assert p.dumps_state() == _plain(p)
    back = RegistrantProfile.from_state(json.loads(p.dumps_state()))
    assert back.to_state() == p.to_state()
    assert back.dumps_state() == p.dumps_state()  # bytes: an int read back as 2400.0 differs


def test_long_history_with_expiry_and_late_orders():
    rng = random.Random(5)
    p = RegistrantProfile()
    for i in range(900):
        day = 20000 + i // 2 - (rng.randint(0, 3) if i % 11 == 0 else 0)
        p.apply(f"25X{i:06d}", day, "e" * 16, [("oxycodone", 100.0, 0.9, 1350.0)])
        assert p.dumps_state() == _plain(p)


def test_replaced_decision_and_the_caps_are_encoded_again():
    """A kept decision replaced under the same order number, ``RECENT`` decisions
    overflowing, and ``MAX_SEEN`` order numbers pruned: each changes what was encoded."""
    p = RegistrantProfile()
    p.apply("25X000000", 20000, "a" * 16, [("oxycodone", 100.0, 0.9, 1350.0)])
    p.remember("25X000000", {"decision": "RELEASE"}, ("orders.signed:0", 0), lambda *_: False)
    assert p.dumps_state() == _plain(p)
    p.remember("25X000000", {"decision": "HOLD"}, ("orders.signed:0", 0), lambda *_: False)
    assert p.dumps_state() == _plain(p)
    for i in range(1, MAX_SEEN + 40):  # past MAX_SEEN and RECENT, none committed
        p.apply(f"25X{i:06d}", 20000 + i // 40, "b" * 16, [("alprazolam", 500.0, 0.5, 0.0)])
        p.remember(f"25X{i:06d}", {"i": i}, ("orders.signed:0", i), lambda *_: False)
        if i % 97 == 0 or i > MAX_SEEN - 3:
            assert p.dumps_state() == _plain(p)
    assert len(p.seen) == MAX_SEEN and len(p.recent) == RECENT
    assert p.dumps_state() == _plain(p)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 200)), min_size=60, max_size=600),
       st.sampled_from([25, 60, MAX_SEEN]))
def test_seen_remembers_every_order_of_the_last_seen_days(steps, cap):
    """Order numbers signed within ``SEEN_DAYS`` of the newest order are never forgotten
    (so a redelivery is recognised), stragglers included, unless more than ``MAX_SEEN``
    of them are; the state encodes the same."""
    import engine.profile

    saved, engine.profile.MAX_SEEN = engine.profile.MAX_SEEN, cap
    try:
        p = RegistrantProfile()
        day, newest, applied, crowded = 20000, 20000, {}, False
        for i, (advance, late) in enumerate(steps):
            day += advance
            signed = day - late if i % 5 == 0 else day  # now and then a straggler
            newest = max(newest, signed)
            number = f"25X{i:06d}"
            p.apply(number, signed, "c" * 16, [("oxycodone", 100.0, 0.9, 1350.0)])
            applied[number] = signed
            want = {n for n, d in applied.items() if d >= newest - SEEN_DAYS}
            crowded = crowded or len(want) > cap  # from then on the cap may evict
            assert len(p.seen) <= cap
            assert number in p.seen or signed < newest - SEEN_DAYS  # expired on arrival
            if not crowded:
                assert want <= set(p.seen)
            if i % 17 == 0:
                assert p.dumps_state() == _plain(p)
        assert p.dumps_state() == _plain(p)
    finally:
        engine.profile.MAX_SEEN = saved


def test_at_the_cap_expired_stragglers_go_before_numbers_still_in_the_window():
    """An order of the newest day, then 100 stragglers signed 500 days earlier, then
    orders up to the cap: the stragglers are forgotten, the first order is not."""
    import engine.profile

    saved, engine.profile.MAX_SEEN = engine.profile.MAX_SEEN, 50
    try:
        p = RegistrantProfile()
        p.apply("25XFIRST0", 21000, "a" * 16, [("oxycodone", 100.0, 0.9, 1350.0)])
        for i in range(100):
            p.apply(f"25XLATE{i:02d}", 20500, "b" * 16, [("oxycodone", 100.0, 0.9, 1350.0)])
        for i in range(49):
            p.apply(f"25XNEW{i:03d}", 21000, "c" * 16, [("oxycodone", 100.0, 0.9, 1350.0)])
            assert "25XFIRST0" in p.seen and len(p.seen) <= 50
        assert p.dumps_state() == _plain(p)
    finally:
        engine.profile.MAX_SEEN = saved


def test_the_certificate_that_expires_last_is_kept_and_read_back():
    p = RegistrantProfile()
    assert p.to_state()[9] is None
    p.note_certificate(1_800_000_000.7, "1a")
    p.note_certificate(1_700_000_000.0, "0b")  # an older certificate's late order
    assert p.cert == [1_800_000_000, "1a"]
    p.note_certificate(1_900_000_000.0, "2c")  # a renewal
    back = RegistrantProfile.from_state(json.loads(p.dumps_state()))
    assert back.cert == [1_900_000_000, "2c"] and back.dumps_state() == p.dumps_state()
    old = p.to_state()[:9]  # a version 4 state (before certificates were kept)
    old[0] = 4
    assert RegistrantProfile.from_state(old).cert is None
    broken = p.to_state()
    broken[9] = "2c"
    with pytest.raises(ValueError, match="certificate"):
        RegistrantProfile.from_state(broken)
