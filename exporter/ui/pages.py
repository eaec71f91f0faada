"""What the status pages show, built from one snapshot per model, outside every lock.

:func:`overview` (``GET /``) and :func:`model_page` (``GET /ui/models/{model}``) turn a
:class:`~exporter.snapshot.ModelSnapshot`, the drift worker's results, the sequential tracker's
states and the history into plain view objects that the templates lay out. The numbers are
those of ``/metrics`` and the status JSON: the same :mod:`exporter.views` functions compute
them from the same snapshot. Values are kept exact (``value``) besides their rounded text, so
the page can carry them in ``data-value`` for the browser tests. No HTTP here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from markupsafe import Markup

from exporter.config import Settings, parse_duration
from exporter.counters import LABEL_DELAY_BUCKETS
from exporter.detector import DriftScores, FeatureDrift, TargetDrift
from exporter.drift_worker import DriftResult, WindowKey
from exporter.monitoring.rules import Thresholds
from exporter.sequential_tracker import SequentialStates
from exporter.snapshot import ModelSnapshot, VersionSnapshot
from exporter.stats.distribution import CategoryCounts, Histogram
from exporter.stats.performance import ClassificationScores, RegressionScores
from exporter.ui import charts, lights
from exporter.ui.lights import Light
from exporter.views import window_estimate, window_quality

#: Reads the history: (model, version, window, names, since) -> series (see exporter.history).
HistoryReader = Callable[
    [str, str | None, str | None, Collection[str] | None, float | None],
    Sequence["HistorySeries"],
]


@dataclass(frozen=True, slots=True)
class HistorySeries:
    """One series of the history, as the pages read it."""

    name: str
    labels: Mapping[str, str]
    times: Sequence[float]
    values: Sequence[float]


@dataclass(frozen=True, slots=True)
class Value:
    """A number as shown: exact ``value`` (None: no value yet) and its text."""

    value: float | None
    text: str

    @staticmethod
    def of(value: float | None, digits: int = 4, percent: bool = False) -> Value:
        if value is None or not math.isfinite(value):
            return Value(None if value is None else value, "-" if value is None else str(value))
        if percent:
            return Value(value, f"{value:.{max(digits - 2, 0)}%}")
        return Value(value, f"{value:.{digits}g}")

    @property
    def data(self) -> str:
        """The exact value for ``data-value`` (``repr`` of the float: round-trips)."""
        return "" if self.value is None else repr(float(self.value))


# -- the overview --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WindowRow:
    version: str
    window: str
    predictions: int
    labeled: int
    quality: list[tuple[str, Value]]  # (metric name, value): accuracy, f1 or MAE, RMSE
    drifted: int | None
    tested: int
    lights: list[Light]
    spark: Markup | None
    #: The window's scores, computed once for the row (the model page reuses them).
    scores: ClassificationScores | RegressionScores | None = None


@dataclass(frozen=True, slots=True)
class ComparisonRow:
    champion: str
    challenger: str
    mode: str
    verdict: str
    light: Light
    difference: Value
    pvalue: Value
    labeled: tuple[int, int]


@dataclass(frozen=True, slots=True)
class ModelCard:
    name: str
    task: str
    versions: list[VersionHealth]
    pending_labels: int
    labels_expired: int
    rows: list[WindowRow]
    model_lights: list[Light]
    comparison: list[ComparisonRow] | None
    level: lights.Level


@dataclass(frozen=True, slots=True)
class VersionHealth:
    name: str
    predictions_total: int
    labels_total: int
    pending_predictions: int
    predictions_expired: int
    label_delay_mean: Value  # seconds, over every joined label so far
    concept: Light | None


def _worst(levels: Sequence[lights.Level]) -> lights.Level:
    for level in ("red", "amber"):
        if level in levels:
            return level
    return "green"


def _main_f1(scores: ClassificationScores) -> tuple[str, float] | None:
    """The F1 ModelF1Drop reads: binary where present, else macro."""
    for average in ("binary", "macro"):
        if average in scores.f1:
            return average, scores.f1[average]
    return None


def _delay_mean(v: VersionSnapshot) -> Value:
    count = int(v.counters.delay_counts.sum())
    return Value.of(v.counters.delay_sum / count if count else None, 3)


def _version_health(
    v: VersionSnapshot, now: float, t: Thresholds, lookback: float
) -> VersionHealth:
    concept = None
    if v.concept is not None:
        concept = lights.concept_drift(v.concept.last_detection, now, lookback, t)
    return VersionHealth(
        name=v.name,
        predictions_total=v.counters.predictions,
        labels_total=v.counters.labels,
        pending_predictions=v.pending,
        predictions_expired=sum(v.counters.expired.values()),
        label_delay_mean=_delay_mean(v),
        concept=concept,
    )


def _quality_row(
    m: ModelSnapshot,
    v: VersionSnapshot,
    drift: Mapping[WindowKey, DriftResult],
    settings: Settings,
    t: Thresholds,
    history: HistoryReader | None,
    since: float,
) -> list[WindowRow]:
    min_samples = settings.quality.min_samples
    rows = []
    for counts in v.windows:
        w = window_quality(counts, m.positive_index, min_samples)
        quality: list[tuple[str, Value]] = []
        row_lights: list[Light] = []
        spark_name, threshold = "accuracy", None
        if isinstance(w.scores, RegressionScores) or (m.task == "regression"):
            s = w.scores if isinstance(w.scores, RegressionScores) else None
            quality.append(("MAE", Value.of(None if s is None else s.mean_absolute_error)))
            quality.append(("RMSE", Value.of(None if s is None else s.root_mean_squared_error)))
            spark_name = "mean_absolute_error"
        else:
            s2 = w.scores if isinstance(w.scores, ClassificationScores) else None
            quality.append(("accuracy", Value.of(None if s2 is None else s2.accuracy)))
            row_lights.append(lights.accuracy(None if s2 is None else s2.accuracy, t, min_samples))
            main = None if s2 is None else _main_f1(s2)
            f1_name = "F1" if main is None else f"F1 {main[0]}"
            quality.append((f1_name, Value.of(None if main is None else main[1])))
            average = "binary" if main is None else main[0]
            row_lights.append(lights.f1(None if main is None else main[1], average, t, min_samples))
            threshold = t.accuracy_below
            estimate = window_estimate(counts, min_samples)
            if estimate is not None:
                est = None if estimate.scores is None else estimate.scores.accuracy
                quality.append(("estimated accuracy", Value.of(est)))
                row_lights.append(lights.estimated_accuracy(est, t, min_samples))
        result = drift.get((v.name, w.window))
        drifted = None if result is None else result.scores.drifted
        tested = 0 if result is None else result.scores.tested
        row_lights.append(lights.feature_drift(drifted, tested, t))
        predicted = None
        if result is not None and result.scores.predictions is not None:
            predicted = result.scores.predictions.drifted
        row_lights.append(lights.prediction_drift(predicted, t))
        spark = None
        if history is not None:
            found = [
                s
                for s in history(m.name, v.name, w.window, (spark_name,), since)
                if s.name == spark_name
            ]
            if found:
                spark = charts.sparkline(
                    found[0].times,
                    found[0].values,
                    title=f"{spark_name}, {v.name}, {w.window}: recent history",
                    threshold=threshold,
                )
        rows.append(
            WindowRow(
                version=v.name,
                window=w.window,
                predictions=w.predictions,
                labeled=w.labeled,
                quality=quality,
                drifted=drifted,
                tested=tested,
                lights=row_lights,
                spark=spark,
                scores=w.scores,
            )
        )
    return rows


#: How far back the overview's and the model page's charts reach.
CARD_HISTORY, PAGE_HISTORY = 3 * 3600.0, 24 * 3600.0


def earliest_read(now: float, t: Thresholds, *, model_page: bool) -> float:
    """The earliest time a page reads from the history: what its excerpt must hold."""
    stale = parse_duration(t.ground_truth_stale_after)
    flows = now - max(15 * 60.0, stale) - 120  # _flow's look back, and its margin
    charts = now - (PAGE_HISTORY if model_page else CARD_HISTORY)
    return min(flows, charts)


def _flow(
    history: HistoryReader | None, model: str, now: float, minutes: float, name: str
) -> bool | None:
    """Did the model-wide total ``name`` (summed over versions) grow over the last
    ``minutes``? None when the history does not reach back that far."""
    if history is None:
        return None
    start = now - minutes * 60
    series = [s for s in history(model, None, None, (name,), start - 120) if s.name == name]
    if not series:
        return None
    first, last = 0.0, 0.0
    reaches = False
    for s in series:
        pairs = [(t, v) for t, v in zip(s.times, s.values, strict=True) if math.isfinite(v)]
        if not pairs:
            continue
        before = [v for t, v in pairs if t <= start]
        if before:
            reaches = True
            first += before[-1]
        last += pairs[-1][1]
    if not reaches:
        return None
    return last > first


def comparison_rows(
    m: ModelSnapshot, sequential: SequentialStates, t: Thresholds
) -> list[ComparisonRow] | None:
    c = m.comparison
    if c is None:
        return None
    states = dict(sequential.of(c, m.uid))
    rows = []
    for challenger in c.challengers:
        state = states.get(challenger)
        if state is None:
            light = Light("amber", "ModelChallengerWorse", "sequential test", "no look yet")
            verdict, difference, pvalue, labeled = "undecided", None, None, (0, 0)
        else:
            higher_is_better = state.kind not in ("mae", "paired_mae")
            labeled = (state.samples_a, state.samples_b)
            verdict, light = lights.challenger(
                state.pvalue, state.lower, state.upper, labeled, higher_is_better, t
            )
            difference, pvalue = state.difference, state.pvalue
        rows.append(
            ComparisonRow(
                c.champion,
                challenger,
                c.mode,
                verdict,
                light,
                Value.of(difference),
                Value.of(pvalue),
                labeled,
            )
        )
    return rows


def model_card(
    m: ModelSnapshot,
    drift: Mapping[WindowKey, DriftResult],
    sequential: SequentialStates,
    settings: Settings,
    t: Thresholds,
    history: HistoryReader | None,
    now: float,
) -> ModelCard:
    lookback = parse_duration(t.concept_drift_lookback)
    stale_minutes = parse_duration(t.ground_truth_stale_after) / 60
    since = now - CARD_HISTORY
    rows = [
        row for v in m.versions for row in _quality_row(m, v, drift, settings, t, history, since)
    ]
    versions = [_version_health(v, now, t, lookback) for v in m.versions]
    flowing = _flow(history, m.name, now, 15, "predictions_total")
    labeled = _flow(history, m.name, now, stale_minutes, "labels_total")
    model_lights = [
        lights.no_predictions(flowing, t),
        lights.ground_truth_stale(flowing, labeled, t),
    ]
    comparison = comparison_rows(m, sequential, t)
    levels = [light.level for row in rows for light in row.lights]
    levels += [light.level for light in model_lights]
    levels += [v.concept.level for v in versions if v.concept is not None]
    levels += [row.light.level for row in comparison or ()]
    return ModelCard(
        name=m.name,
        task=m.task or "not known yet",
        versions=versions,
        pending_labels=m.pending_labels,
        labels_expired=sum(m.counters.labels_expired.values()),
        rows=rows,
        model_lights=model_lights,
        comparison=comparison,
        level=_worst(levels),
    )


# -- the model page ------------------------------------------------------------------------------

SortKey = Literal[
    "verdict", "name", "pvalue", "statistic", "psi", "jensen_shannon", "missing", "outside"
]
SORT_KEYS: tuple[SortKey, ...] = (
    "verdict",
    "name",
    "pvalue",
    "statistic",
    "psi",
    "jensen_shannon",
    "missing",
    "outside",
)


@dataclass(frozen=True, slots=True)
class DriftRow:
    name: str
    kind: str
    statistic_name: str  # "KS D" or "G"
    statistic: Value
    pvalue: Value
    adjusted_pvalue: Value
    psi: Value
    jensen_shannon: Value
    missing: Value
    #: Share of window values outside the reference: beyond its [min, max] (numeric) or in
    #: categories it does not track (categorical).
    outside: Value
    window_values: int
    verdict: str  # drifted, stable, untested


@dataclass(frozen=True, slots=True)
class ClassRow:
    name: str
    precision: Value
    recall: Value
    f1: Value
    support: int


@dataclass(frozen=True, slots=True)
class TargetRow:
    what: str  # predictions or labels
    test: str
    statistic: Value
    pvalue: Value
    psi: Value
    verdict: str


@dataclass
class WindowSection:
    version: str
    window: str
    anchor: str
    predictions: int
    labeled: int
    quality: list[tuple[str, Value]]
    quality_chart: Markup | None
    lights: list[Light]
    classes: list[str] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)
    class_rows: list[ClassRow] = field(default_factory=list)
    drift_rows: list[DriftRow] = field(default_factory=list)
    drift_note: str = ""
    drifted: int | None = None
    feature: str | None = None  # the feature drawn
    distribution: Markup | None = None
    targets: list[TargetRow] = field(default_factory=list)


@dataclass
class VersionSection:
    health: VersionHealth
    delay_chart: Markup | None
    delays_excluded: dict[str, int]
    windows: list[WindowSection]


@dataclass
class ModelPage:
    card: ModelCard
    features: list[tuple[str, str]]
    type_mismatches: dict[str, int]
    categories_pooled: dict[str, int]
    duplicates: tuple[int, int]
    versions: list[VersionSection]
    sort: SortKey


def _drift_rows(scores: DriftScores, sort: SortKey) -> list[DriftRow]:
    rows = [_drift_row(name, f) for name, f in scores.features.items()]
    order = {"drifted": 0, "stable": 1, "untested": 2}

    def pvalue(r: DriftRow) -> float:
        return 2.0 if r.pvalue.value is None else r.pvalue.value

    def desc(v: Value) -> float:
        return 1.0 if v.value is None else -v.value

    keys: dict[SortKey, Callable[[DriftRow], tuple[object, ...]]] = {
        # Drifted first, then by p-value (smallest first), then by name.
        "verdict": lambda r: (order[r.verdict], pvalue(r), r.name),
        "name": lambda r: (r.name,),
        "pvalue": lambda r: (pvalue(r), r.name),
        "statistic": lambda r: (desc(r.statistic), r.name),
        "psi": lambda r: (desc(r.psi), r.name),
        "jensen_shannon": lambda r: (desc(r.jensen_shannon), r.name),
        "missing": lambda r: (desc(r.missing), r.name),
        "outside": lambda r: (desc(r.outside), r.name),
    }
    return sorted(rows, key=keys[sort])


def _drift_row(name: str, f: FeatureDrift) -> DriftRow:
    verdict = "untested" if f.drifted is None else ("drifted" if f.drifted else "stable")
    if f.numeric is not None:
        d = f.numeric
        statistic_name, statistic, psi, js = "KS D", d.ks_statistic, d.psi, d.jensen_shannon
        outside: float | None = d.out_of_range
    elif f.categorical is not None:
        c = f.categorical
        statistic_name, statistic, psi, js = "G", c.chi2_statistic, c.psi, c.jensen_shannon
        outside = c.unseen
    else:
        statistic_name, statistic, psi, js, outside = "", None, None, None, None
    return DriftRow(
        name=name,
        kind=f.kind,
        statistic_name=statistic_name,
        statistic=Value.of(statistic),
        pvalue=Value.of(f.pvalue, 3),
        adjusted_pvalue=Value.of(f.adjusted_pvalue, 3),
        psi=Value.of(psi),
        jensen_shannon=Value.of(js),
        missing=Value.of(f.missing, 3, percent=True),
        outside=Value.of(outside, 3, percent=True),
        window_values=f.window_values,
        verdict=verdict,
    )


def _target_row(what: str, t: TargetDrift | None) -> TargetRow | None:
    if t is None:
        return None
    verdict = "drifted" if t.drifted else "stable"
    if t.numeric is not None:
        n = t.numeric
        return TargetRow(
            what, "KS D", Value.of(n.ks_statistic), Value.of(n.pvalue, 3), Value.of(n.psi), verdict
        )
    if t.categorical is not None:
        c = t.categorical
        return TargetRow(
            what, "G", Value.of(c.chi2_statistic), Value.of(c.pvalue, 3), Value.of(c.psi), verdict
        )
    return None


def distribution_chart(name: str, f: FeatureDrift, where: str) -> Markup | None:
    """The feature's window drawn over its reference, from the counts the test used."""
    d = f.distribution
    title = f"{name}: window against reference ({where})"
    if isinstance(d, Histogram):
        return charts.overlay_histogram(
            d.edges.tolist(), d.window.tolist(), d.reference.tolist(), title=title
        )
    if isinstance(d, CategoryCounts):
        names = [*d.categories, "(other)"]
        return charts.category_bars(
            names,
            [*d.window.tolist(), d.window_other],
            [*d.reference.tolist(), d.reference_other],
            title=title,
        )
    return None


