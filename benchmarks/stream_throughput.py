"""Stream driver throughput against bare Faust, on the same broker and the same topic.

One run of this script:

1. starts the embedded Tansu broker (``connectors.tansu.EmbeddedBroker``);
2. generates a signed synthetic feed (``connectors.synthetic.generate``), or reuses a
   cached one, and pre-loads all of it into one input topic, keyed by purchaser DEA
   number as the topic contract asks producers to (``engine.keys.purchaser_key``);
3. measures, alternately, ``--repeat`` times each, with a fresh consumer group per run:

   * ``engine``: ``som worker`` (a subprocess) reading the topic from the start until
     every message has exactly one record on ``decisions`` or ``orders.rejected``;
   * ``bare_faust``: a minimal Faust app in a subprocess (this file with ``--bare-worker``)
     consuming the same topic the way the engine does (``stream.take_events`` batches
     of ``kafka.batch_size`` within ``kafka.batch_timeout_s``) and forwarding each raw
     value with ``send_soon`` to an output topic;
   * ``engine_metrics_off``: the engine with ``[web] metrics = false``.

Timing rule, the same for every kind: from the first output record to the last, by
the records' Kafka timestamps (stamped by the worker's producer when it sends), so
worker start-up, group join and rebalance are excluded. Rate = (records - 1) / span.
The median of the repeats is reported; the last line is ``RESULT {json}`` with
``ratio = engine / bare_faust`` and ``metrics_cost = 1 - engine / engine_metrics_off``
(the share of throughput that metrics cost). Because the host is shared, each run also
reports outputs per CPU-second of the worker process (``/proc/PID/stat`` between the
first and the last output seen), and the RESULT carries ``ratio_cpu`` from those: it
moves much less than the wall-clock ratio when other jobs compete for the two cores.

``--profile DIR`` additionally runs the engine once under ``py-spy record`` (attached
from the first output record to the last) and prints where the worker's time goes.

    .venv/bin/python benchmarks/stream_throughput.py            # about 4.5 minutes
    .venv/bin/python benchmarks/stream_throughput.py --quick    # about 1.5 minutes
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

KINDS = ("bare_faust", "engine", "engine_metrics_off")


# --------------------------------------------------------------------------- bare worker


def bare_worker(a: argparse.Namespace) -> None:
    """A minimal Faust passthrough with the engine's app settings and consumption style."""
    import faust

    app = faust.App(
        a.app_id,
        broker=a.broker,
        store="memory://",
        autodiscover=False,
        datadir=f"/tmp/som-bench-{a.app_id}-data",
        topic_partitions=a.partitions,
        topic_replication_factor=1,
        topic_allow_declare=True,
        processing_guarantee="at_least_once",
        broker_rebalance_timeout=a.rebalance_timeout,
        broker_session_timeout=a.session_timeout,
        broker_heartbeat_interval=a.heartbeat_interval,
        consumer_auto_offset_reset="earliest",
        web_enabled=a.web_port > 0,
        web_port=a.web_port or 6066,
    )
    source = app.topic(
        a.input, value_serializer="raw", key_serializer="raw", partitions=a.partitions
    )
    sink = app.topic(
        a.output, value_serializer="raw", key_serializer="raw", partitions=a.partitions
    )

    @app.agent(source, name="passthrough")
    async def passthrough(stream):
        async for events in stream.take_events(a.batch_size, within=a.batch_timeout):
            for event in events:
                sink.send_soon(key=event.message.key, value=event.value)

    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


# --------------------------------------------------------------------------- feed


def cache_dir(seed: int, registrants: int, days: int, workdir: str | None) -> Path:
    if workdir:
        return Path(workdir)
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "som"
    return base / f"bench-s{seed}-r{registrants}-d{days}"


