"""``GET /v1/models/{model}``: numbers read as a person expects (no float noise)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from exporter.api.status import DIGITS, tidy
from tests.test_exposition import populated


def floats(value: Any) -> Iterator[float]:
    if isinstance(value, float):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from floats(v)
    elif isinstance(value, list):
        for v in value:
            yield from floats(v)


def test_status_numbers_have_no_float_noise(make_exporter) -> None:
    exp = populated(make_exporter)
    exp.refresh_drift()
    for model in ("fraud", "iris", "price"):
        values = list(floats(exp.status(model)))
        assert len(values) > 10, model
        noisy = [x for x in values if x != float(f"{x:.{DIGITS}g}")]
        assert not noisy, (model, noisy[:5])


def test_tidy_rounds_to_significant_digits_and_keeps_the_rest() -> None:
    assert tidy(0.1 + 0.0415) == 0.1415 != 0.1 + 0.0415
    assert tidy(1 / 3) == float("0." + "3" * DIGITS)
    assert tidy(5e-324) == 5e-324 and tidy(1e300) == 1e300
    assert tidy({"n": 7, "b": True, "s": "x", "none": None, "t": (0.5,)}) == {
        "n": 7,
        "b": True,
        "s": "x",
        "none": None,
        "t": [0.5],
    }
