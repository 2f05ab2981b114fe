"""The commands an officer or investigator runs on single orders and messages.

``som explain`` (every finding behind one decision), ``som review`` (publish an officer's
review of a hold), ``som verify`` (CSOS checks of message files) and ``som certs
expiring``. ``engine.cli`` adds them to the ``som`` group.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from engine.cli_options import (
    CONFIG_OPTION,
    FEEDS_OPTION,
    history_pipeline,
    messages_for,
    models_option,
    reviews_file,
    reviews_option,
    settings_from,
    trust_options,
    verifier_for,
)

__all__ = ["certs", "explain_cmd", "review_cmd", "verify_cmd"]


@click.command("explain")
@click.argument("feed", type=click.Path(dir_okay=False))
@click.argument("order_number")
@click.option(
    "--dea",
    "purchaser_dea",
    default=None,
    help="Purchaser DEA number (when purchasers reuse an order number).",
)
@CONFIG_OPTION
@models_option("Trained model artifacts (som train), as the worker used them.")
@reviews_option("Officers' reviews to apply in time, as in `som replay --reviews`.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@trust_options
def explain_cmd(
    feed,
    order_number,
    purchaser_dea,
    config_path,
    models_dir,
    reviews_path,
    as_json,
    trust,
) -> None:
    """Every finding behind one order's decision, the ones that did not hold included.

    Replays FEED through the core up to ORDER_NUMBER (the feed as the worker read it, with
    the same configuration and models: the decision's config_version and model_version
    say which) and prints its decision with each score, limit, factor and sentence.
    """
    import json

    from connectors.feed import read_feed
    from engine.explain import explain_order, format_rows

    reviews = reviews_file(reviews_path)
    pipeline = history_pipeline(
        feed,
        config_path,
        models_dir,
        trust.at,
        trust.overrides(),
    )
    found = explain_order(pipeline, read_feed(feed), order_number, purchaser_dea, reviews)
    if not found:
        who = f" from {purchaser_dea}" if purchaser_dea else ""
        raise click.BadParameter(
            f"no message for order {order_number}{who} in {feed}", param_hint="ORDER_NUMBER"
        )
    for ex in found:
        if as_json:
            click.echo(json.dumps(ex.to_dict()))
            continue
        o = ex.outcome
        if hasattr(o, "decision"):
            click.echo(
                f"{o.decision} {o.order_number} purchaser {o.purchaser_dea} signed "
                f"{o.signed_at}  {o.model_version} {o.config_version}"
            )
            click.echo(
                format_rows(ex.findings)
                if ex.findings
                else "(a redelivery: the decision recorded for the first delivery)"
            )
        else:
            click.echo(
                f"REJECTED {o.order_number} purchaser {o.purchaser_dea}: {o.reason}: {o.detail}"
            )
        click.echo("")


@click.command("review")
@click.option("--order", "order_number", required=True, help="Order number of the held order.")
@click.option("--dea", "purchaser_dea", required=True, help="Purchaser DEA number.")
@click.option(
    "--outcome",
    type=click.Choice(["cleared", "reported"]),
    required=True,
    help="cleared: suspicion dispelled, it may ship; reported: reported to DEA.",
)
@click.option("--reviewer", required=True, help="The case system's id of the officer.")
@click.option("--note", default="", help="Free text for the audit trail.")
@click.option(
    "--at",
    "reviewed_at",
    default=None,
    help="When the review was decided (ISO-8601 with offset; default: now).",
)
@click.option("--broker", default=None, help="Kafka URL (default: [kafka] broker).")
@click.option(
    "--print",
    "print_only",
    is_flag=True,
    help="Write the message to standard output (a line for `som replay "
    "--reviews`) instead of publishing it.",
)
@CONFIG_OPTION
def review_cmd(
    order_number,
    purchaser_dea,
    outcome,
    reviewer,
    note,
    reviewed_at,
    broker,
    print_only,
    config_path,
) -> None:
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

    body = {
        "order_number": order_number,
        "purchaser_dea": purchaser_dea,
        "outcome": outcome,
        "reviewed_at": reviewed_at
        or datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "reviewer": reviewer,
    }
    if note:
        body["note"] = note
    raw = json.dumps(body, separators=(",", ":")).encode()
    try:
        parse_review(raw)
    except Rejected as exc:  # name the flag behind the field
        flag = {
            "order_number": "--order",
            "purchaser_dea": "--dea",
            "reviewed_at": "--at",
            "reviewer": "--reviewer",
            "note": "--note",
        }
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
        raise click.ClickException(
            f"could not publish to {k.reviews_topic} at {k.broker}: {type(exc).__name__}: {exc}"
        ) from None
    click.echo(json.dumps({"topic": k.reviews_topic, **where, "review": body}))


@click.command("verify")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@FEEDS_OPTION
@CONFIG_OPTION
@trust_options
def verify_cmd(
    files,
    feeds,
    config_path,
    trust,
) -> None:
    """Verify signed order messages; one JSON line per message. Exit 1 if any is rejected.

    A FILE holds one message (DER, PEM or base64 CMS, a JSON envelope, or a paper
    order). Files are judged at receipt (now, per verification.time_rules_at); feed
    lines are history, judged as of their signing time. --at fixes the time for both.
    """
    import json

    from engine.verify_files import result_row, verify_items

    settings = settings_from(config_path, **trust.overrides())
    items = messages_for(files, feeds, trust.at, settings)
    verifier = verifier_for(settings)
    rejected = 0
    for name, outcome in verify_items(verifier, items):
        row = result_row(name, outcome)
        rejected += row["status"] == "rejected"
        click.echo(json.dumps(row))
    sys.exit(1 if rejected else 0)


@click.group()
def certs() -> None:
    """Purchaser certificates seen in verified orders."""


@certs.command("expiring")
@click.option(
    "--days",
    type=click.FloatRange(min=0),
    default=45.0,
    show_default=True,
    help="Report certificates expiring within this many days (DEA advises 45).",
)
@FEEDS_OPTION
@CONFIG_OPTION
@trust_options
def certs_expiring(
    days,
    feeds,
    config_path,
    trust,
) -> None:
    """List purchasers whose certificate expires within --days of --at (default: now)."""
    import json

    from engine.cert_watch import CertExpiryWatch
    from engine.verify_files import verify_items

    overrides = trust.overrides()
    settings = settings_from(config_path, **overrides)
    now = trust.at or datetime.now(UTC)
    if not feeds:
        raise click.UsageError("name at least one --feed FILE to read certificates from")
    items = messages_for((), feeds, None, settings)
    verifier = verifier_for(settings)
    watch = CertExpiryWatch(keep_ids=True)
    for _, outcome in verify_items(verifier, items):
        if not isinstance(outcome, Exception):
            watch.observe_order(outcome)
    soon = watch.expiring(now, days)
    for entry in soon:
        click.echo(json.dumps(entry.to_dict()))
    summary = {
        "expiring": len(soon),
        "within_days": days,
        "certificates": len(watch),
        "at": now.isoformat().replace("+00:00", "Z"),
    }
    click.echo(json.dumps(summary))
