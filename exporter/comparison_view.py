"""Per-window comparisons of a declared comparison: each challenger against the champion. Pure.

What readers compute from a :class:`~exporter.snapshot.ModelSnapshot` whose ``comparison`` is
set, outside any lock, from the window counts the versions already keep (no per-event work).
For each challenger and each window, with the champion's and the challenger's
:class:`~exporter.snapshot.WindowCounts` of that window:

* classification: the accuracy difference and the F1 difference per average (challenger minus
  champion). The F1 averages are those of ``model_f1_score`` (:mod:`exporter.views`): ``binary``
  (the positive class, binary models only), ``macro`` and ``weighted``, each arm's F1 computed
  from its own confusion matrix as scikit-learn's ``f1_score`` on that arm's labeled
  predictions, so a difference is exactly the difference of the two versions' F1 gauges.
  The accuracy difference comes with its two-sided p-value (two-proportion z-test, or Fisher's
  exact test when an expected cell is below 5) and Newcombe's hybrid score 95 % interval:
  :func:`exporter.stats.comparison.accuracy_difference`;
* regression: the difference of the mean absolute errors, with Welch's t-test on the absolute
  errors and its 95 % interval, exactly from the windows' sums:
  :func:`exporter.stats.comparison.mae_difference`.

Rules:

* A comparison's values are ``None`` (absent) until *both* arms hold ``min_samples`` labeled
  predictions in the window; the labeled counts are always given, so alerts can guard on them.
* The tests and intervals assume independent arms, which ``split`` mode has. In ``shadow`` mode
  both arms are judged on the same requests (paired), so only the differences are given: an
  independent-samples test there is the wrong test (conservative when the versions agree often,
  anti-conservative when they disagree more than chance); the paired tests are below.
* Shadow mode: :func:`compare_pairs` gives, per challenger and window, the champion/challenger
  pairs (:mod:`exporter.pairs`: ids both versions predicted and that got their label, counted
  at the label time) and their paired test. Classification: McNemar's test on the discordant
  pairs, :func:`exporter.stats.comparison.mcnemar`, exact binomial below 25 discordant pairs,
  continuity-corrected chi-squared from there on. Regression: the paired t-test on the pairs'
  absolute errors, :func:`exporter.stats.comparison.paired_mae_difference`. The counts are
  always given; the test is ``None`` until the window holds ``min_samples`` pairs.
* A version the comparison names that the model does not have (yet) gives no comparison.
* These are fixed-sample tests re-read at every scrape: alert on the sequential statistics,
  never on these p-values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from exporter.snapshot import ModelSnapshot, PairCounts, VersionSnapshot, WindowCounts
from exporter.stats.comparison import (
    AccuracyDifference,
    MaeDifference,
    PairedComparison,
    PairedMaeDifference,
    accuracy_difference,
    mae_difference,
    mcnemar,
    paired_mae_difference,
)
from exporter.stats.performance import Average, classification_scores
from exporter.typedefs import IntArray


@dataclass(frozen=True, slots=True)
class AccuracyComparison:
    """Challenger minus champion accuracy and F1 (per average) over one window."""

    difference: float
    f1: dict[Average, float]
    #: The z (or Fisher) test and Newcombe's interval; None in shadow (paired) mode.
    test: AccuracyDifference | None


@dataclass(frozen=True, slots=True)
class MaeComparison:
    """Challenger minus champion mean absolute error over one window."""

    difference: float
    #: Welch's t-test and interval; None in shadow (paired) mode.
    test: MaeDifference | None


@dataclass(frozen=True, slots=True)
class WindowComparison:
    champion: str
    challenger: str
    window: str
    champion_labeled: int
    challenger_labeled: int
    #: None while either arm holds fewer than ``comparison.min_samples`` labeled predictions.
    scores: AccuracyComparison | MaeComparison | None


@dataclass(frozen=True, slots=True)
class PairedWindow:
    """A challenger's pairs with the champion over one window (shadow mode)."""

    champion: str
    challenger: str
    window: str
    pairs: PairCounts
    #: McNemar's test (classification) or the paired t-test on absolute errors (regression);
    #: None while the window holds fewer than ``min_samples`` pairs.
    test: PairedComparison | PairedMaeDifference | None


