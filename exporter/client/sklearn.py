"""Report every prediction of a fitted scikit-learn estimator (or pipeline) to the exporter, once.

::

    from exporter.client import MonitorClient
    from exporter.client.sklearn import MonitoredEstimator

    model = MonitoredEstimator(fitted_pipeline, MonitorClient(model="churn", model_version="v3"))
    y, ids = model.predict(X, return_ids=True)   # each row reported with a generated id
    proba = model.predict_proba(X)               # the same rows: not reported again
    ...
    model.log_labels(ids, y_true)                # when the ground truth is known

Each row is reported once. With ``report="either"`` (the default) the first of ``predict`` and
``predict_proba`` called on some rows reports them; the other method called next on the same
rows (same values, same thread, within :data:`PAIR_WITHIN` seconds, once) reports nothing and
returns the same ids, so the common ``predict`` then ``predict_proba`` pair counts each row
once; the time limit keeps a pooled server thread from pairing two requests' calls.
``predict_proba`` reports the most likely class, ``classes_[argmax]``; for the few estimators
whose ``predict`` can disagree with it (``SVC(probability=True)``), the class of the first call
is the one reported. With
``report="predict"`` or ``report="predict_proba"`` only that method reports (the other one
returns the ids of the same rows if that method just reported them, else none).

Rows reported by ``predict_proba`` carry their probabilities (``{class: probability}``, the
classes ``classes_``), so the exporter computes ROC AUC, log loss, Brier score and calibration.
Rows reported by ``predict`` carry none, unless ``with_probabilities=True``: ``predict`` then
also calls ``predict_proba`` on the same rows (a second inference, on the caller's thread) for
the report. Code that calls ``predict`` and then ``predict_proba`` on the same rows gets the
probabilities reported either by ``with_probabilities=True`` or by calling ``predict_proba``
first.

Feature names come from ``feature_names=``, else the input frame's columns, else the
estimator's ``feature_names_in_``, else they are ``x0, x1, ...``: column ``i`` of a numpy array
is the feature ``x{i}``. Values go through the client's normalisation (a ``NaN`` the pipeline
imputes is sent as missing). Reporting costs the caller one conversion of the rows to plain
Python values, a hash of the rows and a queue append per row; it never raises into
``predict``.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np

from exporter.client import MonitorClient

log = logging.getLogger("exporter.client")

Method = Literal["predict", "predict_proba"]
Report = Literal["either", "predict", "predict_proba"]


#: Rows of at most this many bytes are compared by value, larger ones by a hash of them.
_SMALL = 1024
#: Seconds within which the other method's call on the same rows completes a call (is not
#: reported again): the two calls of one request, not two requests on one pooled thread.
PAIR_WITHIN = 1.0
#: The clock of PAIR_WITHIN (a module attribute, so that tests can move it).
_now = time.monotonic


class _Call(NamedTuple):
    """The last reporting call of a thread: what the other method may complete."""

    method: Method
    rows: tuple[Any, ...]  # the rows' fingerprint
    ids: list[str]
    at: float  # time.monotonic() when it reported


class MonitoredEstimator:
    """Wraps ``estimator``; ``predict`` and ``predict_proba`` behave as the estimator's and also
    report each row once (``report``: see the module docstring). Any other attribute is the
    estimator's."""

    def __init__(
        self,
        estimator: Any,
        client: MonitorClient,
        *,
        feature_names: Sequence[str] | None = None,
        model: str | None = None,
        model_version: str | None = None,
        report: Report = "either",
        with_probabilities: bool = False,
    ) -> None:
        if report not in ("either", "predict", "predict_proba"):
            raise ValueError(
                f"report must be 'either', 'predict' or 'predict_proba', got {report!r}"
            )
        self.estimator = estimator
        self.client = client
        self.feature_names = [str(n) for n in feature_names] if feature_names is not None else None
        self.model = model
        self.model_version = model_version
        self.report = report
        self.with_probabilities = with_probabilities
        #: Ids of the rows of the last ``predict``/``predict_proba`` call (not thread-safe; use
        #: ``return_ids=True`` from concurrent callers).
        self.last_ids: list[str] = []
        # A random prefix per wrapper and a counter: unique ids at a tenth of uuid4's cost.
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count()
        self._calls = threading.local()  # .last: the thread's last _Call, or None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.estimator, name)

    def predict(self, X: Any, *, return_ids: bool = False) -> Any:
        y = self.estimator.predict(X)

        def probabilities() -> Any:
            if not self.with_probabilities:
                return None
            try:
                return self.estimator.predict_proba(X)
            except Exception:  # the predictions are still reported, without probabilities
                log.exception("predict_proba failed: reporting the predictions without them")
                return None

        ids = self._report("predict", X, lambda: y, probabilities)
        return (y, ids) if return_ids else y

    def predict_proba(self, X: Any, *, return_ids: bool = False) -> Any:
        """Probabilities as the estimator's; the reported prediction is the most likely class,
        reported with its row's probabilities."""
        proba = self.estimator.predict_proba(X)
        ids = self._report(
            "predict_proba",
            X,
            lambda: np.asarray(self.estimator.classes_)[np.argmax(proba, 1)],
            lambda: proba,
        )
        return (proba, ids) if return_ids else proba

    def log_labels(self, ids: Sequence[str], labels: Any) -> int:
        """Report the ground truth of earlier predictions; returns how many were queued."""
        values = np.asarray(labels).tolist()
        return self.client.log_labels(zip(ids, values, strict=True), model=self.model)

    def _report(
        self,
        method: Method,
        X: Any,
        predictions: Callable[[], Any],
        probabilities: Callable[[], Any],
    ) -> list[str]:
        """Report the rows of ``X`` unless the other method just did; their ids."""
        ids: list[str] = []
        try:
            rows = X.to_numpy() if hasattr(X, "to_numpy") else np.asarray(X)
            if rows.ndim == 1:
                rows = rows.reshape(1, -1)
            key = _fingerprint(rows)
            last: _Call | None = getattr(self._calls, "last", None)
            self._calls.last = None
            now = _now()
            if (
                last is not None
                and last.method != method
                and now - last.at <= PAIR_WITHIN
                and last.rows == key
            ):
                ids = last.ids  # the other half of a call already reported
            elif self.report in ("either", method):
                ids = self._log(X, rows, predictions(), probabilities())
                self._calls.last = _Call(method, key, ids, now)
        except Exception:  # never break the caller's prediction
            log.exception("could not report predictions to the model-exporter")
        self.last_ids = ids
        return ids

    def _log(
        self, X: Any, rows: np.ndarray[Any, Any], predictions: Any, probabilities: Any
    ) -> list[str]:
        prefix = self._prefix
        ids = [f"{prefix}-{next(self._counter)}" for _ in range(rows.shape[0])]
        names = self._names(X, rows.shape[1])
        values = rows.tolist()  # plain floats/strs: JSON-ready, no numpy on the wire
        preds = np.asarray(predictions).tolist()
        per_row: list[dict[Any, float] | None] = [None] * len(ids)
        if probabilities is not None:
            classes = np.asarray(self.estimator.classes_).tolist()
            per_row = [
                dict(zip(classes, p, strict=True)) for p in np.asarray(probabilities).tolist()
            ]
        for ident, row, pred, proba in zip(ids, values, preds, per_row, strict=True):
            self.client.log_prediction(
                ident,
                dict(zip(names, row, strict=True)),
                pred,
                model=self.model,
                model_version=self.model_version,
                probabilities=proba,
            )
        return ids

    def _names(self, X: Any, width: int) -> list[str]:
        if self.feature_names is not None:
            return self.feature_names
        columns = getattr(X, "columns", None)
        if columns is not None:
            return [str(c) for c in columns]
        fitted = getattr(self.estimator, "feature_names_in_", None)
        if fitted is not None:
            return [str(c) for c in fitted]
        return [f"x{i}" for i in range(width)]


def _fingerprint(rows: np.ndarray[Any, Any]) -> tuple[Any, ...]:
    """Equal for equal rows: shape, dtype and the values (their bytes when few, else a hash of
    them; of their text for objects, such as strings, whose bytes are only pointers)."""
    if rows.dtype.hasobject:
        data: bytes = hashlib.blake2b(repr(rows.tolist()).encode(), digest_size=16).digest()
    elif rows.nbytes <= _SMALL:
        data = rows.tobytes()
    else:
        data = hashlib.blake2b(np.ascontiguousarray(rows).data, digest_size=16).digest()
    return rows.shape, rows.dtype, data
