"""The drift detector: a reference and settings in, typed verdicts on window samples out.

In the spirit of alibi-detect's detectors (reference at construction, per-feature p-values and
distances, a multiple-testing correction), with typed results and ``Literal`` options:

>>> import numpy as np
>>> from exporter.reference import RowLayout, build_reference
>>> from exporter.config import DriftSettings
>>> rng = np.random.default_rng(0)
>>> ref = build_reference({"x": rng.normal(size=500).tolist()}, settings=DriftSettings(),
...                       source="upload", created=0.0)
>>> layout = RowLayout(names=("x",), kinds=("numeric",), categories=((),), classes=None)
>>> detector = DriftDetector(ref, layout, DetectorSettings())
>>> window = np.column_stack([np.zeros(400), rng.normal(1.0, 1.0, 400)])
>>> scores = detector.score(window)
>>> scores.features["x"].drifted, scores.features["x"].numeric.ks_pvalue < 1e-10
(True, True)

A window sample is laid out as the model stores rows (:class:`~exporter.reference.RowLayout`):
column 0 the prediction, then the features. Per numeric feature: KS test, Wasserstein, PSI,
Jensen-Shannon and the out-of-range share; per categorical feature: chi-squared test, PSI,
Jensen-Shannon and the unseen share; every feature's missing share. A numeric feature's
p-value is the smallest of its KS, Mann-Whitney and binned chi-squared p-values times 3, a
categorical one's its chi-squared p-value. A feature *drifted* when its p-value, adjusted by the
correction across the window's tested features, is at most ``alpha`` (or, if it had drifted at
the previous look, at most ``release_alpha``: hysteresis) and its effect reaches the floor
(KS statistic, or PSI; 0 by default). Predictions and labels are tested alone (their own
p-value, the same two levels and the floor). Why these levels and tests:
``docs/drift-alarms.md``. Pure numpy/scipy: no HTTP, no Prometheus; the previous verdicts are
passed in, not kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace

import numpy as np

from exporter.config import DriftSettings
from exporter.reference import CategoricalReference, Reference, RowLayout, TargetReference
from exporter.stats.distribution import CategoryCounts, Histogram, shared_histogram
from exporter.stats.drift import (
    CategoricalDrift,
    NumericDrift,
    NumericReference,
    adjusted_pvalues,
    categorical_drift,
    numeric_drift,
    numeric_drift_ranked,
)
from exporter.stats.ranked import Ranked
from exporter.typedefs import Correction, FeatureKind, FloatArray, IntArray


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    """How a detector decides (the ``drift`` settings that concern it)."""

    min_samples: int = 100  # values needed on both sides before a feature is tested
    alpha: float = 1e-6  # adjusted p-value at most this: drifted
    release_alpha: float = 1e-3  # ... and, once drifted, until it exceeds this
    correction: Correction = "bh"
    min_ks_statistic: float = 0.0  # floor of a numeric feature, a regression's predictions/labels
    min_psi: float = 0.0  # floor of a categorical feature, a classifier's predictions/labels
    threads: int = 1  # parts the numeric features are split into (with an executor)
    #: Draw each tested feature's window next to its reference (FeatureDrift.distribution, for
    #: the status page); a backtest, which has no page, skips them.
    distributions: bool = True

    def level(self, drifted_before: bool | None) -> float:
        """The adjusted p-value at most which a test drifts, given the previous verdict."""
        return self.release_alpha if drifted_before else self.alpha

    @classmethod
    def of(cls, drift: DriftSettings, *, distributions: bool = True) -> DetectorSettings:
        return cls(
            min_samples=max(drift.min_samples, 2),
            alpha=drift.alpha,
            release_alpha=drift.release_level,
            correction=drift.correction,
            min_ks_statistic=drift.min_ks_statistic,
            min_psi=drift.min_psi,
            threads=drift.threads,
            distributions=distributions,
        )


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """One feature in one window sample.

    ``missing`` is the share of sampled rows without a usable value (absent, null, or of the
    wrong type). ``numeric`` / ``categorical`` hold the tests and distances, ``None`` when the
    window or the reference has fewer than ``min_samples`` values (or no reference).
    ``adjusted_pvalue`` is :attr:`pvalue` after the correction across the window's features;
    ``drifted`` the verdict on it and the effect-size floor (both ``None`` when the feature was
    not tested).
    """

    kind: FeatureKind
    window_values: int
    reference_values: int
    missing: float
    numeric: NumericDrift | None = None
    categorical: CategoricalDrift | None = None
    adjusted_pvalue: float | None = None
    drifted: bool | None = None
    #: How the tested window looks next to the reference (for the status page's charts).
    distribution: Histogram | CategoryCounts | None = field(default=None, compare=False)

    @property
    def pvalue(self) -> float | None:
        """The feature's p-value before the correction across features: a numeric feature's
        smallest test p-value times 3, a categorical feature's chi-squared p-value."""
        if self.numeric is not None:
            return self.numeric.pvalue
        if self.categorical is not None:
            return self.categorical.pvalue
        return None


