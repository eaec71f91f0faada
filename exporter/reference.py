"""Reference data that drift is measured against.

A :class:`Reference` holds, per feature, either a :class:`~exporter.stats.drift.NumericReference`
(values sorted once, decile bins) or a :class:`CategoricalReference` (category counts), and
optionally the model's reference predictions and labels (a holdout set). It is built

* from columns of values (an upload, or a file named in the config) by :func:`build_reference`,
  the one function both paths call; anything unusable is an
  :class:`~exporter.errors.InvalidReference` naming the feature or column;
* from the first N rows a version stored (:class:`ReferenceBuilder`, :func:`reference_from_rows`),
  or from the previous window's sample (a rolling reference).

Pure numpy: no HTTP, no Prometheus.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from exporter.config import DriftSettings
from exporter.errors import InvalidReference
from exporter.persist.plain import State, pack, unpack
from exporter.schema import category_label
from exporter.scored_reference import ScoredHoldout, build_scored
from exporter.stats.drift import NumericReference
from exporter.typedefs import (
    FeatureKind,
    FloatArray,
    IndexArray,
    IntArray,
    ReferenceSource,
    WireValue,
)

log = logging.getLogger("exporter.reference")

#: Quantiles reported for numeric features in the reference summary.
SUMMARY_QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
#: Largest magnitude of a numeric reference value. Beyond it the statistics' own arithmetic
#: (quantile interpolation, sums over up to 10^7 values) overflows: 1e308 made every quantile
#: NaN. Such values are almost always sentinels (DBL_MAX for "missing").
MAX_MAGNITUDE: Final = 1e300


@dataclass(frozen=True)
class CategoricalReference:
    """Counts of the ``max_categories`` most frequent categories; the rest pooled as one bin."""

    categories: tuple[str, ...]
    counts: IntArray
    pooled: int = 0

    @classmethod
    def from_counts(
        cls, counts: Mapping[str, int], max_categories: int, pooled: int = 0
    ) -> CategoricalReference:
        """Keep the most frequent categories (ties by name); pool the rest with ``pooled``
        values whose category is already unknown."""
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        kept = ranked[:max_categories]
        return cls(
            categories=tuple(k for k, _ in kept),
            counts=np.array([v for _, v in kept], dtype=np.int64),
            pooled=pooled + sum(v for _, v in ranked[max_categories:]),
        )

    @property
    def size(self) -> int:
        return int(self.counts.sum()) + self.pooled

    def index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.categories)}


@dataclass(frozen=True)
class TargetReference:
    """Reference predictions or labels. Whether they are compared as numbers (regression) or as
    classes depends on the model's task, known only later, so both forms are kept."""

    numeric: NumericReference | None
    categories: CategoricalReference

    @property
    def size(self) -> int:
        return self.categories.size if self.numeric is None else self.numeric.size

    def to_state(self) -> State:
        numeric = None if self.numeric is None else _numeric_state(self.numeric)
        return {"numeric": numeric, "categories": _categories_state(self.categories)}

    @classmethod
    def from_state(cls, state: State) -> TargetReference:
        numeric = None if state["numeric"] is None else _numeric_of(state["numeric"])
        return cls(numeric, _categories_of(state["categories"]))


@dataclass(frozen=True)
class Holdout:
    """A holdout validation set: the reference's predictions paired with its labels row by row,
    reduced once, when the reference is built, to what baseline quality needs.

    ``classes`` are the category labels found as truth or prediction, sorted; ``confusion``
    (true x predicted, over ``classes``) is None when there are more than
    ``drift.max_categories`` of them (a regression target); ``errors`` is ``(count, sum |e|,
    sum e^2)`` of ``prediction - label`` when both columns are numbers. Rows where either is
    null are left out; every paired row counts (no subsampling: this is only counting)."""

    rows: int
    classes: tuple[str, ...]
    confusion: IntArray | None
    errors: tuple[int, float, float] | None


