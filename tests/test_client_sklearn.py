"""The scikit-learn wrapper reports each row once (exporter.client.sklearn): against a real
exporter with real estimators, and directly with a recording client."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from sklearn.pipeline import make_pipeline

from exporter.client import MonitorClient
from exporter.client import sklearn as sklearn_module
from exporter.client.sklearn import MonitoredEstimator
from tests.conftest import parse_metrics, sample
from tests.helpers import ExporterProcess

X, Y = load_iris(return_X_y=True)
FITTED = LogisticRegression(max_iter=1000).fit(X, Y)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    cfg = tmp_path_factory.mktemp("sklearn") / "config.yaml"
    cfg.write_text("quality: {min_samples: 1}\n")
    proc = ExporterProcess(cfg)
    yield proc
    proc.stop()


def counts(server: ExporterProcess, model: str) -> dict[str, float | None]:
    metrics = parse_metrics(server.client.get("/metrics").text)
    key = {"model": model, "model_version": "default"}
    return {
        "predictions": sample(metrics, "model_predictions_total", **key),
        "labels": sample(metrics, "model_labels_total", **key),
        "accuracy": sample(metrics, "model_accuracy", **key, window="1h"),
    }


@pytest.mark.e2e
@pytest.mark.parametrize("first", ["predict", "predict_proba"])
def test_predict_and_predict_proba_on_150_rows_report_150_predictions_all_labelable(
    server: ExporterProcess, first: str
) -> None:
    model = f"iris-{first}"
    with MonitorClient(server.url, model=model, flush_interval=0.05) as client:
        wrapped = MonitoredEstimator(FITTED, client)
        second = "predict_proba" if first == "predict" else "predict"
        _, ids = getattr(wrapped, first)(X, return_ids=True)
        out, again = getattr(wrapped, second)(X, return_ids=True)
        assert again == ids and len(set(ids)) == 150
        expected = FITTED.predict(X) if second == "predict" else FITTED.predict_proba(X)
        np.testing.assert_array_equal(out, expected)
        assert wrapped.log_labels(ids, Y) == 150
        assert client.flush(30)
        stats = client.stats()
    assert stats.sent_events == 300 and stats.dropped_rejected == 0
    got = counts(server, model)
    assert got["predictions"] == 150 and got["labels"] == 150
    assert got["accuracy"] == pytest.approx(accuracy_score(Y, FITTED.predict(X)), abs=1e-12)
    features = [f["name"] for f in server.client.get(f"/v1/models/{model}").json()["features"]]
    assert features == ["x0", "x1", "x2", "x3"]  # numpy input: columns numbered
    # Probabilities travel with predict_proba's reports only (predict first: none).
    scored = sample(
        parse_metrics(server.client.get("/metrics").text),
        "model_log_loss",
        model=model,
        model_version="default",
        window="1h",
    )
    if first == "predict_proba":
        assert scored == pytest.approx(log_loss(Y, FITTED.predict_proba(X)), abs=1e-12)
    else:
        assert scored is None


@pytest.mark.e2e
def test_with_probabilities_predict_reports_them_too(server: ExporterProcess) -> None:
    model = "iris-with-probabilities"
    with MonitorClient(server.url, model=model, flush_interval=0.05) as client:
        wrapped = MonitoredEstimator(FITTED, client, with_probabilities=True)
        _, ids = wrapped.predict(X, return_ids=True)
        wrapped.log_labels(ids, Y)
        assert client.flush(30)
    metrics = parse_metrics(server.client.get("/metrics").text)
    key = {"model": model, "model_version": "default", "window": "1h"}
    proba = FITTED.predict_proba(X)
    assert sample(metrics, "model_log_loss", **key) == pytest.approx(log_loss(Y, proba), abs=1e-12)
    assert sample(metrics, "model_roc_auc", **key) == pytest.approx(
        roc_auc_score(Y, proba, multi_class="ovr"), abs=1e-12
    )


@pytest.mark.e2e
def test_a_nan_the_pipeline_imputes_is_sent_as_missing(server: ExporterProcess) -> None:
    holes = X.copy()
    holes[7, 2] = np.nan
    pipeline = make_pipeline(SimpleImputer(), LogisticRegression(max_iter=1000)).fit(holes, Y)
    with MonitorClient(server.url, model="iris-nan", flush_interval=0.05) as client:
        wrapped = MonitoredEstimator(pipeline, client)
        wrapped.predict(holes)
        assert client.flush(30)
        stats = client.stats()
    assert stats.sent_events == 150 and stats.dropped_rejected == 0
    assert counts(server, "iris-nan")["predictions"] == 150


class Recorder(MonitorClient):
    """Records what the wrapper logs; sends nothing."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9", flush_on_exit=False, max_retries=0)
        self.logged: list[tuple[Any, dict[str, Any], Any]] = []

    def log_prediction(self, id: Any, features: Any, prediction: Any, **kw: Any) -> bool:
        self.logged.append((id, dict(features), prediction))
        return True


@pytest.fixture
def recorder() -> Any:
    client = Recorder()
    yield client
    client.close(timeout=0.1)


