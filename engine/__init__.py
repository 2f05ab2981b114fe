"""som engine: the pipeline stages and the two drivers that run them.

The pure core (no Faust import) is ``Pipeline``: ``verify`` -> ``enrich`` ->
profile (``RegistrantProfile``) -> scorers (``models``) -> ``decide``, one message
in and exactly one ``Decision`` or ``Rejection`` out; ``Pipeline.review`` applies an
officer's ``Review`` of a held order (``engine.review``) and gives a ``ReviewRecord``;
``engine.explain`` lists every finding behind one decision. Drivers:
``engine.replay.replay`` (in process, over a feed file) and
``engine.stream.create_app`` (Faust; imported on demand, so the core stays free of it).

>>> from engine import RejectReason
>>> RejectReason("bad_signature").name
'BAD_SIGNATURE'
"""

from __future__ import annotations

import importlib

# Loaded on first use (PEP 562): importing one submodule, e.g. the records that
# connectors need, must not import the whole package and make a cycle.
_WHERE = {
    "Decision": "engine.records",
    "FamilyAmount": "engine.enrich",
    "Pipeline": "engine.pipeline",
    "Reason": "engine.records",
    "Received": "engine.pipeline",
    "RegistrantProfile": "engine.profile",
    "RejectReason": "engine.records",
    "Rejected": "engine.records",
    "Rejection": "engine.records",
    "ReplaySummary": "engine.replay",
    "Review": "engine.review",
    "ReviewRecord": "engine.records",
    "VerifiedOrder": "engine.verify",
    "Verifier": "engine.verify",
    "build_pipeline": "engine.build",
}

__all__ = [
    "Decision",
    "FamilyAmount",
    "Pipeline",
    "Reason",
    "Received",
    "RegistrantProfile",
    "RejectReason",
    "Rejected",
    "Rejection",
    "ReplaySummary",
    "Review",
    "ReviewRecord",
    "VerifiedOrder",
    "Verifier",
    "build_pipeline",
]


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
