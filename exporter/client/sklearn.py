"""Report every prediction of a fitted scikit-learn estimator (or pipeline) to the exporter.

::

    from exporter.client import MonitorClient
    from exporter.client.sklearn import MonitoredEstimator

    model = MonitoredEstimator(fitted_pipeline, MonitorClient(model="churn", model_version="v3"))
    y, ids = model.predict(X, return_ids=True)   # each row reported with a generated id
    ...
    model.log_labels(ids, y_true)                # when the ground truth is known

Feature names come from the input frame's columns, else the estimator's ``feature_names_in_``,
else ``x0, x1, ...``. Reporting costs the caller one conversion of the rows to plain Python
values and a queue append per row; it never raises into ``predict``.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import Sequence
from typing import Any

import numpy as np

from exporter.client import MonitorClient

log = logging.getLogger("exporter.client")


class MonitoredEstimator:
    """Wraps ``estimator``; ``predict`` and ``predict_proba`` behave as the estimator's and also
    report each row. Any other attribute is the estimator's."""

    def __init__(
        self,
        estimator: Any,
        client: MonitorClient,
        *,
        feature_names: Sequence[str] | None = None,
        model: str | None = None,
        model_version: str | None = None,
    ) -> None:
        self.estimator = estimator
        self.client = client
        self.feature_names = list(feature_names) if feature_names is not None else None
        self.model = model
        self.model_version = model_version
        #: Ids of the rows of the last ``predict``/``predict_proba`` call (not thread-safe; use
        #: ``return_ids=True`` from concurrent callers).
        self.last_ids: list[str] = []
        # A random prefix per wrapper and a counter: unique ids at a tenth of uuid4's cost.
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.estimator, name)

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

    def _report(self, X: Any, predictions: Any) -> list[str]:
        rows = X.to_numpy() if hasattr(X, "to_numpy") else np.asarray(X)
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        prefix = self._prefix
        ids = [f"{prefix}-{next(self._counter)}" for _ in range(rows.shape[0])]
        try:
            names = self._names(X, rows.shape[1])
            values = rows.tolist()  # plain floats/strs: JSON-ready, no numpy on the wire
            preds = np.asarray(predictions).tolist()
            for ident, row, pred in zip(ids, values, preds, strict=True):
                self.client.log_prediction(
                    ident,
                    dict(zip(names, row, strict=True)),
                    pred,
                    model=self.model,
                    model_version=self.model_version,
                )
        except Exception:  # never break the caller's prediction
            log.exception("could not report predictions to the model-exporter")
        self.last_ids = ids
        return ids

    def predict(self, X: Any, *, return_ids: bool = False) -> Any:
        y = self.estimator.predict(X)
        ids = self._report(X, y)
        return (y, ids) if return_ids else y

    def predict_proba(self, X: Any, *, return_ids: bool = False) -> Any:
        """Probabilities as the estimator's; the reported prediction is the most likely class."""
        proba = self.estimator.predict_proba(X)
        classes = np.asarray(self.estimator.classes_)
        ids = self._report(X, classes[np.argmax(proba, axis=1)])
        return (proba, ids) if return_ids else proba

    def log_labels(self, ids: Sequence[str], labels: Any) -> int:
        """Report the ground truth of earlier predictions; returns how many were queued."""
        values = np.asarray(labels).tolist()
        return self.client.log_labels(zip(ids, values, strict=True), model=self.model)
