"""``som review``: publish an officer's review of a held order, signed or not.

For teams whose case-management system does not send reviews itself; ``engine.cli`` adds
it to the ``som`` group.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from engine.cli_options import CONFIG_OPTION, settings_from

__all__ = ["review_cmd"]


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
    "--sign-cert",
    type=click.Path(dir_okay=False, exists=True),
    help="Sign the review: the signer's certificate, then its chain (PEM).",
)
@click.option(
    "--sign-key",
    type=click.Path(dir_okay=False, exists=True),
    help="The signer's unencrypted private key (PEM), with --sign-cert.",
)
@click.option(
    "--sign-as",
    type=click.Choice(["json", "cms"]),
    default="json",
    show_default=True,
    help="A signed review's envelope: the JSON envelope, or CMS SignedData as "
    "`openssl cms -sign` writes it (DER; printed as a feed line: base64 in a JSON string).",
)
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
    sign_cert,
    sign_key,
    sign_as,
    print_only,
    config_path,
) -> None:
    """Publish an officer's review of a held order to the reviews topic.

    For teams without a case-system integration: the message is the one the case system
    would send, keyed by the purchaser's DEA number; the worker answers on
    reviews.applied (or orders.rejected).
    """
    import asyncio
    import base64
    import json

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
    if bool(sign_cert) != bool(sign_key):
        raise click.UsageError("--sign-cert and --sign-key go together")
    if not sign_cert and sign_as != "json":
        raise click.UsageError("--sign-as needs --sign-cert and --sign-key")
    if sign_cert:
        raw = _signed_review(raw, sign_cert, sign_key, sign_as)
    if print_only:  # a line of a reviews file (read like a feed file)
        line = json.dumps(base64.b64encode(raw).decode()) if sign_as == "cms" else raw.decode()
        click.echo(line)
        return
    settings = settings_from(config_path, kafka={"broker": broker})
    k = settings.kafka
    try:
        where = asyncio.run(publish_one(k.broker, k.reviews_topic, purchaser_dea.encode(), raw))
    except Exception as exc:
        raise click.ClickException(
            f"could not publish to {k.reviews_topic} at {k.broker}: {type(exc).__name__}: {exc}"
        ) from None
    click.echo(
        json.dumps({"topic": k.reviews_topic, **where, "review": body, "signed": bool(sign_cert),
                    "envelope": sign_as if sign_cert else None})
    )


def _signed_review(raw: bytes, cert_path: str, key_path: str, form: str) -> bytes:
    """The review signed with the officer's key: a one-line JSON envelope, or CMS DER."""
    import json

    from connectors.signing import load_identity, sign_cms, sign_json_envelope

    try:
        who = load_identity(Path(cert_path).read_bytes(), Path(key_path).read_bytes())
    except ValueError as exc:
        flag = "--sign-key" if str(exc).startswith("key") else "--sign-cert"
        raise click.BadParameter(str(exc), param_hint=flag) from None
    if form == "cms":
        return sign_cms(raw, who)
    return json.dumps(sign_json_envelope(raw, who), separators=(",", ":")).encode()
