"""The ``som`` command line. Each command is thin: it parses flags and calls the core."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from config import ConfigError, Settings, load_settings

__all__ = ["main"]

CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML configuration (default: the shipped config/default.toml).",
)


def settings_from(config_path: str | None, **overrides: dict) -> Settings:
    """Load the config and apply flag overrides; a bad file or key exits 2 with the reason."""
    try:
        settings = load_settings(config_path)
        return settings.with_overrides(**overrides) if overrides else settings
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="som")
def main() -> None:
    """som: suspicious order monitoring for DEA controlled-substance distributors."""


def trust_options(func):
    """The trust options shared by verify, replay and train (DESIGN.md 3.5)."""
    opts = [
        click.option(
            "--trust-dir", type=click.Path(file_okay=False), help="Trust anchors (PEM/DER)."
        ),
        click.option(
            "--intermediates-dir",
            type=click.Path(file_okay=False),
            help="Intermediate CA certificates.",
        ),
        click.option("--crl-dir", type=click.Path(file_okay=False), help="CRL files."),
        click.option(
            "--catalog",
            "catalog_path",
            type=click.Path(dir_okay=False),
            help="Product catalog CSV.",
        ),
        click.option("--supplier-dea", help="Our DEA number; orders to others are rejected."),
        click.option("--at", "at_time", help="ISO-8601 time to judge expiry and age against."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def parse_at(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO-8601 time", param_hint="--at") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def trust_overrides(trust_dir, intermediates_dir, crl_dir, catalog_path, supplier_dea) -> dict:
    def absolute(p):
        return str(Path(p).resolve()) if p else None

    for flag, value in (
        ("--trust-dir", trust_dir),
        ("--intermediates-dir", intermediates_dir),
        ("--crl-dir", crl_dir),
    ):
        if value and not Path(value).is_dir():
            raise click.BadParameter(f"directory {value} does not exist", param_hint=flag)
    if catalog_path and not Path(catalog_path).is_file():
        raise click.BadParameter(f"file {catalog_path} does not exist", param_hint="--catalog")
    return {
        "verification": {
            "trust_dir": absolute(trust_dir),
            "intermediates_dir": absolute(intermediates_dir),
            "crl_dir": absolute(crl_dir),
            "supplier_dea": supplier_dea,
        },
        "catalog": {"path": absolute(catalog_path)},
    }


def load_pipeline(settings: Settings, judge_at: datetime | None = None):
    """Build the core, turning missing or bad files into a message that names them."""
    from engine.build import build_pipeline

    v = settings.verification
    if v.require_chain and not v.trust_dir:
        click.echo(
            "warning: no trust anchors configured ([verification] trust_dir or --trust-dir): "
            "every signed order will be rejected as untrusted_chain",
            err=True,
        )
    try:
        return build_pipeline(settings, judge_at)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot start: {exc}") from None


@main.command()
@CONFIG_OPTION
@click.option("--broker", help="Kafka URL, e.g. kafka://host:9092 (overrides [kafka] broker).")
@click.option("--web-port", type=int, help="Port for /metrics and health (default 6066).")
@click.option("--partitions", type=int, help="Partitions of every som topic.")
@click.option("--app-id", help="Consumer group id and changelog prefix.")
@click.option(
    "--loglevel",
    default="warning",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
def worker(config_path, broker, web_port, partitions, app_id, loglevel) -> None:
    """Run a stream worker: orders.signed -> decisions / orders.rejected."""
    import asyncio

    import faust

    from connectors.kafka_admin import TopicError, ensure_topics
    from engine.batch_gc import batch_gc
    from engine.stream import create_app

    settings = settings_from(
        config_path,
        kafka={"broker": broker, "partitions": partitions, "app_id": app_id},
        web={"port": web_port},
    )
    pipeline = load_pipeline(settings)
    k = settings.kafka
    try:
        asyncio.run(
            ensure_topics(
                k.broker,
                k.topics(),
                k.partitions,
                k.replication_factor,
            )
        )
    except TopicError as exc:
        raise click.ClickException(str(exc)) from None
    app = create_app(settings, pipeline)
    with batch_gc():  # the worker runs batches for its whole life
        faust.Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()


def _reviews_file(path: str | None) -> list[bytes] | None:
    """The messages of a reviews file (one JSON object per line), or None without one."""
    if not path:
        return None
    if not Path(path).is_file():
        raise click.BadParameter(f"reviews file {path} does not exist", param_hint="--reviews")
    with open(path, "rb") as fh:
        return [line.strip() for line in fh if line.strip()]


def _history_pipeline(feed, config_path, models_dir, judge_at, overrides: dict):
    """The core for replaying FEED as history: time rules as of each order's signing."""
    if not Path(feed).is_file():
        raise click.BadParameter(f"feed file {feed} does not exist", param_hint="FEED")
    overrides["verification"]["time_rules_at"] = "signed"  # a feed is history
    if models_dir:
        overrides["scoring"] = {"models_dir": str(Path(models_dir).resolve())}
    return load_pipeline(settings_from(config_path, **overrides), judge_at)


