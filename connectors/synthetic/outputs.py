"""The side files of a generated feed: config, catalog copy, registrants, ground truth.

``som.toml`` is the shipped default configuration with only the keys a feed needs
rewritten in place, so it keeps every key and comment of ``config/default.toml`` and
cannot drift from it. Paths in it are relative to the feed folder.

>>> text = feed_config("RL1357929")
>>> 'time_rules_at = "signed"' in text and 'trust_dir = "trust"' in text
True
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from config.settings import DEFAULT_CONFIG

__all__ = [
    "feed_config",
    "write_config",
    "write_jsonl",
    "copy_catalog",
    "format_summary",
    "FEED_KEYS",
]

FEED_KEYS = {
    "supplier_dea": None,  # filled with the feed's supplier
    "trust_dir": "trust",
    "intermediates_dir": "intermediates",
    "crl_dir": "crl",
    "time_rules_at": "signed",  # a feed is history: judge time rules as of signing
    "path": "catalog.csv",  # [catalog] path
}


def feed_config(supplier_dea: str, template: Path = DEFAULT_CONFIG) -> str:
    """The default config text with the feed's keys set; raises if a key is missing."""
    text = template.read_text(encoding="utf-8")
    for key, value in FEED_KEYS.items():
        value = supplier_dea if value is None else value
        pattern = re.compile(rf'^({key}\s*=\s*)"[^"]*"', re.MULTILINE)
        text, n = pattern.subn(lambda m, v=value: f'{m.group(1)}"{v}"', text, count=1)
        if n != 1:
            raise ValueError(f"{template}: no string key {key!r} to set for the feed config")
    header = "# Written by `som generate` for the synthetic feed in this folder.\n"
    return header + text


def write_config(out_dir: Path, supplier_dea: str) -> Path:
    path = out_dir / "som.toml"
    path.write_text(feed_config(supplier_dea), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, separators=(",", ":")) + "\n")
            count += 1
    return count


def copy_catalog(source: Path, out_dir: Path) -> Path:
    target = out_dir / "catalog.csv"
    shutil.copyfile(source, target)
    return target


def format_summary(summary: dict) -> str:
    """The few lines ``som generate`` prints.

    >>> print(format_summary({"out_dir": "d", "orders": 10, "messages": 11, "registrants": 2,
    ...     "cms_messages": 5, "bad_messages": 1, "anomalous_orders": 1,
    ...     "anomalies": {"size_spike": 1}, "files": ["feed.jsonl"]}))
    wrote d: 11 messages (10 orders from 2 registrants, 5 CMS, 1 bad)
    anomalous orders: 1 (10.00%): size_spike 1
    files: feed.jsonl
    """
    orders = max(summary["orders"], 1)
    kinds = ", ".join(f"{k} {v}" for k, v in summary["anomalies"].items())
    return "\n".join([
        f"wrote {summary['out_dir']}: {summary['messages']} messages ({summary['orders']} orders "
        f"from {summary['registrants']} registrants, {summary['cms_messages']} CMS, "
        f"{summary['bad_messages']} bad)",
        f"anomalous orders: {summary['anomalous_orders']} "
        f"({100 * summary['anomalous_orders'] / orders:.2f}%): {kinds}",
        "files: " + " ".join(summary["files"]),
    ])
