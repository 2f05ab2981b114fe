"""Typed, frozen configuration loaded from TOML and validated at load.

Errors name the file and the dotted key, and say what to do, because a
compliance engineer editing thresholds must not have to read a traceback.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = ["Settings", "ConfigError", "load_settings", "DEFAULT_CONFIG", "FINDING_CODES"]

DEFAULT_CONFIG = Path(__file__).with_name("default.toml")


class ConfigError(ValueError):
    """Configuration unusable; the message names the file and key."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Frozen):
    broker: str = "kafka://127.0.0.1:9092"
    app_id: str = "som"
    input_topic: str = "orders.signed"
    decisions_topic: str = "decisions"
    rejected_topic: str = "orders.rejected"
    rekey_topic: str = "orders.rekeyed"
    reviews_topic: str = "orders.reviews"
    reviews_applied_topic: str = "reviews.applied"
    partitions: int = Field(4, ge=1, le=1024)
    replication_factor: int = Field(1, ge=1)
    batch_size: int = Field(500, ge=1, le=100_000)
    batch_timeout_s: float = Field(0.05, gt=0)
    rebalance_timeout_s: float = Field(5.0, gt=0)
    session_timeout_s: float = Field(10.0, gt=0)
    heartbeat_interval_s: float = Field(1.0, gt=0)
    commit_interval_s: float = Field(1.0, gt=0, le=30)

    def topics(self) -> list[str]:
        """Every topic a worker reads or writes (the ``*_topic`` keys and the table's
        changelog), for creating them with one partition count before it starts."""
        named = [getattr(self, f) for f in type(self).model_fields if f.endswith("_topic")]
        return [*named, f"{self.app_id}-profiles-changelog"]


class VerificationSettings(_Frozen):
    supplier_dea: str = ""
    trust_dir: str = ""
    intermediates_dir: str = ""
    crl_dir: str = ""
    require_chain: bool = True
    time_rules_at: Literal["received", "signed"] = "received"
    max_future_skew_s: float = Field(300.0, ge=0)
    order_max_age_days: float = Field(60.0, gt=0)
    allow_paper: bool = True
    max_message_bytes: int = Field(1_048_576, ge=1024)
    dea_match: Literal["plain", "sha1-serial", "sha256-serial"] = "plain"
    stale_crl: Literal["reject", "warn"] = "reject"
    ship_to_match: Literal["normalized", "exact", "off"] = "normalized"
    ship_to_required: bool = False


class CatalogSettings(_Frozen):
    path: str = "catalog.csv"


FINDING_CODES = (
    "size_own",
    "size_peer",
    "size_repeat_held",
    "frequency_count",
    "split_orders",
    "pattern_new_family",
    "pattern_strength",
    "pattern_strength_mix",
    "pattern_ramp",
    "pattern_volume",
    "pattern_mix",
    "isolation_forest",
    "formula_baseline",
)


class OverrideSettings(_Frozen):
    """Multiply the hold factor of matching findings (< 1 stricter, > 1 looser)."""

    factor: float = Field(gt=0)
    codes: list[str] = []
    schedule: list[str] = []
    family: str = ""
    registrant_type: str = ""
    dea_number: str = ""

    @field_validator("codes")
    @classmethod
    def _known_codes(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if c not in FINDING_CODES]
        if bad:
            raise ValueError(f"unknown finding code(s) {bad}; known: {list(FINDING_CODES)}")
        return v