@dataclass(frozen=True)
class Reference:
    """What drift is measured against, for one model (or one version)."""

    source: ReferenceSource
    rows: int
    created: float
    numeric: dict[str, NumericReference] = field(default_factory=dict)
    categorical: dict[str, CategoricalReference] = field(default_factory=dict)
    predictions: TargetReference | None = None
    labels: TargetReference | None = None
    subsampled: bool = False
    #: Predictions and labels of the same rows (equal lengths): the holdout baseline.
    holdout: Holdout | None = None
    #: Scores (or probabilities) and labels of the same rows: what the estimate calibrates on.
    scored: ScoredHoldout | None = None

    @property
    def features(self) -> set[str]:
        return set(self.numeric) | set(self.categorical)

    def kind(self, feature: str) -> FeatureKind | None:
        if feature in self.numeric:
            return "numeric"
        return "categorical" if feature in self.categorical else None

    def summary(self, top: int = 10) -> dict[str, Any]:
        """Size, source and, per feature, quantiles (numeric) or top category shares."""
        features: dict[str, Any] = {}
        for name, ref in self.numeric.items():
            q = np.quantile(ref.values, SUMMARY_QUANTILES)
            features[name] = {
                "kind": "numeric",
                "values": ref.size,
                "quantiles": {
                    f"{p:g}": float(v) for p, v in zip(SUMMARY_QUANTILES, q, strict=True)
                },
            }
        for name, cat in self.categorical.items():
            features[name] = _category_summary(cat, top)
        out: dict[str, Any] = {
            "source": self.source,
            "rows": self.rows,
            "subsampled": self.subsampled,
            "features": features,
        }
        if self.scored is not None:
            out["scored_rows"] = self.scored.rows
        for key, target in (("predictions", self.predictions), ("labels", self.labels)):
            if target is not None:
                out[key] = _category_summary(target.categories, top) | (
                    {}
                    if target.numeric is None
                    else {"mean": float(np.mean(target.numeric.values))}
                )
        return out

    def to_state(self) -> State:
        """Everything the reference holds, as plain values (it is immutable: no copy)."""
        holdout = self.holdout
        return {
            "source": self.source,
            "rows": self.rows,
            "created": self.created,
            "numeric": {name: _numeric_state(ref) for name, ref in self.numeric.items()},
            "categorical": {name: _categories_state(c) for name, c in self.categorical.items()},
            "predictions": _target_state(self.predictions),
            "labels": _target_state(self.labels),
            "subsampled": self.subsampled,
            "holdout": None
            if holdout is None
            else {
                "rows": holdout.rows,
                "classes": list(holdout.classes),
                "confusion": None if holdout.confusion is None else pack(holdout.confusion),
                "errors": None if holdout.errors is None else list(holdout.errors),
            },
            "scored": None if self.scored is None else self.scored.to_state(),
        }

    @classmethod
    def from_state(cls, state: State) -> Reference:
        h = state["holdout"]
        holdout = None
        if h is not None:
            errors = h["errors"]
            holdout = Holdout(
                rows=int(h["rows"]),
                classes=tuple(h["classes"]),
                confusion=None if h["confusion"] is None else unpack(h["confusion"]),
                errors=None if errors is None else (int(errors[0]), errors[1], errors[2]),
            )
        return cls(
            source=state["source"],
            rows=int(state["rows"]),
            created=float(state["created"]),
            numeric={k: _numeric_of(v) for k, v in state["numeric"].items()},
            categorical={k: _categories_of(v) for k, v in state["categorical"].items()},
            predictions=_target_of(state["predictions"]),
            labels=_target_of(state["labels"]),
            subsampled=bool(state["subsampled"]),
            holdout=holdout,
            scored=None
            if state.get("scored") is None
            else ScoredHoldout.from_state(state["scored"]),
        )


def _numeric_state(ref: NumericReference) -> State:
    return {"values": pack(ref.values), "edges": pack(ref.edges), "shares": pack(ref.shares)}


def _numeric_of(state: State) -> NumericReference:
    values = unpack(state["values"])
    values.setflags(write=False)
    return NumericReference(values, unpack(state["edges"]), unpack(state["shares"]))


def _categories_state(ref: CategoricalReference) -> State:
    return {"categories": list(ref.categories), "counts": pack(ref.counts), "pooled": ref.pooled}


