"""/metrics stays valid whatever a client sends as a name or a value.

Found by trying it as an attacker would: a model named ``"evil\\r#"``, posted once, made the
whole exposition unparseable a few seconds later (the drift part was cut into lines with
``bytes.splitlines()``, which also splits at ``\\r``), and a feature named ``"f\\r# HELP x"``
moved sample lines under another family's header. Every such string is posted here as a model,
version and feature name and as a class and category value; each is either refused with a 4xx
or accepted and exported as a correctly escaped label value, and the whole exposition passes
promtool and both of prometheus_client's parsers, before and after the drift worker ran. Model
and version names are refused exactly when they hold what no person means in a name
(exporter/names.py): checked here against the Unicode categories.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from tests.helpers import promtool_check_metrics

HOSTILE = [
    *(chr(c) for c in range(32)),  # every C0 control character, NUL, \t, \n, \r among them
    "\x7f",
    "\x85",
    "\u2028",
    "\u2029",
    '"',
    "'",
    "\\",
    "{",
    "}",
    "{}",
    "#",
    "# EOF",
    "# EOF\n",
    "evil\r#",
    "f\r# HELP x y",
    "f\n# TYPE model_accuracy counter",
    'a"b\\c\nd\re',
    'model{x="1"} 1',
    "\u200b",
]

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def families(text: str, openmetrics: bool) -> dict[str, list[Any]]:
    parse = parse_openmetrics if openmetrics else parse_text
    return {f.name: f.samples for f in parse(text)}


def label_values(fams: dict[str, list[Any]], family: str, label: str) -> set[str]:
    return {s.labels[label] for s in fams.get(family, []) if label in s.labels}


@pytest.fixture
def hostile(make_exporter) -> Any:
    """One exporter that received every hostile string in every role; returns it with what
    each role was accepted as."""
    exp = make_exporter(
        quality={"min_samples": 1},
        drift={"min_samples": 2, "reference_size": 4},
        limits={
            "max_models": 200,
            "max_versions_per_model": 50,
            "max_features": 50,
            "max_classes": 50,
        },
    )
    accepted: dict[str, list[str]] = {"model": [], "version": [], "feature": [], "class": []}

    def post(path: str, body: dict[str, Any], role: str, value: str) -> None:
        r = exp.client.post(path, json=body)
        assert r.status_code < 500, r.text
        if r.status_code == 200:
            accepted[role].append(value)
        else:  # refused: a 4xx that names what is wrong
            assert 400 <= r.status_code < 500 and r.json()["reason"], r.text

    def events(prefix: str, **overrides: Any) -> list[dict[str, Any]]:
        return [
            {
                "id": f"{prefix}{i}",
                "features": {"x": float(i), "colour": ["red", "blue"][i % 2]},
                "prediction": i % 2,
                "label": (i // 2) % 2,
                **overrides,
            }
            for i in range(8)
        ]

    for n, s in enumerate(HOSTILE):
        post("/v1/predictions", {"model": s, "events": events("m")}, "model", s)
        post(
            "/v1/predictions",
            {"model": "versions", "model_version": s, "events": events(f"v{n}-")},
            "version",
            s,
        )
        body = {
            "model": "features",
            "events": [
                {"id": f"f{n}-{i}", "features": {s: float(i), "x": 1.0}, "prediction": 0}
                for i in range(8)
            ],
        }
        post("/v1/predictions", body, "feature", s)
        classes = events(f"c{n}-", prediction=s, label=s)
        for i, e in enumerate(classes):
            if i % 2:
                e["prediction"] = e["label"] = "plain"
        post("/v1/predictions", {"model": f"classes-{n}", "events": classes}, "class", s)
        categories = events(f"k{n}-", features={"colour": s, "x": 1.0})
        r = exp.client.post("/v1/predictions", json={"model": "categories", "events": categories})
        assert r.status_code == 200, r.text  # category values are data: always accepted
    return exp, accepted


def test_hostile_strings_are_refused_or_escaped_and_the_exposition_stays_valid(hostile) -> None:
    exp, accepted = hostile
    for drift_ran in (False, True):
        if drift_ran:
            exp.refresh_drift()
        text = exp.metrics_text()
        lint = promtool_check_metrics(text)
        assert lint.returncode == 0, lint.stdout + lint.stderr
        om = exp.client.get("/metrics", headers={"Accept": OPENMETRICS}).text
        for openmetrics, body in ((False, text), (True, om)):
            fams = families(body, openmetrics)
            models = label_values(fams, "model_info", "model")
            assert set(accepted["model"]) <= models
            versions = label_values(fams, "model_predictions", "model_version")
            assert set(accepted["version"]) <= versions
            actual = label_values(fams, "model_outcomes", "actual")
            assert set(accepted["class"]) <= actual
            if drift_ran:
                features = label_values(fams, "model_feature_drift_window_values", "feature")
                assert set(accepted["feature"]) <= features
                assert set(accepted["model"]) <= label_values(
                    fams, "model_feature_drift_ks_statistic", "model"
                )
    # Model and version names: printable characters (Unicode L, M, N, P, S, and the space
    # inside), no '/'; everything else is refused. Classes and categories are data and must
    # stay accepted; feature names are not addressed by a path and are accepted too.
    readable = [
        s
        for s in HOSTILE
        if s.strip() == s
        and "/" not in s
        and all(c == " " or unicodedata.category(c)[0] in "LMNPS" for c in s)
    ]
    assert accepted["model"] == accepted["version"] == readable
    assert len(readable) == 9  # the oracle is not vacuous: quotes, braces, '#' and '# EOF'
    assert len(accepted["class"]) == len(HOSTILE)
    assert len(accepted["feature"]) > 0
