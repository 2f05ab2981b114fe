"""The pure core: verify -> enrich -> profile -> score -> decide, for one message.

``engine.build.build_pipeline`` wires it from the settings. Both drivers (the Faust
stream in ``engine.stream`` and the in-process replay in ``engine.replay``) call
``Pipeline.process`` with the raw message bytes and a
mutable mapping of profiles; the same input gives the same decisions in both.
Nothing here imports Faust.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime

from config import Settings
from connectors.catalog import Catalog
from engine.decide import Policy, decide
from engine.enrich import enrich
from engine.profile import RegistrantProfile, settled
from engine.records import (
    Decision,
    Rejected,
    Rejection,
    RejectReason,
    ReviewRecord,
    decision_from_dict,
    raw_sha256,
)
from engine.review import apply_review
from engine.review_auth import ReviewAuthenticator
from engine.verify import VerifiedOrder, Verifier
from models.base import OrderContext
from models.features import order_features
from models.iforest import IsolationForestScorer

__all__ = ["Pipeline", "Outcome"]

Outcome = Decision | Rejection
_EPOCH_DAY = 86400


@dataclass(frozen=True, slots=True)
class Received:
    """When a message arrived, as wall-clock seconds (for latency) and ISO text."""

    ts: float
    iso: str

    @classmethod
    def now(cls) -> Received:
        ts = time.time()
        return cls(ts, _iso(ts))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class _Prepared:
    """A verified order scored and applied to its profile, waiting for its decision."""

    verified: VerifiedOrder
    received: Received
    position: tuple[str, int] | None
    ctx: OrderContext
    parts: list  # findings per scorer, in scorer order; None where the batch fills them
    history: int  # days of history before this order
    profile: RegistrantProfile


class Pipeline:
    """One message in, exactly one Decision or Rejection out."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        verifier: Verifier,
        scorers: list,
        judge_at: datetime | None = None,
        peers=None,
        policy: Policy | None = None,
        artifacts_version: str = "",
        review_auth: ReviewAuthenticator | None = None,
    ):
        self.settings = settings
        self.judge_at = judge_at  # a fixed "now" for time rules (``--at``)
        self.catalog = catalog
        self.verifier = verifier
        self.scorers = scorers
        self.peers = peers  # trained PeerBaselines, or None (no peer comparison)
        self.policy = policy or Policy()
        self.review_auth = review_auth or ReviewAuthenticator(None)  # unsigned reviews only
        self.on_context = None  # som train: called with every OrderContext
        self.on_findings = None  # som explain: (order number, ctx, every finding) per order
        self.config_version = settings.config_version
        self.model_version = _model_version(scorers, artifacts_version)
        self._judge_at_receipt = settings.verification.time_rules_at == "received"
        # set by the stream driver: is this input offset committed?
        self.is_committed: Callable[[str, int], bool] | None = None
        # in ``monitor_batch``: (dea, order) -> (index, has a position); dea -> last index
        self._batch_index: dict[tuple[str, str], tuple[int, bool]] = {}
        self._batch_last: dict[str, int] = {}

    def verify(self, raw: bytes, received: Received) -> VerifiedOrder | Rejection:
        try:
            return self.verifier.verify(raw, self._judge_time(received))
        except Rejected as exc:
            return _rejection(exc, raw, received)
        except Exception as exc:  # a bug must not stop the stream nor drop the message
            detail = f"internal error while verifying: {type(exc).__name__}"
            return Rejection(RejectReason.MALFORMED, detail, received.iso, raw_sha256(raw))

    def monitor(
        self,
        verified: VerifiedOrder,
        profiles: MutableMapping[str, RegistrantProfile],
        received: Received,
        position: tuple[str, int] | None = None,
    ) -> Outcome:
        """Profile, score and decide one verified order.

        ``position`` is the input (``topic:partition``, offset) in the stream
        driver; with ``self.is_committed`` it bounds the decisions a profile
        keeps for redelivery to those not yet committed. A bug in a scorer
        rejects this one message (``internal_error``) instead of stopping the
        stream or dropping the message.
        """
        try:
            return self._monitor(verified, profiles, received, position)
        except Exception as exc:
            return _internal(verified, received, exc)

    def _monitor(
        self,
        verified: VerifiedOrder,
        profiles: MutableMapping[str, RegistrantProfile],
        received: Received,
        position: tuple[str, int] | None,
    ) -> Outcome:
        ready = self._prepare(verified, profiles, received, position, None)
        if not isinstance(ready, _Prepared):
            return ready
        return self._finish(ready, profiles)

    def _prepare(
        self,
        verified: VerifiedOrder,
        profiles: MutableMapping[str, RegistrantProfile],
        received: Received,
        position: tuple[str, int] | None,
        forest: object | None,
    ) -> Outcome | _Prepared | int:
        """Everything up to the decision: dedupe, features, scorers, the profile update.

        ``forest`` is the scorer whose findings the caller supplies later (a
        micro-batch scores all its rows at once); its place in the scorers' order is
        kept, so findings and reasons come out as in a one-order call. Returns an
        Outcome when the order ends here, or (in a batch) the index of an earlier
        message of the same batch that this one repeats.
        """
        order = verified.order
        dea = order.purchaser.dea_number
        profile = profiles.get(dea)
        if profile is None:
            profile = RegistrantProfile()
        digest = verified.raw_sha256[:16]
        seen = profile.seen_as(order.order_number)
        if seen is not None:
            record = self._recorded(profile, dea, order.order_number)
            if seen == digest and record is not None:
                return record  # redelivery: the same decision again
            return Rejection(
                RejectReason.DUPLICATE_ORDER,
                f"order {order.order_number} was already received from this purchaser",
                received.iso,
                verified.raw_sha256,
                order.order_number,
                dea,
            )
        try:
            amounts = enrich(order, self.catalog)
        except Rejected as exc:
            return _rejection(exc, b"", received, verified.raw_sha256)
        t = order.signed_at.timestamp()
        day = int(t) // _EPOCH_DAY
        feats = order_features(dea, day, t, amounts, profile)
        if self.peers is not None:
            feats.peer_group = self.peers.group(dea, feats.volume_week, feats.cold)
        ctx = OrderContext(dea, day, amounts, profile, t, feats)
        if self.on_context is not None:
            self.on_context(ctx)
        parts: list[list | None] = [
            None if scorer is forest else scorer.assess(ctx) for scorer in self.scorers
        ]
        history = profile.history_days(day)
        profile.apply(
            order.order_number,
            day,
            digest,
            [(a.family, a.units, a.grams, a.mme) for a in amounts],
            t,
        )
        if verified.cert_not_after is not None:  # for the certificate-expiry gauge
            profile.note_certificate(verified.cert_not_after.timestamp(), verified.signer_serial)
        for part in parts:
            if part:
                self._open_cases(profile, part, amounts, dea, day, order.order_number)
        profiles[dea] = profile  # the next order of this registrant in a batch reads it
        return _Prepared(verified, received, position, ctx, parts, history, profile)

    def _recorded(
        self, profile: RegistrantProfile, dea: str, number: str
    ) -> Decision | int | None:
        """The decision a redelivery gets, as one-at-a-time processing would give it.

        ``remember`` keeps a decision until its offset is committed (without an offset,
        until the registrant's next order). In a micro-batch the batch's own decisions
        are remembered only at its end, so here they are looked up by index, and older
        ones are dropped as the batch's earlier orders would have dropped them.
        """
        earlier = self._batch_index.get((dea, number))
        if earlier is not None:  # decided earlier in this batch (its index)
            i, has_position = earlier
            return i if has_position or self._batch_last.get(dea) == i else None
        entry = profile.recent.get(number)
        if entry is None:
            return None
        tp, offset, record = entry
        if dea in self._batch_last and settled(tp, offset, self.is_committed):
            return None  # an earlier order of this batch would have dropped it
        return decision_from_dict(record)

    def _finish(
        self,
        p: _Prepared,
        profiles: MutableMapping[str, RegistrantProfile],
        forest_findings: list | None = None,
    ) -> Decision:
        """Decide, record the decision for redelivery, and hand the profile back."""
        order, ctx, verified, received = p.verified.order, p.ctx, p.verified, p.received
        dea, amounts, feats = ctx.purchaser_dea, ctx.amounts, ctx.features
        if isinstance(forest_findings, Exception):
            raise forest_findings
        findings = []
        for part in p.parts:
            findings.extend(part if part is not None else (forest_findings or ()))
        if self.on_findings is not None:
            self.on_findings(order.order_number, ctx, findings)
        verdict, reasons, scores = decide(findings, self.policy, dea)
        decision = Decision(
            order_number=order.order_number,
            purchaser_dea=dea,
            decision=verdict,
            scores=scores,
            reasons=reasons,
            model_version=self.model_version,
            config_version=self.config_version,
            decided_at=_iso(time.time()),
            latency_ms=round((time.time() - received.ts) * 1000.0, 3),
            form=order.form,
            signed_at=order.signed_at.isoformat().replace("+00:00", "Z"),
            extra={
                "history_days": p.history,
                "families": [a.family for a in amounts],
                "received_at": received.iso,
                "cold_start": feats.cold,
                "peer_group": feats.peer_group or None,
                # evidence tying the decision to the exact signed message and signer
                "evidence": {
                    "raw_sha256": verified.raw_sha256,
                    "envelope": verified.kind,
                    "signer_serial": verified.signer_serial,
                    "ship_to": verified.ship_to,
                },
            },
        )
        profile = p.profile
        profile.remember(order.order_number, decision.to_dict(), p.position, self.is_committed)
        profiles[dea] = profile  # reassign: a table writes its changelog on set, not on mutation
        return decision

    def _open_cases(self, profile, findings, amounts, dea: str, day: int, number: str) -> None:
        """Remember the size of each family held for its size (see SizeScorer's repeat).

        A case finding that holds makes the order a HOLD whatever the other findings
        say, so this needs no verdict (and a micro-batch has none yet here).
        """
        by_family = None  # built only for an order that opens a case (few do)
        for f in findings:
            if f.code in CASE_CODES and f.hold and f.score >= self.policy.factor(f, dea):
                if by_family is None:
                    by_family = {a.family: a for a in amounts}
                a = by_family.pop(f.family, None)
                if a is not None:
                    profile.note_hold(a.family, day, a.units, a.grams, number, f.code)

    def monitor_batch(
        self,
        items: list[tuple[VerifiedOrder, Received, tuple[str, int] | None]],
        profiles: MutableMapping[str, RegistrantProfile],
    ) -> list[Outcome]:
        """``monitor`` for a micro-batch of (verified, received, position), in order.

        Orders are profiled and scored one after another (each sees the profile left
        by the one before), but the isolation forest scores the batch's rows in one
        vectorised walk per peer group. The outcomes equal one ``monitor`` call each.
        """
        forest = next((s for s in self.scorers if isinstance(s, IsolationForestScorer)), None)
        out: list = [None] * len(items)
        ready: list[tuple[int, _Prepared]] = []
        self._batch_index, self._batch_last = {}, {}
        try:
            for i, (verified, received, position) in enumerate(items):
                try:
                    r = self._prepare(verified, profiles, received, position, forest)
                except Exception as exc:  # a bug rejects this message, as in ``monitor``
                    out[i] = _internal(verified, received, exc)
                    continue
                if isinstance(r, _Prepared):
                    ready.append((i, r))
                    dea = verified.order.purchaser.dea_number
                    self._batch_index[(dea, verified.order.order_number)] = (
                        i, position is not None)
                    self._batch_last[dea] = i
                out[i] = r
            found = self._forest_batch(forest, [p.ctx for _, p in ready])
            for k, (i, p) in enumerate(ready):
                try:
                    out[i] = self._finish(p, profiles, found[k])
                except Exception as exc:
                    out[i] = _internal(p.verified, p.received, exc)
        finally:
            self._batch_index, self._batch_last = {}, {}
        return [out[r] if isinstance(r, int) else r for r in out]

    def _forest_batch(self, forest, ctxs: list[OrderContext]) -> list:
        if forest is None:
            return [None] * len(ctxs)
        try:
            return forest.assess_batch(ctxs)
        except Exception:  # find the row that fails; the others keep their scores
            found = []
            for ctx in ctxs:
                try:
                    found.append(forest.assess(ctx))
                except Exception as exc:
                    found.append(exc)
            return found

    def process_batch(
        self, raws: list[bytes], profiles: MutableMapping[str, RegistrantProfile]
    ) -> list[Outcome]:
        """``process`` for several messages, in order, the forest scored per micro-batch."""
        pending: list = []
        for raw in raws:
            received = Received.now()
            verified = self.verify(raw, received)
            pending.append(verified if isinstance(verified, Rejection) else
                           (verified, received, None))
        return self.monitor_pending(pending, profiles)

    def monitor_pending(
        self, pending: list, profiles: MutableMapping[str, RegistrantProfile]
    ) -> list[Outcome]:
        """Outcomes of verification results in order: a Rejection stays as it is, each
        (verified, received, position) goes through one ``monitor_batch``."""
        items = [p for p in pending if not isinstance(p, Rejection)]
        decided = iter(self.monitor_batch(items, profiles))
        return [p if isinstance(p, Rejection) else next(decided) for p in pending]

    def review(
        self,
        raw: bytes,
        profiles: MutableMapping[str, RegistrantProfile],
        received: Received | None = None,
    ) -> ReviewRecord | Rejection:
        """Apply one message of the reviews topic: exactly one ReviewRecord or Rejection.

        A cleared review closes the held order's size cases, so its repeats are judged
        like any order again (``engine.review``); the decision itself is not changed.
        """
        received = received or Received.now()
        try:
            review, signer = self.review_auth.open(raw, self._judge_time(received))
            _not_after_receipt(review, received, self.settings.verification.max_future_skew_s)
            profile = profiles.get(review.purchaser_dea)
            cases = apply_review(profile, review, self.settings.scoring.repeat_hold_days)
        except Rejected as exc:
            return _rejection(exc, raw, received)
        except Exception as exc:  # a bug must not stop the stream nor drop the message
            return Rejection(RejectReason.INTERNAL_ERROR,
                             f"internal error while applying a review: {type(exc).__name__}",
                             received.iso, raw_sha256(raw))
        if cases:
            profiles[review.purchaser_dea] = profile  # a table writes its changelog on set
        return ReviewRecord(
            review.order_number, review.purchaser_dea, review.outcome, review.reviewed_at,
            review.reviewer, review.note, tuple(cases), received.iso, raw_sha256(raw),
            self.config_version, signer.to_dict() if signer is not None else None,
        )

    def review_time(self, raw: bytes) -> float:
        """When a review message says it was made (epoch seconds), to apply it in time in a
        replay; ``-inf`` when it cannot be read (it is then rejected first, with its reason)."""
        try:
            return self.review_auth.open(raw)[0].reviewed_ts
        except Exception:  # the rejection (or internal error) comes when it is applied
            return float("-inf")

    def _judge_time(self, received: Received) -> datetime | None:
        """The time rules' "now" for a message (an order's age, a review signer's validity):
        ``--at``, else its receipt for live feeds, else None (a replayed history is judged
        as of each message's own date)."""
        if self.judge_at is not None:
            return self.judge_at
        return datetime.fromtimestamp(received.ts, UTC) if self._judge_at_receipt else None

    def process(
        self,
        raw: bytes,
        profiles: MutableMapping[str, RegistrantProfile],
        received: Received | None = None,
    ) -> Outcome:
        received = received or Received.now()
        verified = self.verify(raw, received)
        if isinstance(verified, Rejection):
            return verified
        return self.monitor(verified, profiles, received)


