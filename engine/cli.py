"""The ``som`` command line. Each command is thin: it parses flags and calls the core."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from engine.cli_audit import compare_cmd, explain_cmd, holds_cmd, sors_cmd
from engine.cli_csos import certs, verify_cmd
from engine.cli_options import (
    CONFIG_OPTION,
    history_pipeline,
    load_pipeline,
    models_option,
    parse_at,
    reviews_file,
    reviews_option,
    settings_from,
    trust_options,
)
from engine.cli_review import review_cmd

__all__ = ["main"]

@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="som")
def main() -> None:
    """som: suspicious order monitoring for DEA controlled-substance distributors."""


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
@models_option("Trained model artifacts (som train).")
@reviews_option(
    "Officers' reviews, one JSON object per line (the reviews topic's messages); "
    "each is applied before the first order signed after its reviewed_at."
)
@click.option(
    "--reviews-out",
    "reviews_out_path",
    type=click.Path(dir_okay=False),
    help="Applied-review records as JSON lines (default: beside --out, else standard output).",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes sharing the registrants (same decisions and reviews, in feed order).",
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
    jobs,
    trust,
) -> None:
    """Replay a feed file through the core, in-process, and write decisions."""
    import json

    from connectors.feed import read_feed
    from engine.replay import default_rejections_path, default_reviews_path, replay

    reviews = reviews_file(reviews_path)
    pipeline = history_pipeline(feed, config_path, models_dir, trust.at, trust.overrides())
    if out_path and not rejected_path:
        rejected_path = default_rejections_path(out_path)
    if reviews is not None and out_path and not reviews_out_path:
        reviews_out_path = default_reviews_path(out_path)
    dec = open(out_path, "wb") if out_path else sys.stdout.buffer  # noqa: SIM115
    rej = open(rejected_path, "wb") if rejected_path else None  # noqa: SIM115
    rev = open(reviews_out_path, "wb") if reviews_out_path else sys.stdout.buffer  # noqa: SIM115
    try:
        summary = replay(pipeline, read_feed(feed), dec, rej, reviews=reviews, reviews_out=rev,
                         jobs=jobs)
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

@main.command("train")
@click.option("--orders", "feed", required=True, type=click.Path(dir_okay=False),
              help="History feed file (JSON lines, as som replay reads).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the model artifacts and their manifest.")
@click.option("--until", "until", help="Train only on orders signed before this ISO-8601 time.")
@CONFIG_OPTION
@trust_options
def train_cmd(feed, out_dir, until, config_path, trust) -> None:
    """Fit peer baselines and per-peer-group isolation forests on a history feed."""
    import json

    from connectors.feed import read_feed
    from models.train import train

    if not Path(feed).is_file():
        raise click.BadParameter(f"feed file {feed} does not exist", param_hint="--orders")
    overrides = trust.overrides()
    overrides["verification"]["time_rules_at"] = "signed"  # a feed is history
    overrides["scoring"] = {"models_dir": ""}  # features never depend on older artifacts
    settings = settings_from(config_path, **overrides)
    pipeline = load_pipeline(settings, trust.at)
    try:
        manifest = train(pipeline, read_feed(feed), out_dir, until=parse_at(until, "--until"),
                         quantile=settings.scoring.iforest_quantile)
    except ValueError as exc:
        raise click.ClickException(f"cannot train: {exc}") from None
    click.echo(json.dumps({"out": str(out_dir), "version": manifest["version"],
                           "training_window": manifest["training_window"],
                           "peer_groups": len(manifest["peer_groups"])}))


for _command in (compare_cmd, explain_cmd, holds_cmd, review_cmd, verify_cmd, certs, sors_cmd):
    main.add_command(_command)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