@main.command("replay")
@click.argument("feed", type=click.Path(dir_okay=False))
@CONFIG_OPTION
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False),
    help="Decisions as JSON lines (default: standard output).",
)
@click.option(
    "--rejected",
    "rejected_path",
    type=click.Path(dir_okay=False),
    help="Rejections as JSON lines (default: beside --out).",
)
@click.option(
    "--models",
    "models_dir",
    type=click.Path(file_okay=False),
    help="Trained model artifacts (som train).",
)
@click.option(
    "--reviews",
    "reviews_path",
    type=click.Path(dir_okay=False),
    help="Officers' reviews, one JSON object per line (the reviews topic's messages); "
    "each is applied before the first order signed after its reviewed_at.",
)
@click.option(
    "--reviews-out",
    "reviews_out_path",
    type=click.Path(dir_okay=False),
    help="Applied-review records as JSON lines (default: beside --out, else standard output).",
)
@trust_options
def replay_cmd(
    feed,
    config_path,
    out_path,
    rejected_path,
    models_dir,
    reviews_path,
    reviews_out_path,
    trust_dir,
    intermediates_dir,
    crl_dir,
    catalog_path,
    supplier_dea,
    at_time,
) -> None:
    """Replay a feed file through the core, in-process, and write decisions."""
    import json

    from connectors.feed import read_feed
    from engine.replay import default_rejections_path, default_reviews_path, replay

    reviews = _reviews_file(reviews_path)
    pipeline = _history_pipeline(feed, config_path, models_dir, parse_at(at_time), trust_overrides(
        trust_dir, intermediates_dir, crl_dir, catalog_path, supplier_dea))
    if out_path and not rejected_path:
        rejected_path = default_rejections_path(out_path)
    if reviews is not None and out_path and not reviews_out_path:
        reviews_out_path = default_reviews_path(out_path)
    dec = open(out_path, "wb") if out_path else sys.stdout.buffer  # noqa: SIM115
    rej = open(rejected_path, "wb") if rejected_path else None  # noqa: SIM115
    rev = open(reviews_out_path, "wb") if reviews_out_path else sys.stdout.buffer  # noqa: SIM115
    try:
        summary = replay(pipeline, read_feed(feed), dec, rej, reviews=reviews, reviews_out=rev)
    finally:
        if out_path:
            dec.close()
        if rej:
            rej.close()
        if reviews_out_path:
            rev.close()
    click.echo(json.dumps(summary.__dict__), err=True)


@main.command()
@click.option("--port", type=int, default=9092, show_default=True, help="Loopback port.")
def broker(port) -> None:
    """Run the embedded Kafka-protocol broker (Tansu, memory only) until Ctrl-C."""
    import time

    from connectors.tansu import EmbeddedBroker

    with EmbeddedBroker(port) as b:
        click.echo(f"broker listening: {b.url} (memory storage; Ctrl-C stops it)")
        try:
            while b.proc and b.proc.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass


@main.command()
@click.option(
    "--duration",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds to run before stopping cleanly.",
)
@click.option(
    "--web-port", type=int, default=6066, show_default=True, help="Worker port serving /metrics."
)
@click.option("--registrants", type=int, default=150, show_default=True)
@click.option("--days", type=int, default=120, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--rate",
    type=float,
    default=0.0,
    help="Orders per second to publish (0 = spread the feed over the duration).",
)
@click.option("--workdir", type=click.Path(file_okay=False), help="Where to keep the demo feed.")
def demo(duration, web_port, registrants, days, seed, rate, workdir) -> None:
    """Embedded broker + worker + generated feed, with live progress and holds."""
    from engine.demo import run_demo

    code = run_demo(
        duration=duration,
        web_port=web_port,
        registrants=registrants,
        days=days,
        seed=seed,
        rate=rate,
        workdir=workdir,
    )
    sys.exit(code)



