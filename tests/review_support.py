"""The officers' review tests' shared feed: a small feed whose last-week spike is held."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from config import load_settings
from connectors.feed import read_feed
from connectors.signing import sign_cms
from engine.build import build_pipeline
from engine.replay import replay
from tests.support import PURCHASERS, START, build_feed, order, payload

__all__ = ["WEEKS", "SPIKE_DAY", "review", "held"]

WEEKS = 20
SPIKE_DAY = START + timedelta(days=7 * (WEEKS - 1))


def review(number: str, outcome: str, at, dea: str = PURCHASERS[0], **extra) -> bytes:
    body = {"order_number": number, "purchaser_dea": dea, "outcome": outcome,
            "reviewed_at": at.isoformat().replace("+00:00", "Z"), "reviewer": "officer-17",
            **extra}
    return json.dumps(body).encode()


@pytest.fixture(scope="module")
def held(tmp_path_factory):
    """The small feed through the core: its last-week spike of PURCHASERS[0] is held."""
    tmp = tmp_path_factory.mktemp("review")
    tf = build_feed(tmp, weeks=WEEKS, bad=False)
    settings = load_settings(tf.config)
    messages = list(read_feed(tf.feed))
    outcomes = replay(build_pipeline(settings), messages).held  # sanity: something held
    assert outcomes
    repeat = order(PURCHASERS[0], "25X900009", SPIKE_DAY + timedelta(days=3),
                   [("99901-0102-01", 100, 40), ("99901-1101-01", 100, 1)])
    return tf, settings, messages, sign_cms(payload(repeat), tf.identities[PURCHASERS[0]])
