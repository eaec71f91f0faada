"""The types every layer shares, declared once.

Options are ``Literal`` types (checked by mypy and by the settings' validation), never free
strings; array aliases name the dtype. Pure: no imports beyond numpy's typing.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt

#: What a model predicts: its classes (binary, multiclass) or a number (regression).
Task = Literal["binary", "multiclass", "regression"]
#: The Python type of a classifier's classes, fixed by its first values.
ClassKind = Literal["int", "bool", "string"]
#: One class of a classifier, as the client sends it.
ClassValue = int | bool | str
#: Whether a feature is compared as numbers or as categories.
FeatureKind = Literal["numeric", "categorical"]
#: A decoded value of the wire format: a feature value, a prediction or a label.
WireValue = int | float | str | bool | None
#: Where a reference comes from.
ReferenceSource = Literal["upload", "file", "first_events", "previous_window"]
#: What drift is measured against when no reference was uploaded.
ReferencePolicy = Literal["first_events", "previous_window"]
#: Multiple-testing correction across a window's features.
Correction = Literal["bh", "bonferroni", "none"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
IndexArray = npt.NDArray[np.intp]
