"""Through the HTTP API, rolling quality equals scikit-learn on the same window.

A seeded simulation sends predictions and labels that arrive late, early (before their
prediction), out of order, twice, or never. An oracle records every join with its label time;
at several points the exporter's /metrics must equal scikit-learn on the joins inside each window
(tolerance 1e-12). The window is the current bucket plus the 59 before it (docs: "Windows").
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm

from tests.conftest import Exporter, sample

TOL = 1e-12
WINDOWS = {"5m": 300.0, "1h": 3600.0}


class Oracle:
    def __init__(self) -> None:
        self.joins: list[tuple[float, Any, Any]] = []  # (label time, truth, prediction)

    def in_window(self, now: float, seconds: float) -> tuple[list[Any], list[Any]]:
        width = seconds / 60
        current = math.floor(now / width)
        truth, pred = [], []
        for t, y, p in self.joins:
            if current - 60 < math.floor(min(t, now) / width) <= current:
                truth.append(y)
                pred.append(p)
        return truth, pred


def check_classification(
    exp: Exporter, oracle: Oracle, model: str, labels_order: list[Any], positive: Any | None
) -> int:
    """Compare every quality metric of every window; returns how many windows had data."""
    m = exp.metrics()
    checked = 0
    name = {True: "true", False: "false"}
    for window, seconds in WINDOWS.items():
        y_true, y_pred = oracle.in_window(exp.clock.now, seconds)
        key = {"model": model, "model_version": "v1", "window": window}
        assert sample(m, "model_window_labeled_predictions", **key) == len(y_true)
        if not y_true:
            assert sample(m, "model_accuracy", **key) is None
            continue
        checked += 1
        assert sample(m, "model_accuracy", **key) == pytest.approx(
            skm.accuracy_score(y_true, y_pred), abs=TOL
        )
        averages = ["macro", "weighted"] + (["binary"] if positive is not None else [])
        for avg in averages:
            kw: dict[str, Any] = {"average": avg, "zero_division": 0}
            if avg == "binary":
                kw["pos_label"] = positive
            for metric, fn in (
                ("model_precision", skm.precision_score),
                ("model_recall", skm.recall_score),
                ("model_f1_score", skm.f1_score),
            ):
                got = sample(m, metric, average=avg, **key)
                assert got == pytest.approx(fn(y_true, y_pred, **kw), abs=TOL), (metric, avg)
        present = [c for c in labels_order if c in set(y_true) | set(y_pred)]
        p, r, f, support = skm.precision_recall_fscore_support(
            y_true, y_pred, labels=present, zero_division=0
        )
        for j, cls in enumerate(present):
            ck = {**key, "class": name.get(cls, str(cls)) if isinstance(cls, bool) else str(cls)}
            assert sample(m, "model_class_precision", **ck) == pytest.approx(p[j], abs=TOL)
            assert sample(m, "model_class_recall", **ck) == pytest.approx(r[j], abs=TOL)
            assert sample(m, "model_class_f1_score", **ck) == pytest.approx(f[j], abs=TOL)
            assert sample(m, "model_class_support", **ck) == support[j]
    return checked


def simulate(
    exp: Exporter,
    model: str,
    classes: list[Any],
    seed: int,
    steps: int = 90,
    positive: Any | None = None,
) -> Oracle:
    """Two simulated hours: every 80 s a batch of predictions; labels with varied delays."""
    rng = np.random.default_rng(seed)
    oracle = Oracle()
    truth: dict[str, Any] = {}
    predicted: dict[str, Any] = {}
    scheduled: list[tuple[float, str, Any]] = []  # (send time, id, label)
    early: list[tuple[str, Any, float]] = []  # labels sent before their prediction
    joined: set[str] = set()
    next_id = 0
    checked = 0
    for step in range(steps):
        exp.clock.advance(80.0)
        now = exp.clock.now
        # Labels due now, in random order (out of order across predictions).
        due = [s for s in scheduled if s[0] <= now]
        scheduled = [s for s in scheduled if s[0] > now]
        rng.shuffle(due)
        if due:
            exp.labels(model, [{"id": i, "label": y} for _, i, y in due])
            for _, i, y in due:
                if i not in joined:
                    joined.add(i)
                    oracle.joins.append((now, y, predicted[i]))
        # Some labels arrive before their prediction (it is sent in this step's batch).
        events = []
        for _ in range(int(rng.integers(5, 40))):
            ident = f"e{next_id}"
            next_id += 1
            y = classes[int(rng.integers(len(classes)))]
            p = y if rng.random() < 0.7 else classes[int(rng.integers(len(classes)))]
            truth[ident], predicted[ident] = y, p
            events.append({"id": ident, "features": {"x": float(rng.normal())}, "prediction": p})
            fate = rng.random()
            if fate < 0.1 and step > 0:  # (the model must exist: step 0 registers it)
                early.append((ident, y, now))  # label first, prediction right after
            elif fate < 0.2:
                pass  # never labeled
            else:
                delay = float(rng.choice([0.0, 30.0, 400.0, 2000.0, 5000.0]))
                scheduled.append((now + delay, ident, y))
                if rng.random() < 0.1:  # the same label sent again later: ignored
                    scheduled.append((now + delay + 200.0, ident, y))
        if early:
            exp.labels(model, [{"id": i, "label": y} for i, y, _ in early])
        exp.predictions(model, events, model_version="v1")
        for i, y, t in early:
            joined.add(i)
            oracle.joins.append((t, y, predicted[i]))
        early = []
        if step % 15 == 14:
            checked += check_classification(exp, oracle, model, classes, positive)
    assert checked >= 8  # the comparison really ran on non-empty windows
    return oracle


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_int_classes_match_sklearn(make_exporter, seed: int) -> None:
    exp = make_exporter(windows=["5m", "1h"], quality={"min_samples": 1})
    simulate(exp, "fraud", [0, 1], seed, positive=1)
    status = exp.status("fraud")
    assert status["task"] == "binary"
    assert status["positive_class"] == "1"


def test_multiclass_string_classes_match_sklearn(make_exporter) -> None:
    exp = make_exporter(windows=["5m", "1h"], quality={"min_samples": 1})
    simulate(exp, "species", ["setosa", "versicolor", "virginica", "other"], seed=7)
    m = exp.metrics()
    assert (
        sample(
            m, "model_precision", model="species", model_version="v1", window="1h", average="binary"
        )
        is None
    )  # multiclass: no binary average
    assert exp.status("species")["task"] == "multiclass"


def test_bool_classes_are_binary_with_positive_true(make_exporter) -> None:
    exp = make_exporter(windows=["5m", "1h"], quality={"min_samples": 1})
    simulate(exp, "churn", [False, True], seed=11, positive=True)
    assert exp.status("churn")["positive_class"] == "true"


def test_declared_positive_class_for_string_binary(make_exporter, tmp_path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "windows: [5m, 1h]\nquality: {min_samples: 1}\n"
        "models:\n  spam: {task: binary, positive_class: spam}\n"
    )
    exp = make_exporter(config=str(cfg))
    simulate(exp, "spam", ["ham", "spam"], seed=5, positive="spam")


def test_inferred_binary_becomes_multiclass_on_a_third_class(make_exporter) -> None:
    exp = make_exporter(quality={"min_samples": 1})
    exp.predictions("m", [{"id": "a", "features": {}, "prediction": 0, "label": 1}])
    assert exp.status("m")["task"] == "binary"
    exp.predictions("m", [{"id": "b", "features": {}, "prediction": 2, "label": 2}])
    status = exp.status("m")
    assert status["task"] == "multiclass"
    assert status["classes"] == ["0", "1", "2"]


def test_regression_errors_match_sklearn(make_exporter) -> None:
    exp = make_exporter(windows=["5m", "1h"], quality={"min_samples": 1})
    rng = np.random.default_rng(42)
    joins: list[tuple[float, float, float]] = []
    pending: list[tuple[float, str, float]] = []
    preds_by_id: dict[str, float] = {}
    n = 0
    for _ in range(80):
        exp.clock.advance(60.0)
        now = exp.clock.now
        due = [p for p in pending if p[0] <= now]
        pending = [p for p in pending if p[0] > now]
        if due:
            exp.labels("price", [{"id": i, "label": y} for _, i, y in due])
            joins.extend((now, y, preds_by_id[i]) for _, i, y in due)
        events = []
        for _ in range(20):
            y = float(rng.normal(100, 20))
            p = y + float(rng.normal(0, 5))
            ident = f"r{n}"
            n += 1
            if rng.random() < 0.3:
                events.append({"id": ident, "features": {"a": y / 2}, "prediction": p, "label": y})
                joins.append((now, y, p))
            else:
                events.append({"id": ident, "features": {"a": y / 2}, "prediction": p})
                pending.append((now + float(rng.choice([0, 120, 900])), ident, y))
        exp.predictions("price", events, model_version="v1")
        preds_by_id.update({e["id"]: e["prediction"] for e in events})
    m = exp.metrics()
    for window, seconds in WINDOWS.items():
        width = seconds / 60
        cur = math.floor(exp.clock.now / width)
        live = [(y, p) for t, y, p in joins if cur - 60 < math.floor(t / width) <= cur]
        y_true = [y for y, _ in live]
        y_pred = [p for _, p in live]
        key = {"model": "price", "model_version": "v1", "window": window}
        assert sample(m, "model_window_labeled_predictions", **key) == len(live)
        assert sample(m, "model_mean_absolute_error", **key) == pytest.approx(
            skm.mean_absolute_error(y_true, y_pred), rel=TOL
        )
        assert sample(m, "model_root_mean_squared_error", **key) == pytest.approx(
            skm.root_mean_squared_error(y_true, y_pred), rel=TOL
        )
        assert sample(m, "model_accuracy", **key) is None


def test_outcome_counters_match_every_join(make_exporter) -> None:
    """The summable counters hold every join ever made, by (actual, predicted)."""
    exp = make_exporter(windows=["5m", "1h"], quality={"min_samples": 1})
    oracle = simulate(exp, "fraud", [0, 1], seed=3, positive=1)
    m = exp.metrics()
    pairs: dict[tuple[str, str], int] = {}
    for _, y, p in oracle.joins:
        pairs[(str(y), str(p))] = pairs.get((str(y), str(p)), 0) + 1
    for (a, p), count in pairs.items():
        labels = {
            "model": "fraud",
            "model_version": "v1",
            "actual": a,
            "predicted": p,
            "correct": str(a == p).lower(),
        }
        assert sample(m, "model_outcomes_total", **labels) == count
    assert sample(m, "model_labels_total", model="fraud", model_version="v1") == len(oracle.joins)
    correct = sum(v for (a, p), v in pairs.items() if a == p)
    y_true = [y for _, y, _ in oracle.joins]
    y_pred = [p for _, _, p in oracle.joins]
    assert correct / len(oracle.joins) == pytest.approx(skm.accuracy_score(y_true, y_pred), abs=TOL)


def test_label_delay_histogram(make_exporter) -> None:
    exp = make_exporter(quality={"min_samples": 1})
    exp.predictions("m", [{"id": str(i), "features": {}, "prediction": 1} for i in range(4)])
    exp.clock.advance(30)
    exp.labels("m", [{"id": "0", "label": 1}, {"id": "1", "label": 0}])
    exp.clock.advance(3600)
    exp.labels("m", [{"id": "2", "label": 1}])
    m = exp.metrics()
    key = {"model": "m", "model_version": "default"}
    assert sample(m, "model_label_delay_seconds_bucket", **key, le="15") == 0
    assert sample(m, "model_label_delay_seconds_bucket", **key, le="30") == 2
    assert sample(m, "model_label_delay_seconds_bucket", **key, le="3600") == 2
    assert sample(m, "model_label_delay_seconds_bucket", **key, le="7200") == 3
    assert sample(m, "model_label_delay_seconds_bucket", **key, le="+Inf") == 3
    assert sample(m, "model_label_delay_seconds_count", **key) == 3
    assert sample(m, "model_label_delay_seconds_sum", **key) == 30 + 30 + 3630
    assert sample(m, "model_pending_predictions", **key) == 1


def test_predictions_without_labels_expire_and_are_counted(make_exporter) -> None:
    exp = make_exporter(
        join={"prediction_ttl": "1h", "max_pending_predictions": 3, "label_ttl": "1m"}
    )
    exp.predictions("m", [{"id": str(i), "features": {}, "prediction": 1} for i in range(5)])
    key = {"model": "m", "model_version": "default"}
    m = exp.metrics()
    assert sample(m, "model_predictions_expired_total", **key, reason="capacity") == 2
    assert sample(m, "model_pending_predictions", **key) == 3
    exp.labels("m", [{"id": "early-1", "label": 0}])  # its prediction never comes
    exp.clock.advance(3601)
    m = exp.metrics()
    assert sample(m, "model_predictions_expired_total", **key, reason="ttl") == 3
    assert sample(m, "model_pending_predictions", **key) == 0
    assert sample(m, "model_labels_expired_total", model="m", reason="ttl") == 1
    assert sample(m, "model_pending_labels", model="m") == 0
    # A label for an expired prediction now waits as an early label (and will expire too).
    assert exp.labels("m", [{"id": "4", "label": 1}])["pending"] == 1


def test_duplicates_are_ignored_and_counted(make_exporter) -> None:
    exp = make_exporter(quality={"min_samples": 1})
    batch = [{"id": str(i), "features": {"x": 1.0}, "prediction": i % 2} for i in range(10)]
    assert exp.predictions("m", batch)["accepted"] == 10
    assert exp.predictions("m", batch) == {
        "accepted": 0,
        "duplicates": 10,
        "joined": 0,
        "pending": 0,
    }
    exp.labels("m", [{"id": "3", "label": 1}])
    # "accepted" means new on both endpoints: a label seen before is a duplicate only.
    again = exp.labels("m", [{"id": "3", "label": 0}, {"id": "4", "label": 0}])
    assert (again["accepted"], again["duplicates"], again["joined"]) == (1, 1, 1)
    m = exp.metrics()
    key = {"model": "m", "model_version": "default"}
    assert sample(m, "model_predictions_total", **key) == 10
    assert sample(m, "model_duplicate_events_total", model="m", kind="prediction") == 10
    assert sample(m, "model_duplicate_events_total", model="m", kind="label") == 1
    assert sample(m, "model_accuracy", **key, window="1h") == 1.0  # id 3: the first label counted
