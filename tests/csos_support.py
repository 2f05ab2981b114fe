"""Shared test material for the CSOS verification tests: a PKI, signers, orders.

Keys are generated while the tests run; no key is committed.
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from config.settings import VerificationSettings
from connectors.catalog import Catalog, Product
from connectors.demo_pki import DemoPKI, Identity

T0 = datetime(2025, 1, 1, tzinfo=UTC)
T1 = datetime(2027, 1, 1, tzinfo=UTC)
SIGNED = datetime(2025, 3, 4, 14, 22, 5, tzinfo=UTC)
PURCHASER = "BP1234563"
SUPPLIER = "RS7654329"
ADDRESS = "1 Main St, Springfield, IL 62701"  # the purchaser's registered location

OXY = "99901-0103-01"  # schedule 2 (narcotic)
AMPH = "99902-0101-01"  # schedule 2N
ALPRAZ = "99903-0101-01"  # schedule 4


def catalog() -> Catalog:
    def p(ndc: str, schedule: str, family: str) -> Product:
        return Product(ndc, f"{family} test", "0000", family, schedule, 100, 1.0, 0.0)

    items = [p(OXY, "2", "oxycodone"), p(AMPH, "2N", "amphetamine"), p(ALPRAZ, "4", "alprazolam")]
    return Catalog({i.ndc: i for i in items})


@lru_cache(maxsize=1)
def pki() -> DemoPKI:
    return DemoPKI.create(T0, T1, seed=11)


@lru_cache(maxsize=8)
def signer(
    schedules: tuple[str, ...] = ("2", "2N", "4"),
    key_type: str = "rsa",
    dea: str = PURCHASER,
    address: str | None = ADDRESS,
) -> Identity:
    return pki().issue_registrant(
        dea, "Main St Pharmacy", schedules, T0, T1, key_type=key_type, address=address
    )


def order(**changes) -> dict:
    data = {
        "order_number": "25X00A123",
        "form": "csos",
        "signed_at": SIGNED.isoformat().replace("+00:00", "Z"),
        "purchaser": {"dea_number": PURCHASER, "name": "Main St Pharmacy", "address": ADDRESS},
        "supplier": {"dea_number": SUPPLIER, "name": "Example Wholesale", "address": "9 Depot"},
        "lines": [
            {"line": 1, "ndc": OXY, "product": "Oxy 30", "package_quantity": 100, "packages": 2}
        ],
    }
    data.update(changes)
    return data


def payload(**changes) -> bytes:
    return json.dumps(order(**changes)).encode()


@lru_cache(maxsize=1)
def trust_root() -> Path:
    """The PKI written as trust/, intermediates/ and crl/ under a temporary folder."""
    root = Path(tempfile.mkdtemp(prefix="som-csos-test-"))
    pki().write(root)
    return root


def settings(**changes) -> VerificationSettings:
    """Verification settings wired to the test PKI; keyword arguments override."""
    root = trust_root()
    base = {
        "trust_dir": str(root / "trust"),
        "intermediates_dir": str(root / "intermediates"),
        "crl_dir": str(root / "crl"),
    }
    base.update(changes)
    return VerificationSettings(**base)


def rogue_pki(sub_is_ca: bool = True, root: DemoPKI | None = None, seed: int = 23) -> DemoPKI:
    """A PKI whose sub CA is issued by ``root`` (default: the trusted test root).

    ``sub_is_ca=False`` makes the "intermediate" an end-entity certificate.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa

    root = root or pki()
    key = rsa.generate_private_key(65537, 2048)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, f"rogue sub {seed}")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(root.root_cert.subject)
        .public_key(key.public_key())
        .serial_number(1000 + seed)
        .not_valid_before(T0)
        .not_valid_after(T1)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root.root_key.public_key()), False
        )
    )
    if sub_is_ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
    else:
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        usage = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
    sub = builder.add_extension(usage, True).sign(root.root_key, hashes.SHA256())
    return DemoPKI(root.root_cert, root.root_key, sub, key, seed)
