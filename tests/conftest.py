"""Shared fixtures: the real embedded Kafka-protocol broker (Tansu), started on loopback."""

from __future__ import annotations

import pytest

from connectors.tansu import EmbeddedBroker


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log) as b:
        yield b