# Findings about a family's order size: a hold for one of these opens a case that
# holds the family's repeats (SizeScorer, size_repeat_held) while it is open. A repeat
# does not open a case of its own (the case closes when the first hold's days are up),
# and a first purchase of a family is not a size: its next orders are its new normal.
CASE_CODES = frozenset({"size_own", "size_peer", "pattern_strength"})


def _internal(verified: VerifiedOrder, received: Received, exc: Exception) -> Rejection:
    order = verified.order
    return Rejection(
        RejectReason.INTERNAL_ERROR,
        f"internal error while scoring: {type(exc).__name__}",
        received.iso,
        verified.raw_sha256,
        order.order_number,
        order.purchaser.dea_number,
    )


def _not_after_receipt(review, received: Received, skew_s: float) -> None:
    """A review dated after it arrived would stand over every later real review of the
    order (the newest one stands): refused, like a future-dated order."""
    if review.reviewed_ts > received.ts + skew_s:
        raise Rejected(
            RejectReason.FUTURE_DATED,
            f"reviewed_at {review.reviewed_at} is after its receipt {received.iso} plus "
            f"{skew_s:g} s clock skew",
            order_number=review.order_number,
            purchaser_dea=review.purchaser_dea,
        )


def _rejection(exc: Rejected, raw: bytes, received: Received, digest: str = "") -> Rejection:
    return Rejection(
        exc.reason,
        exc.detail,
        received.iso,
        digest or raw_sha256(raw),
        exc.order_number,
        exc.purchaser_dea,
    )


def _model_version(scorers: list, artifacts_version: str) -> str:
    """A content hash of every scorer's parameters, plus the trained artifacts' version."""
    text = ";".join(
        f"{type(s).__name__}("
        + ",".join(f"{k}={v}" for k, v in sorted(vars(s).items()) if not k.endswith("_"))
        + ")"
        for s in scorers
    )
    tag = "mdl-" + hashlib.sha256(text.encode()).hexdigest()[:12]
    return f"{tag}+{artifacts_version}" if artifacts_version else tag
