"""``GET /v1/models`` and ``GET /v1/models/{model}``: JSON status from one snapshot per model.

(No ``from __future__ import annotations``: FastAPI must evaluate the route signatures.)
"""

from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter

from exporter.api.context import Context
from exporter.api.responses import refusals
from exporter.api.schemas import name_param
from exporter.config import Settings
from exporter.detector import TargetDrift
from exporter.drift_worker import DriftResult, WindowKey
from exporter.snapshot import ComparisonInfo, ModelSnapshot, VersionSnapshot
from exporter.stats.performance import ClassificationScores, RegressionScores
from exporter.stats.scores import Bounded, ScoreQuality
from exporter.views import WindowEstimate, window_estimate, window_quality


def router(ctx: Context) -> APIRouter:
    r = APIRouter(tags=["status"])
    model_name = Annotated[str, name_param(ctx.settings.limits, "A model name.")]

    @r.get("/v1/models", summary="All monitored models", responses=refusals((401, 503)))
    def list_models() -> dict[str, Any]:
        now = ctx.store.clock()
        out = []
        for state in ctx.store.models():
            snapshot = state.snapshot(now)
            out.append(
                {
                    "model": snapshot.name,
                    "task": snapshot.task,
                    "versions": [v.name for v in snapshot.versions],
                    "predictions_total": sum(v.counters.predictions for v in snapshot.versions),
                    "labels_total": sum(v.counters.labels for v in snapshot.versions),
                }
            )
        return {"models": out}

    # 404: unknown model; 422: a name over limits.max_name_length.
    @r.get(
        "/v1/models/{model}",
        summary="Status of one model",
        responses=refusals((401, 404, 422, 503)),
    )
    def get_model(model: model_name) -> dict[str, Any]:
        snapshot = ctx.store.get(model).snapshot(ctx.store.clock())
        status: dict[str, Any] = tidy(model_json(snapshot, ctx.drift.results(model), ctx.settings))
        return status

    return r


#: Significant digits of the numbers in the status JSON (``/metrics`` keeps full precision).
DIGITS = 12


