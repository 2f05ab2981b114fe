"""A minimal DER reader: tag, content range and children, nothing more.

Generic ASN.1 libraries build a tree of Python objects for every message,
which costs more than the RSA check itself (DESIGN.md section 4). Verifying a
CMS order only needs a few byte ranges, so this reader walks definite-length
DER in place and returns (tag, start, end) offsets. Anything it does not
understand (indefinite lengths, multi-byte tags) raises ``DerError`` so the
caller can fall back to asn1crypto.

>>> buf = bytes.fromhex("3006020101040141")
>>> tag, start, end = tlv(buf, 0)
>>> tag, [(t, buf[s:e]) for t, s, e in children(buf, start, end)]
(48, [(2, b'\\x01'), (4, b'A')])
>>> oid_str(bytes.fromhex("2a864886f70d010702"))
'1.2.840.113549.1.7.2'
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

__all__ = ["DerError", "tlv", "children", "elements", "expect", "oid_str", "der_time"]


class DerError(ValueError):
    """The bytes are not the definite-length DER this reader handles."""


def tlv(buf: bytes, pos: int, end: int | None = None) -> tuple[int, int, int]:
    """The element at ``pos``: (tag byte, content start, content end)."""
    limit = len(buf) if end is None else end
    if pos + 2 > limit:
        raise DerError(f"truncated header at offset {pos}")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise DerError(f"multi-byte tag at offset {pos}")
    first = buf[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise DerError(f"indefinite length at offset {pos - 2}")
    else:
        n = first & 0x7F
        if n > 4 or pos + n > limit:
            raise DerError(f"bad length at offset {pos - 2}")
        length = int.from_bytes(buf[pos : pos + n])
        pos += n
    if pos + length > limit:
        raise DerError(f"element at offset {pos} runs past its container")
    return tag, pos, pos + length


def children(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """The elements inside a constructed element's content range."""
    pos = start
    while pos < end:
        tag, s, e = tlv(buf, pos, end)
        yield tag, s, e
        pos = e


def elements(buf: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """Like ``children`` with each element's own offset first: (tag, pos, start, end)."""
    pos = start
    while pos < end:
        tag, s, e = tlv(buf, pos, end)
        yield tag, pos, s, e
        pos = e


def expect(buf: bytes, pos: int, tag: int, end: int | None = None) -> tuple[int, int]:
    """Content range of the element at ``pos``, which must carry ``tag``."""
    got, s, e = tlv(buf, pos, end)
    if got != tag:
        raise DerError(f"expected tag 0x{tag:02x} at offset {pos}, found 0x{got:02x}")
    return s, e


def oid_str(content: bytes) -> str:
    """Dotted form of an OBJECT IDENTIFIER's content bytes."""
    if not content or content[-1] & 0x80:
        raise DerError("bad OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(a) for a in head + arcs[1:])


def der_time(tag: int, content: bytes) -> datetime:
    """UTCTime (0x17) or GeneralizedTime (0x18) in UTC.

    >>> der_time(0x17, b"250304142205Z").isoformat()
    '2025-03-04T14:22:05+00:00'
    """
    try:
        text = content.decode("ascii")
        if tag == 0x17:
            ts = datetime.strptime(text, "%y%m%d%H%M%SZ")
        elif tag == 0x18:
            ts = datetime.strptime(text.replace(".", "").rstrip("Z")[:14], "%Y%m%d%H%M%S")
        else:
            raise DerError(f"tag 0x{tag:02x} is not a time")
    except (UnicodeDecodeError, ValueError) as exc:
        raise DerError(f"bad time {content!r}: {exc}") from None
    return ts.replace(tzinfo=UTC)
