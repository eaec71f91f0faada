"""Comparisons: each challenger of a declared comparison against the champion, per window and
since the comparison started (the sequential statistics, from the tracker's states)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.comparison_view import (
    AccuracyComparison,
    MaeComparison,
    compare_pairs,
    compare_windows,
)
from exporter.sequential_tracker import SequentialStates
from exporter.snapshot import ModelSnapshot
from exporter.stats.comparison import PairedComparison

BASE = ["model", "champion", "challenger", "window"]

_GUARD = (
    " Absent while either arm holds fewer than comparison.min_samples labeled predictions in "
    "the window (see model_comparison_labeled_predictions)."
)
_SPLIT = " Split mode only (independent arms)."
_PAIRS_GUARD = (
    " Absent while the window holds fewer than comparison.min_samples pairs (see "
    "model_comparison_pairs)."
)
_REPEATED = " A fixed-sample test re-read at every scrape: alert on the sequential p-value instead."


def comparison_families(snapshots: Sequence[ModelSnapshot], min_samples: int) -> list[Metric]:
    """Every per-window comparison family (always all of them, in one order) for these models:
    the arms' own (every mode), then the shadow comparisons' pairs."""
    return [
        *_arm_families(snapshots, min_samples),
        *_paired_window_families(snapshots, min_samples),
    ]


def _arm_families(snapshots: Sequence[ModelSnapshot], min_samples: int) -> list[Metric]:
    """Each arm's labeled predictions and the differences of its window counts."""
    labeled = GaugeMetricFamily(
        "model_comparison_labeled_predictions",
        "Labeled predictions of one arm (champion or challenger) of a comparison in the window, "
        "by label time (exact count).",
        labels=[*BASE, "arm"],
    )
    accuracy = GaugeMetricFamily(
        "model_comparison_accuracy_difference",
        "Challenger minus champion accuracy over the window (-1..1)." + _GUARD,
        labels=BASE,
    )
    accuracy_p = GaugeMetricFamily(
        "model_comparison_accuracy_pvalue",
        "Two-sided p-value of the accuracy difference: two-proportion z-test, or Fisher's exact "
        "test when an expected cell of the 2x2 table is below 5." + _SPLIT + _REPEATED + _GUARD,
        labels=BASE,
    )
    accuracy_lower = GaugeMetricFamily(
        "model_comparison_accuracy_difference_lower",
        "Lower bound of the 95% interval of the accuracy difference (Newcombe's hybrid score "
        "interval)." + _SPLIT + _GUARD,
        labels=BASE,
    )
    accuracy_upper = GaugeMetricFamily(
        "model_comparison_accuracy_difference_upper",
        "Upper bound of the 95% interval of the accuracy difference (Newcombe's hybrid score "
        "interval)." + _SPLIT + _GUARD,
        labels=BASE,
    )
    f1 = GaugeMetricFamily(
        "model_comparison_f1_difference",
        "Challenger minus champion F1 score over the window; average as model_f1_score "
        "(binary, macro, weighted)." + _GUARD,
        labels=[*BASE, "average"],
    )
    mae = GaugeMetricFamily(
        "model_comparison_mean_absolute_error_difference",
        "Challenger minus champion mean absolute error of a regression model over the window, "
        "in the target's unit." + _GUARD,
        labels=BASE,
    )
    mae_p = GaugeMetricFamily(
        "model_comparison_mean_absolute_error_pvalue",
        "Two-sided p-value of Welch's t-test on the absolute errors of the two arms."
        + _SPLIT
        + _REPEATED
        + _GUARD,
        labels=BASE,
    )
    mae_lower = GaugeMetricFamily(
        "model_comparison_mean_absolute_error_difference_lower",
        "Lower bound of the 95% Welch interval of the MAE difference." + _SPLIT + _GUARD,
        labels=BASE,
    )
    mae_upper = GaugeMetricFamily(
        "model_comparison_mean_absolute_error_difference_upper",
        "Upper bound of the 95% Welch interval of the MAE difference." + _SPLIT + _GUARD,
        labels=BASE,
    )
    for snapshot in snapshots:
        for c in compare_windows(snapshot, min_samples):
            key = [snapshot.name, c.champion, c.challenger, c.window]
            labeled.add_metric([*key, "champion"], c.champion_labeled)
            labeled.add_metric([*key, "challenger"], c.challenger_labeled)
            s = c.scores
            if isinstance(s, AccuracyComparison):
                accuracy.add_metric(key, s.difference)
                for average, value in s.f1.items():
                    f1.add_metric([*key, average], value)
                if s.test is not None:
                    accuracy_p.add_metric(key, s.test.pvalue)
                    accuracy_lower.add_metric(key, s.test.lower)
                    accuracy_upper.add_metric(key, s.test.upper)
            elif isinstance(s, MaeComparison):
                mae.add_metric(key, s.difference)
                if s.test is not None:
                    mae_p.add_metric(key, s.test.pvalue)
                    mae_lower.add_metric(key, s.test.lower)
                    mae_upper.add_metric(key, s.test.upper)
    return [
        labeled,
        accuracy,
        accuracy_p,
        accuracy_lower,
        accuracy_upper,
        f1,
        mae,
        mae_p,
        mae_lower,
        mae_upper,
    ]


