"""CMS order verification rate against OpenSSL's raw RSA-2048 verify rate, in one run.

Production conditions: a few hundred registrants with RSA-2048 certificates
under the demo CSOS hierarchy, CRLs on disk, caches warm (each signer's path
validated once). Measured per message, single core:

- ``cms_verify``: open the DER CMS (slice, messageDigest, RSA signature),
  then the cached path, its validity at the signing time and the CRL lookup;
- ``verify_stage``: all of ``Verifier.verify`` (also order JSON parsing,
  DEA extensions, schedules, catalog).

The reference is ``openssl speed -seconds 2 rsa2048`` (verify/s). Each of 7
rounds measures ``cms_verify`` between two openssl runs and divides by their
mean, so load from other processes on a shared machine weighs on both sides
of each round's ratio alike; medians over rounds are reported, with each
round's ratio. Also reported: the RSA-2048 check alone in ``cryptography``
over the same signatures (the floor the Python path cannot go below), and the
envelope and whole-stage rates. Prints ``RESULT {json}`` last.

    .venv/bin/python benchmarks/cms_verify.py [--messages 6000] [--registrants 300] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding  # noqa: E402

from config import DEFAULT_CONFIG  # noqa: E402
from config.settings import VerificationSettings  # noqa: E402
from connectors.catalog import Catalog  # noqa: E402
from connectors.demo_pki import DemoPKI, key_pool  # noqa: E402
from connectors.envelope import open_envelope  # noqa: E402
from connectors.identifiers import dea_check_digit  # noqa: E402
from connectors.signing import sign_cms  # noqa: E402
from engine.verify import Verifier  # noqa: E402

SUPPLIER = "RS7654329"


def _dea(i: int) -> str:
    digits = f"{1000000 + i * 7:06d}"[-6:]
    return f"B{chr(65 + i % 26)}{digits}{dea_check_digit(digits)}"


def build(messages: int, registrants: int, workdir: Path) -> tuple[list[bytes], Verifier]:
    """Sign ``messages`` CMS orders from ``registrants`` signers; write trust material."""
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    t1 = datetime.now(UTC) + timedelta(days=700)
    pki = DemoPKI.create(t0, t1, seed=5)
    keys = key_pool(8, seed=5)  # synthetic shortcut: signers share a few keys
    ids = [
        pki.issue_registrant(_dea(i), f"Bench {i}", ["2", "2N", "3", "3N", "4", "5"], t0, t1,
                             key=keys[i % len(keys)])
        for i in range(registrants)
    ]  # fmt: skip
    pki.write(workdir)
    catalog = Catalog.load(DEFAULT_CONFIG.with_name("catalog.csv"))
    ndcs = sorted(p.ndc for p in catalog.products.values() if p.schedule != "1")
    rng = random.Random(5)
    out = []
    for n in range(messages):
        who = rng.randrange(registrants)
        lines = [
            {"line": j + 1, "ndc": rng.choice(ndcs), "product": "bench",
             "package_quantity": 100, "packages": rng.randint(1, 12)}
            for j in range(rng.randint(1, 3))
        ]  # fmt: skip
        order = {
            "order_number": f"25X{n:06d}",
            "form": "csos",
            "signed_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
            "purchaser": {"dea_number": _dea(who), "name": f"Bench {who}", "address": "1 Main"},
            "supplier": {"dea_number": SUPPLIER, "name": "Wholesale", "address": "9 Depot"},
            "lines": lines,
        }
        out.append(sign_cms(json.dumps(order).encode(), ids[who]))
    settings = VerificationSettings(
        trust_dir=str(workdir / "trust"),
        intermediates_dir=str(workdir / "intermediates"),
        crl_dir=str(workdir / "crl"),
        supplier_dea=SUPPLIER,
    )
    return out, Verifier(settings, catalog)


def rate(fn, batch: list, repeats: int) -> float:
    """Median messages per CPU-second over ``repeats`` passes of ``batch``.

    CPU time, because ``openssl speed`` reports per CPU-second too (its
    default; ``-elapsed`` would switch it to wall-clock): on a shared machine
    wall-clock rates swing with other processes, CPU-time rates hardly do.
    """
    rates = []
    for _ in range(repeats):
        start = time.process_time()
        for raw in batch:
            fn(raw)
        rates.append(len(batch) / (time.process_time() - start))
    return statistics.median(rates)


def openssl_verify_rate(seconds: int = 3) -> float:
    """verify/s from ``openssl speed -seconds N rsa2048`` (last column of its rsa line).

    openssl counts user CPU time by default, matching ``rate`` above.
    """
    exe = shutil.which("openssl") or "/usr/bin/openssl"
    text = subprocess.run(
        [exe, "speed", "-seconds", str(seconds), "rsa2048"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    m = re.search(r"^rsa\s+2048 bits\s+\S+\s+\S+\s+\S+\s+(\S+)\s*$", text, re.M)
    if not m:
        raise RuntimeError(f"cannot read openssl speed output:\n{text}")
    return float(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=6000)
    ap.add_argument("--registrants", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=7, help="openssl + Python rounds (median)")
    ap.add_argument("--repeats", type=int, default=3, help="passes per Python measurement")
    ap.add_argument("--openssl-seconds", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="som-bench-") as tmp:
        t = time.perf_counter()
        batch, verifier = build(args.messages, args.registrants, Path(tmp))
        print(f"signed {len(batch)} CMS orders in {time.perf_counter() - t:.1f} s", flush=True)

        def cms_verify(raw: bytes) -> None:
            message = open_envelope(raw)
            verifier.check_signer(message, message.signing_time)

        for raw in batch:  # warm the caches: one path validation per signer
            verifier.verify(raw)
        rejected = verifier.stats["rejected"]
        signed = [open_envelope(raw) for raw in batch]
        checks = [(m.signer_info.public_key, m.cms.signature, m.cms.signed_attrs) for m in signed]
        pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()

        def rsa_only(item: tuple) -> None:  # the signature check alone, as the stage makes it
            item[0].verify(item[1], item[2], pkcs1, sha256)

        rounds = []
        after = openssl_verify_rate(args.openssl_seconds)
        for _ in range(args.rounds):  # openssl right before and after cms: shared load
            before = after
            row = {"cms": rate(cms_verify, batch, args.repeats)}
            after = openssl_verify_rate(args.openssl_seconds)
            row["openssl"] = (before + after) / 2
            row["rsa"] = rate(rsa_only, checks, args.repeats)
            row["envelope"] = rate(open_envelope, batch, args.repeats)
            row["stage"] = rate(verifier.verify, batch, args.repeats)
            rounds.append(row)
            print(json.dumps({k: round(v) for k, v in row.items()}), flush=True)

    def median(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    ossl = median("openssl")
    stage_ratio = statistics.median(r["stage"] / r["openssl"] for r in rounds)
    result = {
        "cms_verify_per_s": round(median("cms")),
        "openssl_rsa2048_verify_per_s": round(ossl),
        "ratio": round(statistics.median(r["cms"] / r["openssl"] for r in rounds), 3),
        "ratio_rounds": [round(r["cms"] / r["openssl"], 3) for r in rounds],
        "cryptography_rsa2048_verify_per_s": round(median("rsa")),
        "open_envelope_per_s": round(median("envelope")),
        "verify_stage_per_s": round(median("stage")),
        "verify_stage_ratio": round(stage_ratio, 3),
        "messages": len(batch),
        "registrants": args.registrants,
        "warmup_rejected": rejected,
        "chain_cache": verifier.chain_cache,
    }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
