"""One drug family's history in a registrant's profile: event-time daily buckets.

Buckets ``[units, grams, mme, orders]`` are keyed by event-time day (the order's
signing date), never wall-clock, and expire by event time after ``RETENTION_DAYS``.
Rolling sums over ``WINDOWS`` are kept incrementally so that a score reads them in
O(1) instead of summing a year of buckets per order. The family also keeps its last
``RING`` orders whole as ``[t, units, grams]`` (t = signing time in epoch seconds) and
the strongest mg base per unit ever bought. ``engine.profile.RegistrantProfile``
holds one per family.

>>> h = FamilyHistory()
>>> h.add(20000, 100.0, 0.9, 1350.0, 20000 * 86400)
>>> h.add(20010, 50.0, 0.45, 675.0, 20010 * 86400)
>>> h.window(20010, 30), h.window(20010, 7)
((150.0, 1.35, 2025.0, 2.0), (50.0, 0.45, 675.0, 1.0))
"""

from __future__ import annotations

import json
from bisect import bisect_left, bisect_right, insort
from itertools import islice

__all__ = ["FamilyHistory", "WINDOWS", "RETENTION_DAYS", "RING"]

WINDOWS = (7, 30, 90, 365)
RETENTION_DAYS = 400
RING = 24  # last orders per family kept whole (size, split, strength, ramp)
_ZERO = (0.0, 0.0, 0.0, 0.0)
_enc = json.JSONEncoder(separators=(",", ":")).encode
_SPAN_INDEX = {w: i for i, w in enumerate(WINDOWS)}


def _enc_numbers(xs: list) -> str:
    """``_enc(xs)`` for a flat list of ints and floats: JSON writes finite ones as ``repr``."""
    text = ",".join(map(repr, xs))
    if "n" in text:  # inf or nan, which JSON writes as Infinity and NaN
        return _enc(xs)
    return f"[{text}]"


def _round3(x: float) -> float:
    """``round(x, 3)``; an integral float is its own rounding (and most amounts are)."""
    return x if x.__class__ is float and x.is_integer() else round(x, 3)


_MEMO_MAX = 1 << 16
_memo6: dict[float, float] = {}
_memo4: dict[float, float] = {}


def _round6(x: float) -> float:
    """``round(x, 6)``, remembered: the same package amounts come back order after order."""
    if x.__class__ is not float:
        return round(x, 6)
    r = _memo6.get(x)
    if r is None:
        r = round(x, 6)
        if x > 0.0:  # 0.0 == -0.0 as keys: zeros (and NaN) are left to round()
            if len(_memo6) >= _MEMO_MAX:
                _memo6.clear()
            _memo6[x] = r
    return r


def _round4(x: float) -> float:
    """``round(x, 4)`` of a float, remembered like ``_round6``."""
    r = _memo4.get(x)
    if r is None:
        r = round(x, 4)
        if x > 0.0:
            if len(_memo4) >= _MEMO_MAX:
                _memo4.clear()
            _memo4[x] = r
    return r