def _dea_flag(ctx, param, value: str | None) -> str | None:
    from connectors.identifiers import dea_number_valid

    if value is not None and not dea_number_valid(value.upper()):
        raise click.BadParameter(f"{value!r} is not a DEA number with a valid check digit")
    return value.upper() if value else value


@main.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder to write the feed, truth, PKI, catalog and som.toml into.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--registrants", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--days", type=click.IntRange(min=7), default=120, show_default=True)
@click.option("--start", type=click.DateTime(formats=["%Y-%m-%d"]), default="2025-01-01",
              show_default=True, help="First day of the feed (UTC).")
@click.option("--cms-share", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="Share of orders signed as CMS; the rest are JSON envelopes.")
@click.option("--anomaly-rate", type=click.FloatRange(0.0, 0.5, max_open=True), default=0.01,
              show_default=True, help="Target share of anomalous orders.")
@click.option("--bad-messages", type=click.IntRange(min=0), default=0, show_default=True,
              help="Defective messages to insert, each labelled with its rejection reason.")
@click.option("--supplier-dea", callback=_dea_flag, default=None,
              help="Supplier DEA number written into every order (default RL1357929).")
def generate(out_dir, seed, registrants, days, start, cms_share, anomaly_rate, bad_messages,
             supplier_dea) -> None:
    """Write a signed, labelled synthetic order feed (DESIGN.md 3.5)."""
    from connectors.synthetic.generate import generate as run
    from connectors.synthetic.outputs import format_summary

    extra = {"supplier_dea": supplier_dea} if supplier_dea else {}
    summary = run(out_dir, seed=seed, registrants=registrants, days=days, start=start.date(),
                  cms_share=cms_share, anomaly_rate=anomaly_rate, bad_messages=bad_messages,
                  **extra)
    click.echo(format_summary(summary))


# --- CSOS verification commands (owner: verification) ---------------------------------


def _verifier_for(settings: Settings):
    """Catalog and Verifier from settings; unusable trust material or catalog exits 2."""
    from connectors.catalog import Catalog
    from engine.verify import Verifier

    try:
        catalog = Catalog.load(settings.resolve(settings.catalog.path))
        base = Path(settings.source).parent if not settings.source.startswith("<") else None
        return Verifier(settings.verification, catalog, base)
    except (ConfigError, ValueError, OSError) as exc:
        raise click.UsageError(str(exc)) from None


def _messages(files, feeds, at, settings: Settings):
    """Check that inputs exist (exit 2 naming the file), then yield verification items."""
    from engine.verify_files import items_from

    if not files and not feeds:
        raise click.UsageError("name at least one message FILE or --feed FILE")
    for name in (*files, *feeds):
        if not Path(name).is_file():
            raise click.UsageError(f"file {name} does not exist")
    received = datetime.now(UTC) if settings.verification.time_rules_at == "received" else None
    return items_from(files, feeds, at or received, at)  # a feed is history: signing time


@main.command("explain")
@click.argument("feed", type=click.Path(dir_okay=False))
@click.argument("order_number")
@click.option("--dea", "purchaser_dea", default=None,
              help="Purchaser DEA number (when purchasers reuse an order number).")
@CONFIG_OPTION
@click.option("--models", "models_dir", type=click.Path(file_okay=False),
              help="Trained model artifacts (som train), as the worker used them.")
