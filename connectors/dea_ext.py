"""The DEA certificate extensions of CSOS purchaser certificates (DOMAIN.md section 2).

2.16.840.1.101.3.5.3 holds the DEA number, 2.16.840.1.101.3.5.4 the authorised
schedules and 2.16.840.1.101.3.5.6 the registered postal address (the ship-to rule is
``connectors.postal``). The OIDs come from public VA VistA code and the exact
DEA-number encoding is **unconfirmed**: the 2005 final rule says it is a SHA-1
hash "generated from the DEA number and the ... subject distinguished name
serial number". We assume hex(SHA-x(dea_number + subject serialNumber)),
compared case-insensitively; the rule is chosen by ``verification.dea_match``.

>>> encode_schedules(["2", "3N"])
b'\\x03\\x02\\x03H'
>>> sorted(decode_schedules(encode_schedules(["2", "3N"])))
['2', '3N']
>>> decode_dea_number(encode_dea_number("BP1234563"))
'BP1234563'
>>> dea_matches("BP1234563", decode_dea_number(encode_dea_number("BP1234563")), "", "plain")
True
>>> h = decode_dea_number(encode_dea_number("BP1234563", "ABC", "sha1-serial"))
>>> len(h), dea_matches("BP1234563", h, "ABC", "sha1-serial")
(40, True)
>>> decode_address(encode_address("1 Main St, Springfield, IL 62701"))
'1 Main St, Springfield, IL 62701'
>>> schedule_authorized("2", {"2N"}), schedule_authorized("2N", {"2N"})
(False, True)
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from asn1crypto import core
from asn1crypto import x509 as asn1_x509
from cryptography import x509

__all__ = [
    "DEA_NUMBER_OID",
    "SCHEDULES_OID",
    "ADDRESS_OID",
    "SCHEDULE_BITS",
    "encode_dea_number",
    "decode_dea_number",
    "encode_address",
    "decode_address",
    "encode_schedules",
    "decode_schedules",
    "dea_hash",
    "dea_matches",
    "schedule_authorized",
    "DeaExtensions",
    "read_extensions",
]

DEA_NUMBER_OID = x509.ObjectIdentifier("2.16.840.1.101.3.5.3")
SCHEDULES_OID = x509.ObjectIdentifier("2.16.840.1.101.3.5.4")
ADDRESS_OID = x509.ObjectIdentifier("2.16.840.1.101.3.5.6")
# First octet of the BIT STRING; bit 0x80 is unused by the profile.
SCHEDULE_BITS = {"2": 0x40, "2N": 0x20, "3": 0x10, "3N": 0x08, "4": 0x04, "5": 0x02}
_STRING_TAGS = {0x13: "ascii", 0x16: "ascii", 0x0C: "utf-8"}
_DIGESTS = {"sha1-serial": hashlib.sha1, "sha256-serial": hashlib.sha256}


def _tlv(tag: int, body: bytes) -> bytes:
    if len(body) < 0x80:
        return bytes([tag, len(body)]) + body
    size = len(body).to_bytes((len(body).bit_length() + 7) // 8)
    return bytes([tag, 0x80 | len(size)]) + size + body


def dea_hash(dea_number: str, subject_serial: str, rule: str) -> str:
    """Hex digest of DEA number + subject serialNumber (the unconfirmed hash rule)."""
    return _DIGESTS[rule]((dea_number + subject_serial).encode()).hexdigest()


def encode_dea_number(dea_number: str, subject_serial: str = "", rule: str = "plain") -> bytes:
    """DER PrintableString of the DEA number, or of its hash under ``rule``."""
    value = dea_number if rule == "plain" else dea_hash(dea_number, subject_serial, rule)
    return _tlv(0x13, value.encode("ascii"))


def decode_dea_number(der: bytes) -> str | None:
    """The string in the DEA-number extension (hex for a raw OCTET STRING hash), or None."""
    if len(der) < 2 or der[1] >= 0x80:
        return None
    tag, body = der[0], der[2 : 2 + der[1]]
    if len(body) != der[1] or 2 + der[1] != len(der):
        return None
    if tag == 0x04:
        return body.hex()
    if tag not in _STRING_TAGS:
        return None
    try:
        return body.decode(_STRING_TAGS[tag]).strip()
    except UnicodeDecodeError:
        return None


class _AddressLines(core.SequenceOf):
    """X.520 PostalAddress: up to six lines, each a DirectoryString."""

    _child_spec = asn1_x509.DirectoryString


def encode_address(text: str) -> bytes:
    """DER UTF8String of ``text`` (how ``som generate``'s certificates carry the address)."""
    return _tlv(0x0C, text.encode("utf-8"))


def decode_address(der: bytes) -> str | None:
    """The registered address: a DirectoryString, or a SEQUENCE OF them (lines joined with
    ", "). None when it is neither, is not valid text, or is blank: an unreadable value is
    never a location."""
    for spec in (asn1_x509.DirectoryString, _AddressLines):
        try:
            value = spec.load(der, strict=True).native
        except (ValueError, TypeError):
            continue
        lines = value if isinstance(value, list) else [value]
        text = ", ".join(str(line).strip() for line in lines if str(line).strip())
        if text and not any(unicodedata.category(c) == "Cc" for c in text):
            return text
        return None
    return None


def encode_schedules(schedules: Iterable[str]) -> bytes:
    """DER BIT STRING whose first octet has one bit per schedule (trailing zeros trimmed)."""
    octet = 0
    for s in schedules:
        key = str(s).strip().upper()
        if key not in SCHEDULE_BITS:
            raise ValueError(f"schedule {s!r} not in {tuple(SCHEDULE_BITS)}")
        octet |= SCHEDULE_BITS[key]
    if not octet:
        return b"\x03\x01\x00"
    unused = (octet & -octet).bit_length() - 1
    return bytes([0x03, 0x02, unused, octet])


def decode_schedules(der: bytes) -> frozenset[str] | None:
    """Schedules named by the BIT STRING's first octet, or None if it is not a BIT STRING."""
    if len(der) < 3 or der[0] != 0x03 or der[1] >= 0x80 or der[1] + 2 != len(der):
        return None
    if der[2] > 7 or der[1] == 1 and der[2] != 0:
        return None
    if der[1] == 1:
        return frozenset()
    octet = der[3] & (0xFF << der[2]) if der[1] == 2 else der[3]
    return frozenset(s for s, bit in SCHEDULE_BITS.items() if octet & bit)


def dea_matches(order_dea: str, cert_value: str | None, subject_serial: str, rule: str) -> bool:
    """Does the certificate's DEA extension value name the order's purchaser?"""
    if cert_value is None:
        return False
    if rule == "plain":
        return cert_value.upper() == order_dea.upper()
    return cert_value.lower() == dea_hash(order_dea, subject_serial, rule)


def schedule_authorized(product_schedule: str, cert_schedules: frozenset[str] | set[str]) -> bool:
    """A product of schedule 2, 2N, 3, 3N, 4 or 5 needs that exact bit.

    2 and 3 are the narcotic halves, 2N and 3N the non-narcotic halves, and a
    DEA registration lists them separately. Schedule I is never orderable here.
    """
    return product_schedule in SCHEDULE_BITS and product_schedule in cert_schedules


@dataclass(frozen=True, slots=True)
class DeaExtensions:
    """What a purchaser certificate says about its holder (None: extension absent or bad)."""

    dea_value: str | None
    subject_serial: str
    schedules: frozenset[str] | None
    address: str | None = None  # the registered location (ship-to), if readable
    address_present: bool = False  # the extension is there (readable or not)


def read_extensions(cert: x509.Certificate) -> DeaExtensions:
    """Read the DEA extensions and the subject serialNumber once per certificate."""
    values: dict[x509.ObjectIdentifier, bytes] = {}
    for ext in cert.extensions:
        if ext.oid in (DEA_NUMBER_OID, SCHEDULES_OID, ADDRESS_OID):
            values[ext.oid] = getattr(ext.value, "value", b"")
    serials = cert.subject.get_attributes_for_oid(x509.NameOID.SERIAL_NUMBER)
    raw_dea, raw_sched = values.get(DEA_NUMBER_OID), values.get(SCHEDULES_OID)
    raw_address = values.get(ADDRESS_OID)
    return DeaExtensions(
        dea_value=decode_dea_number(raw_dea) if raw_dea is not None else None,
        subject_serial=str(serials[0].value) if serials else "",
        schedules=decode_schedules(raw_sched) if raw_sched is not None else None,
        address=decode_address(raw_address) if raw_address is not None else None,
        address_present=raw_address is not None,
    )
