"""The CSOS commands: ``som verify`` (every check of message files) and ``som certs
expiring`` (purchasers whose certificates expire soon). ``engine.cli`` adds them to the
``som`` group.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from config import Settings
from engine.cli_options import (
    CONFIG_OPTION,
    FEEDS_OPTION,
    settings_from,
    trust_options,
    verifier_for,
)

__all__ = ["certs", "verify_cmd"]


def messages_for(files, feeds, at, settings: Settings):
    """Check that inputs exist (exit 2 naming the file), then yield verification items."""
    from engine.verify_files import items_from

    if not files and not feeds:
        raise click.UsageError("name at least one message FILE or --feed FILE")
    for name in (*files, *feeds):
        if not Path(name).is_file():
            raise click.UsageError(f"file {name} does not exist")
    received = datetime.now(UTC) if settings.verification.time_rules_at == "received" else None
    return items_from(files, feeds, at or received, at)  # a feed is history: signing time


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