def ensure_feed(work: Path, seed: int, registrants: int, days: int) -> list[bytes]:
    from connectors.feed import read_feed

    if not ((work / "feed.jsonl").is_file() and (work / "som.toml").is_file()):
        from connectors.synthetic import generate

        t0 = time.monotonic()
        print(f"generating feed: {registrants} registrants x {days} days in {work}", flush=True)
        generate(work, seed=seed, registrants=registrants, days=days)
        print(f"  generated in {time.monotonic() - t0:.1f}s", flush=True)
    else:  # a cached feed: its config follows this version of the engine's keys
        from connectors.synthetic.assemble import SUPPLIER
        from connectors.synthetic.outputs import write_config

        write_config(work, SUPPLIER["dea_number"])
    return list(read_feed(work / "feed.jsonl"))


def run_config(work: Path, name: str, topics: dict[str, str], metrics: bool) -> Path:
    """The feed's som.toml with this run's topics (written beside it: paths are relative)."""
    text = (work / "som.toml").read_text(encoding="utf-8")
    for key, value in topics.items():
        text, n = re.subn(
            rf'^{key}\s*=\s*"[^"]*"', f'{key} = "{value}"', text, count=1, flags=re.MULTILINE
        )
        if n != 1:
            raise SystemExit(f"{work / 'som.toml'}: no key {key} to set")
    text, n = re.subn(
        r"^metrics\s*=\s*\w+",
        f"metrics = {str(metrics).lower()}",
        text,
        count=1,
        flags=re.MULTILINE,
    )
    if n != 1:
        raise SystemExit(f"{work / 'som.toml'}: no [web] metrics key")
    path = work / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def preload(bootstrap: str, topic: str, messages: list[bytes]) -> int:
    from aiokafka import AIOKafkaProducer

    from engine.keys import purchaser_key

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20, max_request_size=8 << 20
    )
    await producer.start()
    unkeyed = 0
    try:
        pending = []
        for raw in messages:
            key = purchaser_key(raw)
            unkeyed += key is None
            pending.append(await producer.send(topic, raw, key=key))
            if len(pending) >= 2000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return unkeyed


# --------------------------------------------------------------------------- one run


class Outputs:
    """What arrived on a run's output topics."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()
        self.first_ms: int | None = None
        self.last_ms: int | None = None
        self.first_seen: float | None = None
        self.cpu: tuple[int, float] | None = None  # (outputs seen, worker CPU s) at first sight
        self.cpu_end: float | None = None
        self.identities: set[tuple] = set()
        self.duplicates = 0
        self.reasons: Counter[str] = Counter()
        self.holds = 0

    @property
    def total(self) -> int:
        return sum(self.count.values())

    def cpu_rate(self) -> float:
        """Outputs per CPU-second of the worker process (robust to other load on the host)."""
        if self.cpu is None or self.cpu_end is None or self.cpu_end <= self.cpu[1]:
            return float("nan")
        return (self.total - self.cpu[0]) / (self.cpu_end - self.cpu[1])

    def rate(self) -> float:
        span = (self.last_ms - self.first_ms) / 1000.0 if self.first_ms is not None else 0.0
        return (self.total - 1) / span if span > 0 else float("nan")


async def collect(
    bootstrap: str,
    topics: list[str],
    want: int,
    timeout: float,
    proc,
    parse: bool,
    log: Path,
    on_first=None,
    settle: float = 1.0,
) -> Outputs:
    from aiokafka import AIOKafkaConsumer

    out = Outputs()
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 << 20,
        fetch_max_bytes=32 << 20,
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout
        reached = None
        checked = time.monotonic()
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited with code {proc.returncode}")
            if time.monotonic() - checked > 2.0:  # a crashed agent leaves the worker running
                checked = time.monotonic()
                if "Crashed reason=" in log.read_text(errors="replace"):
                    raise RuntimeError("an agent crashed")
            batch = await consumer.getmany(timeout_ms=200)
            for tp, records in batch.items():
                for r in records:
                    out.count[tp.topic] += 1
                    ts = r.timestamp
                    out.first_ms = ts if out.first_ms is None else min(out.first_ms, ts)
                    out.last_ms = ts if out.last_ms is None else max(out.last_ms, ts)
                    if parse:
                        body = json.loads(r.value)
                        if "decision" in body:
                            ident = ("d", body["purchaser_dea"], body["order_number"])
                            out.holds += body["decision"] == "HOLD"
                        else:
                            ident = ("r", body.get("raw_sha256"))
                            out.reasons[body.get("reason", "?")] += 1
                        if ident in out.identities:
                            out.duplicates += 1
                        out.identities.add(ident)
            if out.total and out.first_seen is None:
                out.first_seen = time.monotonic()
                out.cpu = (out.total, cpu_seconds(proc.pid))
                if on_first:
                    on_first()
            if out.total >= want and reached is None:
                reached = time.monotonic()
                out.cpu_end = cpu_seconds(proc.pid)
            if reached is not None and time.monotonic() - reached >= settle:
                return out
        raise RuntimeError(f"timed out after {timeout:.0f}s with {out.total}/{want} outputs")
    finally:
        await consumer.stop()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    from connectors.tansu import stop_process

    stop_process(proc, timeout)


def scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            return resp.read().decode()
    except OSError:
        return None


def metric_total(text: str, name: str) -> float:
    from engine.metrics import sample_total

    return sample_total(text, name)


async def delete_topics(bootstrap: str, names: list[str]) -> None:
    """Free the memory broker's storage; a broker that cannot delete keeps them."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        await admin.delete_topics(names)
    except Exception:  # noqa: BLE001 - best effort
        pass
    finally:
        await admin.close()