def _categories_of(state: State) -> CategoricalReference:
    return CategoricalReference(
        tuple(state["categories"]), unpack(state["counts"]), int(state["pooled"])
    )


def _target_state(ref: TargetReference | None) -> State | None:
    return None if ref is None else ref.to_state()


def _target_of(state: State | None) -> TargetReference | None:
    return None if state is None else TargetReference.from_state(state)


def _category_summary(cat: CategoricalReference, top: int) -> dict[str, Any]:
    size = max(cat.size, 1)
    return {
        "kind": "categorical",
        "values": cat.size,
        "categories": len(cat.categories),
        "shares": {
            c: int(n) / size
            for c, n in zip(cat.categories[:top], cat.counts[:top].tolist(), strict=False)
        },
        "pooled_share": cat.pooled / size,
    }


# -- from columns of values (uploads and files) --------------------------------------------------


def build_reference(
    columns: Mapping[str, Sequence[WireValue]],
    *,
    settings: DriftSettings,
    source: ReferenceSource,
    created: float,
    categorical: Collection[str] = (),
    prediction_column: str | None = None,
    label_column: str | None = None,
    predictions: Sequence[WireValue] | None = None,
    labels: Sequence[WireValue] | None = None,
    score_column: str | None = None,
    probability_columns: Mapping[str, str] | None = None,
    scores: Sequence[float | None] | None = None,
    probabilities: Sequence[Mapping[str, float] | None] | None = None,
    max_classes: int = 1000,
) -> Reference:
    """The reference of uploaded or file columns: the one function uploads and start-up use.

    ``prediction_column`` / ``label_column`` name the columns (of a CSV or Parquet file)
    holding the reference predictions and labels; ``predictions`` / ``labels`` give them
    directly (JSON uploads). Likewise ``score_column`` / ``probability_columns`` (class ->
    column) and ``scores`` / ``probabilities``: the rows' scores, with the labels the
    scored holdout (exporter.scored_reference) the label-free estimate calibrates on, whose
    probabilities may name at most ``max_classes`` classes (``limits.max_classes``).

    A column is numeric when its non-null values are all numbers,
    categorical when they are all strings or bools (or when its name is in ``categorical``).
    Columns longer than ``settings.reference_max_values`` are uniformly subsampled.

    Raises :class:`~exporter.errors.InvalidReference` naming the feature or column for anything
    unusable: a named column that is missing (or named twice), a column without values, mixed
    kinds, non-finite or overflowing numbers, and a reference that holds nothing at all. Any
    other failure is a bug, logged with its traceback, and still an ``InvalidReference``: no
    reference, uploaded or loaded at start, can crash a request or the start-up.
    """
    try:
        return _build(
            columns,
            settings=settings,
            source=source,
            created=created,
            categorical=categorical,
            prediction_column=prediction_column,
            label_column=label_column,
            predictions=predictions,
            labels=labels,
            score_column=score_column,
            probability_columns=probability_columns,
            scores=scores,
            probabilities=probabilities,
            max_classes=max_classes,
        )
    except InvalidReference:
        raise
    except Exception as exc:
        log.exception("building a reference failed unexpectedly")
        raise InvalidReference(
            f"the reference could not be built ({type(exc).__name__}: {exc})"
        ) from None


