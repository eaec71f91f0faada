"""The drift detector (exporter.detector) on window samples, against SciPy oracles on the same
arrays: KS and Wasserstein per numeric feature, chi-squared per categorical feature, the
multiple-testing corrections and effect-size floors, prediction and label drift."""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from exporter.config import DriftSettings
from exporter.detector import DetectorSettings, DriftDetector, DriftScores
from exporter.reference import (
    Reference,
    RowLayout,
    build_reference,
    reference_from_rows,
    target_from_column,
)
from exporter.stats.distribution import CategoryCounts, Histogram
from exporter.stats.drift import PSI_FLOOR

RTOL_P = 1e-9  # p-values: KS via exporter.stats.ks, chi-squared via scipy.special
RTOL_STAT = 1e-12  # statistics and distances

Labels = Sequence[str | None]


# -- building samples ----------------------------------------------------------------------------


def layout(
    kinds: dict[str, tuple[str, ...] | None], classes: tuple[str, ...] | None = None
) -> RowLayout:
    """A layout from ``{name: None}`` (numeric) or ``{name: categories}`` (categorical)."""
    return RowLayout(
        names=tuple(kinds),
        kinds=tuple("numeric" if c is None else "categorical" for c in kinds.values()),
        categories=tuple(() if c is None else c for c in kinds.values()),
        classes=classes,
    )


def reference(columns: dict[str, Sequence[Any]], **kwargs: Any) -> Reference:
    """An uploaded reference of ``columns``, every value kept (not subsampled to the default
    ``drift.reference_max_values``): the oracles see the same values."""
    settings = kwargs.pop("settings", DriftSettings(reference_max_values=1_000_000))
    return build_reference(columns, settings=settings, source="upload", created=0.0, **kwargs)


def codes(labels: Labels, categories: Sequence[str]) -> np.ndarray:
    """Window labels as the model stores them: the code of a category of its dictionary,
    -1 for one it pooled (not in the dictionary), NaN for missing."""
    index = {c: i for i, c in enumerate(categories)}
    return np.array([np.nan if v is None else index.get(v, -1) for v in labels], dtype=float)


def rows_of(predictions: Sequence[float] | np.ndarray, *columns: np.ndarray) -> np.ndarray:
    return np.column_stack([np.asarray(predictions, dtype=float), *columns])


def with_missing(rng: np.random.Generator, values: np.ndarray, share: float) -> np.ndarray:
    out = values.astype(float)
    out[rng.random(out.shape[0]) < share] = np.nan
    return out


# -- oracles -------------------------------------------------------------------------------------


def top_categories(counts: Counter[str], k: int) -> tuple[str, ...]:
    """The categories a reference tracks: the k most frequent, ties by name."""
    return tuple(sorted(counts, key=lambda c: (-counts[c], c))[:k])


def categorical_oracle(
    ref_labels: Iterable[str], tracked: Sequence[str], window_labels: Iterable[str | None]
) -> dict[str, float]:
    """chi2_contingency, PSI, Jensen-Shannon and unseen share over the tracked categories plus
    one "other" bin: the reference's untracked (pooled) values, and the window's values outside
    the tracked categories (including those the model pooled, ``None`` here)."""
    ref, win = Counter(ref_labels), Counter(window_labels)
    ref_row = [ref[c] for c in tracked] + [sum(n for c, n in ref.items() if c not in tracked)]
    win_row = [win[c] for c in tracked] + [sum(n for c, n in win.items() if c not in tracked)]
    table = np.array([ref_row, win_row], dtype=float)
    present = table[:, table.sum(axis=0) > 0]  # categories present on either side
    result = stats.chi2_contingency(present, correction=False, lambda_="log-likelihood")
    p, q = table[0] / table[0].sum(), table[1] / table[1].sum()
    pc, qc = np.maximum(p, PSI_FLOOR), np.maximum(q, PSI_FLOOR)
    return {
        "chi2_statistic": float(result.statistic),
        "chi2_pvalue": float(result.pvalue),
        "psi": float(np.sum((qc - pc) * np.log(qc / pc))),
        "jensen_shannon": float(jensenshannon(p, q, base=2)),
        "unseen": win_row[-1] / table[1].sum(),
        "reference_values": table[0].sum(),
        "window_values": table[1].sum(),
    }