def run_once(
    kind: str, n: int, ctx: argparse.Namespace, rep: int, profile_dir: Path | None = None
) -> dict:
    from connectors.kafka_admin import ensure_topics
    from connectors.tansu import free_port

    k = ctx.settings.kafka
    tag = uuid.uuid4().hex[:6]
    app_id = f"bench-{kind.replace('_', '-')}-{rep}-{tag}"
    port = free_port()
    log = ctx.work / f"{app_id}.log"
    if kind == "bare_faust":
        outs = [f"{app_id}.out"]
        made = outs
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--bare-worker",
            "--broker",
            ctx.broker_url,
            "--input",
            ctx.topic,
            "--output",
            outs[0],
            "--app-id",
            app_id,
            "--partitions",
            str(k.partitions),
            "--batch-size",
            str(k.batch_size),
            "--batch-timeout",
            str(k.batch_timeout_s),
            "--rebalance-timeout",
            str(k.rebalance_timeout_s),
            "--session-timeout",
            str(k.session_timeout_s),
            "--heartbeat-interval",
            str(k.heartbeat_interval_s),
            "--web-port",
            str(port),
        ]
        config = None
    else:
        topics = {
            "input_topic": ctx.topic,
            "decisions_topic": f"{app_id}.decisions",
            "rejected_topic": f"{app_id}.rejected",
            "rekey_topic": f"{app_id}.rekeyed",
            "reviews_topic": f"{app_id}.reviews",
            "reviews_applied_topic": f"{app_id}.reviewed",
        }
        outs = [topics["decisions_topic"], topics["rejected_topic"]]
        made = outs + [topics["rekey_topic"], topics["reviews_topic"],
                       topics["reviews_applied_topic"], f"{app_id}-profiles-changelog"]
        config = run_config(ctx.work, app_id, topics, metrics=kind != "engine_metrics_off")
        cmd = [
            sys.executable,
            "-m",
            "engine.cli",
            "worker",
            "--config",
            str(config),
            "--broker",
            ctx.broker_url,
            "--app-id",
            app_id,
            "--web-port",
            str(port),
            "--loglevel",
            "warning",
        ]
    asyncio.run(ensure_topics(ctx.broker_url, made, k.partitions))
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    spy: dict = {}

    def attach() -> None:
        if profile_dir is None:
            return
        raw = profile_dir / f"{kind}.collapsed"
        spy["proc"] = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("py-spy")),
                "record",
                "--pid",
                str(proc.pid),
                "--rate",
                "250",
                "--format",
                "raw",
                "--output",
                str(raw),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(profile_dir / "py-spy.log").open("ab"),
        )
        spy["raw"] = raw

    t0 = time.monotonic()
    try:
        got = asyncio.run(
            collect(
                ctx.bootstrap,
                outs,
                n,
                ctx.timeout,
                proc,
                parse=kind != "bare_faust",
                log=log,
                on_first=attach,
            )
        )
        metrics_text = scrape(port) if kind != "bare_faust" else None
    except RuntimeError as exc:
        stop(proc)
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{kind} run failed: {exc}\n--- {log}\n{tail}") from None
    finally:
        if "proc" in spy:
            spy["proc"].send_signal(signal.SIGINT)
            try:
                spy["proc"].wait(60)
            except subprocess.TimeoutExpired:
                spy["proc"].kill()
    stop(proc)
    startup = got.first_seen - t0 if got.first_seen else float("nan")
    asyncio.run(delete_topics(ctx.bootstrap, made))
    if config is not None:
        config.unlink(missing_ok=True)
    log.unlink(missing_ok=True)
    row = {
        "kind": kind,
        "rep": rep,
        "outputs": got.total,
        "per_s": got.rate(),
        "per_cpu_s": got.cpu_rate(),
        "span_s": (got.last_ms - got.first_ms) / 1000.0,
        "startup_s": startup,
        "duplicates": got.duplicates,
        "holds": got.holds,
        "rejections": dict(got.reasons),
        "extra": got.total - n,
    }
    if metrics_text is not None:
        row["metrics_received"] = metric_total(metrics_text, "som_orders_received_total")
    elif kind != "bare_faust":
        row["metrics_received"] = None  # no /metrics page
    if "raw" in spy:
        row["profile"] = str(spy["raw"])
    return row