class ScoringSettings(_Frozen):
    formula_multiplier_schedule_2: float = Field(3.0, gt=0)
    formula_multiplier_schedule_3_5: float = Field(8.0, gt=0)
    formula_window_days: int = Field(365, ge=28, le=730)
    formula_min_history_days: int = Field(28, ge=0)
    hold_on_formula: bool = False
    models_dir: str = ""
    size_min_ratio: float = Field(4.0, gt=1)
    size_max_ratio: float = Field(2.25, gt=0)
    peer_z_threshold: float = Field(5.0, gt=0)
    cold_z_threshold: float = Field(2.5, gt=0)
    repeat_hold_days: int = Field(7, ge=0, le=60)
    repeat_hold_ratio: float = Field(0.8, gt=0)
    frequency_min_excess: float = Field(4.0, ge=0)
    frequency_min_count: int = Field(4, ge=2)
    split_min_excess: float = Field(2.0, gt=0)
    split_ratio: float = Field(3.0, gt=1)
    strength_ratio: float = Field(1.8, gt=1)
    strength_grams_ratio: float = Field(3.0, gt=1)
    strength_mix_ratio: float = Field(4.0, gt=1)
    ramp_ratio: float = Field(1.6, gt=1)
    ramp_single_ratio: float = Field(2.1, gt=1)
    volume_ratio: float = Field(4.5, gt=1)
    volume_single_ratio: float = Field(6.0, gt=1)
    mix_threshold: float = Field(0.5, gt=0, le=1)
    iforest_quantile: float = Field(0.999, gt=0.5, lt=1)
    limits: dict[str, float] = {}
    overrides: list[OverrideSettings] = []

    @field_validator("limits")
    @classmethod
    def _known_limits(cls, v: dict[str, float]) -> dict[str, float]:
        bad = [c for c in v if c not in FINDING_CODES]
        if bad:
            raise ValueError(f"unknown finding code(s) {bad}; known: {list(FINDING_CODES)}")
        if any(x <= 0 for x in v.values()):
            raise ValueError("every limit factor must be > 0")
        return v


class ReviewSettings(_Frozen):
    trust_dir: str = ""
    require_signature: bool = False
    crl_dir: str = ""
    allowed_signers: list[str] = []
    signer_eku: str = Field("", pattern=r"^$|^[0-2](\.(0|[1-9][0-9]*))+$")

    @model_validator(mode="after")
    def _needs_a_ca(self) -> ReviewSettings:
        for key, value in (
            ("require_signature = true", self.require_signature),
            ("crl_dir", self.crl_dir),
            ("allowed_signers", self.allowed_signers),
            ("signer_eku", self.signer_eku),
        ):
            if value and not self.trust_dir:
                raise ValueError(
                    f"{key} needs trust_dir: the CA(s) whose certificates may sign reviews "
                    "(the case-management system's)"
                )
        return self


class WebSettings(_Frozen):
    port: int = Field(6066, ge=0, le=65535)
    metrics: bool = True


class Settings(_Frozen):
    kafka: KafkaSettings = KafkaSettings()
    verification: VerificationSettings = VerificationSettings()
    catalog: CatalogSettings = CatalogSettings()
    scoring: ScoringSettings = ScoringSettings()
    reviews: ReviewSettings = ReviewSettings()
    web: WebSettings = WebSettings()
    source: str = "<defaults>"
    config_version: str = "defaults"

    def resolve(self, relative: str) -> Path:
        """A path from the config, taken relative to the config file's folder."""
        if not relative:
            return Path()
        p = Path(relative).expanduser()
        if p.is_absolute() or self.source.startswith("<"):
            return p
        return Path(self.source).parent / p

    def with_overrides(self, **sections: dict) -> Settings:
        """A copy with some keys replaced, e.g. from CLI flags (validated again)."""
        data = self.model_dump()
        for section, values in sections.items():
            data[section].update({k: v for k, v in values.items() if v is not None})
        try:
            return Settings.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(_explain(exc, "command-line options")) from None


def _explain(exc: ValidationError, where: str) -> str:
    lines = [f"invalid configuration in {where}:"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        lines.append(f"  key {key}: {err['msg']}")
    lines.append("fix the key(s) above; see config/default.toml for every key and its meaning")
    return "\n".join(lines)


def load_settings(path: str | Path | None = None) -> Settings:
    """Load and validate a TOML file (the shipped default when ``path`` is None)."""
    path = Path(path) if path else DEFAULT_CONFIG
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist: pass an existing file to --config")
    raw = path.read_bytes()
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    data["source"] = str(path.resolve())
    data["config_version"] = "cfg-" + hashlib.sha256(raw).hexdigest()[:12]
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, f"config file {path}")) from None