def labels_of(column: np.ndarray, categories: Sequence[str]) -> list[str | None]:
    """Stored codes back to labels (None for a pooled code); missing values dropped."""
    return [categories[int(c)] if c >= 0 else None for c in column[~np.isnan(column)]]


def check_categorical(drift: Any, oracle: dict[str, float]) -> None:
    assert drift is not None
    assert drift.chi2_statistic == pytest.approx(oracle["chi2_statistic"], rel=RTOL_STAT, abs=0)
    assert drift.chi2_pvalue == pytest.approx(oracle["chi2_pvalue"], rel=RTOL_P, abs=0)
    assert drift.psi == pytest.approx(oracle["psi"], rel=RTOL_STAT, abs=1e-15)
    assert drift.jensen_shannon == pytest.approx(oracle["jensen_shannon"], rel=1e-9, abs=1e-12)
    assert drift.unseen == oracle["unseen"]
    assert drift.reference_values == oracle["reference_values"]
    assert drift.window_values == oracle["window_values"]


def check_numeric(drift: Any, ref: np.ndarray, win: np.ndarray) -> None:
    """``drift`` against SciPy on the non-missing values of both sides."""
    ref, win = ref[~np.isnan(ref)], win[~np.isnan(win)]
    expected = stats.ks_2samp(ref, win, method="asymp")
    assert drift is not None
    assert drift.ks_statistic == expected.statistic  # bit-identical
    assert drift.ks_pvalue == pytest.approx(expected.pvalue, rel=RTOL_P, abs=0)
    assert drift.wasserstein == pytest.approx(
        stats.wasserstein_distance(ref, win), rel=RTOL_STAT, abs=0
    )
    assert (drift.reference_values, drift.window_values) == (ref.shape[0], win.shape[0])


# -- numeric features ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_numeric_features_match_scipy(seed: int) -> None:
    """Shifted, tied, same-distribution and identical columns, with missing values: KS,
    Wasserstein, sizes and missing shares against SciPy and exact counts."""
    rng = np.random.default_rng(seed)
    n = 800
    ref = {
        "shifted": rng.normal(0, 1, 1000),
        "ties": rng.integers(0, 5, 700).astype(float),
        "same": rng.normal(0, 1, 600),
        "identical": rng.normal(0, 1, n),
    }
    win = {
        "shifted": with_missing(rng, rng.normal(0.4, 1, n), 0.1),
        "ties": with_missing(rng, rng.integers(0, 6, n).astype(float), 0.3),
        "same": with_missing(rng, rng.normal(0, 1, n), 0.05),
        "identical": rng.permutation(ref["identical"]),
    }
    lay = layout(dict.fromkeys(ref))
    rows = rows_of(np.zeros(n), *win.values())
    scores = DriftDetector(
        reference({k: v.tolist() for k, v in ref.items()}), lay, DetectorSettings()
    ).score(rows)

    assert list(scores.features) == list(ref)
    for name, values in win.items():
        f = scores.features[name]
        missing = int(np.count_nonzero(np.isnan(values)))
        assert f.kind == "numeric" and f.categorical is None
        assert f.missing == missing / n
        assert (f.window_values, f.reference_values) == (n - missing, ref[name].shape[0])
        check_numeric(f.numeric, ref[name], values)
        tests = (f.numeric.ks_pvalue, f.numeric.mann_whitney_pvalue, f.numeric.chi2_pvalue)
        assert f.pvalue == min(1.0, 3 * min(tests))
        # The chart's counts: the same values the tests used, over shared bins.
        h = f.distribution
        assert isinstance(h, Histogram)
        for counts, side in ((h.window, values[~np.isnan(values)]), (h.reference, ref[name])):
            expected, _ = np.histogram(np.clip(side, h.edges[0], h.edges[-1]), bins=h.edges)
            np.testing.assert_array_equal(counts, expected)
    identical = scores.features["identical"].numeric
    assert (identical.ks_statistic, identical.ks_pvalue, identical.wasserstein) == (0.0, 1.0, 0.0)
    assert scores.features["shifted"].drifted is True


