"""The exporter's own health: events received and rejected, removals, drift worker, build
info."""

from __future__ import annotations

import platform
from collections.abc import Iterator

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter import __version__
from exporter.history import History
from exporter.store import RemovalCounts, Store
from exporter.telemetry import StateStats, Telemetry


def exporter_families(
    store: Store, telemetry: Telemetry, history: History | None = None
) -> Iterator[Metric]:
    received, rejected, drift = telemetry.snapshot()
    build = GaugeMetricFamily(
        "model_exporter_build_info",
        "Always 1; labels say which model-exporter build is running.",
        labels=["version", "python_version"],
    )
    build.add_metric([__version__, platform.python_version()], 1.0)
    yield build
    start = GaugeMetricFamily(
        "model_exporter_start_time_seconds", "When the exporter started (Unix time)."
    )
    start.add_metric([], telemetry.started)
    yield start
    models = GaugeMetricFamily(
        "model_exporter_models", "Models being monitored (bounded by limits.max_models)."
    )
    models.add_metric([], len(store.models()))
    yield models
    if history is not None:
        yield from history_families(history)
    yield from removal_families(store.removals())
    got = CounterMetricFamily(
        "model_exporter_events_received",
        "Events in accepted requests: kind prediction, label or reference (one per upload).",
        labels=["kind"],
    )
    for kind, count in received.items():
        got.add_metric([kind], count)
    yield got
    bad = CounterMetricFamily(
        "model_exporter_events_rejected",
        "Events refused with a 4xx, by reason: the one event a rejection names, else every "
        "event of the request (one if it could not be parsed). Rejected requests change no "
        "state.",
        labels=["reason"],
    )
    for reason, count in rejected.items():
        bad.add_metric([reason.value], count)
    yield bad
    runs = CounterMetricFamily("model_exporter_drift_runs", "Runs of the background drift worker.")
    runs.add_metric([], drift.runs)
    yield runs
    computations = CounterMetricFamily(
        "model_exporter_drift_computations",
        "Window drift computations by the worker; result ok or error.",
        labels=["result"],
    )
    computations.add_metric(["ok"], drift.computations)
    computations.add_metric(["error"], drift.failures)
    yield computations
    last = GaugeMetricFamily(
        "model_exporter_drift_run_duration_seconds",
        "Duration of the drift worker's last run.",
    )
    last.add_metric([], drift.last_duration)
    yield last
    state = telemetry.state_stats()
    if state is not None:
        yield from state_families(state)


def removal_families(counts: RemovalCounts) -> Iterator[Metric]:
    """What left the store: the removed model's own counters go with it, so it is counted
    here."""
    for name, documentation, label, values in (
        (
            "model_exporter_models_removed",
            "Models removed with all their series: reason deleted (DELETE /v1/models/{model}) "
            "or idle (nothing accepted for limits.idle_model_ttl, nothing waiting in the join).",
            "reason",
            counts.models,
        ),
        (
            "model_exporter_versions_removed",
            "Versions removed on their own (not with their model): reason deleted, idle, or "
            "replaced (by a new version once limits.max_versions_per_model is reached).",
            "reason",
            counts.versions,
        ),
        (
            "model_exporter_pending_dropped",
            "Predictions waiting for their label (kind prediction) and labels waiting for "
            "their prediction (kind label) dropped because their model or version was deleted.",
            "kind",
            counts.dropped,
        ),
    ):
        family = CounterMetricFamily(name, documentation, labels=[label])
        for value, count in values.items():
            family.add_metric([value], count)
        yield family


def state_families(stats: StateStats) -> Iterator[Metric]:
    """Snapshots of the state (state.path): exported only while they are on."""
    for name, documentation, value in (
        (
            "model_exporter_state_snapshot_size_bytes",
            "Size of the last state snapshot written (state.path).",
            stats.size,
        ),
        (
            "model_exporter_state_snapshot_duration_seconds",
            "Time the last state snapshot took: copy, encoding and atomic write.",
            stats.duration,
        ),
        (
            "model_exporter_state_snapshot_timestamp_seconds",
            "When the last state snapshot was written (Unix time; 0 before the first): its "
            "age is time() minus this.",
            stats.written_at,
        ),
    ):
        gauge = GaugeMetricFamily(name, documentation)
        gauge.add_metric([], value)
        yield gauge
    for name, documentation, count in (
        ("model_exporter_state_snapshots", "State snapshots written.", stats.snapshots),
        (
            "model_exporter_state_snapshot_failures",
            "State snapshots that failed (logged); the previous file is kept whole.",
            stats.failures,
        ),
    ):
        counter = CounterMetricFamily(name, documentation)
        counter.add_metric([], count)
        yield counter
    restores = CounterMetricFamily(
        "model_exporter_state_restores",
        "Starts by what became of the state snapshot: restored (a shutdown snapshot: "
        "everything), restored_without_counters (a periodic one: counters from zero), "
        "moved_aside (unreadable: renamed .corrupt-<time>), failed (I/O error), none.",
        labels=["outcome"],
    )
    for outcome, count in stats.restores.items():
        restores.add_metric([outcome], count)
    yield restores


def history_families(history: History) -> Iterator[Metric]:
    """The status pages' history (exporter.history): its size, and what it refused."""
    held = GaugeMetricFamily(
        "model_exporter_history_series",
        "Series the in-memory history holds (8 bytes a point, history.retention / "
        "history.resolution points each).",
    )
    held.add_metric([], history.series_count())
    yield held
    refused = history.refused
    counted = CounterMetricFamily(
        "model_exporter_history_refused",
        "History rows not recorded: reason models (beyond limits.max_models), series (beyond "
        "the bound a model), removed (a model or version removed while it was being recorded).",
        labels=["reason"],
    )
    for reason, count in (
        ("models", refused.models),
        ("series", refused.series),
        ("removed", refused.removed),
    ):
        counted.add_metric([reason], count)
    yield counted