@click.option("--reviews", "reviews_path", type=click.Path(dir_okay=False),
              help="Officers' reviews to apply in time, as in `som replay --reviews`.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@trust_options
def explain_cmd(feed, order_number, purchaser_dea, config_path, models_dir, reviews_path,
                as_json, trust_dir, intermediates_dir, crl_dir, catalog_path, supplier_dea,
                at_time) -> None:
    """Every finding behind one order's decision, the ones that did not hold included.

    Replays FEED through the core up to ORDER_NUMBER (the feed as the worker read it, with
    the same configuration and models: the decision's config_version and model_version
    say which) and prints its decision with each score, limit, factor and sentence.
    """
    import json

    from connectors.feed import read_feed
    from engine.explain import explain_order, format_rows

    reviews = _reviews_file(reviews_path)
    pipeline = _history_pipeline(feed, config_path, models_dir, parse_at(at_time), trust_overrides(
        trust_dir, intermediates_dir, crl_dir, catalog_path, supplier_dea))
    found = explain_order(pipeline, read_feed(feed), order_number, purchaser_dea, reviews)
    if not found:
        who = f" from {purchaser_dea}" if purchaser_dea else ""
        raise click.BadParameter(f"no message for order {order_number}{who} in {feed}",
                                 param_hint="ORDER_NUMBER")
    for ex in found:
        if as_json:
            click.echo(json.dumps(ex.to_dict()))
            continue
        o = ex.outcome
        if hasattr(o, "decision"):
            click.echo(f"{o.decision} {o.order_number} purchaser {o.purchaser_dea} signed "
                       f"{o.signed_at}  {o.model_version} {o.config_version}")
            click.echo(format_rows(ex.findings) if ex.findings else
                       "(a redelivery: the decision recorded for the first delivery)")
        else:
            click.echo(f"REJECTED {o.order_number} purchaser {o.purchaser_dea}: {o.reason}: "
                       f"{o.detail}")
        click.echo("")


@main.command("review")
@click.option("--order", "order_number", required=True, help="Order number of the held order.")
@click.option("--dea", "purchaser_dea", required=True, help="Purchaser DEA number.")
@click.option("--outcome", type=click.Choice(["cleared", "reported"]), required=True,
              help="cleared: suspicion dispelled, it may ship; reported: reported to DEA.")
@click.option("--reviewer", required=True, help="The case system's id of the officer.")
@click.option("--note", default="", help="Free text for the audit trail.")
@click.option("--at", "reviewed_at", default=None,
              help="When the review was decided (ISO-8601 with offset; default: now).")
@click.option("--broker", default=None, help="Kafka URL (default: [kafka] broker).")
@click.option("--print", "print_only", is_flag=True,
              help="Write the message to standard output (a line for `som replay "
              "--reviews`) instead of publishing it.")
@CONFIG_OPTION
def review_cmd(order_number, purchaser_dea, outcome, reviewer, note, reviewed_at, broker,
               print_only, config_path) -> None:
    """Publish an officer's review of a held order to the reviews topic.

    For teams without a case-system integration: the message is the one the case system
    would send, keyed by the purchaser's DEA number; the worker answers on
    reviews.applied (or orders.rejected).
    """
    import asyncio
    import json
    from datetime import UTC, datetime

    from connectors.kafka_admin import publish_one
    from engine.records import Rejected
    from engine.review import parse_review

    body = {"order_number": order_number, "purchaser_dea": purchaser_dea, "outcome": outcome,
            "reviewed_at": reviewed_at or datetime.now(UTC).isoformat(timespec="seconds")
            .replace("+00:00", "Z"), "reviewer": reviewer}
    if note:
        body["note"] = note
    raw = json.dumps(body, separators=(",", ":")).encode()
    try:
        parse_review(raw)
    except Rejected as exc:  # name the flag behind the field
        flag = {"order_number": "--order", "purchaser_dea": "--dea", "reviewed_at": "--at",
                "reviewer": "--reviewer", "note": "--note"}
        hint = next((f for k, f in flag.items() if f"'{k}'" in exc.detail), None)
        raise click.BadParameter(exc.detail, param_hint=hint) from None
    if print_only:
        click.echo(raw.decode())
        return
    settings = settings_from(config_path, kafka={"broker": broker})
    k = settings.kafka
    try:
        where = asyncio.run(publish_one(k.broker, k.reviews_topic, purchaser_dea.encode(), raw))
    except Exception as exc:
        raise click.ClickException(f"could not publish to {k.reviews_topic} at {k.broker}: "
                                   f"{type(exc).__name__}: {exc}") from None
    click.echo(json.dumps({"topic": k.reviews_topic, **where, "review": body}))


@main.command("verify")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--feed", "feeds", multiple=True, type=click.Path(dir_okay=False),
              help="A feed file (JSON lines, one message per line); repeatable.")