def test_numeric_feature_below_min_samples_is_untested() -> None:
    """Exactly ``min_samples`` values on both sides is tested; one fewer on either side is not."""
    rng = np.random.default_rng(11)
    need, n = 50, 120
    window = {
        "enough": np.r_[rng.normal(size=need), np.full(n - need, np.nan)],
        "short_window": np.r_[rng.normal(size=need - 1), np.full(n - need + 1, np.nan)],
        "short_reference": rng.normal(size=n),
    }
    ref = {
        "enough": rng.normal(size=need).tolist(),
        "short_window": rng.normal(size=200).tolist(),
        "short_reference": rng.normal(size=need - 1).tolist(),
    }
    scores = DriftDetector(
        reference(ref), layout(dict.fromkeys(window)), DetectorSettings(min_samples=need)
    ).score(rows_of(np.zeros(n), *window.values()))

    enough = scores.features["enough"]
    check_numeric(enough.numeric, np.array(ref["enough"]), window["enough"])
    assert enough.drifted is not None
    for name in ("short_window", "short_reference"):
        f = scores.features[name]
        assert (f.numeric, f.drifted, f.pvalue) == (None, None, None)
        assert f.window_values == np.count_nonzero(~np.isnan(window[name]))
        assert f.reference_values == len(ref[name])
        assert f.missing == np.count_nonzero(np.isnan(window[name])) / n
    assert scores.tested == 1


# -- categorical features ------------------------------------------------------------------------


def categorical_sample(seed: int) -> tuple[dict[str, list[str]], dict[str, Labels], RowLayout]:
    """Reference labels, window labels and the model's dictionary of two features: ``color``
    (the window has a category the reference never saw and values the model pooled) and
    ``city`` (more categories than the reference tracks, so some are pooled on its side)."""
    rng = np.random.default_rng(seed)
    n = 900

    def draw(cats: Sequence[str], p: Sequence[float], size: int) -> list[str]:
        return [str(c) for c in rng.choice(cats, size=size, p=p)]

    ref = {
        "color": draw(["red", "green", "blue"], [0.5, 0.3, 0.2], 1000),
        "city": draw(["a", "b", "c", "d", "e", "f"], [0.3, 0.25, 0.2, 0.1, 0.1, 0.05], 1200),
    }
    win: dict[str, Labels] = {
        "color": draw(["red", "green", "blue", "violet", "x-pooled"], [0.4, 0.3, 0.1, 0.1, 0.1], n),
        "city": draw(["a", "b", "c", "d", "e", "g", "x-pooled"], [0.2] * 3 + [0.1] * 4, n),
    }
    for labels in win.values():  # missing values
        for i in rng.choice(n, size=40, replace=False).tolist():
            labels[i] = None  # type: ignore[index]
    # The model's dictionaries: "x-pooled" is beyond its category limit (stored as -1).
    lay = layout(
        {"color": ("green", "red", "violet", "blue"), "city": ("a", "b", "c", "d", "e", "f", "g")}
    )
    return ref, win, lay


@pytest.mark.parametrize("seed", range(4))
def test_categorical_features_match_chi2_contingency(seed: int) -> None:
    """Chi-squared statistic and p-value, PSI, Jensen-Shannon and unseen share against
    ``chi2_contingency(..., correction=False, lambda_="log-likelihood")`` over the tracked
    categories plus "other"."""
    ref, win, lay = categorical_sample(seed)
    settings = DriftSettings(max_categories=4)
    detector = DriftDetector(reference(ref, settings=settings), lay, DetectorSettings())
    n = len(win["color"])
    rows = rows_of(np.zeros(n), *(codes(win[j], lay.categories[i]) for i, j in enumerate(win)))
    scores = detector.score(rows)

    for i, name in enumerate(lay.names):
        f = scores.features[name]
        tracked = detector.reference.categorical[name].categories
        assert tracked == top_categories(Counter(ref[name]), 4)
        window_labels = labels_of(rows[:, i + 1], lay.categories[i])
        missing = sum(v is None for v in win[name])
        assert f.kind == "categorical" and f.numeric is None
        assert f.missing == missing / n
        assert (f.window_values, f.reference_values) == (n - missing, len(ref[name]))
        check_categorical(f.categorical, categorical_oracle(ref[name], tracked, window_labels))
        assert f.pvalue == f.categorical.chi2_pvalue
        shares = f.distribution
        assert isinstance(shares, CategoryCounts) and shares.categories == tracked
        window_counts = Counter(window_labels)
        assert shares.window.tolist() == [window_counts[c] for c in tracked]
        assert shares.window_other == sum(n for c, n in window_counts.items() if c not in tracked)
        ref_counts = Counter(ref[name])
        assert shares.reference.tolist() == [ref_counts[c] for c in tracked]
        assert shares.reference_other == len(ref[name]) - sum(shares.reference.tolist())
    # The sample exercises both kinds of "other": the reference pools cities e, f.
    assert detector.reference.categorical["city"].pooled > 0
    assert scores.features["color"].categorical.unseen > 0


