"""The ``som`` command line. Each command is thin: it parses flags and calls the core."""

from __future__ import annotations

import sys

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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