@CONFIG_OPTION
@trust_options
def verify_cmd(files, feeds, config_path, trust_dir, intermediates_dir, crl_dir, catalog_path,
               supplier_dea, at_time) -> None:
    """Verify signed order messages; one JSON line per message. Exit 1 if any is rejected.

    A FILE holds one message (DER, PEM or base64 CMS, a JSON envelope, or a paper
    order). Files are judged at receipt (now, per verification.time_rules_at); feed
    lines are history, judged as of their signing time. --at fixes the time for both.
    """
    import json

    from engine.verify_files import result_row, verify_items

    overrides = trust_overrides(trust_dir, intermediates_dir, crl_dir, catalog_path, supplier_dea)
    settings = settings_from(config_path, **overrides)
    items = _messages(files, feeds, parse_at(at_time), settings)
    verifier = _verifier_for(settings)
    rejected = 0
    for name, outcome in verify_items(verifier, items):
        row = result_row(name, outcome)
        rejected += row["status"] == "rejected"
        click.echo(json.dumps(row))
    sys.exit(1 if rejected else 0)


@main.group()
def certs() -> None:
    """Purchaser certificates seen in verified orders."""


@certs.command("expiring")
@click.option("--days", type=click.FloatRange(min=0), default=45.0, show_default=True,
              help="Report certificates expiring within this many days (DEA advises 45).")
@click.option("--feed", "feeds", multiple=True, type=click.Path(dir_okay=False),
              help="A feed file to read certificates from; repeatable.")
@CONFIG_OPTION
@trust_options
def certs_expiring(days, feeds, config_path, trust_dir, intermediates_dir, crl_dir, catalog_path,
                   supplier_dea, at_time) -> None:
    """List purchasers whose certificate expires within --days of --at (default: now)."""
    import json

    from engine.cert_watch import CertExpiryWatch
    from engine.verify_files import verify_items

    overrides = trust_overrides(trust_dir, intermediates_dir, crl_dir, catalog_path, supplier_dea)
    settings = settings_from(config_path, **overrides)
    now = parse_at(at_time) or datetime.now(UTC)
    if not feeds:
        raise click.UsageError("name at least one --feed FILE to read certificates from")
    items = _messages((), feeds, None, settings)
    verifier = _verifier_for(settings)
    watch = CertExpiryWatch(keep_ids=True)
    for _, outcome in verify_items(verifier, items):
        if not isinstance(outcome, Exception):
            watch.observe_order(outcome)
    soon = watch.expiring(now, days)
    for entry in soon:
        click.echo(json.dumps(entry.to_dict()))
    summary = {"expiring": len(soon), "within_days": days, "certificates": len(watch),
               "at": now.isoformat().replace("+00:00", "Z")}
    click.echo(json.dumps(summary))


@main.command("train")
@click.option("--orders", "feed", required=True, type=click.Path(dir_okay=False),
              help="History feed file (JSON lines, as som replay reads).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the model artifacts and their manifest.")
@click.option("--until", "until", help="Train only on orders signed before this ISO-8601 time.")
@CONFIG_OPTION
@trust_options
def train_cmd(feed, out_dir, until, config_path, trust_dir, intermediates_dir, crl_dir,
              catalog_path, supplier_dea, at_time) -> None:
    """Fit peer baselines and per-peer-group isolation forests on a history feed."""
    import json

    from connectors.feed import read_feed
    from models.train import train

    if not Path(feed).is_file():
        raise click.BadParameter(f"feed file {feed} does not exist", param_hint="--orders")
    overrides = trust_overrides(trust_dir, intermediates_dir, crl_dir, catalog_path, supplier_dea)
    overrides["verification"]["time_rules_at"] = "signed"  # a feed is history
    overrides["scoring"] = {"models_dir": ""}  # features never depend on older artifacts
    settings = settings_from(config_path, **overrides)
    pipeline = load_pipeline(settings, parse_at(at_time))
    try:
        manifest = train(pipeline, read_feed(feed), out_dir,
                         quantile=settings.scoring.iforest_quantile, until=parse_at(until))
    except ValueError as exc:
        raise click.ClickException(f"cannot train: {exc}") from None
    click.echo(json.dumps({"out": str(out_dir), "version": manifest["version"],
                           "training_window": manifest["training_window"],
                           "peer_groups": len(manifest["peer_groups"])}))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
