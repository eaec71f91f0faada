"""The status pages (exporter.ui, api/ui.py) over HTTP with a fake clock: the values shown are
the status JSON's and /metrics', the lights follow the alert rules at the configured
thresholds, names are escaped, the drift table puts drifted features first."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import Exporter, sample

Make = Callable[..., Exporter]
HOSTILE = "<script>alert(1)</script>"
#: A model name may not hold "/" (it would split the path): the same attack without it.
HOSTILE_MODEL = "<img src=x onerror=alert(1)>"


def feed(
    exp: Exporter,
    model: str,
    *,
    n: int = 400,
    accuracy: float = 0.85,
    shift: float = 0.0,
    seed: int = 0,
    prefix: str = "",
    features: dict[str, Any] | None = None,
) -> None:
    """``n`` binary predictions with a numeric and a categorical feature, labels correct with
    probability ``accuracy``."""
    rng = np.random.default_rng(seed)
    events = []
    for i in range(n):
        f = {
            "x": float(rng.normal(shift)),
            "y": float(rng.normal()),
            "colour": str(rng.choice(["red", "blue", HOSTILE])),
        }
        f.update(features or {})
        events.append({"id": f"{prefix}{i}", "prediction": int(rng.random() < 0.5), "features": f})
    exp.predictions(model, events)
    exp.labels(
        model,
        [
            {
                "id": e["id"],
                "label": e["prediction"] if rng.random() < accuracy else 1 - e["prediction"],
            }
            for e in events
        ],
    )


def values(html: str, row: str) -> dict[str, str]:
    """``data-name`` -> ``data-value`` in the first table row whose attributes hold ``row``."""
    start = html.index(row)
    part = html[start : html.index("</tr>", start)]
    return dict(re.findall(r'data-name="([^"]*)" data-value="([^"]*)"', part))


def json_digits(text: str) -> float:
    """A page's exact value as the status JSON rounds it (12 significant digits)."""
    return float(f"{float(text):.12g}")