def test_predict_proba_reports_the_most_likely_class_as_predict_would(recorder: Any) -> None:
    labels = np.array(["setosa", "versicolor", "virginica"])[Y]
    fitted = LogisticRegression(max_iter=1000).fit(X, labels)
    MonitoredEstimator(fitted, recorder).predict_proba(X[::10])
    assert [p for _, _, p in recorder.logged] == fitted.predict(X[::10]).tolist()
    assert all(type(p) is str for _, _, p in recorder.logged)


def test_the_same_method_twice_is_two_calls_and_reports_twice(recorder: Any) -> None:
    wrapped = MonitoredEstimator(FITTED, recorder)
    first = wrapped.predict(X[:5], return_ids=True)[1]
    second = wrapped.predict(X[:5], return_ids=True)[1]
    assert len(recorder.logged) == 10 and not set(first) & set(second)


def test_other_rows_are_reported_and_a_pair_is_completed_only_once(recorder: Any) -> None:
    wrapped = MonitoredEstimator(FITTED, recorder)
    wrapped.predict(X[:5])
    wrapped.predict_proba(X[5:10])  # other rows: a call of its own
    assert len(recorder.logged) == 10
    wrapped.predict(X[5:10].copy())  # the same values: the other half of that call
    assert len(recorder.logged) == 10
    wrapped.predict_proba(X[5:10])  # a third call: the pair is complete, reported
    assert len(recorder.logged) == 15


def test_pairs_are_per_thread(recorder: Any) -> None:
    wrapped = MonitoredEstimator(FITTED, recorder)
    wrapped.predict(X[:3])
    thread = threading.Thread(target=wrapped.predict_proba, args=(X[:3],))
    thread.start()
    thread.join()
    assert len(recorder.logged) == 6  # another thread's call is another request


def test_a_later_call_on_the_same_thread_is_another_request(
    recorder: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pooled server thread: request A's predict, then request B's predict_proba on equal
    rows more than PAIR_WITHIN seconds later: B is reported too."""
    clock = [1000.0]
    monkeypatch.setattr(sklearn_module, "_now", lambda: clock[0])
    wrapped = MonitoredEstimator(FITTED, recorder)
    _, first = wrapped.predict(X[:3], return_ids=True)
    clock[0] += sklearn_module.PAIR_WITHIN / 2
    _, paired = wrapped.predict_proba(X[:3], return_ids=True)
    assert paired == first and len(recorder.logged) == 3  # one request's two calls
    wrapped.predict(X[:3])
    clock[0] += sklearn_module.PAIR_WITHIN * 2
    _, later = wrapped.predict_proba(X[:3], return_ids=True)
    assert len(recorder.logged) == 9 and set(later).isdisjoint(first)


@pytest.mark.parametrize("only", ["predict", "predict_proba"])
def test_report_restricts_reporting_to_one_method(recorder: Any, only: str) -> None:
    wrapped = MonitoredEstimator(FITTED, recorder, report=only)  # type: ignore[arg-type]
    other = "predict_proba" if only == "predict" else "predict"
    _, none = getattr(wrapped, other)(X[:4], return_ids=True)
    assert none == [] and recorder.logged == []
    _, ids = getattr(wrapped, only)(X[:4], return_ids=True)
    _, same = getattr(wrapped, other)(X[:4], return_ids=True)  # the same rows: their ids
    assert len(recorder.logged) == 4 and same == ids
    with pytest.raises(ValueError, match="report must be"):
        MonitoredEstimator(FITTED, recorder, report="both")  # type: ignore[arg-type]


def test_string_columns_are_compared_by_value(recorder: Any) -> None:
    class Constant:
        classes_ = np.array([0, 1])

        def predict(self, rows: Any) -> Any:
            return np.zeros(len(rows), dtype=int)

        def predict_proba(self, rows: Any) -> Any:
            return np.tile([0.9, 0.1], (len(rows), 1))

    rows = np.array([["DE", 1.0], ["FR", 2.0]], dtype=object)
    wrapped = MonitoredEstimator(Constant(), recorder, feature_names=[np.str_("c"), "x"])
    wrapped.predict(rows)
    copy = np.array([["".join("DE"), 1.0], ["".join("FR"), 2.0]], dtype=object)  # new objects
    assert copy[0, 0] is not rows[0, 0]
    wrapped.predict_proba(copy)
    assert len(recorder.logged) == 2
    assert recorder.logged[0][1] == {"c": "DE", "x": 1.0}
    assert all(type(k) is str for k in recorder.logged[0][1])


def test_with_probabilities_a_failing_predict_proba_still_reports_the_predictions(
    recorder: Any, caplog: pytest.LogCaptureFixture
) -> None:
    class NoProba:
        classes_ = np.array([0, 1, 2])

        def predict(self, X: Any) -> Any:
            return FITTED.predict(X)

        def predict_proba(self, X: Any) -> Any:
            raise RuntimeError("no probabilities today")

    MonitoredEstimator(NoProba(), recorder, with_probabilities=True).predict(X[:5])
    assert len(recorder.logged) == 5
    assert "predict_proba failed" in caplog.text
