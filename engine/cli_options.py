"""What the ``som`` commands share: the config option, trust flags, times, loading the core.

Each helper turns a user's mistake (a missing file, a bad time, a bad key) into a usage
error that names the flag or file, before any work starts.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import click

from config import ConfigError, Settings, load_settings

__all__ = [
    "CONFIG_OPTION",
    "FEEDS_OPTION",
    "TrustFlags",
    "models_option",
    "reviews_option",
    "history_pipeline",
    "json_lines_file",
    "load_pipeline",
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


FEEDS_OPTION = click.option(
    "--feed",
    "feeds",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="A feed file (JSON lines, one message per line); repeatable.",
)


def models_option(help_text: str):
    """``--models DIR``: the trained artifacts of ``som train``."""
    return click.option("--models", "models_dir", type=click.Path(file_okay=False), help=help_text)


def reviews_option(help_text: str):
    """``--reviews FILE``: officers' reviews, one JSON object per line."""
    return click.option(
        "--reviews", "reviews_path", type=click.Path(dir_okay=False), help=help_text
    )


def settings_from(config_path: str | None, **overrides: dict) -> Settings:
    """Load the config and apply flag overrides; a bad file or key exits 2 with the reason."""
    try:
        settings = load_settings(config_path)
        return settings.with_overrides(**overrides) if overrides else settings
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class TrustFlags:
    """The trust flags of one command, passed to it as ``trust``."""

    trust_dir: str | None
    intermediates_dir: str | None
    crl_dir: str | None
    catalog_path: str | None
    supplier_dea: str | None
    at_time: str | None

    def overrides(self) -> dict:
        """Settings overrides; a missing folder or file names its flag (usage error)."""
        return trust_overrides(
            self.trust_dir,
            self.intermediates_dir,
            self.crl_dir,
            self.catalog_path,
            self.supplier_dea,
        )

    @property
    def at(self) -> datetime | None:
        """``--at`` as an aware time (None: not given); a bad time names the flag."""
        return parse_at(self.at_time)


_TRUST_KEYS = (
    "trust_dir",
    "intermediates_dir",
    "crl_dir",
    "catalog_path",
    "supplier_dea",
    "at_time",
)


def trust_options(func):
    """The trust options shared by verify, replay, train, explain and certs (DESIGN.md
    3.5); the command gets them as one ``trust: TrustFlags`` argument."""

    @functools.wraps(func)
    def command(*args, **kwargs):
        trust = TrustFlags(*(kwargs.pop(k) for k in _TRUST_KEYS))
        return func(*args, trust=trust, **kwargs)

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
        command = opt(command)
    return command


def parse_at(value: str | None, flag: str = "--at") -> datetime | None:
    """An ISO-8601 time given to ``flag``, UTC unless it says otherwise."""
    if not value:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO-8601 time", param_hint=flag) from None
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
    """The messages of a reviews file, or None without one: a line per message, as in a
    feed file (a JSON object, or a JSON string holding the base64 of a CMS-signed review)."""
    from connectors.feed import read_feed

    if not path:
        return None
    if not Path(path).is_file():
        raise click.BadParameter(f"reviews file {path} does not exist", param_hint="--reviews")
    return list(read_feed(path))


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


def json_lines_file(path: str, flag: str) -> list[dict]:
    """Records of a JSON-lines file; a missing file or a bad line names the flag and line."""
    import json

    if not Path(path).is_file():
        raise click.BadParameter(f"file {path} does not exist", param_hint=flag)
    records = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            if not isinstance(record, dict):
                raise click.BadParameter(f"{path} line {n} is not a JSON object", param_hint=flag)
            records.append(record)
    return records
