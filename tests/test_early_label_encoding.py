"""Early labels encoded once the task is known, directly: one by one, a misfit dropped alone."""

from __future__ import annotations

from exporter.early_labels import encode_early_labels
from exporter.schema import ModelSchema


def test_each_label_is_encoded_and_its_class_committed() -> None:
    schema = ModelSchema("multiclass")
    out = encode_early_labels(schema, ["b", "a", "b"], max_classes=10, model="m")
    assert out == [0.0, 1.0, 0.0]
    assert schema.class_labels() == ["b", "a"]


def test_a_label_that_does_not_fit_drops_alone() -> None:
    schema = ModelSchema("regression")
    assert encode_early_labels(schema, [1.5, "x", 2], max_classes=10, model="m") == [1.5, None, 2.0]


def test_a_class_over_the_limit_drops_and_is_not_committed() -> None:
    schema = ModelSchema("multiclass")
    out = encode_early_labels(schema, ["a", "b", "c", "a"], max_classes=2, model="m")
    assert out == [0.0, 1.0, None, 0.0]
    assert schema.class_labels() == ["a", "b"]


def test_an_inferred_binary_model_turns_multiclass_with_a_third_class() -> None:
    schema = ModelSchema()
    schema.task = "binary"  # inferred from the first prediction, not declared
    out = encode_early_labels(schema, [0, 1, 2], max_classes=10, model="m")
    assert out == [0.0, 1.0, 2.0] and schema.task == "multiclass"