def test_categorical_identical_sample_is_not_drifted() -> None:
    """A window with the reference's own labels: statistic 0, p-value 1, PSI 0."""
    rng = np.random.default_rng(5)
    labels = [str(c) for c in rng.choice(["u", "v", "w"], size=500, p=[0.6, 0.3, 0.1])]
    lay = layout({"c": ("w", "u", "v")})
    scores = DriftDetector(reference({"c": labels}), lay, DetectorSettings()).score(
        rows_of(np.zeros(500), codes(rng.permutation(labels).tolist(), lay.categories[0]))
    )
    f = scores.features["c"]
    check_categorical(f.categorical, categorical_oracle(labels, ("u", "v", "w"), labels))
    assert (f.categorical.chi2_statistic, f.categorical.chi2_pvalue) == (0.0, 1.0)
    assert (f.categorical.psi, f.categorical.unseen, f.drifted) == (0.0, 0.0, False)


def test_pooled_codes_match_a_reference_built_from_the_same_rows() -> None:
    """Rows scored against a reference built from themselves show no drift, pooled codes
    (categories beyond the model's limit) included."""
    rng = np.random.default_rng(0)
    stored = rng.choice([0.0, 1.0, -1.0], size=300, p=[0.3, 0.3, 0.4])
    lay = layout({"c": ("a", "b")})
    rows = rows_of(np.zeros(300), stored)
    ref = reference_from_rows(
        rows, lay, source="first_events", created=0.0, bins=10, max_categories=100
    )
    f = DriftDetector(ref, lay, DetectorSettings()).score(rows).features["c"]
    assert f.categorical is not None
    assert f.categorical.chi2_statistic == 0.0
    assert f.drifted is False


# -- verdicts: corrections and floors ------------------------------------------------------------

VERDICT_SEEDS = range(6)
CORRECTIONS = ("bh", "bonferroni", "none")


def verdict_sample(seed: int) -> tuple[Reference, RowLayout, np.ndarray]:
    """Twelve features with p-values spread around alpha and alpha/m, and features that are
    significant but below the effect-size floors (large samples, small effects)."""
    rng = np.random.default_rng(seed)
    n = 3000
    ref: dict[str, list[Any]] = {}
    win: dict[str, np.ndarray] = {}
    # Large samples, small shift: significant, KS statistic about 0.04 (below 0.1).
    ref["big_small_shift"] = rng.normal(0, 1, n).tolist()
    win["big_small_shift"] = rng.normal(0.1, 1, n)
    # Small references: p-values from about 1 to far below alpha / m.
    for i, shift in enumerate((0.0, 0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.6)):
        ref[f"n{i}"] = rng.normal(0, 1, 120).tolist()
        win[f"n{i}"] = rng.normal(shift, 1, n)
    cats = ("p", "q", "r")
    ref["cat_big"] = [str(c) for c in rng.choice(cats, n, p=[0.6, 0.3, 0.1])]
    win["cat_big"] = codes([str(c) for c in rng.choice(cats, n, p=[0.2, 0.3, 0.5])], cats)
    ref["cat_small"] = [str(c) for c in rng.choice(cats, n, p=[0.5, 0.3, 0.2])]
    win["cat_small"] = codes([str(c) for c in rng.choice(cats, n, p=[0.46, 0.32, 0.22])], cats)
    ref["cat_same"] = [str(c) for c in rng.choice(cats, 150, p=[0.5, 0.3, 0.2])]
    win["cat_same"] = codes([str(c) for c in rng.choice(cats, n, p=[0.5, 0.3, 0.2])], cats)
    kinds = {name: (cats if name.startswith("cat") else None) for name in ref}
    return (
        reference(ref, categorical=[k for k in ref if k.startswith("cat")]),
        layout(kinds),
        rows_of(np.zeros(n), *win.values()),
    )


