"""Shared fixtures: the real embedded Kafka-protocol broker (Tansu), started on loopback;
the review tests' feed with a held spike (``tests.review_support``)."""

from __future__ import annotations

import pytest

from connectors.tansu import EmbeddedBroker
from tests.review_support import held  # noqa: F401 - the review tests' shared feed


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log) as b:
        yield b
