"""Everything that touches the outside world.

Orders and identifiers (``parse_order``, DEA numbers, NDCs), signed envelopes
(``open_envelope``: CMS and JSON), PKI material and CRLs, the product catalog,
feed files, the embedded Kafka-protocol broker and topic set-up, and the
synthetic feed generator (``connectors.synthetic``).

>>> from connectors import normalize_ndc
>>> normalize_ndc("0002-7597-01")
'00002-7597-01'
"""

from __future__ import annotations

import importlib

# Loaded on first use (PEP 562): importing one submodule, e.g. the records that
# connectors need, must not import the whole package and make a cycle.
_WHERE = {
    "Catalog": "connectors.catalog",
    "EmbeddedBroker": "connectors.tansu",
    "Order": "connectors.orders",
    "OrderLine": "connectors.orders",
    "Party": "connectors.orders",
    "Product": "connectors.catalog",
    "SignedMessage": "connectors.envelope",
    "dea_number_valid": "connectors.identifiers",
    "normalize_ndc": "connectors.identifiers",
    "open_envelope": "connectors.envelope",
    "parse_order": "connectors.orders",
    "read_feed": "connectors.feed",
    "write_feed": "connectors.feed",
}

__all__ = [
    "Catalog",
    "EmbeddedBroker",
    "Order",
    "OrderLine",
    "Party",
    "Product",
    "SignedMessage",
    "dea_number_valid",
    "normalize_ndc",
    "open_envelope",
    "parse_order",
    "read_feed",
    "write_feed",
]


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
