"""Typed settings: defaults, then a YAML file, then ``MODEL_EXPORTER_*`` environment variables.

Every option has a working default, so ``model-exporter serve`` needs no file. An invalid value
fails start-up with a :class:`~exporter.errors.ConfigError` naming the key and the value.
Nested keys map to environment variables with ``__``: ``drift.sample_size`` is
``MODEL_EXPORTER_DRIFT__SAMPLE_SIZE``. The environment is read by our own source, not
pydantic-settings' (which decodes every list as JSON and fails with a traceback): a list is
comma-separated (``MODEL_EXPORTER_WINDOWS=5m,1h``), bracketed (``[5m,1h]``) or JSON
(``'["5m","1h"]'``); a mapping or a section is a JSON object (``MODEL_EXPORTER_MODELS='{"fraud":
{"task": "binary"}}'``); anything else is passed as text to the field's validation. Every error is
one line naming the key, the variable it came from and the value.
"""

from __future__ import annotations

import json
import math
import os
import re
import types
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from exporter.comparison import parse_declaration
from exporter.errors import ConfigError, RejectedInput
from exporter.names import ALLOWED, name_problem
from exporter.stats.concept_drift import (
    AdwinSettings,
    DdmSettings,
    PageHinkleyMode,
    PageHinkleySettings,
)
from exporter.stats.concept_drift import ConceptDriftSettings as DetectorSettings
from exporter.typedefs import ClassValue, Correction, ReferencePolicy, Task

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(value: object) -> float:
    """Seconds in a Prometheus-style duration (``"90s"``, ``"5m"``, ``"1h30m"``) or a number.

    >>> parse_duration("1h30m"), parse_duration(15)
    (5400.0, 15.0)
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '5m' or a number of seconds")
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
            raise ValueError("expected a duration such as '30s', '5m', '1h' or '1d'")
    else:
        raise ValueError("expected a duration such as '5m' or a number of seconds")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("duration must be finite and >= 0")
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


def parse_env_list(text: str) -> list[Any]:
    """The items of a list-valued environment variable: JSON, bracketed or comma-separated.

    Items are stripped of spaces and of one pair of quotes; an empty value is an empty list.

    >>> parse_env_list("5m, 1h"), parse_env_list("[5m,'1h']"), parse_env_list('["5m", 3600]')
    (['5m', '1h'], ['5m', '1h'], ['5m', 3600])
    """
    text = text.strip()
    if text.startswith("["):
        try:
            decoded = json.loads(text)
        except ValueError:
            decoded = None
        if isinstance(decoded, list):
            return decoded
        if not text.endswith("]"):
            raise ValueError("a list that starts with '[' must end with ']'")
        text = text[1:-1].strip()
    if not text:
        return []
    items = [item.strip() for item in text.split(",")]
    for position, item in enumerate(items, 1):
        if not item:
            raise ValueError(f"item {position} of the list is empty")
    return [_unquoted(item) for item in items]


def _unquoted(item: str) -> str:
    if len(item) >= 2 and item[0] == item[-1] and item[0] in "'\"":
        return item[1:-1]
    return item


Duration = Annotated[float, BeforeValidator(parse_duration)]
PositiveDuration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QualitySettings(_Section):
    min_samples: int = Field(
        100, ge=1, description="labeled samples a window needs before quality values are exported"
    )
    baseline_tolerance: float = Field(
        0.02,
        ge=0,
        lt=1,
        description="accuracy points the live accuracy may fall below the holdout baseline's "
        "before the baseline's sequential test counts it as worse",
    )
    baseline_mae_tolerance: float = Field(
        0.1,
        ge=0,
        allow_inf_nan=False,
        description="regression: how much worse than the holdout baseline's mean absolute "
        "error the live one may be, as a ratio of it (0.1: 10 % worse), before the baseline's "
        "sequential test counts it as worse",
    )
    rank_bins: int = Field(
        1024,
        ge=16,
        le=8192,
        description="bins (equal in log-odds) of the scores behind ROC AUC and average precision "
        "once a window holds more than max_exact_scores scored outcomes; each costs 16 bytes "
        "per scored class per bucket",
    )
    max_exact_scores: int = Field(
        10_000,
        ge=0,
        le=1_000_000,
        description="scored outcomes a window keeps for exact ROC AUC and average precision; "
        "beyond it they come from rank_bins, with model_roc_auc_max_error and "
        "model_average_precision_max_error",
    )
    calibration_bins: int = Field(
        10,
        ge=2,
        le=100,
        description="equal bins of [0, 1] of the reliability curve and the expected "
        "calibration error",
    )
    probability_tolerance: float = Field(
        0.01,
        gt=0,
        lt=0.5,
        description="how far an event's probabilities may sum from 1 (they are then divided "
        "by their sum); further is refused (invalid_score)",
    )


class SequentialComparisonSettings(_Section):
    """The always-valid statistics since a comparison started (exporter.stats.sequential)."""

    alpha: float = Field(
        0.05, gt=0, lt=1, description="level of the confidence sequence (1 - alpha coverage)"
    )
    planned_labels_per_arm: int = Field(
        1000, ge=1, description="labeled predictions per arm at which the sequence is tightest"
    )
    min_samples: int = Field(
        100,
        ge=1,
        description="burn-in: labeled predictions each arm needs since the start before the "
        "p-value, difference and bounds are exported",
    )
    min_expected: float = Field(
        10.0,
        ge=0,
        allow_inf_nan=False,
        description="burn-in of accuracy: the smallest expected cell of the 2x2 table (arm x "
        "right/wrong) needed",
    )


class ComparisonSettings(_Section):
    min_samples: int = Field(
        100,
        ge=2,  # Welch's test needs two errors per arm for a variance
        description="labeled predictions each arm (champion and challenger) needs in a window "
        "before the window's comparison values are exported",
    )
    sequential: SequentialComparisonSettings = SequentialComparisonSettings()


class DriftSettings(_Section):
    min_samples: int = Field(
        100,
        ge=2,  # a KS p-value needs n1*n2/(n1+n2) >= 1
        description="values a feature needs in window and reference before drift is exported",
    )
    sample_size: int = Field(
        5_000, ge=10, le=1_000_000, description="max window values per feature used by drift tests"
    )
    reference_size: int = Field(
        10_000,
        ge=1,
        le=1_000_000,
        description="first N predictions of a version become its reference (docs/drift-alarms.md)",
    )
    reference_max_values: int = Field(
        10_000,
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
    alpha: float = Field(
        1e-6,
        gt=0,
        lt=1,
        description="a feature drifts when its p-value after the correction is at most this: "
        "about the chance that one look at a stationary window raises a false alarm "
        "(docs/drift-alarms.md)",
    )
    release_alpha: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="a drifted feature stays drifted until its p-value after the correction "
        "exceeds this (hysteresis; at least alpha; default the larger of 1e-3 and alpha)",
    )
    min_ks_statistic: float = Field(
        0.0,
        ge=0,
        le=1,
        description="a numeric feature (or a regression's predictions or labels) drifts only "
        "if its KS statistic is this large",
    )
    min_psi: float = Field(
        0.0,
        ge=0,
        description="a categorical feature (or a classifier's predictions or labels) drifts "
        "only if its PSI is this large",
    )
    threads: int = Field(2, ge=1, le=32, description="threads sharing one drift computation")

    @property
    def release_level(self) -> float:
        """``release_alpha``, or its default: the larger of 1e-3 and ``alpha``."""
        return self.release_alpha if self.release_alpha is not None else max(1e-3, self.alpha)

    @model_validator(mode="after")
    def _release_not_below_alpha(self) -> DriftSettings:
        if self.release_alpha is not None and self.release_alpha < self.alpha:
            raise ValueError(
                f"release_alpha ({self.release_alpha}) must be at least alpha ({self.alpha})"
            )
        return self


_ADWIN, _DDM, _PH = AdwinSettings(), DdmSettings(), PageHinkleySettings()


class AdwinParameters(_Section):
    """River's ``drift.ADWIN`` parameters (exporter.stats.concept_drift)."""

    delta: float = Field(
        _ADWIN.delta, gt=0, lt=1, description="confidence of the cut test: smaller is slower"
    )
    clock: int = Field(_ADWIN.clock, ge=1, description="test the cuts every clock-th outcome")
    max_buckets: int = Field(
        _ADWIN.max_buckets, ge=2, description="buckets per size before the two oldest merge"
    )
    min_window_length: int = Field(
        _ADWIN.min_window_length, ge=1, description="outcomes each side of a cut needs"
    )
    grace_period: int = Field(
        _ADWIN.grace_period, ge=0, description="no test until the window holds more outcomes"
    )