def expected_verdicts(scores: DriftScores, settings: DetectorSettings) -> dict[str, bool]:
    """SciPy's correction on the raw p-values, and the effect-size floor of each kind."""
    names = [name for name, f in scores.features.items() if f.pvalue is not None]
    p = np.array([scores.features[name].pvalue for name in names])
    if settings.correction == "bh":
        significant = stats.false_discovery_control(p, method="bh") <= settings.alpha
    elif settings.correction == "bonferroni":
        significant = p <= settings.alpha / p.shape[0]
    else:
        significant = p <= settings.alpha
    out = {}
    for name, sig in zip(names, significant.tolist(), strict=True):
        f = scores.features[name]
        if f.numeric is not None:
            material = f.numeric.ks_statistic >= settings.min_ks_statistic
        else:
            material = f.categorical.psi >= settings.min_psi
        out[name] = sig and material
    return out


#: The verdict samples' settings: a level and floors that their p-values and effects straddle.
FLOORED = {"alpha": 0.05, "release_alpha": 0.05, "min_ks_statistic": 0.1, "min_psi": 0.1}


def score_verdicts(seed: int, **settings: Any) -> tuple[DriftScores, DetectorSettings]:
    ref, lay, rows = verdict_sample(seed)
    s = DetectorSettings(min_samples=50, **{**FLOORED, **settings})
    return DriftDetector(ref, lay, s).score(rows), s


@pytest.mark.parametrize("correction", CORRECTIONS)
@pytest.mark.parametrize("seed", VERDICT_SEEDS)
def test_verdicts_match_scipy_correction_and_floors(seed: int, correction: str) -> None:
    """Each feature's verdict, and the tested / drifted counts, under each correction."""
    scores, s = score_verdicts(seed, correction=correction)
    expected = expected_verdicts(scores, s)
    assert {name: f.drifted for name, f in scores.features.items()} == expected
    assert scores.tested == len(expected) == 12
    assert scores.drifted == sum(expected.values())
    assert (scores.correction, scores.alpha) == (correction, s.alpha)


def test_verdict_samples_tell_the_corrections_and_floors_apart() -> None:
    """The verdict samples are not vacuous: over the seeds, some feature is drifted under BH
    but not Bonferroni, under no correction but not BH, and significant but below a floor."""
    seen: Counter[str] = Counter()
    for seed in VERDICT_SEEDS:
        verdicts = {c: score_verdicts(seed, correction=c)[0] for c in CORRECTIONS}
        unfloored = score_verdicts(seed, correction="none", min_ks_statistic=0.0, min_psi=0.0)[0]
        for name, f in verdicts["bh"].features.items():
            bh, bonf = f.drifted, verdicts["bonferroni"].features[name].drifted
            raw = verdicts["none"].features[name].drifted
            seen["bh_not_bonferroni"] += bool(bh and not bonf)
            seen["raw_not_bh"] += bool(raw and not bh)
            floored = unfloored.features[name].drifted and not raw
            seen[f"floored_{f.kind}"] += bool(floored)
    cases = ("bh_not_bonferroni", "raw_not_bh", "floored_numeric", "floored_categorical")
    assert all(seen[case] > 0 for case in cases), seen


# -- predictions and labels ----------------------------------------------------------------------

CLASSES = ("cat", "dog", "bird")


def class_column(rng: np.random.Generator, p: Sequence[float], n: int) -> np.ndarray:
    return rng.choice(len(CLASSES), size=n, p=p).astype(float)


@pytest.mark.parametrize(
    ("window_p", "n", "drifts"),
    [
        ((0.5, 0.3, 0.2), 600, False),  # the reference's distribution
        ((0.2, 0.3, 0.5), 600, True),  # shifted
        ((0.47, 0.32, 0.21), 40_000, False),  # significant, PSI below the floor
    ],
)
def test_classifier_prediction_drift_matches_chi2(
    window_p: tuple[float, ...], n: int, drifts: bool
) -> None:
    """Predicted classes against the reference predictions: chi-squared over classes; drifted
    when the raw p-value is significant and the PSI reaches the floor."""
    rng = np.random.default_rng(n)
    ref_predictions = [CLASSES[i] for i in class_column(rng, (0.5, 0.3, 0.2), 40_000).astype(int)]
    predicted = class_column(rng, window_p, n)
    s = DetectorSettings(**FLOORED)
    ref = reference({"x": [0.0, 1.0]}, predictions=ref_predictions)
    scores = DriftDetector(ref, layout({"x": None}, classes=CLASSES), s).score(
        rows_of(predicted, np.zeros(n))
    )

    target = scores.predictions
    assert target is not None and target.numeric is None
    oracle = categorical_oracle(ref_predictions, CLASSES, labels_of(predicted, CLASSES))
    check_categorical(target.categorical, oracle)
    expected = bool(oracle["chi2_pvalue"] <= s.alpha and oracle["psi"] >= s.min_psi)
    assert target.drifted is expected is drifts