def _paired_window_families(snapshots: Sequence[ModelSnapshot], min_samples: int) -> list[Metric]:
    """A shadow comparison's pairs in the window and their paired test (McNemar's, or the
    paired t-test on absolute errors)."""
    pairs = GaugeMetricFamily(
        "model_comparison_pairs",
        "Champion/challenger pairs of a shadow comparison in the window: ids both versions "
        "predicted, joined to their label, by label time (exact count).",
        labels=BASE,
    )
    discordant = GaugeMetricFamily(
        "model_comparison_discordant_pairs",
        "Discordant pairs of a shadow comparison in the window, by label time (exact count): "
        'better="champion" the champion right and the challenger wrong (regression: the '
        'champion\'s absolute error smaller), "challenger" the reverse.',
        labels=[*BASE, "better"],
    )
    mcnemar_p = GaugeMetricFamily(
        "model_comparison_mcnemar_pvalue",
        "Two-sided p-value of McNemar's test on the discordant pairs of a shadow comparison: "
        "exact binomial below 25 discordant pairs, continuity-corrected chi-squared from there "
        "on." + _REPEATED + _PAIRS_GUARD,
        labels=BASE,
    )
    paired_mae = GaugeMetricFamily(
        "model_comparison_paired_mean_absolute_error_difference",
        "Challenger minus champion mean absolute error over the pairs of a shadow comparison of "
        "a regression model in the window, in the target's unit." + _PAIRS_GUARD,
        labels=BASE,
    )
    paired_mae_p = GaugeMetricFamily(
        "model_comparison_paired_mean_absolute_error_pvalue",
        "Two-sided p-value of the paired t-test on the absolute errors of the pairs of a shadow "
        "comparison of a regression model." + _REPEATED + _PAIRS_GUARD,
        labels=BASE,
    )
    paired_mae_lower = GaugeMetricFamily(
        "model_comparison_paired_mean_absolute_error_difference_lower",
        "Lower bound of the 95% paired t interval of the pairs' MAE difference." + _PAIRS_GUARD,
        labels=BASE,
    )
    paired_mae_upper = GaugeMetricFamily(
        "model_comparison_paired_mean_absolute_error_difference_upper",
        "Upper bound of the 95% paired t interval of the pairs' MAE difference." + _PAIRS_GUARD,
        labels=BASE,
    )
    for snapshot in snapshots:
        for p in compare_pairs(snapshot, min_samples):
            key = [snapshot.name, p.champion, p.challenger, p.window]
            pairs.add_metric(key, p.pairs.n)
            discordant.add_metric([*key, "champion"], p.pairs.b)
            discordant.add_metric([*key, "challenger"], p.pairs.c)
            if isinstance(p.test, PairedComparison):
                mcnemar_p.add_metric(key, p.test.pvalue)
            elif p.test is not None:
                paired_mae.add_metric(key, p.test.difference)
                paired_mae_p.add_metric(key, p.test.pvalue)
                paired_mae_lower.add_metric(key, p.test.lower)
                paired_mae_upper.add_metric(key, p.test.upper)
    return [
        pairs,
        discordant,
        mcnemar_p,
        paired_mae,
        paired_mae_p,
        paired_mae_lower,
        paired_mae_upper,
    ]


SEQUENTIAL = ["model", "champion", "challenger"]  # since the start: never a window

_BURN_IN = (
    " Absent until each arm holds comparison.sequential.min_samples labeled predictions since "
    "the start (and, for accuracy, the smallest expected cell of the arm x right/wrong table "
    "reaches comparison.sequential.min_expected)."
)
_SINCE = " Since the comparison started; updated by the drift worker's runs."