class DdmParameters(_Section):
    """River's ``drift.binary.DDM`` parameters: classifiers only (errors are 0 or 1)."""

    warm_start: int = Field(_DDM.warm_start, ge=0, description="outcomes before the first test")
    warning_threshold: float = Field(
        _DDM.warning_threshold,
        gt=0,
        allow_inf_nan=False,
        description="standard deviations above the best error rate that make a warning",
    )
    drift_threshold: float = Field(
        _DDM.drift_threshold,
        gt=0,
        allow_inf_nan=False,
        description="standard deviations above the best error rate that make a detection",
    )

    @model_validator(mode="after")
    def _warning_before_drift(self) -> DdmParameters:
        if self.warning_threshold > self.drift_threshold:
            raise ValueError(
                f"warning_threshold ({self.warning_threshold}) must be at most "
                f"drift_threshold ({self.drift_threshold})"
            )
        return self


class PageHinkleyParameters(_Section):
    """River's ``drift.PageHinkley`` parameters."""

    min_instances: int = Field(_PH.min_instances, ge=1, description="outcomes before the test")
    delta: float = Field(
        _PH.delta, ge=0, allow_inf_nan=False, description="change tolerated per outcome"
    )
    threshold: float = Field(
        _PH.threshold,
        gt=0,
        allow_inf_nan=False,
        description="cumulative deviation that makes a detection (lambda)",
    )
    alpha: float = Field(_PH.alpha, gt=0, le=1, description="forgetting factor of the sums")
    mode: PageHinkleyMode = Field(
        _PH.mode, description="detect rises of the error ('up'), falls ('down') or 'both'"
    )