def _build(
    columns: Mapping[str, Sequence[WireValue]],
    *,
    settings: DriftSettings,
    source: ReferenceSource,
    created: float,
    categorical: Collection[str],
    prediction_column: str | None,
    label_column: str | None,
    predictions: Sequence[WireValue] | None,
    labels: Sequence[WireValue] | None,
    score_column: str | None = None,
    probability_columns: Mapping[str, str] | None = None,
    scores: Sequence[float | None] | None = None,
    probabilities: Sequence[Mapping[str, float] | None] | None = None,
    max_classes: int = 1000,
) -> Reference:
    features = dict(columns)
    if prediction_column is not None and prediction_column == label_column:
        raise InvalidReference(
            f"prediction_column and label_column both name {prediction_column!r}; "
            "predictions and labels need a column each",
            field="label_column",
            value=label_column,
        )
    for what, column in (("prediction_column", prediction_column), ("label_column", label_column)):
        if column is not None and column not in features:
            raise InvalidReference(
                f"{column!r} is not a column of the reference "
                f"(columns: {', '.join(sorted(features)) or 'none'})",
                field=what,
                value=column,
            )
    if prediction_column is not None:
        predictions = features.pop(prediction_column)
    if label_column is not None:
        labels = features.pop(label_column)
    scores, probabilities = _score_columns(
        features, score_column, probability_columns, scores, probabilities
    )
    if not features and predictions is None and labels is None:
        raise InvalidReference(
            "the reference has no features, no predictions and no labels", field="features"
        )
    numeric: dict[str, NumericReference] = {}
    cats: dict[str, CategoricalReference] = {}
    rows = 0
    subsampled = False
    for name, values in features.items():
        rows = max(rows, len(values))
        built, cut = _feature(name, values, name in categorical, settings)
        subsampled |= cut
        if isinstance(built, NumericReference):
            numeric[name] = built
        else:
            cats[name] = built
    targets: dict[str, TargetReference] = {}
    for key, given in (("predictions", predictions), ("labels", labels)):
        if given is not None:
            rows = max(rows, len(given))
            targets[key], cut = _target_reference(given, key, settings)
            subsampled |= cut
    return Reference(
        source=source,
        rows=rows,
        created=created,
        numeric=numeric,
        categorical=cats,
        predictions=targets.get("predictions"),
        labels=targets.get("labels"),
        subsampled=subsampled,
        holdout=_holdout(predictions, labels, settings.max_categories),
        scored=build_scored(
            labels,
            scores=scores,
            probabilities=probabilities,
            limit=settings.reference_max_values,
            max_classes=max_classes,
        ),
    )


def _score_columns(
    features: dict[str, Sequence[WireValue]],
    score_column: str | None,
    probability_columns: Mapping[str, str] | None,
    scores: Sequence[float | None] | None,
    probabilities: Sequence[Mapping[str, float] | None] | None,
) -> tuple[Sequence[float | None] | None, Sequence[Mapping[str, float] | None] | None]:
    """The scores of a file's columns (taken out of ``features``), else those given."""
    named = ([score_column] if score_column else []) + list((probability_columns or {}).values())
    twice = {c for c in named if named.count(c) > 1}
    if twice:
        column = sorted(twice)[0]
        raise InvalidReference(
            f"{column!r} is named twice among the score and probability columns; each class "
            "needs a column of its own",
            field="probability_columns",
            value=column,
        )
    for column in named:
        if column not in features:
            raise InvalidReference(
                f"{column!r} is not a column of the reference "
                f"(columns: {', '.join(sorted(features)) or 'none'})",
                field="score_column" if column == score_column else "probability_columns",
                value=column,
            )
    if score_column:
        scores = features.pop(score_column)  # type: ignore[assignment]
    if probability_columns:
        taken = {cls: features.pop(column) for cls, column in probability_columns.items()}
        size = max(len(v) for v in taken.values())
        probabilities = [
            {cls: v[i] for cls, v in taken.items() if i < len(v) and v[i] is not None} or None  # type: ignore[misc]
            for i in range(size)
        ]
    return scores, probabilities


def _holdout(
    predictions: Sequence[WireValue] | None,
    labels: Sequence[WireValue] | None,
    max_categories: int,
) -> Holdout | None:
    """The paired rows of predictions and labels already validated by
    :func:`_target_reference`; None unless both are given, of equal lengths (otherwise they
    are two samples, compared to the live ones only as distributions)."""
    if predictions is None or labels is None or len(predictions) != len(labels):
        return None
    pairs = [
        (p, y) for p, y in zip(predictions, labels, strict=True) if p is not None and y is not None
    ]
    if not pairs:
        return None
    truth = [category_label(y) for _, y in pairs]
    guess = [category_label(p) for p, _ in pairs]
    classes = tuple(sorted(set(truth) | set(guess)))
    confusion = None
    if len(classes) <= max_categories:
        index = {c: i for i, c in enumerate(classes)}
        flat = np.array(
            [index[t] * len(classes) + index[g] for t, g in zip(truth, guess, strict=True)]
        )
        confusion = np.bincount(flat, minlength=len(classes) ** 2).reshape(len(classes), -1)
    errors = None
    if all(isinstance(v, int | float) and not isinstance(v, bool) for pair in pairs for v in pair):
        e = np.array([float(p) for p, _ in pairs]) - np.array([float(y) for _, y in pairs])
        errors = (len(pairs), float(np.abs(e).sum()), float((e * e).sum()))
    return Holdout(len(pairs), classes, confusion, errors)


