"""Worker CPU time per message with ``[web] metrics`` on and off, alternating, in one run.

Why CPU time: on a shared 2-core machine the wall-clock throughput of one run
moves by +-30% with whatever else runs, which hides a cost of a few percent.
The CPU seconds the worker process itself spends (``/proc/PID/stat`` utime +
stime) from "ready" to "last output seen" move far less. Both settings run the
same feed on the same embedded broker, each run with fresh topics and group;
the order alternates (on/off, off/on, ...). Only Linux (``/proc``).

    .venv/bin/python benchmarks/metrics_cpu.py [--repeat 3] [--registrants 120 --days 90]

Last line: ``RESULT {"cpu_us_per_msg_on": ..., "cpu_us_per_msg_off": ..., "metrics_cost": ...}``
where ``metrics_cost = on / off - 1`` (medians).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402

from connectors.feed import read_feed  # noqa: E402
from connectors.kafka_admin import ensure_topics  # noqa: E402
from connectors.tansu import EmbeddedBroker, free_port, stop_process  # noqa: E402
from engine.keys import purchaser_key  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def write_config(src: Path, dst: Path, values: dict[str, object]) -> None:
    """Copy ``src`` with each ``key = ...`` line replaced (keys are unique in som.toml)."""
    text = src.read_text()
    for key, value in values.items():
        shown = ("true" if value else "false") if isinstance(value, bool) else json.dumps(value)
        text, n = re.subn(rf"^{key}\s*=.*$", f"{key} = {shown}", text, count=1, flags=re.M)
        if n != 1:
            raise SystemExit(f"{src}: no {key} key to set")
    dst.write_text(text)


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


async def produce_and_count(bootstrap: str, signed: str, outputs: list[str],
                            messages: list[bytes], timeout: float) -> int:
    consumer = AIOKafkaConsumer(*outputs, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(signed, m, key=purchaser_key(m)) for m in messages]
        await asyncio.gather(*futures)
        seen, deadline = 0, time.monotonic() + timeout
        while seen < len(messages) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=100)
            seen += sum(len(v) for v in batch.values())
        return seen
    finally:
        await producer.stop()
        await consumer.stop()


def run(work: Path, broker: EmbeddedBroker, messages: list[bytes], metrics: bool) -> dict:
    app_id = f"mcpu-{uuid.uuid4().hex[:8]}"
    topics = [f"{t}-{app_id}" for t in ("signed", "decisions", "rejected", "rekeyed",
                                        "reviews", "reviewed")]
    config = work / f"{app_id}.toml"
    write_config(work / "som.toml", config, {
        "metrics": metrics, "input_topic": topics[0], "decisions_topic": topics[1],
        "rejected_topic": topics[2], "rekey_topic": topics[3], "reviews_topic": topics[4],
        "reviews_applied_topic": topics[5]})
    asyncio.run(ensure_topics(broker.url, [*topics, f"{app_id}-profiles-changelog"], 4))
    port = free_port()
    log = (work / f"{app_id}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "worker", "--config", str(config), "--broker",
         broker.url, "--app-id", app_id, "--web-port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while not ready(port) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        seen = asyncio.run(produce_and_count(broker.bootstrap, topics[0], topics[1:3], messages,
                                             timeout=600))
        cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
    finally:
        stop_process(proc, 30)
        log.close()
        config.unlink(missing_ok=True)
    n = len(messages)
    return {"metrics": metrics, "outputs": seen, "ok": seen == n,
            "cpu_us_per_msg": (cpu1 - cpu0) / n * 1e6, "wall_per_s": n / (t1 - t0)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="runs per setting")
    ap.add_argument("--registrants", type=int, default=120)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "som"
    work = cache / f"metrics-cpu-s{args.seed}-r{args.registrants}-d{args.days}"
    if not (work / "feed.jsonl").is_file():
        from connectors.synthetic import generate

        generate(work, seed=args.seed, registrants=args.registrants, days=args.days)
    else:  # a cached feed: its config follows this version of the engine's keys
        from connectors.synthetic.assemble import SUPPLIER
        from connectors.synthetic.outputs import write_config as write_feed_config

        write_feed_config(work, SUPPLIER["dea_number"])
    messages = list(read_feed(work / "feed.jsonl"))
    rows = []
    with EmbeddedBroker(log_path=work / "broker.log") as broker:
        for rep in range(args.repeat):
            for metrics in (True, False) if rep % 2 == 0 else (False, True):
                row = run(work, broker, messages, metrics)
                rows.append(row)
                print(f"rep {rep + 1} metrics {'on ' if metrics else 'off'}  "
                      f"{row['cpu_us_per_msg']:8.0f} us CPU/msg  {row['wall_per_s']:6.0f} msg/s"
                      f"  outputs {row['outputs']}/{len(messages)}", flush=True)
    on = statistics.median(r["cpu_us_per_msg"] for r in rows if r["metrics"])
    off = statistics.median(r["cpu_us_per_msg"] for r in rows if not r["metrics"])
    result = {"cpu_us_per_msg_on": round(on, 1), "cpu_us_per_msg_off": round(off, 1),
              "metrics_cost": round(on / off - 1, 4), "messages": len(messages),
              "runs_per_setting": args.repeat, "all_outputs": all(r["ok"] for r in rows)}
    print("RESULT " + json.dumps(result))
    return 0 if result["all_outputs"] else 1


if __name__ == "__main__":
    sys.exit(main())
