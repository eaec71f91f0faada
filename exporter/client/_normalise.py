"""Call-time normalisation: what a caller logs, put in the form the exporter's API defines.

Model code hands over what it has at hand: numpy scalars, ``NaN`` where the pipeline imputes a
value, integer request ids. The API already says what each of these means (``null`` is a
missing feature value, an id is a string), so the client converts them on the caller's thread,
before anything is queued, and refuses there, with the exporter's own
:class:`~exporter.errors.Reason`, what no exporter would ever accept:

=====================  ==================================  ======================================
value                  becomes                             refused (reason)
=====================  ==================================  ======================================
any numpy scalar       its Python value (``.item()``)      as that value would be
id                     an int: its decimal string          a bool, ``""``, any other type
                                                           (``invalid_field``)
feature name           an int: its decimal string          any other non-string (``invalid_field``)
feature value          NaN, +-inf: ``None`` (missing)      not a number, string, bool or None
                                                           (``invalid_field``)
prediction, label      as it is                            None or another type
                                                           (``invalid_field``); NaN, +-inf
                                                           (``non_finite``)
inline label           NaN: no label, as ``None``          as a label
timestamp              a datetime: ``isoformat()``         NaN, +-inf, a bool, another type
                                                           (``invalid_timestamp``)
model, model_version   as it is                            not a non-empty string
                                                           (``invalid_field``)
score                  a float                             not a number within 0..1
                                                           (``invalid_score``)
probabilities          keys: a class as its label ("1",    not a mapping, a probability not
                       "true", "cat"); values: floats      within 0..1, a key that is no class
                                                           (``invalid_score``)
=====================  ==================================  ======================================

Whether probabilities sum to 1 is the exporter's to say (``quality.probability_tolerance``).

numpy is never imported: its scalars are recognised by their type's module and converted with
``.item()``. The common case costs a type check per value (about 1 us for 30 features) and no
copy: a features dict is copied only when one of its names or values changes.

>>> features({"age": float("nan"), "country": "DE", 3: 1.5})
{'age': None, 'country': 'DE', '3': 1.5}
>>> identifier(42), outcome(1, "prediction")
('42', 1)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from exporter.errors import Reason, describe_value
from exporter.names import ALLOWED, name_problem

#: A feature value as the wire carries it.
Value = float | int | str | bool | None
#: A prediction or a label: a class or a number.
Outcome = float | int | str | bool

_PLAIN = frozenset({str, int, bool, type(None)})  # feature values taken as they are


class Refused(Exception):
    """A value no exporter would accept: counted under ``reason`` and never queued."""

    def __init__(self, reason: Reason, field: str, value: object, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.reason = reason
        self.field = field
        self.value = value
        self.message = message


def identifier(value: object) -> str:
    """An event's id: a non-empty string; an int (numpy's too, not a bool) becomes its decimal
    string."""
    if type(value) is str and value:
        return value
    if type(value) is int:
        return str(value)
    plain = _python(value)
    if isinstance(plain, str) and plain:
        return str(plain)
    if isinstance(plain, int) and not isinstance(plain, bool):
        return str(int(plain))
    shown = "an empty string" if plain == "" else describe_value(value)
    raise Refused(
        Reason.INVALID_FIELD, "id", value, f"an id is a non-empty string or an int, got {shown}"
    )


def features(values: object) -> dict[str, Value]:
    """The features of one event, NaN and infinities as ``None`` (missing)."""
    if type(values) is dict:
        mapping: dict[Any, Any] = values
    elif isinstance(values, Mapping):
        mapping = dict(values)
    else:
        raise Refused(
            Reason.INVALID_FIELD,
            "features",
            values,
            f"expected a mapping of feature names to values, got {describe_value(values)}",
        )
    for key, value in mapping.items():
        if type(key) is str or isinstance(key, str):  # (numpy.str_ names too: they encode)
            if type(value) is float:
                if value - value == 0.0:  # finite: NaN and infinities give NaN
                    continue
            elif type(value) in _PLAIN:
                continue
        return _rebuilt(mapping)
    return mapping


def _rebuilt(mapping: dict[Any, Any]) -> dict[str, Value]:
    """A copy of the features with every name and value as the API defines it."""
    out: dict[str, Value] = {}
    for key, value in mapping.items():
        feature = key if type(key) is str else _feature_name(key)
        if type(value) is float:
            out[feature] = value if value - value == 0.0 else None
        elif type(value) in _PLAIN:
            out[feature] = value
        else:
            out[feature] = _feature_value(value, key)
    return out


def outcome(value: object, field: str) -> Outcome:
    """A prediction or a label (``field`` says which): a class (a string, an int or a bool) or
    a finite number."""
    if type(value) is float:
        if value - value == 0.0:  # finite
            return value
    elif type(value) is str or type(value) is int or type(value) is bool:
        return value
    plain = _python(value)
    if isinstance(plain, float):
        if math.isfinite(plain):
            return float(plain)
        raise Refused(
            Reason.NON_FINITE,
            field,
            value,
            f"NaN and infinities are not a {field}, got {describe_value(plain)}",
        )
    if isinstance(plain, bool | str | int):
        return _plain(plain)
    raise Refused(
        Reason.INVALID_FIELD,
        field,
        value,
        f"a {field} is a class (a string, an int or a bool) or a number, "
        f"got {describe_value(value)}",
    )


def inline_label(value: object) -> Outcome | None:
    """The optional label sent with a prediction: ``None`` and NaN mean no label."""
    plain = _python(value)
    if plain is None or (isinstance(plain, float) and math.isnan(plain)):
        return None
    return outcome(plain, "label")


def moment(value: object) -> float | int | str:
    """An event's timestamp: epoch seconds or RFC 3339 text; a datetime is formatted."""
    if type(value) is str or type(value) is int:
        return value
    if type(value) is float and value - value == 0.0:
        return value
    plain = _python(value)
    if isinstance(plain, float) and math.isfinite(plain):
        return float(plain)
    if isinstance(plain, int | str) and not isinstance(plain, bool):
        return str(plain) if isinstance(plain, str) else int(plain)
    isoformat = getattr(plain, "isoformat", None)
    text = isoformat() if callable(isoformat) and not isinstance(plain, float) else None
    if isinstance(text, str):
        return text
    raise Refused(
        Reason.INVALID_TIMESTAMP,
        "timestamp",
        value,
        f"expected epoch seconds, RFC 3339 text or a datetime, got {describe_value(value)}",
    )