# --------------------------------------------------------------------------- profile


def summarize_profile(path: Path, top: int = 25) -> str:
    """Self and inclusive sample shares from py-spy's collapsed (raw) stacks."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        c = int(count)
        total += c
        frames = [_frame(f) for f in stack.split(";")]
        own[frames[-1][0]] += c
        for name, _pkg in set(frames):
            incl[name] += c
        buckets[_bucket(stack, frames)] += c
    if not total:
        return "no samples"
    lines = [
        f"py-spy samples: {total} (engine worker, first output to last)",
        "",
        "where the worker's time goes (share of samples):",
    ]
    for name, c in buckets.most_common():
        lines.append(f"  {100 * c / total:5.1f}%  {name}")
    lines += ["", f"top {top} functions by own time:"]
    for name, c in own.most_common(top):
        lines.append(f"  {100 * c / total:5.1f}%  {name}")
    lines += ["", f"top {top} som functions by inclusive time:"]
    som = [(n, c) for n, c in incl.items() if n.endswith(_SOM_TAG)]
    for name, c in sorted(som, key=lambda x: -x[1])[:top]:
        lines.append(f"  {100 * c / total:5.1f}%  {name[: -len(_SOM_TAG)]}")
    return "\n".join(lines)


_SOM_PACKAGES = ("engine", "connectors", "models", "config")
_SOM_TAG = " [som]"
_LIBS = ("aiokafka", "faust", "mode", "prometheus_client", "json", "logging", "cryptography")


def _frame(frame: str) -> tuple[str, str]:
    """(display name, top-level package) of one py-spy frame ``func (pkg/mod.py:line)``."""
    m = re.match(r"(.*) \((.*?):\d+\)$", frame)
    if not m:
        return frame, ""
    func, path = m.groups()
    pkg = path.split("/", 1)[0] if "/" in path else ""
    tag = _SOM_TAG if pkg in _SOM_PACKAGES else ""
    return f"{func} ({path}){tag}", pkg


# The first rule matching a sample's stack names its bucket (innermost som stage first);
# samples outside the agent are charged to the innermost library frame.
_BUCKETS = [
    ("metrics (engine.metrics, prometheus_client)", ("(prometheus_client/", "(engine/metrics.py")),
    (
        "table write: profile to_state + json.dumps",
        (
            "dump_profile (engine/table_profiles.py",
            "_dumps (engine/stream.py",
            "to_state (engine/profile.py",
        ),
    ),
    ("verify: envelope, CMS, signature, order parse", ("verify (engine/verify.py",)),
    (
        "decision serialisation (to_dict, dumps)",
        ("dumps (engine/records.py", "to_dict (engine/records.py"),
    ),
    ("enrich, profile update, score, decide", ("monitor_batch (engine/pipeline.py",)),
    ("table set (faust, besides serialisation)", ("__setitem__ (engine/table_profiles.py",)),
    ("send_soon (faust producer buffer)", ("send_soon (faust/",)),
    ("rest of handle()", ("handle (engine/stream.py",)),
    ("bench passthrough loop", ("passthrough (benchmarks/",)),
]


def _bucket(stack: str, frames: list[tuple[str, str]]) -> str:
    for name, needles in _BUCKETS:
        if any(n in stack for n in needles):
            return name
    for _name, pkg in reversed(frames):
        if pkg in _LIBS:
            return f"{pkg} (outside the agent's handler)"
    return "asyncio event loop (select, callbacks)"


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller feed, 2 repeats (~1.5 minutes)")
    p.add_argument("--registrants", type=int, default=None, help="default 300 (quick: 120)")
    p.add_argument("--days", type=int, default=None, help="default 120 (quick: 90)")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--repeat", type=int, default=None, help="runs per kind (default 3; quick 2)")
    p.add_argument("--workdir", help="feed folder (default: ~/.cache/som/bench-...)")
    p.add_argument("--kinds", default=",".join(KINDS), help="comma list of " + ",".join(KINDS))
    p.add_argument("--profile", metavar="DIR", help="also profile one engine run with py-spy")
    p.add_argument("--json", metavar="FILE", help="write every run's row to FILE")
    # the bare Faust worker (run by this script in a subprocess)
    p.add_argument("--bare-worker", action="store_true", help=argparse.SUPPRESS)
    for flag, typ in (
        ("--broker", str),
        ("--input", str),
        ("--output", str),
        ("--app-id", str),
        ("--partitions", int),
        ("--batch-size", int),
        ("--batch-timeout", float),
        ("--rebalance-timeout", float),
        ("--session-timeout", float),
        ("--heartbeat-interval", float),
        ("--web-port", int),
    ):
        p.add_argument(flag, type=typ, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.bare_worker:
        bare_worker(a)
        return 0

    from config import load_settings
    from connectors.tansu import EmbeddedBroker

    registrants = a.registrants or (120 if a.quick else 300)
    days = a.days or (90 if a.quick else 120)
    repeat = a.repeat or (2 if a.quick else 3)
    kinds = [x for x in a.kinds.split(",") if x]
    for x in kinds:
        if x not in KINDS:
            p.error(f"unknown kind {x!r}")
    spy = Path(sys.executable).with_name("py-spy")
    if a.profile and not spy.is_file():
        p.error(f"--profile needs py-spy at {spy}: install it with "
                f"'{Path(sys.executable)} -m pip install py-spy==0.4.0' or drop --profile")
    work = cache_dir(a.seed, registrants, days, a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    messages = ensure_feed(work, a.seed, registrants, days)
    n = len(messages)
    settings = load_settings(work / "som.toml")
    k = settings.kafka
    total_bytes = sum(map(len, messages))
    print(
        f"feed: {n} messages ({total_bytes / n / 1024:.1f} KiB avg) from {registrants} "
        f"registrants x {days} days; partitions {k.partitions}, take_events batch "
        f"{k.batch_size} within {k.batch_timeout_s}s",
        flush=True,
    )
    rows: list[dict] = []
    with EmbeddedBroker(log_path=work / "broker.log") as broker:
        from connectors.kafka_admin import ensure_topics

        ctx = argparse.Namespace(
            settings=settings,
            work=work,
            broker_url=broker.url,
            bootstrap=broker.bootstrap,
            topic="bench.orders.signed",
            timeout=max(120.0, n / 100.0),
        )
        asyncio.run(ensure_topics(broker.url, [ctx.topic], k.partitions))
        t0 = time.monotonic()
        unkeyed = asyncio.run(preload(broker.bootstrap, ctx.topic, messages))
        print(
            f"pre-loaded {n} messages into {ctx.topic} in {time.monotonic() - t0:.1f}s "
            f"({unkeyed} without a purchaser key)",
            flush=True,
        )
        del messages
        for rep in range(1, repeat + 1):
            order = kinds if rep % 2 else list(reversed(kinds))
            for kind in order:
                row = run_once(kind, n, ctx, rep)
                rows.append(row)
                print(
                    f"  rep {rep} {kind:<19} {row['per_s']:8.0f}/s  "
                    f"{row['per_cpu_s']:6.0f}/cpu-s  span {row['span_s']:6.2f}s"
                    f"  startup {row['startup_s']:5.1f}s  outputs {row['outputs']}"
                    + (f"  duplicates {row['duplicates']}" if row["duplicates"] else ""),
                    flush=True,
                )
        if a.profile:
            pdir = Path(a.profile)
            pdir.mkdir(parents=True, exist_ok=True)
            prow = run_once("engine", n, ctx, 0, profile_dir=pdir)
            print(
                f"\nprofiled engine run: {prow['per_s']:.0f}/s under py-spy "
                f"(samples in {prow.get('profile')})"
            )
            if prow.get("profile") and Path(prow["profile"]).is_file():
                summary = summarize_profile(Path(prow["profile"]))
                (pdir / "summary.txt").write_text(summary + "\n")
                print(summary)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return report(rows, kinds, n)


def report(rows: list[dict], kinds: list[str], n: int) -> int:
    by: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by[r["kind"]].append(r)
    med = {kind: statistics.median(r["per_s"] for r in by[kind]) for kind in kinds}
    cpu = {kind: statistics.median(r["per_cpu_s"] for r in by[kind]) for kind in kinds}
    print()
    print(
        f"{'kind':<20}{'median/s':>10}{'runs/s':>22}{'per cpu-s':>11}{'span s':>9}"
        f"{'outputs':>9}{'ok':>5}"
    )
    problems = []
    for kind in kinds:
        rs = by[kind]
        ok = all(r["outputs"] == n and not r["duplicates"] for r in rs)
        if not ok:
            problems.append(kind)
        runs = " ".join(f"{r['per_s']:.0f}" for r in rs)
        span = statistics.median(r["span_s"] for r in rs)
        print(
            f"{kind:<20}{med[kind]:>10.0f}{runs:>22}{cpu[kind]:>11.0f}{span:>9.2f}"
            f"{rs[0]['outputs']:>9}"
            f"{'yes' if ok else 'NO':>5}"
        )
    eng = by.get("engine", [])
    if eng:
        r = eng[-1]
        print(
            f"engine outputs per run: {n - sum(r['rejections'].values())} decisions "
            f"({r['holds']} HOLD), rejections {r['rejections'] or 0}"
        )
    off = by.get("engine_metrics_off", [])
    wired = None
    if off:
        got = [r.get("metrics_received") for r in off]
        wired = all(g is None or g == 0 for g in got)
        if not wired:
            print(
                "note: [web] metrics = false is not wired yet (the worker still counted "
                f"{got[0]:.0f} received on /metrics): engine_metrics_off measures the same "
                "code as engine"
            )
    result: dict = {}
    if "engine" in med:
        result["engine_per_s"] = round(med["engine"], 1)
    if "bare_faust" in med:
        result["bare_faust_per_s"] = round(med["bare_faust"], 1)
    if "engine" in med and "bare_faust" in med:
        result["ratio"] = round(med["engine"] / med["bare_faust"], 3)
    if "engine_metrics_off" in med:
        result["engine_metrics_off_per_s"] = round(med["engine_metrics_off"], 1)
        if "engine" in med:
            result["metrics_cost"] = round(1 - med["engine"] / med["engine_metrics_off"], 3)
        result["metrics_switch_wired"] = wired
    for kind in kinds:
        result[f"{kind}_per_cpu_s"] = round(cpu[kind], 1)
    if "engine" in cpu and "bare_faust" in cpu:
        result["ratio_cpu"] = round(cpu["engine"] / cpu["bare_faust"], 3)
    if "engine" in cpu and "engine_metrics_off" in cpu:
        result["metrics_cost_cpu"] = round(1 - cpu["engine"] / cpu["engine_metrics_off"], 3)
    result["messages"] = n
    result["runs_per_kind"] = max(len(v) for v in by.values())
    if problems:
        result["incomplete"] = problems
    print("RESULT " + json.dumps(result))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