def tidy(value: Any) -> Any:
    """``value`` with every float rounded to :data:`DIGITS` significant digits, so that sums
    such as 0.1 + 0.0415 read ``0.1415``, not ``0.14150000000000001``.

    >>> tidy({"a": [0.1 + 0.0415, 3, True, None], "p": 1.2345678901234567e-200})
    {'a': [0.1415, 3, True, None], 'p': 1.23456789012e-200}
    """
    if isinstance(value, float):
        return float(f"{value:.{DIGITS}g}")
    if isinstance(value, dict):
        return {k: tidy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [tidy(v) for v in value]
    return value


def rfc3339(seconds: float) -> str:
    """Epoch seconds as RFC 3339 text in UTC.

    >>> rfc3339(1_800_000_000.25)
    '2027-01-15T08:00:00.250000Z'
    """
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def comparison_json(c: ComparisonInfo, *, pinned: bool = True) -> dict[str, Any]:
    """A comparison as the status (and ``PUT .../comparison``) shows it; ``pinned_versions``
    are the versions it pins, present or not yet."""
    out: dict[str, Any] = {
        "champion": c.champion,
        "challengers": list(c.challengers),
        "mode": c.mode,
        "started": rfc3339(c.started),
        "started_unix": c.started,
    }
    if pinned:
        out["pinned_versions"] = [c.champion, *c.challengers]
    return out


def model_json(
    m: ModelSnapshot, drift: Mapping[WindowKey, DriftResult], settings: Settings
) -> dict[str, Any]:
    return {
        "model": m.name,
        "task": m.task,
        "task_declared": m.task_declared,
        "positive_class": m.positive_label,
        "classes": list(m.classes),
        "features": [{"name": n, "kind": k} for n, k in m.features],
        "pending_labels": m.pending_labels,
        "labels_received_total": m.counters.labels_received,
        "labels_expired": m.counters.labels_expired,
        "duplicates": {
            "prediction": m.counters.duplicate_predictions,
            "label": m.counters.duplicate_labels,
        },
        "feature_type_mismatches": m.counters.type_mismatches,
        "feature_categories_pooled": m.counters.categories_pooled,
        "min_samples": {
            "quality": settings.quality.min_samples,
            "drift": settings.drift.min_samples,
        },
        "comparison": None if m.comparison is None else comparison_json(m.comparison),
        "versions": {
            v.name: _version_json(m, v, drift, settings.quality.min_samples) for v in m.versions
        },
    }


def _version_json(
    m: ModelSnapshot,
    v: VersionSnapshot,
    drift: Mapping[WindowKey, DriftResult],
    min_samples: int,
) -> dict[str, Any]:
    ref = v.reference
    reference: dict[str, Any] = {"source": ref.source, "scope": ref.scope, "rows": ref.rows}
    if ref.source == "collecting":
        reference["target_rows"] = ref.target_rows
    if ref.reference is not None:
        reference.update(ref.reference.summary())
        reference["source"] = ref.source
    windows: dict[str, Any] = {}
    for counts in v.windows:
        w = window_quality(counts, m.positive_index, min_samples)
        result = drift.get((v.name, w.window))
        windows[w.window] = {
            "predictions": w.predictions,
            "labeled_predictions": w.labeled,
            "quality": _scores_json(w.scores, m.classes),
            "scored_predictions": None if counts.scores is None else counts.scores.count,
            "probabilities": _probabilities_json(w.probabilities),
            "estimate": _estimate_json(window_estimate(counts, min_samples)),
            "drift": None if result is None else _drift_json(result),
        }
    c = m.comparison
    return {
        "pinned": c is not None and (v.name == c.champion or v.name in c.challengers),
        "predictions_total": v.counters.predictions,
        "labels_total": v.counters.labels,
        "pending_predictions": v.pending,
        "predictions_expired": v.counters.expired,
        "reference": reference,
        "windows": windows,
    }


def _estimate_json(e: WindowEstimate | None) -> dict[str, Any] | None:
    """The label-free estimate of the window and its check (None: no scored reference)."""
    if e is None:
        return None
    s, c = e.scores, e.check
    return {
        "predictions": e.predictions,
        "accuracy": None if s is None else s.accuracy,
        "precision": None if s is None else dict(s.precision),
        "recall": None if s is None else dict(s.recall),
        "f1_score": None if s is None else dict(s.f1),
        "checked_predictions": e.checked,
        "accuracy_error": None if c is None else c.accuracy,
        "f1_score_error": None if c is None else dict(c.f1),
    }


def _probabilities_json(q: ScoreQuality | None) -> dict[str, Any] | None:
    """The quality of the window's predicted probabilities (None: too few scored outcomes)."""
    if q is None:
        return None
    r = q.reliability

    def bounded(b: Bounded | None) -> dict[str, float] | None:
        return None if b is None else {"value": b.value, "max_error": b.max_error}

    return {
        "outcomes": q.outcomes,
        "exact": q.exact,
        "roc_auc": bounded(q.roc_auc),
        "average_precision": bounded(q.average_precision),
        "log_loss": q.log_loss,
        "brier_score": q.brier_score,
        "expected_calibration_error": q.expected_calibration_error,
        "reliability": [
            {
                "upper_edge": float(r.upper_edges[j]),
                "predictions": int(r.counts[j]),
                "mean_confidence": None if not r.counts[j] else float(r.mean_confidence[j]),
                "observed_rate": None if not r.counts[j] else float(r.hit_rate[j]),
            }
            for j in range(r.counts.shape[0])
        ],
    }


def _scores_json(
    scores: ClassificationScores | RegressionScores | None, classes: tuple[str, ...]
) -> Any:
    if scores is None:
        return None
    if isinstance(scores, RegressionScores):
        return {
            "mean_absolute_error": scores.mean_absolute_error,
            "root_mean_squared_error": scores.root_mean_squared_error,
        }
    return {
        "accuracy": scores.accuracy,
        "precision": dict(scores.precision),
        "recall": dict(scores.recall),
        "f1_score": dict(scores.f1),
        "classes": {
            classes[c]: {
                "precision": float(scores.class_precision[j]),
                "recall": float(scores.class_recall[j]),
                "f1_score": float(scores.class_f1[j]),
                "support": int(scores.class_support[j]),
            }
            for j, c in enumerate(scores.classes.tolist())
        },
    }


def _target_json(t: TargetDrift | None) -> Any:
    if t is None:
        return None
    tests = asdict(t.numeric) if t.numeric is not None else {}
    if t.categorical is not None:
        tests = asdict(t.categorical)
    pvalue = t.numeric.pvalue if t.numeric is not None else None
    if t.categorical is not None:
        pvalue = t.categorical.pvalue
    return {**tests, "pvalue": pvalue, "drifted": t.drifted}


def _drift_json(result: DriftResult) -> dict[str, Any]:
    s = result.scores
    return {
        "computed_at": result.computed_at,
        "window_predictions": result.window_events,
        "sample_predictions": result.window_sample,
        "reference_source": result.reference_source,
        "correction": s.correction,
        "alpha": s.alpha,
        "release_alpha": s.release_alpha,
        "features_tested": s.tested,
        "features_drifted": s.drifted,
        "features": {
            name: {
                "kind": f.kind,
                "window_values": f.window_values,
                "reference_values": f.reference_values,
                "missing_ratio": f.missing,
                "pvalue": f.pvalue,
                "adjusted_pvalue": f.adjusted_pvalue,
                "drifted": f.drifted,
                **(asdict(f.numeric) if f.numeric is not None else {}),
                **(asdict(f.categorical) if f.categorical is not None else {}),
            }
            for name, f in s.features.items()
        },
        "predictions": _target_json(s.predictions),
        "labels": _target_json(s.labels),
    }