def compare_pairs(snapshot: ModelSnapshot, min_samples: int) -> list[PairedWindow]:
    """Each challenger's pairs with the champion, and their paired test, in every window.

    Parameters
    ----------
    snapshot : ModelSnapshot
        A model; without a shadow comparison (or a task) the result is empty.
    min_samples : int
        Pairs a window needs before its test is computed.

    Returns
    -------
    list of PairedWindow
        In the order of the declared challengers, then of the windows.
    """
    book = snapshot.pairs
    if book is None or snapshot.comparison is None or snapshot.comparison.mode != "shadow":
        return []
    regression = snapshot.task == "regression"
    out = []
    for counts in book.challengers:
        for window, pairs in counts.windows:
            test: PairedComparison | PairedMaeDifference | None = None
            if pairs.n >= min_samples:
                test = (
                    paired_mae_difference(pairs.n, pairs.loss_sum, pairs.loss_sq_sum)
                    if regression
                    else mcnemar(pairs.b, pairs.c, n_pairs=pairs.n)
                )
            out.append(PairedWindow(book.champion, counts.challenger, window, pairs, test))
    return out


def compare_windows(snapshot: ModelSnapshot, min_samples: int) -> list[WindowComparison]:
    """Each challenger against the champion, in every window both versions have.

    Parameters
    ----------
    snapshot : ModelSnapshot
        A model; without a declared comparison (or a task) the result is empty.
    min_samples : int
        Labeled predictions each arm needs in a window before its scores are computed.

    Returns
    -------
    list of WindowComparison
        In the order of the declared challengers, then of the windows.
    """
    comparison = snapshot.comparison
    if comparison is None or snapshot.task is None:
        return []
    versions = {v.name: v for v in snapshot.versions}
    champion = versions.get(comparison.champion)
    if champion is None:
        return []
    paired = comparison.mode == "shadow"
    out = []
    for name in comparison.challengers:
        challenger = versions.get(name)
        if challenger is None:
            continue
        for a, b in _common_windows(champion, challenger):
            scores: AccuracyComparison | MaeComparison | None = None
            if min(a.labeled, b.labeled) >= min_samples:
                scores = _scores(a, b, snapshot.positive_index, paired)
            out.append(
                WindowComparison(
                    champion.name, challenger.name, a.window, a.labeled, b.labeled, scores
                )
            )
    return out


def _common_windows(
    a: VersionSnapshot, b: VersionSnapshot
) -> list[tuple[WindowCounts, WindowCounts]]:
    """The windows of ``a`` that ``b`` has too, paired, in ``a``'s order."""
    other = {w.window: w for w in b.windows}
    return [(w, other[w.window]) for w in a.windows if w.window in other]


def _scores(
    a: WindowCounts, b: WindowCounts, positive_index: int | None, paired: bool
) -> AccuracyComparison | MaeComparison | None:
    """Challenger (b) against champion (a) over one window; None without a quality aggregate."""
    if a.errors is not None and b.errors is not None:
        ea, eb = a.errors, b.errors
        mae = mae_difference(ea.count, ea.abs_sum, ea.sq_sum, eb.count, eb.abs_sum, eb.sq_sum)
        return MaeComparison(mae.difference, None if paired else mae)
    if a.confusion is None or b.confusion is None:
        return None
    sa = classification_scores(a.confusion, positive_class=positive_index)
    sb = classification_scores(b.confusion, positive_class=positive_index)
    f1 = {average: sb.f1[average] - sa.f1[average] for average in sa.f1}
    test = None
    if not paired:
        test = accuracy_difference(
            _correct(a.confusion), sa.samples, _correct(b.confusion), sb.samples
        )
    return AccuracyComparison(sb.accuracy - sa.accuracy, f1, test)


def _correct(confusion: IntArray) -> int:
    return int(np.trace(confusion))