def lights(html: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for rule, level in re.findall(r'data-rule="([^"]+)" data-level="([^"]+)"', html):
        out.setdefault(rule, []).append(level)
    return out


def test_overview_shows_the_status_json_and_metrics_values(make_exporter: Make) -> None:
    exp = make_exporter(quality={"min_samples": 50})
    feed(exp, "churn", accuracy=0.8)
    exp.refresh_drift()
    page = exp.client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    status = exp.status("churn")
    window = status["versions"]["default"]["windows"]["1h"]
    shown = values(html, 'data-version="default" data-window="1h"')
    assert json_digits(shown["accuracy"]) == window["quality"]["accuracy"]
    assert json_digits(shown["F1 binary"]) == window["quality"]["f1_score"]["binary"]
    m = exp.metrics()
    key = {"model": "churn", "model_version": "default", "window": "1h"}
    assert float(shown["accuracy"]) == sample(m, "model_accuracy", **key)
    row = html[html.index('data-version="default" data-window="1h"') :]
    assert re.search(r'data-name="predictions">400<', row)
    assert re.search(r'data-name="labeled">400<', row)
    # Links kept from the old landing page.
    for link in ("/metrics", "/docs", "/-/healthy", "/-/ready", "/ui/models/churn"):
        assert f'href="{link}"' in html
    # 0.8 < 0.9: the rule of ModelAccuracyDrop holds, and the page names it.
    assert lights(html)["ModelAccuracyDrop"] == ["red"]
    assert "model_accuracy &lt; 0.9 for 1h" in html


def test_lights_follow_the_thresholds_file(make_exporter: Make, tmp_path: Path) -> None:
    thresholds = tmp_path / "thresholds.yml"
    thresholds.write_text("accuracy_below: 0.75\nf1_below: 0.99\n")
    exp = make_exporter(quality={"min_samples": 50}, ui={"thresholds_file": str(thresholds)})
    feed(exp, "churn", accuracy=0.8)
    html = exp.client.get("/").text
    found = lights(html)
    assert found["ModelAccuracyDrop"] == ["green"]  # 0.8 is not below 0.75
    assert found["ModelF1Drop"] == ["red"]
    assert "model_accuracy &lt; 0.75 for 1h" in html and str(thresholds) in html


def test_too_few_labels_and_no_drift_result_are_amber(make_exporter: Make) -> None:
    exp = make_exporter(quality={"min_samples": 1000})
    feed(exp, "churn", n=50)
    found = lights(exp.client.get("/").text)
    assert found["ModelAccuracyDrop"] == ["amber"] and found["ModelFeatureDrift"] == ["amber"]
    # No history reaches 15 minutes back: whether predictions stopped cannot be told.
    assert found["ModelNoPredictions"] == ["amber"]


def test_a_bad_thresholds_file_stops_the_start(make_exporter: Make, tmp_path: Path) -> None:
    from exporter.errors import ConfigError

    bad = tmp_path / "t.yml"
    bad.write_text("accuracy_below: 2\n")
    with pytest.raises(ConfigError, match="accuracy_below"):
        make_exporter(ui={"thresholds_file": str(bad)})


def test_model_page_drift_table_drifted_first_and_sortable(make_exporter: Make) -> None:
    exp = make_exporter(quality={"min_samples": 50}, drift={"min_samples": 50})
    reference = {
        "x": np.random.default_rng(1).normal(size=2000).tolist(),
        "y": np.random.default_rng(2).normal(size=2000).tolist(),
        "colour": ["red", "blue", HOSTILE] * 600,
    }
    r = exp.client.put("/v1/models/churn/reference", json={"features": reference})
    assert r.status_code == 200, r.text
    feed(exp, "churn", n=600, shift=1.0)  # x drifts, y does not
    exp.refresh_drift()
    html = exp.client.get("/ui/models/churn").text
    rows = re.findall(r'<tr class="feature verdict-(\w+)" data-feature="([^"]+)"', html)
    assert rows[0] == ("drifted", "x")
    assert ("stable", "y") in rows
    status = exp.status("churn")["versions"]["default"]["windows"]["1h"]["drift"]["features"]
    shown = values(html, 'data-feature="x"')
    assert json_digits(shown["pvalue"]) == status["x"]["pvalue"]
    assert json_digits(shown["statistic"]) == status["x"]["ks_statistic"]
    assert json_digits(shown["psi"]) == status["x"]["psi"]
    labels = {"model": "churn", "model_version": "default", "window": "1h", "feature": "x"}
    outside = sample(exp.metrics(), "model_feature_out_of_range_ratio", **labels)
    assert outside is not None and float(shown["outside"]) == outside
    unseen = sample(
        exp.metrics(), "model_feature_unseen_category_ratio", **labels | {"feature": "colour"}
    )
    assert unseen == 0.0 and float(values(html, 'data-feature="colour"')["outside"]) == unseen
    # The first row's feature is drawn: a histogram with its bins.
    assert re.search(r'class="chart histogram" [^>]*data-points="60"', html)
    by_name = exp.client.get("/ui/models/churn?sort=name").text
    names = re.findall(r'<tr class="feature verdict-\w+" data-feature="([^"]+)"', by_name)
    assert names == sorted(names)
    colour = exp.client.get("/ui/models/churn?feature=colour").text
    # A categorical feature: its shares per category, window and reference (and the rest).
    assert re.search(r'class="chart categories" [^>]*data-points="8"', colour)
    assert exp.client.get("/ui/models/churn?sort=bogus").status_code == 422
    assert exp.client.get("/ui/models/nope").status_code == 404


def test_confusion_matrix_and_per_class_scores(make_exporter: Make) -> None:
    exp = make_exporter(quality={"min_samples": 50})
    feed(exp, "churn", accuracy=0.7)
    html = exp.client.get("/ui/models/churn").text
    q = exp.status("churn")["versions"]["default"]["windows"]["1h"]["quality"]
    for cls, scores in q["classes"].items():
        shown = values(html, f'data-class="{cls}"')
        assert json_digits(shown["precision"]) == scores["precision"]
        assert json_digits(shown["recall"]) == scores["recall"]
        assert json_digits(shown["f1_score"]) == scores["f1_score"]
    cells = [
        int(n)
        for n in re.findall(
            r'<td class="num">(\d+)</td>', html.split("Confusion")[1].split("</table>")[0]
        )
    ]
    assert sum(cells) == 400


def test_regression_page_shows_errors(make_exporter: Make) -> None:
    exp = make_exporter(
        quality={"min_samples": 10}, history={"resolution": "1s", "retention": "1h"}
    )
    events = [
        {"id": str(i), "prediction": float(i), "features": {"x": float(i)}} for i in range(50)
    ]
    exp.predictions("price", events)
    exp.labels(
        "price", [{"id": str(i), "label": float(i) + (1 if i % 2 else -3)} for i in range(50)]
    )
    exp.refresh_drift()
    exp.clock.advance(1)
    exp.refresh_drift()
    html = exp.client.get("/ui/models/price").text
    q = exp.status("price")["versions"]["default"]["windows"]["1h"]["quality"]
    shown = values(html, 'data-window="1h"')
    assert json_digits(shown["MAE"]) == q["mean_absolute_error"] == 2.0
    assert json_digits(shown["RMSE"]) == q["root_mean_squared_error"]
    assert re.search(r'class="chart line" [^>]*data-points="[1-9]', html)  # errors over time


def test_every_name_is_escaped(make_exporter: Make) -> None:
    exp = make_exporter(quality={"min_samples": 10}, drift={"min_samples": 10})
    feed(exp, HOSTILE_MODEL, n=200, features={HOSTILE: HOSTILE})
    feed(exp, HOSTILE_MODEL, n=200, prefix="b")
    exp.refresh_drift()
    quoted = HOSTILE_MODEL.replace("<", "%3C").replace(">", "%3E").replace(" ", "%20")
    for path in ("/", f"/ui/models/{quoted}", f"/ui/models/{quoted}?feature=colour"):
        html = exp.client.get(path).text
        assert "<script>alert" not in html and "<img src=x" not in html, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html or path == "/"
        assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_pages_follow_read_authentication(make_exporter: Make, tmp_path: Path) -> None:
    tokens = tmp_path / "read"
    tokens.write_text("s3cret\n")
    exp = make_exporter(auth={"metrics_tokens_file": str(tokens)})
    feed(exp, "churn", n=20)
    for path in ("/", "/ui/models/churn", "/ui/models/nope"):
        assert exp.client.get(path).status_code == 401, path
        ok = exp.client.get(path, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == (404 if path.endswith("nope") else 200), path


def test_pages_are_read_only(make_exporter: Make) -> None:
    exp = make_exporter()
    for method in ("post", "put", "delete"):
        assert getattr(exp.client, method)("/ui/models/x").status_code == 405
    assert exp.client.post("/").status_code == 405
