"""Output records of the engine: rejections, decisions and applied reviews (DESIGN.md 3.4).

Every message on the input topic ends as exactly one decision or rejection, and every
message on the reviews topic as exactly one ``ReviewRecord`` or rejection, so their
shape is a contract with outside sinks. ``RejectReason`` is the closed set
of rejection codes; a new code is a contract change and belongs in the README.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class RejectReason(StrEnum):
    """Why a message on ``orders.signed`` was not monitored."""

    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    UNTRUSTED_CHAIN = "untrusted_chain"
    CERT_EXPIRED = "cert_expired"
    CERT_REVOKED = "cert_revoked"
    CRL_STALE = "crl_stale"
    DEA_MISMATCH = "dea_mismatch"
    SHIP_TO_MISMATCH = "ship_to_mismatch"
    SCHEDULE_NOT_AUTHORIZED = "schedule_not_authorized"
    MISSING_FIELD = "missing_field"
    BAD_DEA_CHECK_DIGIT = "bad_dea_check_digit"
    BAD_ORDER_NUMBER = "bad_order_number"
    WRONG_SUPPLIER = "wrong_supplier"
    FUTURE_DATED = "future_dated"
    ORDER_EXPIRED = "order_expired"
    DUPLICATE_ORDER = "duplicate_order"
    UNKNOWN_NDC = "unknown_ndc"
    PAPER_NOT_ALLOWED = "paper_not_allowed"
    TOO_LARGE = "too_large"
    REVIEW_UNKNOWN_ORDER = "review_unknown_order"
    INTERNAL_ERROR = "internal_error"


class Rejected(Exception):
    """Raised by any stage that refuses a message; carries the reason code."""

    def __init__(
        self,
        reason: RejectReason,
        detail: str,
        *,
        order_number: str | None = None,
        purchaser_dea: str | None = None,
    ) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.order_number = order_number
        self.purchaser_dea = purchaser_dea


def raw_sha256(raw: bytes) -> str:
    """Hex digest identifying the exact input bytes (for audit, never the bytes)."""
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True, slots=True)
class Rejection:
    """One record on ``orders.rejected``."""

    reason: RejectReason
    detail: str
    received_at: str
    raw_sha256: str
    order_number: str | None = None
    purchaser_dea: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "order_number": self.order_number,
            "purchaser_dea": self.purchaser_dea,
            "reason": str(self.reason),
            "detail": self.detail,
            "received_at": self.received_at,
            "raw_sha256": self.raw_sha256,
        }


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason behind a decision: a code, a sentence, and the number compared."""

    code: str
    detail: str
    value: float | None = None
    threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "detail": self.detail,
            "value": self.value,
            "threshold": self.threshold,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """One record on ``decisions``: RELEASE or HOLD for one verified order."""

    order_number: str
    purchaser_dea: str
    decision: str
    scores: dict[str, float]
    reasons: tuple[Reason, ...]
    model_version: str
    config_version: str
    decided_at: str
    latency_ms: float
    form: str = "csos"
    signed_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def identity(self) -> tuple[str, str]:
        """(purchaser DEA number, order number): what sinks deduplicate on."""
        return (self.purchaser_dea, self.order_number)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "order_number": self.order_number,
            "purchaser_dea": self.purchaser_dea,
            "decision": self.decision,
            "form": self.form,
            "signed_at": self.signed_at,
            "scores": self.scores,
            "reasons": [r.to_dict() for r in self.reasons],
            "model_version": self.model_version,
            "config_version": self.config_version,
            "decided_at": self.decided_at,
            "latency_ms": self.latency_ms,
        }
        out.update(self.extra)
        return out


@dataclass(frozen=True, slots=True)
class ReviewRecord:
    """One record on ``reviews.applied``: an officer's review as the engine applied it.

    The held decision itself is never edited (a flagged order stays immutable); this
    record is the review's own audit line, with every size case of the order as it
    stands after the review (empty: the order opened no case, and the review changes
    nothing in scoring). Everything in it comes from the message, its receipt time and
    the profile, so a redelivered review gives the same record.
    """

    order_number: str
    purchaser_dea: str
    outcome: str
    reviewed_at: str
    reviewer: str
    note: str
    cases: tuple[dict[str, Any], ...]
    received_at: str
    raw_sha256: str
    config_version: str
    signer: dict[str, str] | None = None  # the signing certificate (subject, serial), if signed

    def to_dict(self) -> dict[str, Any]:
        return {
            "record": "review",
            "order_number": self.order_number,
            "purchaser_dea": self.purchaser_dea,
            "outcome": self.outcome,
            "reviewed_at": self.reviewed_at,
            "reviewer": self.reviewer,
            "note": self.note,
            "cases": list(self.cases),
            "received_at": self.received_at,
            "raw_sha256": self.raw_sha256,
            "config_version": self.config_version,
            "signer": self.signer,
        }


def dumps(record: Rejection | Decision | ReviewRecord) -> bytes:
    """Serialise an output record as compact UTF-8 JSON."""
    return json.dumps(record.to_dict(), separators=(",", ":"), sort_keys=False).encode()


def decision_from_dict(d: dict[str, Any]) -> Decision:
    """Rebuild a Decision from its record (to re-emit it unchanged on redelivery)."""
    known = {
        "order_number",
        "purchaser_dea",
        "decision",
        "form",
        "signed_at",
        "scores",
        "reasons",
        "model_version",
        "config_version",
        "decided_at",
        "latency_ms",
    }
    return Decision(
        order_number=d["order_number"],
        purchaser_dea=d["purchaser_dea"],
        decision=d["decision"],
        scores=d["scores"],
        reasons=tuple(Reason(**r) for r in d["reasons"]),
        model_version=d["model_version"],
        config_version=d["config_version"],
        decided_at=d["decided_at"],
        latency_ms=d["latency_ms"],
        form=d.get("form", "csos"),
        signed_at=d.get("signed_at", ""),
        extra={k: v for k, v in d.items() if k not in known},
    )


class BadRecord(ValueError):
    """An output record a command reads back (``som holds``, ``som compare``) cannot use;
    ``source`` names the input it came from, so the message can name the flag."""

    def __init__(self, source: str, detail: str) -> None:
        super().__init__(detail)
        self.source = source


def checked_decision(n: int, d: dict[str, Any], source: str) -> tuple[tuple[str, str], list]:
    """A decision record's identity (purchaser DEA, order number) and its reasons, checked;
    ``BadRecord`` naming record ``n`` of ``source`` otherwise."""
    key = (d.get("purchaser_dea"), d.get("order_number"))
    if not all(isinstance(k, str) and k for k in key) or d.get("decision") not in (
        "HOLD", "RELEASE"
    ):
        raise BadRecord(source, f"decision record {n} has no purchaser_dea, order_number or "
                        "HOLD/RELEASE decision")
    reasons = d.get("reasons") or []
    if not isinstance(reasons, list) or not all(isinstance(r, dict) for r in reasons):
        raise BadRecord(source, f"decision record {n} ({key[1]} of {key[0]}) has reasons "
                        "that are not a list of objects")
    return key, reasons
