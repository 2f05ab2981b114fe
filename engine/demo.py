"""``som demo``: the whole product on one machine, for a first look.

Starts the embedded broker and a ``som worker`` subprocess, publishes a
generated signed feed keyed by purchaser DEA number, follows ``decisions`` and
``orders.rejected``, shows a live progress line and every HOLD with its
reasons, and stops everything cleanly after ``--duration`` or on Ctrl-C. Once
every message is decided, a demo officer clears the first hold for size
(``orders.reviews``) and the worker's record on ``reviews.applied`` is shown.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from config import load_settings
from connectors.feed import read_feed
from connectors.kafka_admin import ensure_topics, publish_one
from connectors.tansu import EmbeddedBroker, stop_process
from engine.keys import purchaser_key

__all__ = ["run_demo"]

_BAD_MESSAGES = 6  # every kind of connectors.synthetic.badmessages (5), to show rejections


def _mask(dea: str | None) -> str:
    """Registrant identity stays out of console logs: keep type letter and check digit."""
    return f"{dea[:2]}*****{dea[-2:]}" if dea and len(dea) == 9 else "?"


def _workdir(workdir: str | None, seed: int, registrants: int, days: int) -> Path:
    if workdir:
        return Path(workdir)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "som"
    return cache / f"demo-s{seed}-r{registrants}-d{days}-b{_BAD_MESSAGES}"


def _ensure_feed(work: Path, seed: int, registrants: int, days: int) -> None:
    if (work / "feed.jsonl").is_file() and (work / "som.toml").is_file():
        return
    from connectors.synthetic import generate

    print(f"generating a signed demo feed in {work} ...", flush=True)
    summary = generate(
        work, seed=seed, registrants=registrants, days=days, bad_messages=_BAD_MESSAGES
    )
    print(f"  {summary.get('orders', '?')} orders, anomalies {summary.get('anomalies', {})}")


class _Tally:
    def __init__(self) -> None:
        self.decisions = 0
        self.holds = Counter()
        self.rejections = Counter()
        self.sent = 0
        self.t0 = time.monotonic()
        self.size_hold: dict | None = None  # the first HOLD for size: the demo reviews it
        self.review: dict | None = None  # its record from reviews.applied

    @property
    def done(self) -> int:
        return self.decisions + sum(self.rejections.values())

    def line(self) -> str:
        dt = max(time.monotonic() - self.t0, 1e-6)
        return (
            f"sent {self.sent:>6}  decided {self.done:>6} ({self.done / dt:6.0f}/s)  "
            f"holds {sum(self.holds.values()):>4}  rejections {sum(self.rejections.values()):>3}"
        )


async def _produce(bootstrap: str, topic: str, messages: list[bytes], rate: float, tally: _Tally):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        start = time.monotonic()
        pending = []
        for i, raw in enumerate(messages):
            pending.append(await producer.send(topic, raw, key=purchaser_key(raw)))
            tally.sent = i + 1
            if rate > 0:
                ahead = (i + 1) / rate - (time.monotonic() - start)
                if ahead > 0:
                    await asyncio.gather(*pending)
                    pending.clear()
                    await asyncio.sleep(ahead)
            elif len(pending) >= 500:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


_SIZE_CODES = ("size_own", "size_peer", "pattern_strength")  # holds that open a case


async def _follow(bootstrap: str, topics: list[str], decisions_topic: str, tally: _Tally):
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            for tp, records in batch.items():
                for rec in records:
                    body = json.loads(rec.value)
                    if body.get("record") == "review":
                        tally.review = body
                        cases = ", ".join(f"{c['family']} held {c['held_on']}"
                                          for c in body["cases"]) or "none"
                        _print(f"REVIEW {body['outcome']} {body['order_number']} purchaser "
                               f"{_mask(body['purchaser_dea'])}: cases closed: {cases}")
                        continue
                    if tp.topic != decisions_topic:
                        tally.rejections[body["reason"]] += 1
                        continue
                    tally.decisions += 1
                    if body["decision"] == "HOLD":
                        first = body["reasons"][0]
                        tally.holds[first["code"]] += 1
                        if tally.size_hold is None and first["code"] in _SIZE_CODES:
                            tally.size_hold = body
                        why = "; ".join(f"{r['code']}: {r['detail']}" for r in body["reasons"])
                        _print(
                            f"HOLD {body['order_number']} purchaser {_mask(body['purchaser_dea'])}"
                            f" signed {body['signed_at'][:10]}  {why}"
                        )
    finally:
        await consumer.stop()


_status = {"line": ""}


def _print(text: str) -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\r\x1b[2K")
    print(text, flush=True)
    if sys.stderr.isatty() and _status["line"]:
        sys.stderr.write(_status["line"])
        sys.stderr.flush()


async def _demo(work: Path, broker: EmbeddedBroker, duration: float, web_port: int, rate: float):
    settings = load_settings(work / "som.toml")
    k = settings.kafka
    # the worker runs with --app-id som-demo: its changelog is som-demo-profiles-changelog
    topics = k.model_copy(update={"app_id": "som-demo"}).topics()
    await ensure_topics(broker.url, topics, k.partitions)
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "worker",
            "--config",
            str(work / "som.toml"),
            "--broker",
            broker.url,
            "--web-port",
            str(web_port),
            "--app-id",
            "som-demo",
        ],
        stdout=(work / "worker.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    print(
        f"worker started; metrics at http://127.0.0.1:{web_port}/metrics; "
        f"log in {work / 'worker.log'}",
        flush=True,
    )
    messages = list(read_feed(work / "feed.jsonl"))
    if rate <= 0:
        rate = len(messages) / max(duration * 0.6, 1.0)
    tally = _Tally()
    tasks = [
        asyncio.create_task(_produce(broker.bootstrap, k.input_topic, messages, rate, tally)),
        asyncio.create_task(
            _follow(
                broker.bootstrap, [k.decisions_topic, k.rejected_topic, k.reviews_applied_topic],
                k.decisions_topic, tally,
            )
        ),
    ]
    deadline = time.monotonic() + duration
    last_plain = 0.0
    reviewed = False
    try:
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            if worker.poll() is not None:
                print(f"\nworker exited with code {worker.returncode}; see {work / 'worker.log'}")
                return 1
            _status["line"] = tally.line()
            if not reviewed and tally.sent == len(messages) and tally.done == tally.sent:
                reviewed = await _review_first_size_hold(broker.url, k.reviews_topic, tally)
            if sys.stderr.isatty():
                sys.stderr.write("\r\x1b[2K" + _status["line"])
                sys.stderr.flush()
            elif time.monotonic() - last_plain > 5:
                print(_status["line"], flush=True)
                last_plain = time.monotonic()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stop_process(worker, 20)
    print("\n" + tally.line())
    print(f"holds by first reason: {dict(tally.holds)}")
    print(f"rejections by reason: {dict(tally.rejections)}")
    accounted = tally.done == tally.sent
    print(f"every published message accounted for: {accounted} ({tally.done}/{tally.sent})")
    if reviewed:
        print(f"officer's review applied: {tally.review is not None}")
    return 0


async def _review_first_size_hold(broker_url: str, topic: str, tally: _Tally) -> bool:
    """A demo officer clears the first hold for size, the day after it was signed."""
    hold = tally.size_hold
    if hold is None:
        return True  # nothing to review
    signed = datetime.fromisoformat(hold["signed_at"].replace("Z", "+00:00"))
    review = {"order_number": hold["order_number"], "purchaser_dea": hold["purchaser_dea"],
              "outcome": "cleared", "reviewer": "demo-officer",
              "reviewed_at": (signed + timedelta(days=1)).isoformat().replace("+00:00", "Z"),
              "note": "demo: invoice and dispensing data checked"}
    _print(f"officer clears {hold['order_number']} (held for {hold['reasons'][0]['code']}) "
           f"on {topic}")
    await publish_one(broker_url, topic, hold["purchaser_dea"].encode(),
                      json.dumps(review).encode())
    return True


def run_demo(
    *,
    duration: float,
    web_port: int,
    registrants: int,
    days: int,
    seed: int,
    rate: float,
    workdir: str | None,
) -> int:
    work = _workdir(workdir, seed, registrants, days)
    work.mkdir(parents=True, exist_ok=True)
    _ensure_feed(work, seed, registrants, days)
    with EmbeddedBroker(log_path=work / "broker.log") as broker:
        print(f"embedded broker at {broker.url}", flush=True)
        try:
            return asyncio.run(_demo(work, broker, duration, web_port, rate))
        except KeyboardInterrupt:
            print("\ninterrupted; stopped cleanly")
            return 0
