"""Small signed feeds built in the tests (keys generated here, never committed)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from connectors.demo_pki import DemoPKI, Identity, key_pool
from connectors.feed import write_feed
from connectors.signing import sign_cms, sign_json_envelope

SUPPLIER = {"dea_number": "RS7654329", "name": "Example Wholesale [TEST]",
            "address": "9 Depot Rd, Columbus, OH 43004"}
START = datetime(2025, 1, 6, 15, 0, tzinfo=UTC)
PURCHASERS = ["BP1234563", "AC2345672", "FD3456781", "BM4567890", "AB1111119"]
ADDRESS = "1 Main St, Springfield, IL 62701"


def order(purchaser: str, number: str, signed_at: datetime, lines: list[tuple[str, int, int]],
          **extra) -> dict:
    return {
        "order_number": number,
        "form": "csos",
        "signed_at": signed_at.isoformat().replace("+00:00", "Z"),
        "purchaser": {"dea_number": purchaser, "name": f"Pharmacy {purchaser[:2]} [TEST]",
                      "address": ADDRESS},
        "supplier": SUPPLIER,
        "lines": [
            {"line": i + 1, "ndc": ndc, "product": "test product", "package_quantity": q,
             "packages": n}
            for i, (ndc, q, n) in enumerate(lines)
        ],
        **extra,
    }


def payload(o: dict) -> bytes:
    return json.dumps(o, separators=(",", ":")).encode()


@dataclass
class TestFeed:
    dir: Path
    pki: DemoPKI
    identities: dict[str, Identity]
    messages: list[bytes] = field(default_factory=list)
    expected_rejections: int = 0

    @property
    def config(self) -> Path:
        return self.dir / "som.toml"

    @property
    def feed(self) -> Path:
        return self.dir / "feed.jsonl"


def build_feed(tmp: Path, weeks: int = 20, bad: bool = True) -> TestFeed:
    """Five purchasers ordering weekly for ``weeks`` weeks, a size spike, and bad messages."""
    pki = DemoPKI.create(START - timedelta(days=400), START + timedelta(days=800), seed=1)
    keys = key_pool(2, seed=1)
    ids = {  # the last two certificates carry no registered address (ship-to not_in_certificate)
        dea: pki.issue_registrant(dea, f"Pharmacy {dea[:2]} [TEST]",
                                  ["2", "2N", "3", "3N", "4", "5"],
                                  START - timedelta(days=30), START + timedelta(days=700),
                                  key=keys[i % 2], address=ADDRESS if i < 3 else None)
        for i, dea in enumerate(PURCHASERS)
    }
    tf = TestFeed(tmp, pki, ids)
    n = 0
    for week in range(weeks):
        for i, dea in enumerate(PURCHASERS):
            n += 1
            qty = 2 if (week == weeks - 2 and i == 0) else 1  # baseline
            if week == weeks - 1 and i == 0:
                qty = 40  # size spike on the last week
            o = order(dea, f"25X{n:06d}", START + timedelta(days=7 * week, hours=i),
                      [("99901-0102-01", 100, qty), ("99901-1101-01", 100, 1)])
            p = payload(o)
            msg = sign_cms(p, ids[dea]) if n % 2 else json.dumps(
                sign_json_envelope(p, ids[dea])).encode()
            tf.messages.append(msg)
    if bad:
        last = START + timedelta(days=7 * weeks)
        tf.messages.append(b"\x00garbage")
        unknown = order(PURCHASERS[1], "25X900001", last, [("12345-6789-01", 100, 1)])
        tf.messages.append(sign_cms(payload(unknown), ids[PURCHASERS[1]]))
        env = sign_json_envelope(payload(order(PURCHASERS[2], "25X900002", last,
                                               [("99901-0102-01", 100, 1)])), ids[PURCHASERS[2]])
        env["payload"] = env["payload"][:-4] + ("AAAA" if env["payload"][-4:] != "AAAA" else "BBBB")
        tf.messages.append(json.dumps(env).encode())
        # an order number purchaser 3 used two weeks ago, on a new order
        dup = order(PURCHASERS[3], f"25X{(weeks - 2) * 5 + 4:06d}", last,
                    [("99901-0102-01", 100, 1)])
        tf.messages.append(sign_cms(payload(dup), ids[PURCHASERS[3]]))
        tf.expected_rejections = 4
    pki.write(tmp)
    (tmp / "catalog.csv").write_bytes(
        (Path(__file__).parent.parent / "config" / "catalog.csv").read_bytes()
    )
    write_feed(tf.feed, tf.messages)
    tf.config.write_text(
        '[kafka]\npartitions = 2\nbatch_timeout_s = 0.02\n'
        '[verification]\nsupplier_dea = "RS7654329"\ntrust_dir = "trust"\n'
        'intermediates_dir = "intermediates"\ncrl_dir = "crl"\ntime_rules_at = "signed"\n'
        '[catalog]\npath = "catalog.csv"\n'
    )
    return tf


def som(*args: str) -> subprocess.CompletedProcess:
    """``som ARGS...`` in a subprocess, as a user runs it (text output, exit code)."""
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True,
                          text=True, timeout=120)
