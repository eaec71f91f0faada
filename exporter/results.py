"""Drift results as cached on each version and read by the collectors and the status API."""

from __future__ import annotations

from dataclasses import dataclass, field

from exporter.stats.drift import CategoricalDrift, Correction, NumericDrift


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """One feature in one window.

    ``missing`` is the share of sampled rows without a usable value (absent, null, or of the
    wrong type). ``numeric`` / ``categorical`` hold the tests and distances, ``None`` when the
    window or the reference has fewer than ``drift.min_samples`` values (or no reference).
    ``drifted`` is the verdict after the multiple-testing correction and the effect-size floor
    (``None`` when the feature was not tested).
    """

    kind: str
    window_values: int
    reference_values: int
    missing: float
    numeric: NumericDrift | None = None
    categorical: CategoricalDrift | None = None
    drifted: bool | None = None

    @property
    def pvalue(self) -> float | None:
        if self.numeric is not None:
            return self.numeric.ks_pvalue
        if self.categorical is not None:
            return self.categorical.chi2_pvalue
        return None


@dataclass(frozen=True, slots=True)
class TargetDrift:
    """Drift of the predictions (or of the labels): KS and distances for a regression,
    chi-squared and distances over classes for a classifier. ``drifted`` uses the raw p-value
    (one test) and the effect-size floor."""

    numeric: NumericDrift | None
    categorical: CategoricalDrift | None
    drifted: bool


@dataclass(frozen=True, slots=True)
class DriftResult:
    """Drift of one window against the reference, as computed by the drift worker."""

    computed_at: float
    serial: int  # unique per computation: tells a cached exposition the result changed
    window_events: int  # exact events in the window when computed
    window_sample: int  # rows of the uniform sample the tests used
    reference_source: str | None
    correction: Correction = "bh"
    alpha: float = 0.05
    features: dict[str, FeatureDrift] = field(default_factory=dict)
    predictions: TargetDrift | None = None
    labels: TargetDrift | None = None
    label_sample: int = 0

    @property
    def tested(self) -> int:
        return sum(1 for f in self.features.values() if f.drifted is not None)

    @property
    def drifted(self) -> int:
        return sum(1 for f in self.features.values() if f.drifted)