@dataclass(frozen=True, slots=True)
class TargetDrift:
    """Drift of the predictions (or of the labels): KS and distances for a regression,
    chi-squared and distances over classes for a classifier. ``drifted`` uses its p-value
    (one family, no correction across features), the two levels and the effect-size floor."""

    numeric: NumericDrift | None
    categorical: CategoricalDrift | None
    drifted: bool


@dataclass(frozen=True, slots=True)
class DriftScores:
    """A detector's verdict on one window sample."""

    correction: Correction
    alpha: float
    release_alpha: float
    features: dict[str, FeatureDrift] = field(default_factory=dict)
    predictions: TargetDrift | None = None
    labels: TargetDrift | None = None

    @property
    def tested(self) -> int:
        return sum(1 for f in self.features.values() if f.drifted is not None)

    @property
    def drifted(self) -> int:
        return sum(1 for f in self.features.values() if f.drifted)


class DriftDetector:
    """Drift of window samples against one reference.

    Parameters
    ----------
    reference : Reference or None
        What the window is compared with; ``None`` (none yet): features report their sizes and
        missing shares, untested.
    layout : RowLayout
        How the sample's columns are laid out, and the names of category codes and classes.
    settings : DetectorSettings
    label_reference : TargetReference, optional
        What the labels are compared with (an uploaded reference's labels, or the first joined
        labels, or the previous window's).
    executor : Executor, optional
        Splits the numeric features into ``settings.threads`` parts computed in parallel.
    """

    def __init__(
        self,
        reference: Reference | None,
        layout: RowLayout,
        settings: DetectorSettings,
        *,
        label_reference: TargetReference | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.reference = reference
        self.layout = layout
        self.settings = settings
        self.label_reference = label_reference
        self._executor = executor
        kinds = layout.kinds
        self._numeric = [j for j, k in enumerate(kinds) if k == "numeric"]
        # The numeric columns of a sample: a view when they are contiguous (the common case of
        # all features numeric), so the sort's one copy is the only one (4 MB at 50 x 10,000).
        contiguous = (
            self._numeric == list(range(self._numeric[0], self._numeric[-1] + 1))
            if self._numeric
            else False
        )
        self._numeric_columns: slice | list[int] = (
            slice(self._numeric[0] + 1, self._numeric[-1] + 2)
            if contiguous
            else [j + 1 for j in self._numeric]
        )
        self._numeric_refs: list[NumericReference | None] = [
            reference.numeric.get(layout.names[j]) if reference is not None else None
            for j in self._numeric
        ]
        self._categorical: list[tuple[int, CategoricalReference | None, IntArray | None]] = []
        for j, kind in enumerate(kinds):
            if kind != "categorical":
                continue
            ref = reference.categorical.get(layout.names[j]) if reference is not None else None
            mapping = None if ref is None else _code_map(layout.categories[j], ref)
            self._categorical.append((j, ref, mapping))

    @property
    def ranked_columns(self) -> tuple[list[int], list[FloatArray]]:
        """The sample's columns of the numeric features with a reference, and those
        references' values: what a :class:`~exporter.stats.ranked.Ranked` given to
        :meth:`score` holds, in this order."""
        numeric = zip(self._numeric, self._numeric_refs, strict=True)
        pairs = [(j + 1, ref.values) for j, ref in numeric if ref is not None]
        return [c for c, _ in pairs], [v for _, v in pairs]

    def score(
        self,
        rows: FloatArray,
        labels: FloatArray | None = None,
        *,
        previous: DriftScores | None = None,
        ranked: Ranked | None = None,
    ) -> DriftScores:
        """Drift of a window sample: ``rows`` (n, 1 + features) as laid out, ``labels`` the
        joined labels of the same window (class indices or values). ``previous`` is the
        verdict of the window's previous look: what drifted then is held to ``release_alpha``.
        ``ranked``, when given, holds the :attr:`ranked_columns` of the same ``rows``, sorted
        and ranked: the numeric tests read them instead of sorting ``rows`` again."""
        s = self.settings
        features: dict[str, FeatureDrift] = {}
        n = rows.shape[0]
        if n:
            missing = np.count_nonzero(np.isnan(rows[:, 1:]), axis=0) / n
            features.update(self._numeric_features(rows, missing, ranked))
            features.update(self._categorical_features(rows, missing))
        features = verdicts(features, s, previous)
        held_predictions = previous is not None and _drifted(previous.predictions)
        held_labels = previous is not None and _drifted(previous.labels)
        predictions = None
        if self.reference is not None and self.reference.predictions is not None and n:
            level = s.level(held_predictions)
            predictions = self._target(rows[:, 0], self.reference.predictions, level)
        label_drift = None
        if self.label_reference is not None and labels is not None and labels.shape[0]:
            label_drift = self._target(labels, self.label_reference, s.level(held_labels))
        return DriftScores(
            s.correction, s.alpha, s.release_alpha, features, predictions, label_drift
        )

    def _numeric_features(
        self, rows: FloatArray, missing: FloatArray, ranked: Ranked | None
    ) -> dict[str, FeatureDrift]:
        if not self._numeric:
            return {}
        n = rows.shape[0]
        if ranked is not None:
            if ranked.size != n:
                raise ValueError(f"ranked columns of {ranked.size} rows for a sample of {n}")
            with_reference = [i for i, ref in enumerate(self._numeric_refs) if ref is not None]
            results = numeric_drift_ranked(
                self._numeric_refs, ranked, with_reference, min_samples=self.settings.min_samples
            )
        else:
            results = numeric_drift(
                self._numeric_refs,
                rows[:, self._numeric_columns],
                min_samples=self.settings.min_samples,
                executor=self._executor,
                chunks=self.settings.threads,
            )
        out = {}
        for j, ref, result in zip(self._numeric, self._numeric_refs, results, strict=True):
            histogram = None
            if ref is not None and result is not None and self.settings.distributions:
                histogram = shared_histogram(ref.values, rows[:, j + 1])
            out[self.layout.names[j]] = FeatureDrift(
                kind="numeric",
                window_values=int(n - round(missing[j] * n)),
                reference_values=ref.size if ref is not None else 0,
                missing=float(missing[j]),
                numeric=result,
                distribution=histogram,
            )
        return out

    def _categorical_features(
        self, rows: FloatArray, missing: FloatArray
    ) -> dict[str, FeatureDrift]:
        need = self.settings.min_samples
        out = {}
        for j, ref, mapping in self._categorical:
            codes = rows[:, j + 1]
            codes = codes[~np.isnan(codes)]
            result = shares = None
            if ref is not None and mapping is not None and min(codes.shape[0], ref.size) >= need:
                counts, other = _bin(codes, mapping, len(ref.categories))
                result = categorical_drift(ref.counts, ref.pooled, counts, other)
                if self.settings.distributions:
                    shares = CategoryCounts(ref.categories, counts, ref.counts, other, ref.pooled)
            out[self.layout.names[j]] = FeatureDrift(
                kind="categorical",
                window_values=int(codes.shape[0]),
                reference_values=ref.size if ref is not None else 0,
                missing=float(missing[j]),
                categorical=result,
                distribution=shares,
            )
        return out

    def _target(
        self, column: FloatArray, reference: TargetReference, level: float
    ) -> TargetDrift | None:
        s = self.settings
        values = column[~np.isnan(column)]
        if values.shape[0] < s.min_samples:
            return None
        classes = self.layout.classes
        if classes is None:  # regression: compare the values
            if reference.numeric is None or reference.numeric.size < s.min_samples:
                return None
            [num] = numeric_drift(
                [reference.numeric], values.reshape(-1, 1), min_samples=s.min_samples
            )
            if num is None:
                return None
            drifted = num.pvalue <= level and num.ks_statistic >= s.min_ks_statistic
            return TargetDrift(num, None, drifted)
        cats = reference.categories
        if cats.size < s.min_samples:
            return None
        counts, other = _bin(values, _code_map(classes, cats), len(cats.categories))
        cat = categorical_drift(cats.counts, cats.pooled, counts, other)
        drifted = cat.pvalue <= level and cat.psi >= s.min_psi
        return TargetDrift(None, cat, drifted)


def verdicts(
    features: dict[str, FeatureDrift],
    settings: DetectorSettings,
    previous: DriftScores | None = None,
) -> dict[str, FeatureDrift]:
    """Which features drifted: adjusted p-value at most ``alpha`` (``release_alpha`` for those
    that drifted at the ``previous`` look), and material."""
    tested = [name for name, f in features.items() if f.pvalue is not None]
    pvalues = np.array([features[name].pvalue for name in tested], dtype=np.float64)
    adjusted = adjusted_pvalues(pvalues, settings.correction)
    before = previous.features if previous is not None else {}
    out = dict(features)
    for name, p in zip(tested, adjusted.tolist(), strict=True):
        f = features[name]
        if f.numeric is not None:
            material = f.numeric.ks_statistic >= settings.min_ks_statistic
        else:
            material = f.categorical is not None and f.categorical.psi >= settings.min_psi
        held = name in before and bool(before[name].drifted)
        drifted = p <= settings.level(held) and material
        out[name] = replace(f, adjusted_pvalue=p, drifted=drifted)
    return out


def _drifted(target: TargetDrift | None) -> bool:
    return target is not None and target.drifted


def _code_map(labels: Sequence[str], reference: CategoricalReference) -> IntArray:
    """For each code of the model's dictionary (its label), the reference's bin or -1."""
    index = reference.index()
    return np.array([index.get(label, -1) for label in labels], dtype=np.int64)


def _bin(codes: FloatArray, mapping: IntArray, bins: int) -> tuple[IntArray, int]:
    """Window codes as counts over the reference's categories, plus the rest (pooled codes,
    and categories the reference does not track)."""
    ints = codes.astype(np.int64)
    binned = np.full(ints.shape[0], -1, dtype=np.int64)
    known = (ints >= 0) & (ints < mapping.shape[0])
    binned[known] = mapping[ints[known]]
    counts = np.bincount(binned[binned >= 0], minlength=bins)
    return counts.astype(np.int64), int(np.count_nonzero(binned < 0))