@pytest.mark.parametrize(("shift", "drifts"), [(0.0, False), (0.5, True), (0.05, False)])
def test_regression_prediction_drift_matches_ks(shift: float, drifts: bool) -> None:
    """Predicted values against the reference predictions: KS and Wasserstein; drifted when
    the raw p-value is significant and the KS statistic reaches the floor."""
    rng = np.random.default_rng(3)
    ref_values = rng.normal(10, 2, 20_000)
    predicted = rng.normal(10 + 2 * shift, 2, 20_000)
    s = DetectorSettings(**FLOORED)
    ref = reference({"x": [0.0, 1.0]}, predictions=ref_values.tolist())
    scores = DriftDetector(ref, layout({"x": None}), s).score(
        rows_of(predicted, np.zeros(predicted.shape[0]))
    )

    target = scores.predictions
    assert target is not None and target.categorical is None
    check_numeric(target.numeric, ref_values, predicted)
    expected = stats.ks_2samp(ref_values, predicted, method="asymp")
    significant = bool(target.numeric.pvalue <= s.alpha)
    assert target.numeric.pvalue <= 3 * expected.pvalue
    assert significant is (shift != 0.0)  # even the small shift is significant
    assert target.drifted is (significant and bool(expected.statistic >= 0.1)) is drifts


@pytest.mark.parametrize("task", ["classifier", "regression"])
@pytest.mark.parametrize("shifted", [False, True])
def test_label_drift_against_label_reference(task: str, shifted: bool) -> None:
    """Joined labels against the label reference: chi-squared over classes (classifier) or
    KS (regression), whatever the features do."""
    rng = np.random.default_rng(21 + shifted)
    n = 700
    if task == "classifier":
        ref_labels = class_column(rng, (0.5, 0.3, 0.2), 900)
        labels = class_column(rng, (0.2, 0.3, 0.5) if shifted else (0.5, 0.3, 0.2), n)
        label_reference = target_from_column(ref_labels, CLASSES, 10, 100)
        lay = layout({"x": None}, classes=CLASSES)
    else:
        ref_labels = rng.normal(0, 1, 900)
        labels = rng.normal(0.6 if shifted else 0.0, 1, n)
        label_reference = reference({"x": [0.0, 1.0]}, labels=ref_labels.tolist()).labels
        lay = layout({"x": None})
    s = DetectorSettings()
    scores = DriftDetector(None, lay, s, label_reference=label_reference).score(
        rows_of(np.zeros(n), rng.normal(size=n)), labels
    )

    target = scores.labels
    assert target is not None and scores.predictions is None
    if task == "classifier":
        oracle = categorical_oracle(
            labels_of(ref_labels, CLASSES), CLASSES, labels_of(labels, CLASSES)
        )
        check_categorical(target.categorical, oracle)
        expected = bool(oracle["chi2_pvalue"] <= s.alpha and oracle["psi"] >= s.min_psi)
    else:
        check_numeric(target.numeric, ref_labels, labels)
        ks = stats.ks_2samp(ref_labels, labels, method="asymp")
        expected = bool(target.numeric.pvalue <= s.alpha and ks.statistic >= s.min_ks_statistic)
        assert target.numeric.pvalue <= 3 * ks.pvalue
    assert target.drifted is expected is shifted


def test_label_drift_needs_a_reference_and_enough_labels() -> None:
    """No label reference, no labels, or fewer labels than min_samples: no label drift."""
    rng = np.random.default_rng(8)
    lay = layout({"x": None}, classes=CLASSES)
    label_reference = target_from_column(class_column(rng, (0.5, 0.3, 0.2), 500), CLASSES, 10, 100)
    rows = rows_of(np.zeros(200), rng.normal(size=200))
    labels = class_column(rng, (0.5, 0.3, 0.2), 200)
    s = DetectorSettings(min_samples=100)
    with_ref = DriftDetector(None, lay, s, label_reference=label_reference)
    assert with_ref.score(rows, labels).labels is not None
    assert with_ref.score(rows, labels[:100]).labels is not None
    assert with_ref.score(rows, labels[:99]).labels is None
    assert with_ref.score(rows, np.r_[labels[:99], np.full(50, np.nan)]).labels is None
    assert with_ref.score(rows).labels is None
    assert DriftDetector(None, lay, s).score(rows, labels).labels is None