class ConceptDriftConfig(_Section):
    """The concept-drift detector on each version's error stream (exporter.concept_watch)."""

    detector: Literal["adwin", "ddm", "page_hinkley", "off"] = Field(
        "adwin",
        description="run on every joined outcome (1/0 wrong/right, or a regression's absolute "
        "error); ddm is for classifiers only",
    )
    adwin: AdwinParameters = AdwinParameters()
    ddm: DdmParameters = DdmParameters()
    page_hinkley: PageHinkleyParameters = PageHinkleyParameters()

    def detector_settings(self) -> DetectorSettings | None:
        """The chosen detector's settings (None when ``off``)."""
        if self.detector == "adwin":
            return AdwinSettings(**self.adwin.model_dump())
        if self.detector == "ddm":
            return DdmSettings(**self.ddm.model_dump())
        if self.detector == "page_hinkley":
            return PageHinkleySettings(**self.page_hinkley.model_dump())
        return None

    def merged(self, override: Mapping[str, Any]) -> ConceptDriftConfig:
        """These settings with a model's ``concept_drift`` keys laid over them (nested
        sections key by key); ``ValidationError`` if the result is invalid."""
        data = self.model_dump()
        for key, value in override.items():
            if isinstance(value, Mapping) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return ConceptDriftConfig.model_validate(data)


class JoinSettings(_Section):
    prediction_ttl: PositiveDuration = Field(
        86_400.0, description="how long a prediction waits for its label"
    )
    max_pending_predictions: int = Field(50_000, ge=1, description="per model")
    label_ttl: Duration = Field(
        600.0, description="how long a label that arrived before its prediction waits; 0 rejects it"
    )
    max_pending_labels: int = Field(10_000, ge=1, description="per model")


class LimitSettings(_Section):
    max_series: int = Field(
        50_000,
        ge=0,
        description="series of the models' families per scrape; beyond, /metrics leaves out "
        "the largest (model, family) chunks, never a family a shipped alert uses, and says so "
        "(model_exporter_scrape_series_dropped); 0: no budget",
    )
    max_models: int = Field(10, ge=1)
    max_versions_per_model: int = Field(3, ge=1)
    max_features: int = Field(100, ge=1, description="per model")
    max_classes: int = Field(20, ge=2, description="per model")
    max_batch_events: int = Field(10_000, ge=1)
    max_body_bytes: int = Field(16 * 2**20, ge=1024)
    max_reference_bytes: int = Field(64 * 2**20, ge=1024)
    max_name_length: int = Field(128, ge=8, description="model, version and feature names")
    max_value_length: int = Field(256, ge=8, description="ids, class names, category values")
    max_clock_skew: Duration = Field(
        300.0, description="timestamps further than this in the future are rejected"
    )
    idle_model_ttl: Duration = Field(
        7 * 86400.0,
        description="a model or version with no prediction or label accepted for this long, and "
        "nothing waiting in its join, is removed (a declared model stays declared); 0: never",
    )