def name(value: object, field: str) -> str:
    """A model name or a model version (``field`` says which): a non-empty string that the
    exporter accepts as a name (:mod:`exporter.names`, the same cached rule)."""
    if isinstance(value, str) and value:
        text = value if type(value) is str else str(value)
        problem = name_problem(text)
        if problem is None:
            return text
        raise Refused(Reason.INVALID_NAME, field, value, f"not a valid name: {problem}; {ALLOWED}")
    hint = " (pass model= to the client or to the call)" if field == "model" else ""
    raise Refused(
        Reason.INVALID_FIELD,
        field,
        value,
        f"expected a non-empty string{hint}, got {describe_value(value)}",
    )


def version(value: object) -> str | None:
    """A model version: None (the exporter's default) or a non-empty string."""
    return None if value is None else name(value, "model_version")


def _feature_name(key: object) -> str:
    if isinstance(key, str):
        return str(key)
    plain = _python(key)
    if isinstance(plain, int) and not isinstance(plain, bool):
        return str(int(plain))
    raise Refused(
        Reason.INVALID_FIELD,
        "features",
        key,
        f"a feature name is a string, got {describe_value(key)}",
    )


def reference(
    features: Mapping[Any, Iterable[object]],
    predictions: Iterable[object] | None,
    labels: Iterable[object] | None,
) -> dict[str, Any]:
    """A reference upload's columns, each value normalised as a feature value is."""
    payload: dict[str, Any] = {
        "features": {
            _feature_name(k): [_feature_value(v, k) for v in column]
            for k, column in features.items()
        }
    }
    for key, column in (("predictions", predictions), ("labels", labels)):
        if column is not None:
            payload[key] = [_feature_value(v, key, "") for v in column]
    return payload


def _feature_value(value: object, key: object, prefix: str = "features.") -> Value:
    plain = _python(value)
    if isinstance(plain, float):
        return float(plain) if math.isfinite(plain) else None
    if plain is None:
        return None
    if isinstance(plain, bool | str | int):
        return _plain(plain)
    raise Refused(
        Reason.INVALID_FIELD,
        f"{prefix}{key}",
        value,
        f"a feature value is a number, a string, a bool or None, got {describe_value(value)}",
    )


def _plain(value: bool | str | int) -> Outcome:
    """A bool, or a subclass of str or int (an enum, ``numpy.str_``), as the plain type."""
    if isinstance(value, bool):
        return value
    return str(value) if isinstance(value, str) else int(value)


def _python(value: object) -> Any:
    """A numpy scalar (or 0-d array) as its Python value; anything else as it is."""
    if type(value).__module__ == "numpy":
        item = getattr(value, "item", None)
        if callable(item):
            try:
                return item()
            except (TypeError, ValueError):  # an array of more than one value
                return value
    return value


def score(value: object) -> float:
    """A binary model's positive-class probability: a finite number within 0..1."""
    plain = _python(value)
    if isinstance(plain, int | float) and not isinstance(plain, bool):
        number = float(plain)
        if 0.0 <= number <= 1.0:
            return number
    raise Refused(
        Reason.INVALID_SCORE,
        "score",
        value,
        f"a score is a probability, a number within 0..1, got {describe_value(value)}",
    )


def probabilities(values: object) -> dict[str, float]:
    """A probability per class, keyed by the class as the exporter labels it: ``1`` and
    ``1.0`` become ``"1"``, ``True`` becomes ``"true"``, a string stays as it is."""
    if not isinstance(values, Mapping):
        raise Refused(
            Reason.INVALID_SCORE,
            "probabilities",
            values,
            f"probabilities are a mapping of class to probability, got {describe_value(values)}",
        )
    out: dict[str, float] = {}
    for key, value in values.items():
        label = _class_label(key)
        try:
            out[label] = score(value)
        except Refused as exc:
            raise Refused(exc.reason, f"probabilities.{label}", value, exc.message) from None
    return out


def _class_label(key: object) -> str:
    plain = _python(key)
    if isinstance(plain, bool):
        return "true" if plain else "false"
    if isinstance(plain, float) and plain.is_integer():
        return str(int(plain))
    if isinstance(plain, str | int):
        return str(plain) if isinstance(plain, str) else str(int(plain))
    raise Refused(
        Reason.INVALID_SCORE,
        "probabilities",
        key,
        f"a key of probabilities is a class (a string, an int or a bool), got "
        f"{describe_value(key)}",
    )