class FamilyHistory:
    """Daily buckets [units, grams, mme, orders] of one drug family, with rolling sums."""

    __slots__ = (
        "days", "first_day", "last_day", "ring", "peak", "_anchor", "_sums", "_text", "_closed",
        "_spans", "_cols", "_live", "_keys", "_ring_text",
    )

    def __init__(self) -> None:
        self.days: dict[int, list[float]] = {}
        self.ring: list[list[float]] = []  # last RING orders: [t, units, grams]
        self.peak = 0.0  # strongest mg base per unit ever bought (kept after buckets expire)
        self.first_day: int | None = None
        self.last_day: int | None = None
        self._anchor: int | None = None
        self._sums: dict[int, list[float]] = {w: [0.0, 0.0, 0.0, 0.0] for w in WINDOWS}
        self._live = tuple(self._sums.values())  # the same lists, updated in place
        self._keys: list[int] = []  # the days of ``days``, ascending
        self._text: str | None = None  # this family's state JSON, until the next change
        self._closed: tuple[int, str] | None = None  # JSON of the first n buckets, unchanged
        self._spans: tuple[int, tuple] | None = None  # (day, spans(day)) until the next change
        self._cols: tuple | None = None  # ring columns (see ``columns``) until rebuilt
        # JSON of each ring entry, aligned with ``ring``; None for one not encoded yet
        self._ring_text: list[str | None] | None = None

    def window(self, day: int, width: int) -> tuple[float, float, float, float]:
        """(units, grams, mme, orders) over the days (day - width, day]."""
        i = _SPAN_INDEX.get(width)
        if i is not None:
            return tuple(self.spans(day)[i])  # type: ignore[return-value]
        return self._window(day, width)

    def spans(self, day: int) -> tuple:
        """``window(day, w)`` for every w in ``WINDOWS``, in that order, in one call.

        Kept until the next ``add``, so every scorer reading the same order's windows
        pays once; the values may be the live rolling sums, so read them before
        changing this history. Reading at a day on or after the rolling sums' edge
        moves the edge there, exactly as ``window`` always did.
        """
        cached = self._spans
        if cached is not None and cached[0] == day:
            return cached[1]
        if self._anchor is not None and day >= self._anchor:
            self._advance(day)
            out = self._live
        else:
            out = tuple(self._window(day, w) for w in WINDOWS)
        self._spans = (day, out)
        return out

    def columns(self) -> list:
        """The ring as [times, units, sorted units, sorted grams, times out of order,
        units stats, grams stats].

        Maintained on ``add``: medians and maxima read from the sorted columns, and
        while the out-of-order count is 0 (times ascending, the usual case) a time
        window of the ring is a suffix found by bisection. The two stats slots are for
        the reader to fill (``models.features``); ``add`` empties a slot when its
        sorted column changes (not when the order that leaves the ring had the same size).
        """
        cols = self._cols
        if cols is None:
            ring = self.ring
            times = [r[0] for r in ring]
            units = [r[1] for r in ring]
            desc = sum(1 for a, b in zip(times, times[1:], strict=False) if b < a)
            cols = self._cols = [times, units, sorted(units), sorted(r[2] for r in ring), desc,
                                 None, None]
        return cols

    def _window(self, day: int, width: int) -> tuple[float, float, float, float]:
        lo = day - width
        acc = [0.0, 0.0, 0.0, 0.0]
        for d, b in self.days.items():
            if lo < d <= day:
                acc[0] += b[0]
                acc[1] += b[1]
                acc[2] += b[2]
                acc[3] += b[3]
        return tuple(acc)  # type: ignore[return-value]

    def add(
        self, day: int, units: float, grams: float, mme: float, t: float | None = None
    ) -> None:
        # Rounded (to a milli-unit, a microgram, a milli-MME) so that the state's JSON stays
        # short and a value reads back exactly as it was held in memory.
        # (An integral float rounds to itself: round() is skipped for those.)
        units = _round3(units)
        grams, mme = _round6(grams), _round3(mme)
        self._text = None
        self._spans = None
        if self._closed is not None and day in self.days and next(reversed(self.days)) != day:
            self._closed = None  # an older bucket changes (out-of-order order)
        if units > 0 and grams > 0:  # scorers take logs and ratios of ring amounts
            ring = self.ring
            ts = int(day * 86400 if t is None else t)
            ring.append([ts, units, grams])
            old = ring.pop(0) if len(ring) > RING else None
            texts = self._ring_text
            if texts is not None:  # the new entry is encoded by the next state_json
                texts.append(None)
                if old is not None:
                    del texts[0]
            cols = self._cols
            if cols is not None:
                times, runits, su, sg = cols[0], cols[1], cols[2], cols[3]
                if times and ts < times[-1]:
                    cols[4] += 1
                times.append(ts)
                runits.append(units)
                if old is None:
                    insort(su, units)
                    insort(sg, grams)
                    cols[5] = cols[6] = None
                else:
                    if times[1] < times[0]:
                        cols[4] -= 1
                    del times[0]
                    del runits[0]
                    if old[1] != units:  # else the same sizes: sorted column and stats stay
                        del su[bisect_left(su, old[1])]
                        insort(su, units)
                        cols[5] = None
                    if old[2] != grams:
                        del sg[bisect_left(sg, old[2])]
                        insort(sg, grams)
                        cols[6] = None
            strength = _round4(grams * 1000.0 / units)
            if strength > self.peak:
                self.peak = strength
        days = self.days
        bucket = days.get(day)
        if bucket is None:
            bucket = days[day] = [0.0, 0.0, 0.0, 0.0]
            keys = self._keys
            if not keys or day > keys[-1]:
                keys.append(day)
            else:
                insort(keys, day)
        bucket[0] = _round3(bucket[0] + units)
        bucket[1] = _round6(bucket[1] + grams)
        bucket[2] = _round3(bucket[2] + mme)
        bucket[3] += 1.0
        if self.first_day is None or day < self.first_day:
            self.first_day = day
        if self.last_day is None or day > self.last_day:
            self.last_day = day
        if self._anchor is None or day > self._anchor:
            self._advance(day)
        if day > self._anchor - WINDOWS[-1]:
            for w, s in self._sums.items():
                if day > self._anchor - w:
                    s[0] += units
                    s[1] += grams
                    s[2] += mme
                    s[3] += 1.0
        self._expire()

    def _advance(self, day: int) -> None:
        """Move the rolling sums' right edge to ``day``, dropping buckets that fall out."""
        old = self._anchor
        self._anchor = day
        if old is None or day == old:
            return
        days, keys = self.days, self._keys
        first, last = (keys[0], keys[-1]) if keys else (day + 1, day - WINDOWS[-1])
        for w, s in self._sums.items():
            if day - old >= w:
                s[:] = [0.0, 0.0, 0.0, 0.0]
                continue
            if day - w < first or old - w >= last:
                continue  # no bucket in (old - w, day - w]
            # the buckets of days (old - w, day - w], oldest first as always: same float sums
            i = bisect_right(keys, old - w)
            j = bisect_right(keys, day - w, i)
            for d in keys[i:j]:
                b = days[d]
                s[0] -= b[0]
                s[1] -= b[1]
                s[2] -= b[2]
                s[3] -= b[3]

    def _expire(self) -> None:
        if self.first_day is not None and self.last_day - self.first_day >= RETENTION_DAYS:
            keys = self._keys
            n = bisect_right(keys, self.last_day - RETENTION_DAYS)
            if n:
                for d in keys[:n]:
                    del self.days[d]
                del keys[:n]
                self._closed = self._text = None

    def state_json(self) -> str:
        """JSON of ``[first_day, last_day, buckets, ring, peak]``, re-encoding only what changed.

        The changelog gets a profile's whole state on every write; most of it is
        buckets of past days that no longer change, so their JSON is kept.
        """
        if self._text is None:
            days = self.days
            n = len(days) - 1  # all but the newest bucket are closed in time order
            closed = self._closed
            if n > 0 and closed is not None and closed[0] <= n:
                if closed[0] < n:
                    more = ",".join(
                        _enc_numbers([d, *b]) for d, b in islice(days.items(), closed[0], n))
                    closed = (n, f"{closed[1]},{more}" if closed[0] else more)
            elif n > 0:
                closed = (n, ",".join(_enc_numbers([d, *b]) for d, b in islice(days.items(), n)))
            else:
                closed = None
            self._closed = closed
            if days:
                d, b = next(reversed(days.items()))
                last = _enc_numbers([d, *b])
            else:
                last = ""
            buckets = f"[{closed[1]},{last}]" if closed else f"[{last}]"
            self._text = (
                f"[{_enc(self.first_day)},{_enc(self.last_day)},{buckets},"
                f"{self._ring_json()},{_enc(self.peak)}]"
            )
        return self._text

    def _ring_json(self) -> str:
        """``_enc(self.ring)`` from each entry's kept JSON: entries only ever join at the end."""
        ring, texts = self.ring, self._ring_text
        if texts is None or len(texts) != len(ring):
            texts = self._ring_text = [None] * len(ring)
        i = len(texts) - 1
        while i >= 0 and texts[i] is None:
            texts[i] = _enc_numbers(ring[i])
            i -= 1
        return f"[{','.join(texts)}]"  # type: ignore[arg-type]

    def rebuild(self) -> None:
        """Recompute rolling sums from buckets (after loading state)."""
        self._anchor = None
        self._spans = self._cols = self._ring_text = None
        self._keys = sorted(self.days)
        sums = {
            w: self._window(self.last_day, w) if self.last_day is not None else _ZERO
            for w in WINDOWS
        }
        self._anchor = self.last_day
        for w, s in self._sums.items():
            s[:] = sums[w]

    def active_days(self, day: int, width: int) -> int:
        lo = day - width
        return sum(1 for d in self.days if lo < d <= day)
