"""Per-feature drift, read from the results the drift worker cached (never computed here)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from exporter.analysis import reference_info
from exporter.store import Store

log = logging.getLogger("exporter.collectors")

LABELS = ["model", "model_version", "window", "feature"]
_CACHED = (
    " Recomputed by a background worker at most every drift.refresh_interval when the window "
    "changed; absent while window or reference holds fewer than drift.min_samples values."
)


def drift_families(store: Store, errors: list[str]) -> Iterator[Metric]:
    ks_stat = GaugeMetricFamily(
        "model_feature_drift_ks_statistic",
        "Two-sample Kolmogorov-Smirnov statistic D of a numeric feature, window sample vs "
        "reference (0..1)." + _CACHED,
        labels=LABELS,
    )
    ks_p = GaugeMetricFamily(
        "model_feature_drift_ks_pvalue",
        "Two-sided KS p-value (scipy.stats.ks_2samp method='asymp') of a numeric feature, "
        "window sample vs reference. Small means the distributions differ." + _CACHED,
        labels=LABELS,
    )
    window_values = GaugeMetricFamily(
        "model_feature_drift_window_values",
        "Non-missing values of the feature in the window sample that the drift tests used.",
        labels=LABELS,
    )
    reference_values = GaugeMetricFamily(
        "model_feature_drift_reference_values",
        "Non-missing values of the feature in the reference that the drift tests used.",
        labels=LABELS,
    )
    sample_rows = GaugeMetricFamily(
        "model_drift_window_sample_predictions",
        "Predictions in the uniform window sample the drift tests used "
        "(at most drift.sample_size).",
        labels=["model", "model_version", "window"],
    )
    computed = GaugeMetricFamily(
        "model_drift_last_computed_timestamp_seconds",
        "When the cached drift values of the window were computed (Unix time).",
        labels=["model", "model_version", "window"],
    )
    reference_rows = GaugeMetricFamily(
        "model_reference_rows",
        "Rows in the drift reference of the version; source is upload or first_events, or "
        "collecting while the first drift.reference_size predictions are gathered.",
        labels=["model", "model_version", "source"],
    )
    for state in store.models():
        try:
            with state.lock:
                rows = []
                for version in state.versions.values():
                    info = reference_info(state, version)
                    rows.append((version.name, dict(version.drift), info.source, info.rows))
        except Exception:
            log.exception("cannot read drift of model %s", state.name)
            errors.append(f"model {state.name}: drift read failed")
            continue
        for version_name, results, source, ref_rows in rows:
            reference_rows.add_metric([state.name, version_name, source], ref_rows)
            for window, result in results.items():
                wk = [state.name, version_name, window]
                computed.add_metric(wk, result.computed_at)
                sample_rows.add_metric(wk, result.window_sample)
                for feature, drift in result.features.items():
                    key = [*wk, feature]
                    window_values.add_metric(key, drift.window_values)
                    reference_values.add_metric(key, drift.reference_values)
                    if drift.ks is not None:
                        ks_stat.add_metric(key, drift.ks.statistic)
                        ks_p.add_metric(key, drift.ks.pvalue)
    yield from (
        ks_stat,
        ks_p,
        window_values,
        reference_values,
        sample_rows,
        computed,
        reference_rows,
    )
