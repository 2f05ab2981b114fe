"""Liveness and readiness of a worker, as JSON bodies that say what is wrong.

``/healthz`` answers while the event loop turns and the app has not crashed:
an orchestrator restarts the process when it fails. ``/readyz`` answers 200
only when the worker can do its job: changelog recovery finished, scorers and
trust material loaded, the broker reachable. Bodies name checks and reasons,
never an order or a registrant, because these endpoints need no authentication.

>>> r = Readiness(checks={"models": lambda: None, "broker": lambda: "unreachable"})
>>> r.report()
(False, {'ready': False, 'checks': {'models': 'ok', 'broker': 'unreachable'}, \
'not_ready': ['broker']})
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["BrokerProbe", "Readiness", "pipeline_checks", "app_checks", "liveness"]

Check = Callable[[], str | None]  # None when fine, else why not


class Readiness:
    """Named checks; ready when every check returns None."""

    def __init__(self, checks: dict[str, Check] | None = None) -> None:
        self.checks: dict[str, Check] = dict(checks or {})

    def report(self) -> tuple[bool, dict]:
        results: dict[str, str] = {}
        for name, check in self.checks.items():
            try:
                problem = check()
            except Exception as exc:  # a failing check is a reason, not a 500
                problem = f"check failed: {type(exc).__name__}"
            results[name] = problem or "ok"
        not_ready = [n for n, v in results.items() if v != "ok"]
        return not not_ready, {"ready": not not_ready, "checks": results, "not_ready": not_ready}


class BrokerProbe:
    """TCP reachability of any bootstrap server, refreshed by a timer, read by ``/readyz``."""

    def __init__(self, bootstrap: str, timeout_s: float = 2.0, max_age_s: float = 30.0) -> None:
        self.hosts = [h.rsplit(":", 1) for h in bootstrap.split(",") if h]
        self.timeout_s = timeout_s
        self.max_age_s = max_age_s
        self.problem: str | None = "not probed yet"
        self.at: float | None = None

    async def probe(self) -> None:
        errors = []
        for host, port in self.hosts:
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, int(port)), self.timeout_s
                )
                writer.close()
                self.problem, self.at = None, time.monotonic()
                return
            except (OSError, TimeoutError) as exc:
                errors.append(f"{host}:{port} {type(exc).__name__}")
        self.problem, self.at = "unreachable: " + ", ".join(errors), time.monotonic()

    def check(self) -> str | None:
        if self.at is not None and time.monotonic() - self.at > self.max_age_s:
            return "probe result too old (event loop blocked?)"
        return self.problem


def pipeline_checks(pipeline) -> dict[str, Check]:
    """Scorers and trust material, as loaded by ``build_pipeline`` (read-only use)."""

    def models() -> str | None:
        if not pipeline.scorers or not pipeline.model_version:
            return "no scorer loaded"
        unready = [s.name for s in pipeline.scorers if not getattr(s, "ready", True)]
        return f"scorers not ready: {', '.join(unready)}" if unready else None

    def trust() -> str | None:
        v = pipeline.verifier
        s = v.settings
        if s.require_chain and not v.trust.anchors:
            return "no trust anchors loaded (verification.trust_dir): every order is rejected"
        if v.crls is not None and not v.crls.by_der and s.stale_crl == "reject":
            return "no usable CRL in verification.crl_dir: every signed order is rejected"
        return None

    return {"models": models, "trust_material": trust}


def app_checks(app) -> dict[str, Check]:
    """Faust state: changelog recovery finished, and no rebalance-time recovery running."""

    def recovery() -> str | None:
        if not app.tables.recovery.completed.is_set():
            return "waiting for partition assignment and changelog recovery"
        if app.in_recovery:
            return "recovering table changelog after a rebalance"
        return None

    return {"table_recovery": recovery}


def liveness(app, started: float) -> tuple[bool, dict]:
    """Alive unless the app crashed or is stopping (the loop turning is shown by answering)."""
    crashed = bool(getattr(app, "crashed", False))
    stopping = bool(getattr(app, "should_stop", False))
    body = {
        "alive": not (crashed or stopping),
        "uptime_s": round(time.monotonic() - started, 1),
    }
    if crashed:
        body["problem"] = "crashed"
    elif stopping:
        body["problem"] = "stopping"
    return body["alive"], body