_TOKEN = re.compile(r"[\x21-\x2b\x2d-\x7e]+")  # visible ASCII, no comma (a list separator)


class AuthSettings(_Section):
    """Who may write and read (exporter.auth); the files are read when the app is built."""

    write_tokens_file: Path | None = Field(
        None,
        description="bearer tokens of the write API, one a line, each optionally followed by "
        "the models it may write ('tok-abc fraud,churn'); '#' starts a comment. Without any "
        "write token, writes are accepted from loopback peers only",
    )
    write_tokens: list[str] = Field(
        default_factory=list, description="more write tokens, for every model"
    )
    metrics_tokens_file: Path | None = Field(
        None,
        description="bearer tokens that may read /metrics and the status pages, one a line; "
        "with these (or basic_auth_users of web_config), reads need credentials",
    )
    metrics_tokens: list[str] = Field(default_factory=list, description="more read tokens")

    @field_validator("write_tokens", "metrics_tokens")
    @classmethod
    def _tokens(cls, value: list[str]) -> list[str]:
        for position, token in enumerate(value, 1):
            if not _TOKEN.fullmatch(token):
                raise ValueError(
                    f"token {position} is empty or holds a space, a comma or a character "
                    "outside visible ASCII"
                )
        return value


class StateSettings(_Section):
    """Snapshots of the state, so that a restart loses nothing (exporter.persistence)."""

    path: Path | None = Field(
        None,
        description="file (or existing folder: state.mxs in it) the state is saved to and "
        "restored from; none: no snapshots",
    )
    interval: PositiveDuration = Field(
        30.0, description="seconds between snapshots (and one at shutdown)"
    )


class UiSettings(_Section):
    """The status pages (``GET /``, ``GET /ui/models/{model}``: exporter.ui)."""

    thresholds_file: Path | None = Field(
        None,
        description="YAML of alert thresholds in the format of `model-exporter generate "
        "--thresholds`: the pages colour values by the same rules; none: the shipped ones",
    )
    render_process: bool = Field(
        True,
        description="render the pages in a child process (one, started by the first page), so "
        "that rendering never holds the server's interpreter while it serves /metrics and "
        "ingest; false: in the server's threads",
    )
    render_timeout: PositiveDuration = Field(
        10.0,
        description="a page that takes longer fails (500), and its rendering process is replaced",
    )


#: The most points a history series may hold (exporter.history): 7 days at 1 minute.
MAX_HISTORY_POINTS = 10_080


class HistorySettings(_Section):
    """The in-memory history of the summary values (exporter.history): the pages and
    ``GET /v1/models/{model}/history`` read it."""

    resolution: PositiveDuration = Field(
        60.0,
        description="one point per series per this many whole seconds: the last value recorded "
        "in it (recorded after each drift worker run, so at most every drift.refresh_interval)",
    )
    retention: PositiveDuration = Field(
        86_400.0,
        description="how far back points are kept: retention / resolution points per series "
        f"(8 bytes each), at most {MAX_HISTORY_POINTS:,}",
    )

    @model_validator(mode="after")
    def _whole_slots(self) -> HistorySettings:
        if self.resolution < 1 or self.resolution != int(self.resolution):
            raise ValueError(
                f"resolution must be a whole number of seconds, at least 1s (got "
                f"{format_duration(self.resolution)})"
            )
        points = self.retention / self.resolution
        if points != int(points) or not 2 <= points <= MAX_HISTORY_POINTS:
            raise ValueError(
                f"retention ({format_duration(self.retention)}) must be a whole multiple of "
                f"resolution ({format_duration(self.resolution)}), from 2 to "
                f"{MAX_HISTORY_POINTS:,} of them (got {points:g})"
            )
        return self

    @property
    def points(self) -> int:
        """Points each series keeps: retention / resolution."""
        return int(self.retention // self.resolution)


_ADDRESS = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^\s:\[\]]+)):(?P<port>\d{1,5})")


def split_address(text: str) -> tuple[str, int]:
    """The host and port of ``host:port`` (an IPv6 host in brackets).

    >>> split_address("127.0.0.1:17091"), split_address("[::1]:17091")
    (('127.0.0.1', 17091), ('::1', 17091))
    """
    match = _ADDRESS.fullmatch(text.strip())
    if match is None or int(match.group("port")) > 65535:
        raise ValueError("expected host:port, such as 127.0.0.1:17091 or [::1]:17091")
    return match.group("v6") or match.group("host"), int(match.group("port"))


