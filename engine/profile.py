"""Per-registrant state: one history per drug family, cadence, and order dedupe.

One ``RegistrantProfile`` per purchaser DEA number is the value of the stream
driver's table (and of a plain dict in the replay driver). Each drug family has a
``FamilyHistory`` (``engine.family_history``: event-time daily buckets with rolling
windows, and the family's last ``RING`` orders); the registrant keeps its last
``TIMES`` signing times. Order sizes, cadence, split windows and strength changes are
read from these small rings.

Memory is bounded per registrant: at most ``RETENTION_DAYS`` buckets and ``RING``
orders per family, ``TIMES`` signing times, ``MAX_SEEN`` remembered order numbers,
``RECENT`` stored decisions and ``HELD_CASES`` open size holds per family.

A held order has not shipped, yet its amounts enter the history like any other. So
that a held order cannot make its own repeat look normal, the profile also keeps the
order's open *case* per family (``note_hold``): its size and reason, for
``SizeScorer``'s repeat check, until its days are up or an officer's review clears it
(``review_cases``, fed by ``engine.review``). A cleared case no longer holds repeats; a
reported one holds them for ``HELD_KEEP_DAYS`` (the order was reported to DEA and did not
ship, yet it is in the history as the registrant's largest recent order).

>>> p = RegistrantProfile()
>>> p.apply("25X000001", 20000, "aa", [("oxycodone", 100.0, 0.9, 1350.0)])
>>> p.apply("25X000002", 20010, "bb", [("oxycodone", 50.0, 0.45, 675.0)])
>>> p.families["oxycodone"].window(20010, 30)
(150.0, 1.35, 2025.0, 2.0)
>>> p.families["oxycodone"].window(20045, 30)
(0.0, 0.0, 0.0, 0.0)
>>> RegistrantProfile.from_state(p.to_state()).families["oxycodone"].window(20010, 7)
(50.0, 0.45, 675.0, 1.0)
"""


from __future__ import annotations

from collections.abc import Callable
from itertools import islice
from typing import Any

from engine.family_history import (
    RETENTION_DAYS,
    RING,
    WINDOWS,
    FamilyHistory,
    _enc,
    _round3,
    _round6,
)

__all__ = [
    "FamilyHistory", "RegistrantProfile", "WINDOWS", "RETENTION_DAYS", "RING", "TIMES",
    "review_rank",
]

MAX_SEEN = 4096
RECENT = 256
SEEN_DAYS = 120  # two order-validity periods (1305.22(e): 60 days)
TIMES = 32  # last signing times per registrant (cadence, bursts)
HELD_CASES = 4  # held-order cases kept per family (the latest; pruned when one is noted)
HELD_KEEP_DAYS = 60  # cases older than this (event time) are dropped
STATE_VERSION = 5  # 4: a case carries its review (outcome and time); 5: the certificate
OUTCOMES = ("cleared", "reported")


def review_rank(reviewed_at: str, outcome: str) -> tuple[str, bool]:
    """Which review of an order stands: the newest by ``reviewed_at`` (ISO-8601 UTC to the
    second, compared as text), and at the same second ``reported``."""
    return (reviewed_at, outcome == "reported")


def settled(
    tp: str | None, offset: int, is_committed: Callable[[str, int], bool] | None
) -> bool:
    """A kept decision no redelivery can ask for any more: no input position (the
    replay driver), or its offset is committed. ``remember`` drops these."""
    return tp is None or (is_committed is not None and is_committed(tp, offset))