#: Quality series drawn over time, per task.
CLASSIFICATION_SERIES = ("accuracy", "f1_score", "estimated_accuracy")
REGRESSION_SERIES = ("mean_absolute_error", "root_mean_squared_error")


def _quality_chart(
    history: HistoryReader | None,
    m: ModelSnapshot,
    version: str,
    window: str,
    t: Thresholds,
    since: float,
) -> Markup | None:
    if history is None:
        return None
    regression = m.task == "regression"
    names = REGRESSION_SERIES if regression else CLASSIFICATION_SERIES
    lines = []
    for s in history(m.name, version, window, names, since):
        average = s.labels.get("average")
        label = s.name if average is None else f"{s.name} {average}"
        lines.append(charts.Line(label, s.times, s.values))
    if not lines:
        return None
    return charts.line_chart(
        lines,
        title=f"{'errors' if regression else 'quality'} of {version} over {window} windows",
        threshold=None if regression else t.accuracy_below,
        threshold_label="" if regression else f"ModelAccuracyDrop < {t.accuracy_below}",
        unit_range=not regression,
    )


def model_page(
    m: ModelSnapshot,
    drift: Mapping[WindowKey, DriftResult],
    sequential: SequentialStates,
    settings: Settings,
    t: Thresholds,
    history: HistoryReader | None,
    now: float,
    *,
    sort: SortKey = "verdict",
    feature: str | None = None,
) -> ModelPage:
    card = model_card(m, drift, sequential, settings, t, history, now)
    since = now - PAGE_HISTORY
    rows = {(r.version, r.window): r for r in card.rows}
    health = {h.name: h for h in card.versions}
    versions = []
    for i, v in enumerate(m.versions):
        windows = []
        for j, counts in enumerate(v.windows):
            row = rows[(v.name, counts.window)]
            section = WindowSection(
                version=v.name,
                window=counts.window,
                anchor=f"v{i}-w{j}",
                predictions=row.predictions,
                labeled=row.labeled,
                quality=row.quality,
                quality_chart=_quality_chart(history, m, v.name, counts.window, t, since),
                lights=row.lights,
            )
            if isinstance(row.scores, ClassificationScores):
                _fill_classes(section, row.scores, m.classes, counts.confusion)
            result = drift.get((v.name, counts.window))
            if result is None:
                section.drift_note = "not computed yet (the drift worker's next run)"
            else:
                _fill_drift(section, result, sort, feature)
            windows.append(section)
        edges = [*LABEL_DELAY_BUCKETS, math.inf]
        counts_ = v.counters.delay_counts.tolist()
        delay_chart = None
        if sum(counts_):
            delay_chart = charts.delay_bars(
                edges, counts_, title=f"label delay of {v.name} (every joined label)"
            )
        versions.append(
            VersionSection(
                health=health[v.name],
                delay_chart=delay_chart,
                delays_excluded=dict(v.counters.delays_excluded),
                windows=windows,
            )
        )
    return ModelPage(
        card=card,
        features=[(n, k or "not known yet") for n, k in m.features],
        type_mismatches=dict(m.counters.type_mismatches),
        categories_pooled=dict(m.counters.categories_pooled),
        duplicates=(m.counters.duplicate_predictions, m.counters.duplicate_labels),
        versions=versions,
        sort=sort,
    )


