"""Gauges read from live state when Prometheus scrapes (nothing per order).

Cheap values (registrant count, lag, CRL ages) are read on every scrape;
costly ones (profile state size, certificate expiry counts: a pass over every
registrant) at most once per ``slow_interval_s`` and cached in between.

CRL issuers are labelled by the issuing CA's common name: a CRL is always
signed by a CA (in production the DEA's CSOS Sub CA), whose name is public
PKI metadata, not a registrant's, and an SRE needs to read which CA's list
went stale. A name without a CN, or one that looks like a DEA number, is
replaced by ``sha256:`` and 10 hex digits of the issuer DN.

>>> issuer_label("CN=DEA E-Commerce CSOS Sub CA,O=U.S. Government,C=US")
'DEA E-Commerce CSOS Sub CA'
>>> issuer_label("CN=BP1234563,O=Test")[:7], issuer_label("O=Only Org")[:7]
('sha256:', 'sha256:')
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from cryptography import x509
from cryptography.x509.oid import NameOID
from prometheus_client.core import GaugeMetricFamily

__all__ = ["StateGauges", "issuer_label", "EXPIRY_WINDOWS_DAYS"]

#: DEA advises renewing 45 days ahead; 7 days left is an emergency.
EXPIRY_WINDOWS_DAYS = (45, 7)
_DEA_LIKE = re.compile(r"[A-Za-z]{2}\d{7}")


def issuer_label(dn: str) -> str:
    """The CA's common name, or a short hash of the DN when the CN is absent or looks personal."""
    try:
        cns = x509.Name.from_rfc4514_string(dn).get_attributes_for_oid(NameOID.COMMON_NAME)
    except ValueError:
        cns = []
    cn = str(cns[0].value).strip() if cns else ""
    if cn and not _DEA_LIKE.search(cn):
        return cn[:64]
    return "sha256:" + hashlib.sha256(dn.encode()).hexdigest()[:10]


