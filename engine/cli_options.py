"""What the ``som`` commands share: the config option, trust flags, times, loading the core.

Each helper turns a user's mistake (a missing file, a bad time, a bad key) into a usage
error that names the flag or file, before any work starts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from config import ConfigError, Settings, load_settings

__all__ = [
    "CONFIG_OPTION",
    "history_pipeline",
    "load_pipeline",
    "messages_for",
    "parse_at",
    "reviews_file",
    "settings_from",
    "trust_options",
    "trust_overrides",
    "verifier_for",
]

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


def reviews_file(path: str | None) -> list[bytes] | None:
    """The messages of a reviews file (one JSON object per line), or None without one."""
    if not path:
        return None
    if not Path(path).is_file():
        raise click.BadParameter(f"reviews file {path} does not exist", param_hint="--reviews")
    with open(path, "rb") as fh:
        return [line.strip() for line in fh if line.strip()]


def history_pipeline(feed, config_path, models_dir, judge_at, overrides: dict):
    """The core for replaying FEED as history: time rules as of each order's signing."""
    if not Path(feed).is_file():
        raise click.BadParameter(f"feed file {feed} does not exist", param_hint="FEED")
    overrides["verification"]["time_rules_at"] = "signed"  # a feed is history
    if models_dir:
        overrides["scoring"] = {"models_dir": str(Path(models_dir).resolve())}
    return load_pipeline(settings_from(config_path, **overrides), judge_at)


def verifier_for(settings: Settings):
    """Catalog and Verifier from settings; unusable trust material or catalog exits 2."""
    from connectors.catalog import Catalog
    from engine.verify import Verifier

    try:
        catalog = Catalog.load(settings.resolve(settings.catalog.path))
        base = Path(settings.source).parent if not settings.source.startswith("<") else None
        return Verifier(settings.verification, catalog, base)
    except (ConfigError, ValueError, OSError) as exc:
        raise click.UsageError(str(exc)) from None


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