class RegistrantProfile:
    """Everything the engine remembers about one purchaser."""

    __slots__ = (
        "families", "seen", "recent", "first_day", "last_day", "orders", "times", "held",
        "cert", "_seen_enc", "_recent_text",
    )

    def __init__(self) -> None:
        self.families: dict[str, FamilyHistory] = {}
        self.seen: dict[str, tuple[int, str]] = {}
        self.recent: dict[str, dict[str, Any]] = {}
        self.first_day: int | None = None
        self.last_day: int | None = None
        self.orders = 0
        self.times: list[int] = []  # last TIMES signing times, epoch seconds
        # family -> cases [day, units, grams, order number, reason code, review outcome,
        # reviewed at], oldest first; both "" until an officer's review (engine.review)
        self.held: dict[str, list[list]] = {}
        # [not_after in epoch seconds, serial hex] of the signing certificate that expires
        # last (a renewal replaces it): the expiry gauge survives a restart with the table
        self.cert: list | None = None
        # JSON kept for ``dumps_state``: each of the first entries of ``seen`` encoded
        # (entries only join at the end); each ``recent`` entry's JSON by order number
        self._seen_enc: list[str] = []
        self._recent_text: dict[str, tuple[list, str]] = {}

    def history_days(self, day: int) -> int:
        """Days of own history before ``day`` (0 for a new registrant)."""
        return 0 if self.first_day is None else max(0, day - self.first_day)

    def seen_as(self, order_number: str) -> str | None:
        """The raw-message digest this order number was applied with, if any."""
        hit = self.seen.get(order_number)
        return hit[1] if hit else None

    def apply(
        self,
        order_number: str,
        day: int,
        digest: str,
        amounts: list[tuple[str, float, float, float]],
        t: float | None = None,
    ) -> None:
        """Add one order's (family, units, grams, mme) amounts; remember its identity.

        ``t`` is the signing time in epoch seconds (default: the start of ``day``).
        """
        t = int(day * 86400 if t is None else t)
        for family, units, grams, mme in amounts:
            hist = self.families.get(family)
            if hist is None:
                hist = self.families[family] = FamilyHistory()
            hist.add(day, units, grams, mme, t)
        self.times.append(t)
        if len(self.times) > TIMES:
            del self.times[0]
        self.orders += 1
        if self.first_day is None or day < self.first_day:
            self.first_day = day
        if self.last_day is None or day > self.last_day:
            self.last_day = day
        seen = self.seen
        if order_number in seen:  # replaced in place, not appended
            self._seen_enc.clear()
        seen[order_number] = (day, digest)
        if len(seen) > MAX_SEEN or next(iter(seen.values()))[0] < self.last_day - SEEN_DAYS:
            self._forget_seen()

    def note_certificate(self, not_after: float, serial: str | None) -> None:
        """Keep the signing certificate that expires last (a renewal wins, never an old one)."""
        at = int(not_after)
        if self.cert is None or at > self.cert[0]:
            self.cert = [at, serial]

    def _forget_seen(self) -> None:
        """Forget order numbers signed more than ``SEEN_DAYS`` before the newest order;
        past ``MAX_SEEN``, the oldest to arrive.

        Numbers are kept in arrival order, so below the cap this only takes them from
        the oldest end, up to the first one still kept (a straggler signed long before its
        neighbours goes when it reaches that end): the rest of ``seen`` and its kept JSON
        stay as they are. At the cap every expired number goes first, wherever it is.
        """
        seen, cutoff, enc = self.seen, self.last_day - SEEN_DAYS, self._seen_enc
        front = []
        for number, (d, _) in seen.items():
            if d >= cutoff:
                break
            front.append(number)
        middle = []
        if len(seen) - len(front) > MAX_SEEN:
            middle = [n for n, (d, _) in islice(seen.items(), len(front), None) if d < cutoff]
        for number in front + middle:
            del seen[number]
        over = list(islice(seen, max(0, len(seen) - MAX_SEEN)))  # the oldest arrivals
        for number in over:
            del seen[number]
        dropped = len(front) + len(over)  # from the oldest end, unless middle ones went
        if middle or len(enc) <= dropped:
            enc.clear()
        else:
            del enc[:dropped]

    def remember(
        self,
        order_number: str,
        record: dict[str, Any],
        position: tuple[str, int] | None = None,
        is_committed: Callable[[str, int], bool] | None = None,
    ) -> None:
        """Keep the decision so a redelivered message gets the same one (at-least-once).

        Only messages after the last committed offset are redelivered, and they
        come back before any newer message of this registrant (same partition).
        So a decision is kept, with the input position (topic:partition, offset)
        it came from, only until that offset is committed: in a steady stream
        that is none or one per registrant. Without a position (the replay
        driver has no offsets) only the latest is kept. ``RECENT`` caps the count.
        """
        if self.recent:
            done = [
                k for k, (tp, offset, _) in self.recent.items()
                if settled(tp, offset, is_committed)
            ]
            for k in done:
                del self.recent[k]
        tp, offset = position if position is not None else (None, -1)
        self.recent[order_number] = [tp, offset, record]
        while len(self.recent) > RECENT:
            del self.recent[next(iter(self.recent))]

    def note_hold(
        self, family: str, day: int, units: float, grams: float, order_number: str, code: str
    ) -> None:
        """Remember a held order's size for its family (see the module docstring)."""
        if units <= 0 or grams <= 0:  # nothing to compare a repeat with
            return
        cases = [c for c in self.held.get(family, ()) if c[0] > day - HELD_KEEP_DAYS]
        size = [_round3(float(units)), _round6(float(grams))]
        cases.append([day, *size, order_number, code, "", ""])  # not reviewed yet
        self.held[family] = cases[-HELD_CASES:]
        for fam in [f for f, cs in self.held.items() if cs[-1][0] <= day - HELD_KEEP_DAYS]:
            del self.held[fam]

    def open_cases(self, family: str, day: int, days: int) -> list[list]:
        """Cases of ``family`` that hold repeats on ``day`` (see ``holds_until``)."""
        return [
            c for c in self.held.get(family, ())
            if c[0] <= day < holds_until(c, days)
        ]

    def review_cases(
        self, order_number: str, outcome: str, reviewed_at: str
    ) -> list[tuple[str, list]]:
        """Record a review on every case of ``order_number``; (family, case) each.

        The newest review stands, by ``reviewed_at`` (ISO-8601 UTC to the second), not by
        arrival: an older review that arrives late changes nothing, and at the same second
        ``reported`` wins. Applying the same review again changes nothing.
        """
        touched = []
        for family, cases in self.held.items():
            for case in cases:
                if case[3] == order_number:
                    if review_rank(reviewed_at, outcome) > review_rank(case[6], case[5]):
                        case[5], case[6] = outcome, reviewed_at
                    touched.append((family, case))
        return touched

    def recorded(self, order_number: str) -> dict[str, Any] | None:
        """The decision recorded for a recently applied order, if still kept."""
        entry = self.recent.get(order_number)
        return entry[2] if entry else None

    def to_state(self) -> list:
        """A JSON-ready list (``STATE_VERSION``); ``from_state`` reads versions 1 to 5."""
        fams = {
            f: [h.first_day, h.last_day, [[d, *b] for d, b in h.days.items()], h.ring, h.peak]
            for f, h in self.families.items()
        }
        seen = [[k, d, s] for k, (d, s) in self.seen.items()]
        return [
            STATE_VERSION, self.first_day, self.last_day, self.orders, fams, seen, self.recent,
            self.times, self.held, self.cert,
        ]

    def dumps_state(self) -> bytes:
        """``json.dumps(self.to_state())``, compact, from cached per-family JSON.

        Only what changed since the last call is encoded again: the families the last
        orders touched (``FamilyHistory.state_json``), order numbers seen since, decisions
        remembered since. The bytes are the same as ``to_state``'s.
        """
        fams = ",".join(f"{_enc(f)}:{h.state_json()}" for f, h in self.families.items())
        head = _enc([STATE_VERSION, self.first_day, self.last_day, self.orders])[:-1]
        return (
            f"{head},{{{fams}}},{self._seen_json()},{self._recent_json()},{_enc(self.times)},"
            f"{_enc(self.held)},{_enc(self.cert)}]".encode()
        )

    def _seen_json(self) -> str:
        enc, seen = self._seen_enc, self.seen
        if len(enc) < len(seen):  # entries only join at the end (see ``_forget_seen``)
            enc.extend(_enc([k, d, s]) for k, (d, s) in islice(seen.items(), len(enc), None))
        return f"[{','.join(enc)}]"

    def _recent_json(self) -> str:
        texts, parts = self._recent_text, []
        for k, entry in self.recent.items():
            hit = texts.get(k)
            if hit is None or hit[0] is not entry:
                hit = texts[k] = (entry, f"{_enc(k)}:{_enc(entry)}")
            parts.append(hit[1])
        if len(texts) > len(parts):
            self._recent_text = {k: texts[k] for k in self.recent}
        return f"{{{','.join(parts)}}}"

    @classmethod
    def from_state(cls, state: list) -> RegistrantProfile:
        if not isinstance(state, list) or not state or state[0] not in (1, 2, 3, 4, 5):
            raise ValueError("unknown profile state version")
        p = cls()
        if state[0] == 1:
            _, p.first_day, p.last_day, p.orders, fams, seen, p.recent = state
        else:
            _, p.first_day, p.last_day, p.orders, fams, seen, p.recent, times = state[:8]
            p.times = [int(x) for x in times]
            if state[0] >= 3:
                if len(state) < 9 or not isinstance(state[8], dict):
                    raise ValueError(f"profile state version {state[0]} lacks its held cases")
                p.held = {f: [_case(c, state[0]) for c in cs] for f, cs in state[8].items()}
            if state[0] >= 5:
                cert = state[9] if len(state) > 9 else "absent"
                if cert is not None and not (
                    isinstance(cert, list) and len(cert) == 2 and type(cert[0]) is int
                    and (cert[1] is None or isinstance(cert[1], str))
                ):
                    raise ValueError("profile state version 5 lacks its certificate entry")
                p.cert = cert
        for f, entry in fams.items():
            h = p.families[f] = FamilyHistory()
            h.first_day, h.last_day, buckets = entry[0], entry[1], entry[2]
            h.days = {int(b[0]): [float(x) for x in b[1:]] for b in buckets}
            ring = entry[3] if len(entry) > 3 else []
            h.ring = [[int(r[0]), float(r[1]), float(r[2])] for r in ring]
            h.peak = float(entry[4]) if len(entry) > 4 else 0.0
            h.rebuild()
        p.seen = {k: (d, s) for k, d, s in seen}
        return p


def holds_until(case: list, days: int) -> int:
    """The first day a case no longer holds repeats: ``days`` after the hold, unreviewed;
    ``HELD_KEEP_DAYS`` after it once reported; the hold's own day once cleared."""
    if case[5] == "cleared":
        return case[0]
    return case[0] + (max(days, HELD_KEEP_DAYS) if case[5] == "reported" else days)


def _case(c: list, version: int) -> list:
    """One held case from state; a v3 case has no review yet."""
    if len(c) != (7 if version >= 4 else 5):
        raise ValueError(f"profile state version {version}: a held case has {len(c)} fields")
    review = [str(c[5]), str(c[6])] if version >= 4 else ["", ""]
    if review[0] not in ("", *OUTCOMES):
        raise ValueError(f"profile state: unknown review outcome {review[0]!r}")
    return [int(c[0]), float(c[1]), float(c[2]), str(c[3]), str(c[4]), *review]
