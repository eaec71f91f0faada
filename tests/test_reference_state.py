"""The model's references part, directly: precedence, first events and labels, start marks,
and the checks of an upload against the schema."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from exporter.config import load_settings
from exporter.errors import Reason, RejectedInput
from exporter.reference import RowLayout, build_reference
from exporter.reference_state import ReferenceState, check_reference
from exporter.schema import ModelSchema
from exporter.snapshot import ArmCounts
from exporter.version import VersionState
from tests.conftest import T0

SETTINGS = load_settings(drift={"reference_size": 3})
LAYOUT = RowLayout(names=("x",), kinds=("numeric",), categories=((),), classes=("0", "1"))


def upload(**columns: Any) -> Any:
    return build_reference(columns, settings=SETTINGS.drift, source="upload", created=T0)


def version(uid: int = 1) -> VersionState:
    return VersionState(uid, f"v{uid}", SETTINGS, task="binary", rolling=False, now=T0)


def refs(policy: Any = "first_events") -> ReferenceState:
    return ReferenceState(policy, SETTINGS.drift)


def test_precedence_version_upload_then_model_then_first_events() -> None:
    state, v = refs(), version()
    assert state.info(v).source == "collecting" and state.collects_first(v)
    v.first_rows.add(np.array([[1.0, 0.5], [0.0, 1.5], [1.0, 2.5]]))
    state.freeze_first_events(v, LAYOUT, T0)
    info = state.info(v)
    assert (info.source, info.rows, info.target_rows) == ("first_events", 3, 3)
    assert not state.collects_first(v)
    model_wide = upload(x=[1.0, 2.0])
    state.set_for_model(model_wide, [v], revision=4)
    assert (state.info(v).scope, state.info(v).reference) == ("model", model_wide)
    mine = upload(x=[5.0])
    state.set_for_version(v, mine, revision=5)
    assert (state.info(v).scope, state.info(v).reference, state.info(v).set_at) == (
        "version",
        mine,
        5,
    )


def test_a_model_wide_reference_drops_the_versions_own_and_marks_their_counts() -> None:
    state, v = refs(), version()
    state.set_for_version(v, upload(x=[5.0]), revision=1)
    v.counters.count_outcomes(np.array([1, 1]), np.array([1, 0]), 2)
    state.set_for_model(upload(x=[1.0]), [v], revision=2)
    assert v.uploaded is None
    info = state.info(v)
    assert (info.set_at, info.start) == (2, ArmCounts(correct=1, labeled=2))
    later = version(2)  # came after: the model-wide revision, counts from zero
    assert (state.info(later).set_at, state.info(later).start) == (2, ArmCounts())
    state.forget(v.uid)
    assert state.info(v).start == ArmCounts()


def test_rolling_uses_the_previous_window_and_never_collects() -> None:
    state, v = refs("previous_window"), version()
    assert state.rolling and not state.collects_first(v)
    assert state.info(v).source == "previous_window"


def test_first_labels_are_the_label_reference_unless_an_upload_has_labels() -> None:
    state, v = refs(), version()
    assert state.labels(v) is None
    v.first_labels.add(np.array([[1.0], [0.0], [1.0]]))
    state.freeze_first_labels(v, ["0", "1"])
    first = state.labels(v)
    assert first is not None and (first.numeric, first.size) == (None, 3)
    state.set_for_model(upload(x=[1.0, 2.0]), [v], revision=1)
    assert state.labels(v) is first  # the upload has no labels
    with_labels = build_reference(
        {"x": [1.0, 2.0]}, settings=SETTINGS.drift, source="upload", created=T0, labels=[0, 1]
    )
    state.set_for_model(with_labels, [v], revision=2)
    assert with_labels.labels is not None and state.labels(v) is with_labels.labels


def schema_with(numeric: list[str]) -> ModelSchema:
    schema = ModelSchema()
    schema.adopt_features(numeric, ())
    return schema


@pytest.mark.parametrize(
    ("columns", "max_features", "reason", "field"),
    [
        ({"y": [1.0]}, 10, Reason.INVALID_REFERENCE, "features"),
        ({"x": ["a"]}, 10, Reason.INVALID_REFERENCE, "features.x"),
        ({"x": [1.0], "y": [1.0]}, 1, Reason.TOO_MANY_FEATURES, "features"),
    ],
)
def test_an_upload_that_does_not_fit_the_schema_is_refused_naming_the_field(
    columns: dict[str, list[Any]], max_features: int, reason: Reason, field: str
) -> None:
    schema = schema_with(["x"])
    with pytest.raises(RejectedInput) as caught:
        check_reference(schema, upload(**columns), model="m", max_features=max_features)
    assert (caught.value.reason, caught.value.field) == (reason, field)
    assert schema.features.names == ["x"]  # unchanged


def test_an_upload_that_fits_passes() -> None:
    check_reference(schema_with(["x"]), upload(x=[1.0], y=[2.0]), model="m", max_features=2)
