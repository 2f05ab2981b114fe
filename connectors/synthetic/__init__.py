"""Synthetic, labelled, signed order feeds for demos, tests and detection benchmarks.

A seeded population of fictional registrants orders on its habits; labelled anomalies
are injected late in the span; every order is signed with a demo PKI and written as a
feed (DESIGN.md 3.5) with its ground truth kept in a separate file.
"""

from connectors.synthetic.anomalies import ANOMALY_KINDS
from connectors.synthetic.assemble import SUPPLIER
from connectors.synthetic.generate import generate
from connectors.synthetic.population import Registrant, build_population
from connectors.synthetic.scenario import Scenario, build_scenario

__all__ = [
    "ANOMALY_KINDS",
    "SUPPLIER",
    "Registrant",
    "Scenario",
    "build_population",
    "build_scenario",
    "generate",
]