# -- no reference, empty samples -----------------------------------------------------------------


def test_without_reference_features_are_reported_untested() -> None:
    """``reference=None``: every feature has its kind, sizes and missing share, no test."""
    rng = np.random.default_rng(4)
    n = 300
    x = with_missing(rng, rng.normal(size=n), 0.2)
    c = codes(
        [str(v) if v != "none" else None for v in rng.choice(["a", "b", "none"], n)], ("a", "b")
    )
    scores = DriftDetector(None, layout({"x": None, "c": ("a", "b")}), DetectorSettings()).score(
        rows_of(np.zeros(n), x, c)
    )
    for name, column, kind in (("x", x, "numeric"), ("c", c, "categorical")):
        f = scores.features[name]
        missing = int(np.count_nonzero(np.isnan(column)))
        assert (f.kind, f.window_values, f.reference_values) == (kind, n - missing, 0)
        assert f.missing == missing / n
        assert (f.numeric, f.categorical, f.drifted, f.pvalue) == (None, None, None, None)
    assert (scores.tested, scores.drifted, scores.predictions) == (0, 0, None)


def test_empty_sample_has_no_features() -> None:
    """A window without rows (and without labels) reports nothing."""
    rng = np.random.default_rng(6)
    ref = reference({"x": rng.normal(size=200).tolist()}, predictions=rng.normal(size=200).tolist())
    label_reference = target_from_column(rng.normal(size=200), None, 10, 100)
    detector = DriftDetector(
        ref, layout({"x": None}), DetectorSettings(), label_reference=label_reference
    )
    scores = detector.score(np.empty((0, 2)), np.empty(0))
    assert scores.features == {}
    assert (scores.predictions, scores.labels, scores.tested, scores.drifted) == (None, None, 0, 0)


# -- determinism, purity, threads ----------------------------------------------------------------


def mixed_sample(seed: int, numeric: int = 9) -> tuple[Reference, RowLayout, Any, Any, Any]:
    """A classifier with ``numeric`` numeric features, one categorical, predictions and
    labels, missing values throughout."""
    rng = np.random.default_rng(seed)
    n = 1500
    ref: dict[str, list[Any]] = {f"x{i}": rng.normal(0, 1, 1000).tolist() for i in range(numeric)}
    ref["c"] = [str(v) for v in rng.choice(["a", "b", "c"], 1000)]
    cols = [with_missing(rng, rng.normal(i / 10, 1, n), 0.1) for i in range(numeric)]
    cols.append(codes([str(v) for v in rng.choice(["a", "b", "c", "d"], n)], ("a", "c", "b")))
    kinds: dict[str, tuple[str, ...] | None] = {f"x{i}": None for i in range(numeric)}
    kinds["c"] = ("a", "c", "b")
    ref_predictions = [CLASSES[i] for i in rng.integers(0, 3, 1000).tolist()]
    label_reference = target_from_column(rng.integers(0, 3, 800).astype(float), CLASSES, 10, 100)
    rows = rows_of(class_column(rng, (0.4, 0.4, 0.2), n), *cols)
    labels = class_column(rng, (0.3, 0.3, 0.4), n)
    return (
        reference(ref, categorical=["c"], predictions=ref_predictions),
        layout(kinds, classes=CLASSES),
        rows,
        labels,
        label_reference,
    )


def test_scoring_is_deterministic_and_leaves_inputs_alone() -> None:
    """Scoring the same sample twice gives equal results; rows, labels and references are
    unchanged by it."""
    ref, lay, rows, labels, label_reference = mixed_sample(1)
    before = (rows.copy(), labels.copy(), copy.deepcopy(ref), copy.deepcopy(label_reference))
    detector = DriftDetector(ref, lay, DetectorSettings(), label_reference=label_reference)
    first = detector.score(rows, labels)
    second = detector.score(rows, labels)

    assert first == second
    assert first.predictions is not None and first.labels is not None and first.tested == 10
    np.testing.assert_array_equal(rows, before[0])
    np.testing.assert_array_equal(labels, before[1])
    for name, num in ref.numeric.items():
        np.testing.assert_array_equal(num.values, before[2].numeric[name].values)
        np.testing.assert_array_equal(num.shares, before[2].numeric[name].shares)
    np.testing.assert_array_equal(ref.categorical["c"].counts, before[2].categorical["c"].counts)
    np.testing.assert_array_equal(
        ref.predictions.categories.counts, before[2].predictions.categories.counts
    )
    np.testing.assert_array_equal(label_reference.categories.counts, before[3].categories.counts)