def _feature(
    name: str, values: Sequence[WireValue], declared: bool, settings: DriftSettings
) -> tuple[NumericReference | CategoricalReference, bool]:
    """One feature's reference from its column (numbers, or categories: strings, bools, or
    numbers of a feature declared categorical), and whether it was subsampled."""
    where = f"features.{name}"
    present = [v for v in values if v is not None]
    if not present:
        raise InvalidReference(f"feature {name!r} has no values (all null or empty)", field=where)
    kinds = {declared or isinstance(v, bool | str) for v in present}
    if len(kinds) > 1:
        sample_num = next(v for v in present if not isinstance(v, bool | str))
        sample_cat = next(v for v in present if isinstance(v, bool | str))
        raise InvalidReference(
            f"feature {name!r} mixes numbers ({sample_num!r}) and categories "
            f"({sample_cat!r}); a feature must be one or the other",
            field=where,
            value=sample_cat,
        )
    picked = _pick(len(present), settings.reference_max_values, seed=0)
    if kinds == {True}:
        kept = present if picked is None else [present[i] for i in picked.tolist()]
        counts = Counter(category_label(v) for v in kept)
        return CategoricalReference.from_counts(counts, settings.max_categories), picked is not None
    numbers = _finite(present, name, where)
    chosen = numbers if picked is None else numbers[picked]
    return NumericReference.from_values(chosen, settings.bins), picked is not None


def _pick(n: int, limit: int, seed: int) -> IndexArray | None:
    """Sorted positions of a uniform subsample of ``limit`` of ``n`` values (None: keep all)."""
    if n <= limit:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def _finite(values: list[Any], name: str, where: str) -> FloatArray:
    """All of a column's numbers as floats, refused if any is non-finite or too large (checked
    on every value, before any subsampling, so that no bad value passes by not being drawn)."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except OverflowError:  # an int beyond float range
        arr = np.array([_clamped(v) for v in values], dtype=np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        shown = float(arr[bad][0])
        raise InvalidReference(
            f"{name!r} holds a non-finite value ({shown})", field=where, value=shown
        )
    huge = np.abs(arr) > MAX_MAGNITUDE
    if huge.any():
        shown = float(arr[huge][0])
        raise InvalidReference(
            f"{name!r} holds {shown:g}, beyond +-{MAX_MAGNITUDE:g}: drift statistics of such "
            "values overflow (if it marks a missing value, send null)",
            field=where,
            value=shown,
        )
    return arr


def _clamped(value: float) -> float:
    """A number as a float, infinite when it is an int beyond float range."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _target_reference(
    values: Sequence[WireValue], what: str, settings: DriftSettings
) -> tuple[TargetReference, bool]:
    """Reference predictions or labels from wire values (classes or numbers), and whether
    they were subsampled."""
    present = [v for v in values if v is not None]
    if not present:
        raise InvalidReference(f"{what} has no values", field=what)
    picked = _pick(len(present), settings.reference_max_values, seed=1)
    numeric = None
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        numbers = _finite(present, what, what)
        numeric = NumericReference.from_values(
            numbers if picked is None else numbers[picked], settings.bins
        )
    kept = present if picked is None else [present[i] for i in picked.tolist()]
    counts = Counter(category_label(v) for v in kept)
    categories = CategoricalReference.from_counts(counts, settings.max_categories)
    return TargetReference(numeric, categories), picked is not None


# -- from stored rows (first events, previous window) --------------------------------------------