def sequential_families(
    snapshots: Sequence[ModelSnapshot], sequential: Mapping[str, SequentialStates]
) -> list[Metric]:
    """Every sequential comparison family (always all of them, in one order) for these models,
    from the tracker's states that belong to each snapshot's comparison."""
    labeled = GaugeMetricFamily(
        "model_comparison_sequential_labeled_predictions",
        "Labeled predictions of one arm (champion or challenger) since the comparison "
        "started (exact count); updated by the drift worker's runs. Shadow mode: the pairs, "
        "for both arms.",
        labels=[*SEQUENTIAL, "arm"],
    )
    pvalue = GaugeMetricFamily(
        "model_comparison_sequential_pvalue",
        "Always-valid p-value of the difference (mixture sequential probability ratio test): "
        "valid however often it is read, so alerts may use it. Shadow mode: the paired test "
        "on the pairs (classification: as model_comparison_sequential_mcnemar_pvalue)."
        + _SINCE
        + _BURN_IN,
        labels=SEQUENTIAL,
    )
    accuracy = GaugeMetricFamily(
        "model_comparison_sequential_accuracy_difference",
        "Challenger minus champion accuracy (-1..1)." + _SINCE + _BURN_IN,
        labels=SEQUENTIAL,
    )
    mae = GaugeMetricFamily(
        "model_comparison_sequential_mean_absolute_error_difference",
        "Challenger minus champion mean absolute error of a regression model, in the target's "
        "unit (shadow mode: over the pairs)." + _SINCE + _BURN_IN,
        labels=SEQUENTIAL,
    )
    lower = GaugeMetricFamily(
        "model_comparison_sequential_difference_lower",
        "Lower bound of the 1 - comparison.sequential.alpha confidence sequence of the "
        "difference (accuracy, or MAE for regression)." + _SINCE + _BURN_IN,
        labels=SEQUENTIAL,
    )
    upper = GaugeMetricFamily(
        "model_comparison_sequential_difference_upper",
        "Upper bound of the 1 - comparison.sequential.alpha confidence sequence of the "
        "difference (accuracy, or MAE for regression)." + _SINCE + _BURN_IN,
        labels=SEQUENTIAL,
    )
    discordant = GaugeMetricFamily(
        "model_comparison_sequential_discordant_pairs",
        "Discordant pairs of a shadow comparison since it started (exact count): "
        'better="champion" the champion right and the challenger wrong (regression: the '
        'champion\'s absolute error smaller), "challenger" the reverse.',
        labels=[*SEQUENTIAL, "better"],
    )
    mcnemar_p = GaugeMetricFamily(
        "model_comparison_sequential_mcnemar_pvalue",
        "Always-valid p-value of the paired accuracy difference of a shadow comparison "
        "(mixture sequential probability ratio test on the pairs, the sequential counterpart "
        "of McNemar's test)." + _SINCE + _BURN_IN,
        labels=SEQUENTIAL,
    )
    for snapshot in snapshots:
        comparison = snapshot.comparison
        if comparison is None:
            continue
        if snapshot.pairs is not None and comparison.mode == "shadow":
            for counts in snapshot.pairs.challengers:
                key = [snapshot.name, snapshot.pairs.champion, counts.challenger]
                discordant.add_metric([*key, "champion"], counts.total.b)
                discordant.add_metric([*key, "challenger"], counts.total.c)
        if snapshot.name not in sequential:
            continue
        for challenger, state in sequential[snapshot.name].of(comparison, snapshot.uid):
            key = [snapshot.name, comparison.champion, challenger]
            labeled.add_metric([*key, "champion"], state.samples_a)
            labeled.add_metric([*key, "challenger"], state.samples_b)
            if state.difference is not None:
                difference = mae if state.kind in ("mae", "paired_mae") else accuracy
                difference.add_metric(key, state.difference)
            if state.pvalue is not None:
                pvalue.add_metric(key, state.pvalue)
                if state.kind == "paired":
                    mcnemar_p.add_metric(key, state.pvalue)
            if state.lower is not None and state.upper is not None:
                lower.add_metric(key, state.lower)
                upper.add_metric(key, state.upper)
    return [labeled, pvalue, accuracy, mae, lower, upper, discordant, mcnemar_p]


def pair_families(snapshots: Sequence[ModelSnapshot]) -> list[Metric]:
    """The pair book of every shadow comparison: ids waiting for a pair, and ids that left
    with a challenger unpaired (always both families, in one order)."""
    waiting = GaugeMetricFamily(
        "model_comparison_pairs_waiting",
        "Ids of a shadow comparison waiting for a challenger or the champion to be joined to "
        "their label (at most join.max_pending_predictions).",
        labels=["model", "champion"],
    )
    dropped = CounterMetricFamily(
        "model_comparison_pairs_dropped",
        "Ids of a shadow comparison that left the pair book with a challenger unpaired: "
        'reason="capacity" (join.max_pending_predictions ids waiting, the oldest evicted) or '
        '"ttl" (join.prediction_ttl after its first joined prediction).',
        labels=["model", "champion", "reason"],
    )
    for snapshot in snapshots:
        book = snapshot.pairs
        if book is None:
            continue
        waiting.add_metric([snapshot.name, book.champion], book.waiting)
        for reason, count in book.dropped:
            dropped.add_metric([snapshot.name, book.champion, reason], count)
    return [waiting, dropped]
