"""Helpers for tests that run ``som worker`` against the embedded broker."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from connectors.tansu import free_port, stop_process
from engine.metrics import sample_total


def start_worker(config: Path, broker_url: str, app_id: str, log: Path, web_port: int = 0):
    web_port = web_port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "worker", "--config", str(config), "--broker",
         broker_url, "--app-id", app_id, "--web-port", str(web_port), "--loglevel", "info"],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )
    return proc, web_port


def stop_worker(proc: subprocess.Popen, timeout: float = 30) -> None:
    stop_process(proc, timeout)


async def produce(bootstrap: str, topic: str, messages: list[tuple]) -> None:
    """Publish (key, value) or (key, value, partition) tuples, in order."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, m[1], key=m[0], partition=m[2] if len(m) > 2 else None)
            for m in messages
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def collect(bootstrap: str, topics: list[str], want: int, timeout: float,
                  settle: float = 3.0, alive=lambda: True) -> dict[str, list[dict]]:
    """Read ``topics`` from the start until ``want`` records arrived (plus ``settle`` s)."""
    out: dict[str, list[dict]] = {t: [] for t in topics}
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout
        reached = None
        while time.monotonic() < deadline and alive():
            batch = await consumer.getmany(timeout_ms=300)
            for tp, records in batch.items():
                out[tp.topic].extend(json.loads(r.value) for r in records)
            total = sum(len(v) for v in out.values())
            if total >= want and reached is None:
                reached = time.monotonic()
            if reached is not None and time.monotonic() - reached >= settle:
                break
    finally:
        await consumer.stop()
    return out


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


metric_value = sample_total  # the tests' name for it


def _toml_value(v) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))


def configure(path: Path, **sections: dict) -> None:
    """Rewrite a TOML config with some keys replaced (tests give each run its own topics)."""
    import tomllib

    data = tomllib.loads(path.read_text())
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    lines: list[str] = []

    def table(name: str, values: dict) -> None:
        lines.append(f"[{name}]")
        nested = {k: v for k, v in values.items() if isinstance(v, dict)}
        lines.extend(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in values.items()
                     if k not in nested)
        for k, v in nested.items():
            table(f"{name}.{json.dumps(k)}", v)

    for section, values in data.items():
        table(section, values)
    path.write_text("\n".join(lines) + "\n")


TOPIC_KEYS = ("input_topic", "decisions_topic", "rejected_topic", "rekey_topic",
              "reviews_topic", "reviews_applied_topic")


def isolated_topics(config: Path, app_id: str, **kafka) -> list[str]:
    """Give a test run its own topic names (every ``[kafka] *_topic`` key), in the order
    of ``TOPIC_KEYS``: [signed, decisions, rejected, rekeyed, reviews, reviews applied]."""
    from config.settings import KafkaSettings

    assert set(TOPIC_KEYS) == {f for f in KafkaSettings.model_fields if f.endswith("_topic")}
    topics = [f"{key.removesuffix('_topic')}-{app_id}" for key in TOPIC_KEYS]
    configure(config, kafka={**dict(zip(TOPIC_KEYS, topics, strict=True)), **kafka})
    return topics