class ReferenceBuilder:
    """Collects the first ``size`` rows a version stores; :meth:`matrix` hands them to
    :func:`reference_from_rows` once :attr:`complete`."""

    def __init__(self, size: int) -> None:
        self.size = int(size)
        self.rows = 0
        self._chunks: list[FloatArray] = []

    @property
    def complete(self) -> bool:
        return self.rows >= self.size

    def add(self, rows: FloatArray) -> None:
        need = self.size - self.rows
        if need <= 0 or rows.shape[0] == 0:
            return
        take = rows[:need].copy()
        self._chunks.append(take)
        self.rows += take.shape[0]

    def to_state(self) -> State:
        return {"size": self.size, "chunks": [pack(chunk) for chunk in self._chunks]}

    @classmethod
    def from_state(cls, state: State) -> ReferenceBuilder:
        builder = cls(int(state["size"]))
        builder._chunks = [unpack(chunk) for chunk in state["chunks"]]
        builder.rows = sum(chunk.shape[0] for chunk in builder._chunks)
        return builder

    def matrix(self, width: int) -> FloatArray:
        out = np.full((self.rows, width), np.nan)
        start = 0
        for chunk in self._chunks:
            out[start : start + chunk.shape[0], : chunk.shape[1]] = chunk
            start += chunk.shape[0]
        return out


@dataclass(frozen=True, slots=True)
class RowLayout:
    """How stored rows are laid out: column 0 the prediction (a class index, or the value when
    ``classes`` is None), columns 1.. the features (numbers, or category codes)."""

    names: tuple[str, ...]
    kinds: tuple[FeatureKind | None, ...]
    categories: tuple[tuple[str, ...], ...]  # per feature: category label of each code
    classes: tuple[str, ...] | None  # class label of each index; None for regression


def reference_from_rows(
    rows: FloatArray,
    layout: RowLayout,
    *,
    source: ReferenceSource,
    created: float,
    bins: int,
    max_categories: int,
) -> Reference:
    """A reference from stored rows (see :class:`RowLayout`)."""
    numeric: dict[str, NumericReference] = {}
    cats: dict[str, CategoricalReference] = {}
    for j, (name, kind) in enumerate(zip(layout.names, layout.kinds, strict=True)):
        column = rows[:, j + 1] if j + 1 < rows.shape[1] else np.empty(0)
        column = column[~np.isnan(column)]
        if column.shape[0] == 0 or kind is None:
            continue
        if kind == "numeric":
            numeric[name] = NumericReference.from_values(column, bins)
        else:
            cats[name] = _categories(column, layout.categories[j], max_categories)
    predictions = None
    if rows.shape[0] and rows.shape[1]:
        column = rows[:, 0][~np.isnan(rows[:, 0])]
        if column.shape[0]:
            predictions = target_from_column(column, layout.classes, bins, max_categories)
    return Reference(
        source=source,
        rows=int(rows.shape[0]),
        created=created,
        numeric=numeric,
        categorical=cats,
        predictions=predictions,
    )


def target_from_column(
    column: FloatArray, classes: Sequence[str] | None, bins: int, max_categories: int
) -> TargetReference:
    """Predictions or labels stored as class indices (``classes`` given) or values."""
    if classes is None:
        return TargetReference(
            NumericReference.from_values(column, bins),
            CategoricalReference.from_counts({}, max_categories),
        )
    return TargetReference(None, _categories(column, classes, max_categories))


def _categories(
    codes: FloatArray, labels: Sequence[str], max_categories: int
) -> CategoricalReference:
    """Category counts of stored codes. Code -1 (pooled: beyond the model's dictionary) is
    pooled here too, into the bin where the detector puts the window's pooled codes: naming it
    as a category made a window identical to its own first events look drifted."""
    counts = np.bincount(codes[codes >= 0].astype(np.int64), minlength=len(labels))
    named = {labels[i]: int(c) for i, c in enumerate(counts.tolist()) if c and i < len(labels)}
    return CategoricalReference.from_counts(
        named, max_categories, pooled=int(np.count_nonzero(codes < 0))
    )
