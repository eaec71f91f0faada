"""Drift, read from the results the drift worker cached (never computed here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from exporter.detector import TargetDrift
from exporter.drift_worker import DriftResult, WindowKey
from exporter.snapshot import ModelSnapshot

W = ["model", "model_version", "window"]
WF = [*W, "feature"]
_CACHED = (
    " Cached: recomputed by a background worker at most every drift.refresh_interval, when "
    "the window changed."
)
_GUARD = " Absent while window or reference holds fewer than drift.min_samples values."


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


class _Families:
    """Every drift family, built once per scrape."""

    def __init__(self) -> None:
        g = _gauge
        f = "model_feature_drift_"
        self.ks_stat = g(
            f + "ks_statistic",
            "Two-sample Kolmogorov-Smirnov statistic D of a "
            "numeric feature, window sample vs reference (0..1)." + _GUARD + _CACHED,
            WF,
        )
        self.ks_p = g(
            f + "ks_pvalue",
            "Two-sided KS p-value (scipy.stats.ks_2samp "
            "method='asymp') of a numeric feature; uncorrected." + _GUARD + _CACHED,
            WF,
        )
        self.mw_p = g(
            f + "mann_whitney_pvalue",
            "Two-sided Mann-Whitney p-value (scipy.stats.mannwhitneyu method='asymptotic') "
            "of a numeric feature; uncorrected." + _GUARD + _CACHED,
            WF,
        )
        self.chi2_stat = g(
            f + "chi2_statistic",
            "Likelihood-ratio (G) chi-squared statistic of a feature's counts, window vs "
            "reference: a categorical feature's categories (unseen ones pooled in one bin), "
            "a numeric feature's PSI bins." + _GUARD + _CACHED,
            WF,
        )
        self.chi2_p = g(
            f + "chi2_pvalue",
            "Chi-squared test of homogeneity p-value of a feature, over the same "
            "counts; uncorrected." + _GUARD + _CACHED,
            WF,
        )
        self.pvalue = g(
            f + "pvalue",
            "The feature's p-value before the correction across features: a numeric "
            "feature's smallest of its KS, Mann-Whitney and chi-squared p-values times 3, a "
            "categorical feature's chi-squared p-value." + _GUARD + _CACHED,
            WF,
        )
        self.adjusted_p = g(
            f + "adjusted_pvalue",
            "The feature's p-value after drift.correction across the window's features: "
            "it drifts at most drift.alpha, and stays drifted up to drift.release_alpha."
            + _GUARD
            + _CACHED,
            WF,
        )
        self.psi = g(
            f + "psi",
            "Population stability index of a feature (numeric: bins at "
            "the reference deciles; categorical: categories)." + _GUARD + _CACHED,
            WF,
        )
        self.js = g(
            f + "jensen_shannon_distance",
            "Jensen-Shannon distance (base 2, 0..1) "
            "of a feature over the same bins as the PSI." + _GUARD + _CACHED,
            WF,
        )
        self.wasserstein = g(
            f + "wasserstein_distance",
            "Wasserstein-1 distance of a numeric "
            "feature, in the feature's unit." + _GUARD + _CACHED,
            WF,
        )
        self.detected = g(
            f + "detected",
            "1 if the feature drifted: adjusted p-value at most drift.alpha (at most "
            "drift.release_alpha if it had drifted at the previous look) and at least the "
            "effect-size floor (KS statistic or PSI); 0 if tested and not." + _CACHED,
            WF,
        )
        self.window_values = g(
            f + "window_values",
            "Non-missing values of the feature in the window sample the drift tests used.",
            WF,
        )
        self.reference_values = g(
            f + "reference_values",
            "Values of the feature in the reference the drift tests used.",
            WF,
        )
        self.missing = g(
            "model_feature_missing_ratio",
            "Share of the window sample's rows "
            "where the feature is absent, null or of the wrong type." + _CACHED,
            WF,
        )
        self.out_of_range = g(
            "model_feature_out_of_range_ratio",
            "Share of a numeric "
            "feature's window values outside the reference's [min, max]." + _GUARD + _CACHED,
            WF,
        )
        self.unseen = g(
            "model_feature_unseen_category_ratio",
            "Share of a categorical "
            "feature's window values in categories the reference does not track."
            + _GUARD
            + _CACHED,
            WF,
        )
        self.tested = g(
            "model_drift_features_tested",
            "Features with a drift test in the window (enough values on both sides).",
            W,
        )
        self.drifted = g(
            "model_drift_features_drifted",
            "Features that drifted: adjusted p-value at most drift.alpha, or "
            "drift.release_alpha while drifted (hysteresis), and material (effect-size "
            "floor)." + _CACHED,
            W,
        )
        self.alpha = g(
            "model_drift_alpha",
            "Significance level used for the drift verdicts; "
            "correction is bh (Benjamini-Hochberg), bonferroni or none.",
            [*W, "correction"],
        )
        self.release_alpha = g(
            "model_drift_release_alpha",
            "Adjusted p-value above which a drifted feature (or the predictions, or the "
            "labels) stops being drifted (drift.release_alpha).",
            W,
        )
        self.sample_rows = g(
            "model_drift_window_sample_predictions",
            "Predictions in the "
            "uniform window sample the drift tests used (at most "
            "drift.sample_size).",
            W,
        )
        self.computed = g(
            "model_drift_last_computed_timestamp_seconds",
            "When the cached drift values of the window were computed (Unix time).",
            W,
        )
        self.targets = {kind: self._target_families(kind) for kind in ("prediction", "label")}

    def _target_families(self, kind: str) -> dict[str, GaugeMetricFamily]:
        what = "model outputs" if kind == "prediction" else "ground-truth labels"
        p = f"model_{kind}_drift_"
        return {
            "ks_statistic": _gauge(
                p + "ks_statistic",
                f"KS statistic of the {what} of a regression model, window vs reference." + _GUARD,
                W,
            ),
            "ks_pvalue": _gauge(
                p + "ks_pvalue", f"KS p-value of the {what} of a regression model." + _GUARD, W
            ),
            "pvalue": _gauge(
                p + "pvalue",
                f"The p-value of the {what} that decides detected: a regression's smallest "
                "of its KS, Mann-Whitney and binned chi-squared p-values times 3, a "
                "classifier's chi-squared p-value." + _GUARD,
                W,
            ),
            "chi2_statistic": _gauge(
                p + "chi2_statistic",
                f"Chi-squared statistic of the "
                f"class shares of the {what} of a classifier." + _GUARD,
                W,
            ),
            "chi2_pvalue": _gauge(
                p + "chi2_pvalue",
                f"Chi-squared p-value of the class shares of the {what} of a classifier." + _GUARD,
                W,
            ),
            "psi": _gauge(p + "psi", f"Population stability index of the {what}." + _GUARD, W),
            "jensen_shannon_distance": _gauge(
                p + "jensen_shannon_distance",
                f"Jensen-Shannon distance (base 2) of the {what}." + _GUARD,
                W,
            ),
            "wasserstein_distance": _gauge(
                p + "wasserstein_distance",
                f"Wasserstein-1 distance of the {what} of a regression model." + _GUARD,
                W,
            ),
            "detected": _gauge(
                p + "detected",
                f"1 if the {what} drifted (p-value at most drift.alpha, or "
                "drift.release_alpha while drifted, and the effect-size floor met), else 0."
                + _GUARD,
                W,
            ),
            "window_values": _gauge(
                p + "window_values", f"Values of the {what} in the window sample the test used.", W
            ),
        }

    def add_result(self, wk: list[str], r: DriftResult) -> None:
        scores = r.scores
        self.computed.add_metric(wk, r.computed_at)
        self.sample_rows.add_metric(wk, r.window_sample)
        self.tested.add_metric(wk, scores.tested)
        self.drifted.add_metric(wk, scores.drifted)
        self.alpha.add_metric([*wk, scores.correction], scores.alpha)
        self.release_alpha.add_metric(wk, scores.release_alpha)
        for feature, d in scores.features.items():
            key = [*wk, feature]
            self.window_values.add_metric(key, d.window_values)
            self.reference_values.add_metric(key, d.reference_values)
            self.missing.add_metric(key, d.missing)
            if d.drifted is not None:
                self.detected.add_metric(key, 1.0 if d.drifted else 0.0)
            pvalue = d.pvalue
            if pvalue is not None and d.adjusted_pvalue is not None:
                self.pvalue.add_metric(key, pvalue)
                self.adjusted_p.add_metric(key, d.adjusted_pvalue)
            if d.numeric is not None:
                n = d.numeric
                self.ks_stat.add_metric(key, n.ks_statistic)
                self.ks_p.add_metric(key, n.ks_pvalue)
                self.mw_p.add_metric(key, n.mann_whitney_pvalue)
                self.chi2_stat.add_metric(key, n.chi2_statistic)
                self.chi2_p.add_metric(key, n.chi2_pvalue)
                self.psi.add_metric(key, n.psi)
                self.js.add_metric(key, n.jensen_shannon)
                self.wasserstein.add_metric(key, n.wasserstein)
                self.out_of_range.add_metric(key, n.out_of_range)
            if d.categorical is not None:
                c = d.categorical
                self.chi2_stat.add_metric(key, c.chi2_statistic)
                self.chi2_p.add_metric(key, c.chi2_pvalue)
                self.psi.add_metric(key, c.psi)
                self.js.add_metric(key, c.jensen_shannon)
                self.unseen.add_metric(key, c.unseen)
        for kind, target in (("prediction", scores.predictions), ("label", scores.labels)):
            if target is not None:
                self._add_target(self.targets[kind], wk, target)

    @staticmethod
    def _add_target(fam: dict[str, GaugeMetricFamily], wk: list[str], t: TargetDrift) -> None:
        fam["detected"].add_metric(wk, 1.0 if t.drifted else 0.0)
        if t.numeric is not None:
            n = t.numeric
            fam["window_values"].add_metric(wk, n.window_values)
            fam["ks_statistic"].add_metric(wk, n.ks_statistic)
            fam["ks_pvalue"].add_metric(wk, n.ks_pvalue)
            fam["pvalue"].add_metric(wk, n.pvalue)
            fam["psi"].add_metric(wk, n.psi)
            fam["jensen_shannon_distance"].add_metric(wk, n.jensen_shannon)
            fam["wasserstein_distance"].add_metric(wk, n.wasserstein)
        if t.categorical is not None:
            c = t.categorical
            fam["window_values"].add_metric(wk, c.window_values)
            fam["chi2_statistic"].add_metric(wk, c.chi2_statistic)
            fam["chi2_pvalue"].add_metric(wk, c.chi2_pvalue)
            fam["pvalue"].add_metric(wk, c.pvalue)
            fam["psi"].add_metric(wk, c.psi)
            fam["jensen_shannon_distance"].add_metric(wk, c.jensen_shannon)

    def all(self) -> list[GaugeMetricFamily]:
        out = [
            self.ks_stat,
            self.ks_p,
            self.mw_p,
            self.chi2_stat,
            self.chi2_p,
            self.pvalue,
            self.adjusted_p,
            self.psi,
            self.js,
            self.wasserstein,
            self.detected,
            self.window_values,
            self.reference_values,
            self.missing,
            self.out_of_range,
            self.unseen,
            self.tested,
            self.drifted,
            self.alpha,
            self.release_alpha,
            self.sample_rows,
            self.computed,
        ]
        for fams in self.targets.values():
            out.extend(fams.values())
        return out


def drift_families(
    snapshots: Sequence[ModelSnapshot], results: Mapping[str, Mapping[WindowKey, DriftResult]]
) -> list[Metric]:
    """Every drift family (always all of them, in one order) for these models: the cached
    result of each window of each version the snapshot shows (``results[model][(version,
    window)]``); a window not computed yet is absent."""
    families = _Families()
    for snapshot in snapshots:
        cached = results.get(snapshot.name, {})
        for version in snapshot.versions:
            for counts in version.windows:
                result = cached.get((version.name, counts.window))
                if result is not None:
                    families.add_result([snapshot.name, version.name, counts.window], result)
    return list(families.all())


def drift_key(
    snapshot: ModelSnapshot, results: Mapping[WindowKey, DriftResult]
) -> tuple[object, ...]:
    """What :func:`drift_families` shows of one model, as a hashable value."""
    return tuple(
        (version.name, counts.window, result.serial)
        for version in snapshot.versions
        for counts in version.windows
        if (result := results.get((version.name, counts.window))) is not None
    )