def _fill_classes(
    section: WindowSection,
    s: ClassificationScores,
    classes: tuple[str, ...],
    confusion: object,
) -> None:
    present = s.classes.tolist()
    section.classes = [classes[c] for c in present]
    if confusion is not None:
        matrix = np.asarray(confusion)
        section.confusion = [[int(matrix[a, p]) for p in present] for a in present]
    section.class_rows = [
        ClassRow(
            classes[c],
            Value.of(float(s.class_precision[j])),
            Value.of(float(s.class_recall[j])),
            Value.of(float(s.class_f1[j])),
            int(s.class_support[j]),
        )
        for j, c in enumerate(present)
    ]


def _fill_drift(
    section: WindowSection, result: DriftResult, sort: SortKey, feature: str | None
) -> None:
    s = result.scores
    section.drift_rows = _drift_rows(s, sort)
    section.drifted = s.drifted
    section.drift_note = (
        f"{s.drifted} of {s.tested} tested features drifted: adjusted p-value ({s.correction}) "
        f"at most {s.alpha:g} ({s.release_alpha:g} to stay drifted); "
        f"{result.window_sample} sampled of {result.window_events} predictions"
    )
    drawable = [r.name for r in _drift_rows(s, "verdict") if s.features[r.name].distribution]
    chosen = feature if feature in s.features else (drawable[0] if drawable else None)
    if chosen is not None:
        section.feature = chosen
        section.distribution = distribution_chart(
            chosen, s.features[chosen], f"{section.version}, {section.window}"
        )
    for what, target in (("predictions", s.predictions), ("labels", s.labels)):
        row = _target_row(what, target)
        if row is not None:
            section.targets.append(row)