class ServerSettings(_Section):
    """How connections are served (exporter.server): read timeouts, caps, the write listener."""

    header_timeout: PositiveDuration = Field(
        10.0,
        description="a request's line and headers must arrive within this (from the connection's "
        "start, or from the first byte of a later request on it); else 408 and the connection "
        "is closed (closed without an answer if nothing was sent)",
    )
    body_timeout: PositiveDuration = Field(
        30.0,
        description="a request's whole body must arrive within this after its headers; else 408 "
        "(unless an answer was already sent) and the connection is closed",
    )
    keep_alive_timeout: PositiveDuration = Field(
        5.0, description="an idle kept-alive connection is closed after this (whole seconds)"
    )
    max_connections: int = Field(
        1000, ge=1, description="open connections; beyond, a new one is closed at once"
    )
    max_inflight_writes: int = Field(
        16,
        ge=1,
        description="write requests (not GET or HEAD) served at once; beyond, 429 overloaded "
        "with Retry-After; scrapes and health checks are never refused for it",
    )
    write_listen_address: str | None = Field(
        None,
        description="host:port of a second listener, the only one that takes writes (e.g. "
        "127.0.0.1:17091); writes on the main listener then get 403 forbidden",
    )

    @field_validator("write_listen_address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None:
            split_address(value)
        return value

    @property
    def write_listener(self) -> tuple[str, int] | None:
        """The write listener's host and port, if one is configured."""
        address = self.write_listen_address
        return None if address is None else split_address(address)


class ShutdownSettings(_Section):
    """What a stop does (exporter.server): drain on SIGTERM, then a grace for what is running."""

    drain: Duration = Field(
        5.0,
        description="after SIGTERM, /-/ready answers 503 for this long while everything is still "
        "served, so that traffic moves away; then the listeners close",
    )
    grace: Duration = Field(
        10.0,
        description="then requests in flight have this long to finish (whole seconds); one "
        "still running gets a 503",
    )


class ModelSpec(_Section):
    task: Task | None = Field(
        None,
        description="inferred from the first predictions when absent (binary when "
        "positive_class is given)",
    )
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
    reference_score_column: str | None = Field(
        None,
        description="column of reference_file (or of an uploaded CSV) holding a binary model's "
        "positive-class probability: with the labels, what the label-free estimate calibrates on",
    )
    reference_probability_columns: str | None = Field(
        None,
        description="columns of reference_file (or of an uploaded CSV) holding a probability "
        "per class: 'CLASS=COLUMN,...', or 'PREFIX*' for every column PREFIX<class>",
    )
    concept_drift: dict[str, Any] | None = Field(
        None,
        description="keys laid over the concept_drift section for this model, e.g. "
        "{detector: ddm} or {adwin: {delta: 0.01}}",
    )
    comparison: dict[str, Any] | None = Field(
        None,
        description="declared at start: {champion, challengers, mode} as for PUT "
        "/v1/models/{model}/comparison",
    )

    @field_validator("concept_drift")
    @classmethod
    def _concept_drift_keys(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """The keys and values must be the section's (laid over its defaults here; over the
        configured section in :meth:`Settings.concept_drift_for`)."""
        if value is not None:
            try:
                ConceptDriftConfig().merged(value)
            except ValidationError as exc:
                raise ValueError(_nested_problems(exc)) from None
        return value

    @field_validator("comparison")
    @classmethod
    def _comparison_body(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                parse_declaration(value)
            except RejectedInput as exc:
                raise ValueError(exc.detail) from None
        return value

    @model_validator(mode="before")
    @classmethod
    def _positive_means_binary(cls, data: Any) -> Any:
        """A positive class declares a binary model: only binary models have one."""
        if not isinstance(data, dict) or data.get("task") is not None:
            return data
        if data.get("positive_class") is not None:
            return {**data, "task": "binary"}
        return data

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


_ENV_PREFIX = "MODEL_EXPORTER_"
_ENV_NESTING = "__"


@dataclass(frozen=True)
class _EnvValue:
    """One ``MODEL_EXPORTER_*`` variable: its name, the key path it sets, its decoded value."""

    variable: str
    path: tuple[str, ...]
    value: Any


def _unwrap_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _annotation_at(path: tuple[str, ...]) -> Any:
    """The type of the setting at ``path``; ``Any`` below an unknown key (validation names it)."""
    annotation: Any = Settings
    for depth, key in enumerate(path):
        annotation = _unwrap_optional(annotation)
        if _is_model(annotation):
            field = annotation.model_fields.get(key)
            annotation = Any if field is None else field.annotation
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
        elif annotation is not Any:
            raise ValueError(f"'{'.'.join(path[:depth])}' has no keys below it")
    return _unwrap_optional(annotation)


def _decode(annotation: Any, text: str) -> Any:
    """A list, a mapping (JSON object) or the text itself, which the field's validation parses."""
    if get_origin(annotation) is list:
        return parse_env_list(text)
    if get_origin(annotation) is dict or _is_model(annotation):
        try:
            decoded = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"expected a JSON object: {exc}") from None
        if not isinstance(decoded, dict):
            raise ValueError("expected a JSON object")
        return decoded
    return text


def _environment(environ: Mapping[str, str]) -> list[_EnvValue]:
    """Every ``MODEL_EXPORTER_*`` variable that names a setting, decoded by the type of its key.

    A variable whose first part names no setting is ignored (``MODEL_EXPORTER_CONFIG`` is the
    CLI's); an unknown key below a setting is left to validation, which names it. Names are
    case-insensitive, so model names set through variables are lower case.
    """
    found, problems = [], []
    for variable, text in sorted(environ.items()):
        if not variable.upper().startswith(_ENV_PREFIX):
            continue
        path = tuple(variable[len(_ENV_PREFIX) :].lower().split(_ENV_NESTING))
        if path[0] not in Settings.model_fields:
            continue
        try:
            found.append(_EnvValue(variable, path, _decode(_annotation_at(path), text)))
        except ValueError as exc:
            problems.append(_problem(".".join(path), variable, str(exc), text))
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
    return found


def _nested(values: list[_EnvValue]) -> dict[str, Any]:
    """The variables as one mapping; a deeper variable replaces that key of a JSON object."""
    data: dict[str, Any] = {}
    for item in sorted(values, key=lambda v: len(v.path)):
        node = data
        for key in item.path[:-1]:
            child = node.get(key)
            node[key] = dict(child) if isinstance(child, dict) else {}
            node = node[key]
        node[item.path[-1]] = item.value
    return data


def _variable(loc: tuple[int | str, ...], values: Sequence[_EnvValue]) -> str | None:
    """The variable that set the value at ``loc``, or ``None`` if it came from elsewhere."""
    for item in sorted(values, key=lambda v: -len(v.path)):
        if loc[: len(item.path)] != item.path:
            continue
        node = item.value
        for key in loc[len(item.path) :]:
            if not _holds(node, key):
                return None  # a key the YAML file set beside this variable's JSON object
            node = node[key]
        return item.variable
    return None


def _holds(node: Any, key: int | str) -> bool:
    if isinstance(node, dict):
        return key in node
    return isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node)


class _EnvSource(PydanticBaseSettingsSource):
    """The ``MODEL_EXPORTER_*`` variables, read by :func:`_environment` (not pydantic-settings)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # pragma: no cover - __call__ does the work

    def __call__(self) -> dict[str, Any]:
        return _nested(_environment(os.environ))


class Settings(BaseSettings):
    """All options; see the README's example config for each one with its default."""

    model_config = SettingsConfigDict(extra="forbid", frozen=True)  # environment: _EnvSource

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
    comparison: ComparisonSettings = ComparisonSettings()
    drift: DriftSettings = DriftSettings()
    concept_drift: ConceptDriftConfig = ConceptDriftConfig()
    join: JoinSettings = JoinSettings()
    limits: LimitSettings = LimitSettings()
    state: StateSettings = StateSettings()
    history: HistorySettings = HistorySettings()
    ui: UiSettings = UiSettings()
    auth: AuthSettings = AuthSettings()
    server: ServerSettings = ServerSettings()
    shutdown: ShutdownSettings = ShutdownSettings()
    web_config: Path | None = Field(
        None, description="exporter-toolkit web-config.yml: TLS and basic auth (web_config.py)"
    )
    models: dict[str, ModelSpec] = Field(default_factory=dict)

    @field_validator("windows")
    @classmethod
    def _unique_windows(cls, value: list[float]) -> list[float]:
        labels = [format_duration(v) for v in value]
        if len(set(labels)) != len(labels):
            raise ValueError(f"windows must be distinct, got {labels}")
        return sorted(value)

    @field_validator("default_model_version")
    @classmethod
    def _version_name(cls, value: str) -> str:
        problem = name_problem(value)
        if problem is not None:
            raise ValueError(f"not a valid version name: {problem}; {ALLOWED}")
        return value

    @field_validator("models")
    @classmethod
    def _model_names(
        cls, value: dict[str, ModelSpec], info: ValidationInfo
    ) -> dict[str, ModelSpec]:
        limits = info.data.get("limits")
        for name in value:
            problem = name_problem(name)
            if problem is None and limits is not None and len(name) > limits.max_name_length:
                problem = f"it is longer than limits.max_name_length ({limits.max_name_length})"
            if problem is not None:
                raise ValueError(f"{name!r} is not a valid model name: {problem}; {ALLOWED}")
        return value

    @model_validator(mode="after")
    def _models_within_limits(self) -> Settings:
        if len(self.models) > self.limits.max_models:
            raise ValueError(
                f"{len(self.models)} models declared but limits.max_models is "
                f"{self.limits.max_models}"
            )
        for name in self.models:
            try:
                config = self.concept_drift_for(name)
            except ValidationError as exc:  # valid alone, invalid over the section
                raise ValueError(
                    f"models.{name}.concept_drift over concept_drift: {_nested_problems(exc)}"
                ) from None
            if config.detector == "ddm" and self.models[name].task == "regression":
                raise ValueError(
                    f"models.{name}.concept_drift.detector: ddm takes 0/1 errors, a "
                    "classifier's; a regression model needs adwin or page_hinkley"
                )
        return self

    def concept_drift_for(self, model: str) -> ConceptDriftConfig:
        """The concept-drift settings of ``model``: the section, with its own keys over it."""
        spec = self.models.get(model)
        if spec is None or spec.concept_drift is None:
            return self.concept_drift
        return self.concept_drift.merged(spec.concept_drift)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _EnvSource(settings_cls), _YamlSource(settings_cls)

    @property
    def window_labels(self) -> list[str]:
        return [format_duration(w) for w in self.windows]


def _nested_problems(exc: ValidationError) -> str:
    """The problems of a nested validation, each as ``key.path: message``."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: "
        f"{str(e['msg']).removeprefix('Value error, ')}"
        for e in exc.errors()
    )


def _shown(value: object) -> str:
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _problem(key: str, variable: str | None, message: str, value: object) -> str:
    """One problem, on one line: ``config key 'k' (VARIABLE): message (got value)``."""
    source = f" ({variable})" if variable else ""
    return f"config key '{key}'{source}: {' '.join(message.split())} (got {_shown(value)})"


def describe_validation_error(
    exc: ValidationError, *, root: str = "", env: Sequence[_EnvValue] = ()
) -> str:
    """Every problem in ``exc`` on one line; keys prefixed by ``root``, variables from ``env``."""
    problems = []
    for error in exc.errors():
        loc = error["loc"]
        key = root + ".".join(str(p) for p in loc) or "(top level)"
        message = str(error["msg"]).removeprefix("Value error, ")
        problems.append(_problem(key, _variable(loc, env), message, error.get("input")))
    return "; ".join(problems)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        problem = exc.problem or exc.context or "syntax error"
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())


def read_yaml_mapping(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """The mapping in the YAML file at ``path`` (empty if the file is); else a one-line error."""
    name = repr(str(path))
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {name}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {name} is not UTF-8: {exc.reason} at byte {exc.start}") from exc
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {name} is not valid YAML: {_yaml_problem(exc)}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{what} {name} must hold a mapping of keys, got {type(loaded).__name__}")
    return loaded


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Build settings from defaults, the YAML file at ``path``, the environment and overrides.

    Raises :class:`ConfigError` naming every invalid key, its value, and the environment
    variable it came from if it did, in one line.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    token = _yaml_data.set({} if path is None else read_yaml_mapping(path))
    try:
        return Settings(**given)
    except ValidationError as exc:
        env = [v for v in _environment(os.environ) if v.path[0] not in given]
        problems = describe_validation_error(exc, env=env)
        raise ConfigError(f"invalid configuration: {problems}") from None
    finally:
        _yaml_data.reset(token)
