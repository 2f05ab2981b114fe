"""What a threshold change would do: two backtests of one feed, order by order.

Compliance teams tune ``[scoring]`` limits and overrides, and every change must be
defensible: which orders it would have released that were held, and why they were held;
which it would now hold, and why. ``som replay`` the same feed with the current and the
proposed configuration (or models), then compare the two decision files. Orders are
matched by identity (purchaser DEA number, order number); a redelivered decision counts
once. The decisions' config and model versions are reported so the comparison itself
can be reproduced.

>>> def d(n, verdict, *codes):
...     return {"order_number": n, "purchaser_dea": "BP1234563", "decision": verdict,
...             "reasons": [{"code": c, "detail": c} for c in codes],
...             "config_version": "c1", "model_version": "m1"}
>>> summary, changed = compare_decisions(
...     [d("1", "HOLD", "size_own"), d("2", "RELEASE"), d("3", "HOLD", "split_orders")],
...     [d("1", "RELEASE"), d("2", "HOLD", "size_own"), d("3", "HOLD", "split_orders")])
>>> summary["holds"], summary["released_now"], summary["held_now"]
({'before': 2, 'after': 2}, {'size_own': 1}, {'size_own': 1})
>>> [(c["order_number"], c["before"], c["after"]) for c in changed]
[('1', 'HOLD', 'RELEASE'), ('2', 'RELEASE', 'HOLD')]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from engine.records import BadRecord, checked_decision

__all__ = ["compare_decisions"]


def _by_identity(records: Iterable[dict], side: str) -> tuple[dict, int, set[str], set[str]]:
    """Decisions by identity, how many other records were skipped, the versions seen."""
    out: dict[tuple[str, str], dict] = {}
    skipped = 0
    configs, models = set(), set()
    for n, d in enumerate(records, 1):
        if "decision" not in d:  # rejections and review records share some outputs
            skipped += 1
            continue
        key, _ = checked_decision(n, d, side)
        first = out.setdefault(key, d)
        if first["decision"] != d["decision"]:  # a redelivery repeats its decision
            raise BadRecord(
                side,
                f"decision record {n}: order {key[1]} of {key[0]} is "
                f"{d['decision']} here and {first['decision']} earlier in the file "
                "(two runs in one file?)",
            )
        configs.add(str(d.get("config_version")))
        models.add(str(d.get("model_version")))
    if not out:
        raise BadRecord(
            side, f"no decision records ({skipped} other records): not a decisions file"
        )
    return out, skipped, configs, models


def _codes(d: dict) -> list[str]:
    return [str(r.get("code")) for r in d.get("reasons") or []]


def compare_decisions(before: Iterable[dict], after: Iterable[dict]) -> tuple[dict, list[dict]]:
    """A summary and one row per order whose decision changed, in the ``after`` file's order.

    ``released_now`` counts, by the first reason that held it before, the orders the
    change would release; ``held_now`` counts, by the first reason that holds it now, the
    orders it would hold. Orders in one file only are counted, not compared (a different
    feed or a shorter replay). A record that is not a decision is skipped and counted; a
    file with no decision, or one order decided both ways, is a ``BadRecord``.
    """
    old, old_skipped, old_configs, old_models = _by_identity(before, "before")
    new, new_skipped, new_configs, new_models = _by_identity(after, "after")
    common = old.keys() & new.keys()
    released, held = Counter(), Counter()
    changed = []
    for key, d in new.items():
        if key not in common or old[key]["decision"] == d["decision"]:
            continue
        was = old[key]
        first = (_codes(was) if d["decision"] == "RELEASE" else _codes(d)) or ["none"]
        (released if d["decision"] == "RELEASE" else held)[first[0]] += 1
        changed.append(
            {
                "record": "changed_decision",
                "order_number": key[1],
                "purchaser_dea": key[0],
                "signed_at": d.get("signed_at"),
                "before": was["decision"],
                "after": d["decision"],
                "reasons_before": _codes(was),
                "reasons_after": _codes(d),
                "why": ((d if d["decision"] == "HOLD" else was).get("reasons") or [{}])[0].get(
                    "detail"
                ),
            }
        )
    summary = {
        "compared": len(common),
        "only_before": len(old) - len(common),
        "only_after": len(new) - len(common),
        "skipped": {"before": old_skipped, "after": new_skipped},
        "holds": {
            "before": sum(old[k]["decision"] == "HOLD" for k in common),
            "after": sum(new[k]["decision"] == "HOLD" for k in common),
        },
        "released_now": dict(released.most_common()),
        "held_now": dict(held.most_common()),
        "config_version": {"before": sorted(old_configs), "after": sorted(new_configs)},
        "model_version": {"before": sorted(old_models), "after": sorted(new_models)},
    }
    return summary, changed