class StateGauges:
    """A registry collector for the state gauges of one worker.

    ``registrants`` and ``profile_sizes`` are callables so the collector needs
    no Faust import: the stream driver passes closures over its table.
    """

    def __init__(
        self,
        *,
        registrants: Callable[[], int],
        profile_sizes: Callable[[], tuple[int, list[int]]],
        verifier,
        cert_watch,
        lag,
        slow_interval_s: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        review_trust=None,
    ) -> None:
        self.registrants = registrants
        self.profile_sizes = profile_sizes
        self.verifier = verifier
        self.cert_watch = cert_watch
        self.lag = lag
        self.slow_interval_s = slow_interval_s
        self.clock = clock
        self.now = now
        self.review_trust = review_trust  # [reviews] trust_dir's store, when reviews are signed
        self._slow: tuple[float, float, dict[int, int]] | None = None  # at, state bytes, expiring

    def describe(self) -> list[GaugeMetricFamily]:
        return list(self._families({}, 0, 0.0, {}, {}, 0))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self.now()
        state_bytes, expiring = self._slow_values(now)
        ages, stale = self._crls(now)
        lag = dict(self.lag.values) if self.lag is not None else {}
        yield from self._families(lag, self._safe(self.registrants), state_bytes, expiring, ages,
                                  stale)
        at = getattr(self.lag, "refreshed_at", None)
        if at is not None:
            yield GaugeMetricFamily(
                "som_consumer_lag_age_seconds",
                "Seconds since som_consumer_lag was last measured (refreshed every 2 s)",
                value=max(0.0, self.clock() - at),
            )
        trust = getattr(self.verifier, "trust", None)
        if trust is not None:
            yield from _trust_families(trust, self.review_trust)

    @staticmethod
    def _safe(fn: Callable[[], int]) -> int:
        try:
            return fn()
        except Exception:  # a scrape must answer even while tables rebalance
            return 0

    def _slow_values(self, now: datetime) -> tuple[float, dict[int, int]]:
        t = self.clock()
        if self._slow is None or t - self._slow[0] >= self.slow_interval_s:
            try:
                count, sizes = self.profile_sizes()
                state = count * (sum(sizes) / len(sizes)) if sizes else 0.0
            except Exception:
                state = self._slow[1] if self._slow else 0.0
            expiring = self._expiring(now)
            self._slow = (t, state, expiring)
        return self._slow[1], self._slow[2]

    def _expiring(self, now: datetime) -> dict[int, int]:
        """Per window, from ``expiring_counts`` (``engine.cert_census`` in a worker)."""
        if self.cert_watch is None:
            return {}
        try:
            return self.cert_watch.expiring_counts(now, EXPIRY_WINDOWS_DAYS)
        except Exception:  # a scrape must answer; keep the last counts
            return self._slow[2] if self._slow else {}

    def _crls(self, now: datetime) -> tuple[dict[str, float], int]:
        """Age per issuer label (the oldest when two CAs share a CN) and the stale count."""
        store = getattr(self.verifier, "crls", None)
        if store is None:
            return {}, 0
        try:
            store.maybe_reload()  # a CRL dropped in while no orders flow is seen by the scrape
        except Exception:
            pass
        ages: dict[str, float] = {}
        for dn, age in self.verifier.crl_ages(now).items():
            label = issuer_label(dn)
            ages[label] = max(age, ages.get(label, age))
        stale = sum(1 for entries in store.by_der.values() if entries and entries[0].stale(now))
        return ages, stale

    @staticmethod
    def _families(lag, registrants, state_bytes, expiring, ages, stale):
        g = GaugeMetricFamily(
            "som_consumer_lag",
            "Messages between the end of each assigned partition and the group's committed offset",
            labels=["topic", "partition"],
        )
        for (topic, partition), value in sorted(lag.items()):
            g.add_metric([topic, str(partition)], value)
        yield g
        yield GaugeMetricFamily(
            "som_registrants_tracked", "Registrant profiles held by this worker", value=registrants
        )
        yield GaugeMetricFamily(
            "som_profile_state_bytes",
            "Estimated serialized size of the profiles held (count x mean of a sample)",
            value=state_bytes,
        )
        g = GaugeMetricFamily(
            "som_certificates_expiring",
            "Purchasers in this worker's profiles whose latest CSOS certificate expires within "
            "N days (or has expired)",
            labels=["within_days"],
        )
        for days in EXPIRY_WINDOWS_DAYS:
            g.add_metric([str(days)], expiring.get(days, 0))
        yield g
        g = GaugeMetricFamily(
            "som_crl_age_seconds", "Seconds since the newest CRL's thisUpdate, by issuing CA",
            labels=["issuer"],
        )
        for label, age in sorted(ages.items()):
            g.add_metric([label], age)
        yield g
        yield GaugeMetricFamily(
            "som_crl_stale", "CRLs past their nextUpdate (orders on those CAs fail)", value=stale
        )


def _trust_families(trust, review_trust=None) -> Iterator[GaugeMetricFamily]:
    """Certificates in use, and whether the last change to a trust directory loaded (the
    CSOS anchors and intermediates; the reviews' CAs when reviews are signed)."""
    stores = [s for s in (trust, review_trust) if s is not None]
    for store in stores:
        try:
            store.maybe_reload()  # a change while no orders flow is seen by the scrape
        except Exception:
            pass
    g = GaugeMetricFamily(
        "som_trust_certificates",
        "CA certificates in use: CSOS trust anchors and intermediates, and the CAs that may "
        "sign officers' reviews",
        labels=["kind"],
    )
    g.add_metric(["anchor"], len(trust.anchors))
    g.add_metric(["intermediate"], len(trust.intermediates))
    if review_trust is not None:
        g.add_metric(["review_anchor"], len(review_trust.anchors))
    yield g
    yield GaugeMetricFamily(
        "som_trust_reload_failed",
        "1 when a trust directory changed but could not be loaded (the previous set stays "
        "in use; the worker log names the file)",
        value=1 if any(s.reload_error for s in stores) else 0,
    )
