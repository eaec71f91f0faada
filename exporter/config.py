"""Typed settings: defaults, then a YAML file, then ``MODEL_EXPORTER_*`` environment variables.

Every option has a working default, so ``model-exporter serve`` needs no file. An invalid value
fails start-up with a :class:`~exporter.errors.ConfigError` naming the key and the value.
Nested keys map to environment variables with ``__``: ``drift.sample_size`` is
``MODEL_EXPORTER_DRIFT__SAMPLE_SIZE``; lists are JSON (``MODEL_EXPORTER_WINDOWS='["5m","1h"]'``).
"""

from __future__ import annotations

import math
import re
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from exporter.errors import ConfigError
from exporter.typedefs import ClassValue, Correction, ReferencePolicy, Task

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(value: object) -> float:
    """Seconds in a Prometheus-style duration (``"90s"``, ``"5m"``, ``"1h30m"``) or a number.

    >>> parse_duration("1h30m"), parse_duration(15)
    (5400.0, 15.0)
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as '5m' or a number of seconds, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        pos, seconds = 0, 0.0
        for match in _DURATION.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos != len(text) or not text:
            raise ValueError(
                f"expected a duration such as '30s', '5m', '1h' or '1d', got {value!r}"
            )
    else:
        raise ValueError(f"expected a duration such as '5m' or a number of seconds, got {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"duration must be finite and >= 0, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest Prometheus-style spelling of a duration: used as the ``window`` label.

    >>> format_duration(3600), format_duration(5400), format_duration(0.5)
    ('1h', '1h30m', '500ms')
    """
    ms = round(seconds * 1000)
    parts = []
    for unit, size in (
        ("w", 604_800_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ):
        if ms >= size:
            count, ms = divmod(ms, size)
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


Duration = Annotated[float, BeforeValidator(parse_duration)]
PositiveDuration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QualitySettings(_Section):
    min_samples: int = Field(
        100, ge=1, description="labeled samples a window needs before quality values are exported"
    )


class DriftSettings(_Section):
    min_samples: int = Field(
        100,
        ge=2,  # a KS p-value needs n1*n2/(n1+n2) >= 1
        description="values a feature needs in window and reference before drift is exported",
    )
    sample_size: int = Field(
        10_000, ge=10, le=1_000_000, description="max window values per feature used by drift tests"
    )
    reference_size: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="first N predictions of a version become its reference",
    )
    reference_max_values: int = Field(
        100_000,
        ge=1,
        le=10_000_000,
        description="an uploaded reference larger than this is uniformly subsampled",
    )
    refresh_interval: Duration = Field(
        5.0, ge=0, description="drift is recomputed at most this often, off the request path"
    )
    reference: ReferencePolicy = Field(
        "first_events",
        description="without an uploaded reference: the first N predictions of each version, "
        "or the window before the current one (a rolling reference)",
    )
    bins: int = Field(
        10, ge=2, le=100, description="PSI and Jensen-Shannon bins (reference quantiles)"
    )
    max_categories: int = Field(
        100, ge=2, le=10_000, description="categories tracked per feature; the rest are pooled"
    )
    correction: Correction = Field(
        "bh", description="multiple-testing correction across a window's features"
    )
    alpha: float = Field(0.05, gt=0, lt=1, description="significance level after correction")
    min_ks_statistic: float = Field(
        0.1,
        ge=0,
        le=1,
        description="a numeric feature (or a regression's predictions or labels) drifts only "
        "if its KS statistic is this large",
    )
    min_psi: float = Field(
        0.1,
        ge=0,
        description="a categorical feature (or a classifier's predictions or labels) drifts "
        "only if its PSI is this large",
    )
    threads: int = Field(2, ge=1, le=32, description="threads sharing one drift computation")


class JoinSettings(_Section):
    prediction_ttl: PositiveDuration = Field(
        86_400.0, description="how long a prediction waits for its label"
    )
    max_pending_predictions: int = Field(100_000, ge=1, description="per model")
    label_ttl: Duration = Field(
        600.0, description="how long a label that arrived before its prediction waits; 0 rejects it"
    )
    max_pending_labels: int = Field(10_000, ge=1, description="per model")