class CountingPool(ThreadPoolExecutor):
    """A thread pool that counts the ``map`` calls it serves."""

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        self.maps = 0

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any], **kwargs: Any) -> Any:
        self.maps += 1
        return super().map(fn, *iterables, **kwargs)


@pytest.mark.parametrize("threads", [2, 4, 9])
def test_executor_gives_identical_results(threads: int) -> None:
    """Numeric features split over a thread pool score exactly as without one."""
    ref, lay, rows, labels, label_reference = mixed_sample(2)
    serial = DriftDetector(
        ref, lay, DetectorSettings(threads=threads), label_reference=label_reference
    ).score(rows, labels)
    with CountingPool(2) as pool:
        parallel = DriftDetector(
            ref,
            lay,
            DetectorSettings(threads=threads),
            label_reference=label_reference,
            executor=pool,
        ).score(rows, labels)
        assert pool.maps == 1  # the numeric features really went through the pool
    assert parallel == serial
    assert serial.tested == 10


def test_detector_settings_of_drift_settings() -> None:
    """DetectorSettings.of takes every deciding option of the drift settings."""
    drift = DriftSettings(
        min_samples=7,
        alpha=0.01,
        correction="bonferroni",
        min_ks_statistic=0.2,
        min_psi=0.3,
        threads=3,
    )
    assert DetectorSettings.of(drift) == DetectorSettings(
        min_samples=7,
        alpha=0.01,
        release_alpha=0.01,  # the default: the larger of 1e-3 and alpha
        correction="bonferroni",
        min_ks_statistic=0.2,
        min_psi=0.3,
        threads=3,
    )


# -- hysteresis -----------------------------------------------------------------------------------


def test_a_drifted_feature_is_held_until_its_adjusted_pvalue_exceeds_release_alpha() -> None:
    """Between alpha and release_alpha the verdict is the previous one: entered only below
    alpha, left only above release_alpha; predictions likewise."""
    rng = np.random.default_rng(5)
    ref_values = rng.normal(0, 1, 2000)
    ref = reference({"x": ref_values.tolist()}, predictions=ref_values.tolist())
    lay = layout({"x": None})
    n = 1500
    column = rng.normal(0.12, 1, n)
    rows = rows_of(column, column)
    loose = DetectorSettings(alpha=0.5, release_alpha=0.5)
    first = DriftDetector(ref, lay, loose).score(rows)
    p = first.features["x"].adjusted_pvalue
    assert p is not None and 1e-8 < p < 1e-2  # a p-value to put the two levels around
    assert first.predictions is not None
    settings = DetectorSettings(alpha=p / 10, release_alpha=p * 10)
    detector = DriftDetector(ref, lay, settings)
    fresh = detector.score(rows)
    assert fresh.features["x"].drifted is False and fresh.predictions is not None
    assert fresh.predictions.drifted is False
    held = detector.score(rows, previous=first)
    assert held.features["x"].drifted is True and held.predictions is not None
    assert held.predictions.drifted is True
    assert held.features["x"].adjusted_pvalue == p  # the level changes, not the p-value
    released = DriftDetector(ref, lay, DetectorSettings(alpha=p / 100, release_alpha=p / 10))
    assert released.score(rows, previous=first).features["x"].drifted is False
    assert DriftDetector(ref, lay, DetectorSettings(alpha=p * 10)).score(rows).drifted == 1


def test_release_alpha_default_and_bounds() -> None:
    assert DriftSettings().release_level == 1e-3
    assert DriftSettings(alpha=0.01).release_level == 0.01
    assert DriftSettings(alpha=1e-6, release_alpha=1e-2).release_level == 1e-2
    with pytest.raises(ValueError, match="release_alpha"):
        DriftSettings(alpha=1e-3, release_alpha=1e-4)
