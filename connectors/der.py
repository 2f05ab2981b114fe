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

__all__ = ["DerError", "tlv", "kids", "children", "elements", "expect", "oid_str", "der_time"]


class DerError(ValueError):
    """The bytes are not the definite-length DER this reader handles."""


def tlv(buf: bytes, pos: int, end: int | None = None) -> tuple[int, int, int]:
    """The element at ``pos``: (tag byte, content start, content end).

    Written for speed (it runs ~40 times per order): lengths up to 4 bytes,
    one comparison against the container end, no slicing.
    """
    limit = len(buf) if end is None else end
    if pos + 2 > limit:
        raise DerError(f"truncated header at offset {pos}")
    tag = buf[pos]
    first = buf[pos + 1]
    if first < 0x80:
        s = pos + 2
        e = s + first
    elif first == 0x82:
        s = pos + 4
        e = s + (buf[pos + 2] << 8 | buf[pos + 3]) if s <= limit else limit + 1
    elif first == 0x81:
        s = pos + 3
        e = s + buf[pos + 2] if s <= limit else limit + 1
    elif 0x83 <= first <= 0x84:
        s = pos + 2 + (first & 0x7F)
        e = s + int.from_bytes(buf[pos + 2 : s]) if s <= limit else limit + 1
    elif first == 0x80:
        raise DerError(f"indefinite length at offset {pos}")
    else:
        raise DerError(f"bad length at offset {pos}")
    if e > limit:
        raise DerError(f"element at offset {pos} runs past its container")
    if tag & 0x1F == 0x1F:
        raise DerError(f"multi-byte tag at offset {pos}")
    return tag, s, e


def kids(buf: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """``children`` as a list (cheaper than a generator for the few elements we walk)."""
    out = []
    pos = start
    while pos < end:
        item = tlv(buf, pos, end)
        out.append(item)
        pos = item[2]
    return out


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
    """Dotted form of an OBJECT IDENTIFIER's content bytes (memoised: few OIDs recur)."""
    known = _OIDS.get(content)
    if known is not None:
        return known
    dotted = _decode_oid(content)
    if len(_OIDS) < 4096:
        _OIDS[content] = dotted
    return dotted


_OIDS: dict[bytes, str] = {}


def _decode_oid(content: bytes) -> str:
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
    if tag == 0x17 and len(content) == 13 and content[12] == 0x5A and content[:12].isdigit():
        # YYMMDDHHMMSS; RFC 5280: YY < 50 is 20YY. fromisoformat (basic format) is
        # the fastest checked conversion; every field was just checked to be digits.
        text = (b"20" if content[0] < 0x35 else b"19") + content[:6] + b"T" + content[6:12] + b"Z"
        try:
            return datetime.fromisoformat(text.decode())
        except ValueError as exc:
            raise DerError(f"bad time {content!r}: {exc}") from None
    if tag == 0x18 and len(content) >= 15 and content.endswith(b"Z") and content[:14].isdigit():
        try:
            return datetime.strptime(content[:14].decode(), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        except ValueError as exc:
            raise DerError(f"bad time {content!r}: {exc}") from None
    raise DerError(f"tag 0x{tag:02x} {content!r} is not a UTC time")