class LimitSettings(_Section):
    max_models: int = Field(20, ge=1)
    max_versions_per_model: int = Field(5, ge=1)
    max_features: int = Field(100, ge=1, description="per model")
    max_classes: int = Field(50, ge=2, description="per model")
    max_batch_events: int = Field(10_000, ge=1)
    max_body_bytes: int = Field(16 * 2**20, ge=1024)
    max_reference_bytes: int = Field(64 * 2**20, ge=1024)
    max_name_length: int = Field(128, ge=8, description="model, version and feature names")
    max_value_length: int = Field(256, ge=8, description="ids, class names, category values")
    max_clock_skew: Duration = Field(
        300.0, description="timestamps further than this in the future are rejected"
    )


class ModelSpec(_Section):
    task: Task
    positive_class: ClassValue | None = Field(
        None, description="binary only; default 1 for int classes, true for bool classes"
    )
    categorical: list[str] = Field(
        default_factory=list, description="features whose numbers are categories (e.g. zip codes)"
    )
    reference: ReferencePolicy | None = Field(
        None, description="overrides drift.reference for this model"
    )
    reference_file: Path | None = Field(
        None, description="CSV or Parquet file loaded at start as the reference of every version"
    )
    reference_prediction_column: str | None = Field(
        None, description="column of reference_file (or of an uploaded CSV) holding predictions"
    )
    reference_label_column: str | None = Field(
        None, description="column of reference_file (or of an uploaded CSV) holding labels"
    )

    @model_validator(mode="after")
    def _positive_only_for_binary(self) -> ModelSpec:
        if self.positive_class is not None and self.task != "binary":
            raise ValueError(
                f"positive_class is only for binary models; this model's task is {self.task!r}"
            )
        return self


_yaml_data: ContextVar[dict[str, Any]] = ContextVar("_yaml_data", default={})  # noqa: B039


class _YamlSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # pragma: no cover - __call__ does the work

    def __call__(self) -> dict[str, Any]:
        return dict(_yaml_data.get())


class Settings(BaseSettings):
    """All options; see the README's example config for each one with its default."""

    model_config = SettingsConfigDict(
        env_prefix="MODEL_EXPORTER_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    host: str = "0.0.0.0"
    port: int = Field(17090, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    windows: list[PositiveDuration] = Field(
        default_factory=lambda: [3600.0], min_length=1, max_length=8
    )
    window_buckets: int = Field(60, ge=1, le=3600)
    default_model_version: str = Field("default", min_length=1)
    auto_register: bool = True
    quality: QualitySettings = QualitySettings()
    drift: DriftSettings = DriftSettings()
    join: JoinSettings = JoinSettings()
    limits: LimitSettings = LimitSettings()
    models: dict[str, ModelSpec] = Field(default_factory=dict)

    @field_validator("windows")
    @classmethod
    def _unique_windows(cls, value: list[float]) -> list[float]:
        labels = [format_duration(v) for v in value]
        if len(set(labels)) != len(labels):
            raise ValueError(f"windows must be distinct, got {labels}")
        return sorted(value)

    @model_validator(mode="after")
    def _models_within_limits(self) -> Settings:
        if len(self.models) > self.limits.max_models:
            raise ValueError(
                f"{len(self.models)} models declared but limits.max_models is "
                f"{self.limits.max_models}"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _YamlSource(settings_cls)

    @property
    def window_labels(self) -> list[str]:
        return [format_duration(w) for w in self.windows]


def _describe(error: Any) -> str:
    key = ".".join(str(p) for p in error["loc"]) or "(top level)"
    value = error.get("input")
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"config key '{key}': {message} (got {shown})"


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Build settings from defaults, the YAML file at ``path``, the environment and overrides.

    Raises :class:`ConfigError` naming every invalid key and its value.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from exc
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(
                f"config file {str(path)!r} must hold a mapping of keys, "
                f"got {type(loaded).__name__}"
            )
        data = loaded
    token = _yaml_data.set(data)
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from None
    finally:
        _yaml_data.reset(token)
