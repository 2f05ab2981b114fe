"""The commands a compliance officer or investigator runs on the engine's records.

``som explain`` (every finding behind one decision), ``som holds`` (the held orders no
review has settled: an officer's queue), ``som sors`` (report rows for the orders
officers reported to DEA) and ``som compare`` (the orders a threshold change would flip,
from two backtests). ``engine.cli`` adds them to the ``som`` group; the
CSOS commands are in ``engine.cli_csos``, ``som review`` in ``engine.cli_review``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from engine.cli_options import (
    CONFIG_OPTION,
    history_pipeline,
    json_lines_file,
    models_option,
    parse_at,
    reviews_file,
    reviews_option,
    settings_from,
    trust_options,
)

__all__ = ["compare_cmd", "explain_cmd", "holds_cmd", "sors_cmd"]

DECISIONS_OPTION = click.option(
    "--decisions",
    "decisions_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Decision records, JSON lines (the decisions topic, or som replay --out).",
)
REVIEWS_APPLIED_OPTION = click.option(
    "--reviews-applied",
    "reviews_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Applied-review records, JSON lines (reviews.applied, or som replay's "
    "DECISIONS.reviews.jsonl).",
)
OUT_OPTION = click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False),
    help="Rows as JSON lines (default: standard output).",
)


def _write_rows(rows: list[dict], out_path: str | None) -> None:
    import json

    out = open(out_path, "w", encoding="utf-8") if out_path else sys.stdout  # noqa: SIM115
    try:
        for row in rows:
            out.write(json.dumps(row) + "\n")
    finally:
        if out_path:
            out.close()


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


@click.command("sors")
@click.argument("feed", type=click.Path(dir_okay=False))
@DECISIONS_OPTION
@REVIEWS_APPLIED_OPTION
@OUT_OPTION
@click.option(
    "--catalog",
    "catalog_path",
    type=click.Path(dir_okay=False),
    help="Product catalog CSV (default: [catalog] path).",
)
@CONFIG_OPTION
def sors_cmd(feed, decisions_path, reviews_path, out_path, catalog_path, config_path) -> None:
    """SORS report rows for the orders officers reported to DEA (review outcome reported).

    Joins each order's standing review with its decision and its signed message in FEED
    (the feed as the worker read it): lines, receipt date, reasons, reporter. Exit 1
    when a reported order's decision or message is missing (named on standard error).
    """
    from connectors.catalog import Catalog
    from connectors.feed import read_feed
    from engine.sors import sors_rows

    if not Path(feed).is_file():
        raise click.BadParameter(f"feed file {feed} does not exist", param_hint="FEED")
    if catalog_path and not Path(catalog_path).is_file():
        raise click.BadParameter(f"file {catalog_path} does not exist", param_hint="--catalog")
    reviews = json_lines_file(reviews_path, "--reviews-applied")
    decisions = json_lines_file(decisions_path, "--decisions")
    settings = settings_from(config_path)
    try:
        catalog = Catalog.load(catalog_path or settings.resolve(settings.catalog.path))
    except (OSError, ValueError) as exc:
        raise click.UsageError(f"catalog: {exc}") from None
    try:
        rows, problems = sors_rows(reviews, decisions, read_feed(feed), catalog)
    except ValueError as exc:  # a review record without its fields
        raise click.BadParameter(str(exc), param_hint="--reviews-applied") from None
    _write_rows(rows, out_path)
    for problem in problems:
        click.echo(f"som sors: {problem}", err=True)
    click.echo(
        f"som sors: {len(rows)} report rows, {len(problems)} reported orders missing", err=True
    )
    sys.exit(1 if problems else 0)


@click.command("holds")
@DECISIONS_OPTION
@REVIEWS_APPLIED_OPTION
@click.option(
    "--at", "at", default=None, help="Judge waiting times at this ISO-8601 time (default: now)."
)
@click.option(
    "--due-days",
    type=click.FloatRange(min=0),
    default=7.0,
    show_default=True,
    help="A hold waiting longer is past due (85 FR 69282, proposed: 7 days).",
)
@OUT_OPTION
def holds_cmd(decisions_path, reviews_path, at, due_days, out_path) -> None:
    """Held orders that no review has settled, the longest waiting first.

    One JSON line per open hold (order, purchaser, held since, days waiting, due by,
    past due or not, reasons); a count on standard error. A hold is settled by its
    standing review, cleared or reported, as the engine applies reviews.
    """
    from datetime import UTC, datetime

    from engine.holds import open_holds
    from engine.records import BadRecord

    now = parse_at(at) or datetime.now(UTC)
    reviews = json_lines_file(reviews_path, "--reviews-applied")
    decisions = json_lines_file(decisions_path, "--decisions")
    try:
        rows = open_holds(decisions, reviews, now, due_days)
    except BadRecord as exc:
        hint = "--reviews-applied" if exc.source == "reviews" else "--decisions"
        raise click.BadParameter(str(exc), param_hint=hint) from None
    _write_rows(rows, out_path)
    late = [r for r in rows if r["overdue"]]
    oldest = f", the oldest waiting {rows[0]['waiting_days']:g} days" if rows else ""
    click.echo(f"som holds: {len(rows)} open holds, {len(late)} past due{oldest}", err=True)


@click.command("compare")
@click.argument("before", type=click.Path(dir_okay=False))
@click.argument("after", type=click.Path(dir_okay=False))
@OUT_OPTION
def compare_cmd(before, after, out_path) -> None:
    """The orders whose decision differs between two backtests of one feed.

    BEFORE and AFTER are decision files (som replay --out) of the same feed with the
    current and a proposed configuration or models. One JSON line per changed order
    (the reasons on both sides); a summary on standard error, last as one JSON line:
    orders compared, holds before and after, the orders released and held by the change
    counted by reason, and both sides' config and model versions.
    """
    import json

    from engine.compare import compare_decisions
    from engine.records import BadRecord

    records = {
        "before": json_lines_file(before, "BEFORE"),
        "after": json_lines_file(after, "AFTER"),
    }
    try:
        summary, changed = compare_decisions(records["before"], records["after"])
    except BadRecord as exc:
        raise click.BadParameter(str(exc), param_hint=exc.source.upper()) from None
    _write_rows(changed, out_path)
    holds = summary["holds"]
    click.echo(
        f"som compare: {summary['compared']} orders in both, holds {holds['before']} -> "
        f"{holds['after']}: {sum(summary['released_now'].values())} released, "
        f"{sum(summary['held_now'].values())} newly held",
        err=True,
    )
    click.echo(json.dumps(summary), err=True)
