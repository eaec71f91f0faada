"""The status pages in a real browser: Debian's Chromium (Playwright) loads the pages of a real
exporter (uvicorn) fed by the demo's simulation.

The demo sends 150 predictions a second for 25 s (labels 0.5 s later, its ten "mean_*"
features shifted after 8 s) and stops; the windows (5m, 10m) are long enough that nothing
leaves them while the values are compared, and the exporter's drift worker and history run on
a 1 s cadence. The values the browser shows (``data-value`` of each ``span.value``, the counts
of each row) must equal ``/metrics`` and the status JSON of the same moment; no console error,
no request leaving 127.0.0.1, every chart with data, the drifted feature of the demo first in
the drift table. Screenshots go to ``.artifacts/screenshots`` (git-ignored).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import Page, screenshot
from tests.conftest import parse_metrics, sample
from tests.helpers import ROOT, ExporterProcess

pytestmark = pytest.mark.e2e

MODEL = "breast-cancer"
#: The demo's shifted features: the first ten of scikit-learn's breast-cancer dataset.
SHIFTED = {
    "mean_radius", "mean_texture", "mean_perimeter", "mean_area", "mean_smoothness",
    "mean_compactness", "mean_concavity", "mean_concave_points", "mean_symmetry",
    "mean_fractal_dimension",
}  # fmt: skip
CONFIG = {
    "windows": ["5m", "10m"],
    "quality": {"min_samples": 30},
    "drift": {"min_samples": 60, "refresh_interval": "1s", "sample_size": 5000},
    "history": {"resolution": "1s", "retention": "1h"},
}


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExporterProcess]:
    """An exporter the demo's simulation fed, then stopped sending to, drift computed."""
    config = tmp_path_factory.mktemp("ui") / "config.yaml"
    config.write_text(json.dumps(CONFIG))
    exporter = ExporterProcess(config)
    try:
        demo = subprocess.run(
            [
                *(sys.executable, "-m", "exporter", "demo", "--url", exporter.url),
                *("--rate", "150", "--drift-after", "8", "--duration", "25"),
                *("--label-delay", "0.5"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert f"| page {exporter.url}/" in demo.stdout  # the status line names the page
        # The demo flushed every prediction and label before it exited (5 % of the labels
        # never come, by design). Wait until the drift worker tested every window.
        deadline = time.monotonic() + 30
        while True:
            status = exporter.client.get(f"/v1/models/{MODEL}").json()
            windows = [w for v in status["versions"].values() for w in v["windows"].values()]
            if all((w.get("drift") or {}).get("features_drifted") is not None for w in windows):
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.5)
        time.sleep(2.5)  # one more drift run and history point after the last label
        yield exporter
    finally:
        exporter.stop()


def shown(page: Page, selector: str) -> list[dict[str, Any]]:
    """Per element matching ``selector``: its data-* attributes and the ``data-name`` ->
    ``data-value`` of the values inside it (what the browser's DOM holds)."""
    found: list[dict[str, Any]] = page.eval_on_selector_all(
        selector,
        """rows => rows.map(row => ({
            attrs: Object.assign({}, row.dataset),
            values: Object.fromEntries([...row.querySelectorAll("[data-name][data-value]")]
                .map(e => [e.dataset.name, e.dataset.value])),
            cells: Object.fromEntries([...row.querySelectorAll("td[data-name]")]
                .map(e => [e.dataset.name, e.textContent.trim()])),
        }))""",
    )
    return found


def model_series(text: str) -> dict[Any, float]:
    """The models' series of a scrape (the exporter's and the process' own, such as scrape
    durations and CPU seconds, change with every scrape)."""
    return {
        k: v
        for k, v in parse_metrics(text).items()
        if k[0].startswith("model_") and not k[0].startswith("model_exporter_")
    }


def consistent(
    exporter: ExporterProcess, page: Page, path: str
) -> tuple[dict[Any, float], dict[str, Any]]:
    """Load ``path`` with /metrics read just before and after it (the status JSON between);
    retry until both reads agree (a drift run may fall between them)."""
    for _ in range(5):
        before = exporter.client.get("/metrics").text
        status = exporter.client.get(f"/v1/models/{MODEL}").json()
        page.goto(exporter.url + path)
        after = exporter.client.get("/metrics").text
        if model_series(before) == model_series(after):
            return model_series(after), status
    raise AssertionError("/metrics kept changing while the page loaded")


def charts_have_data(page: Page) -> int:
    points = page.eval_on_selector_all(
        "svg.chart", "svgs => svgs.map(s => Number(s.dataset.points))"
    )
    assert points and all(n > 0 for n in points), points
    return len(points)


def test_the_overview_shows_what_metrics_and_the_status_json_hold(
    fed: ExporterProcess, page: Page
) -> None:
    m, status = consistent(fed, page, "/")
    assert page.title() == "model-exporter"
    rows = shown(page, f'section[data-model="{MODEL}"] table.windows tr[data-version]')
    assert {(r["attrs"]["version"], r["attrs"]["window"]) for r in rows} == {
        (v, w) for v in ("v1", "v2") for w in ("5m", "10m")
    }
    for row in rows:
        version, window = row["attrs"]["version"], row["attrs"]["window"]
        key = {"model": MODEL, "model_version": version, "window": window}
        quality = status["versions"][version]["windows"][window]["quality"]
        assert float(row["values"]["accuracy"]) == sample(m, "model_accuracy", **key)
        assert float(f"{float(row['values']['accuracy']):.12g}") == quality["accuracy"]
        f1 = sample(m, "model_f1_score", **key, average="binary")
        assert float(row["values"]["F1 binary"]) == f1
        assert int(row["cells"]["predictions"]) == sample(m, "model_window_predictions", **key)
        drifted = sample(m, "model_drift_features_drifted", **key)
        assert row["cells"]["features_drifted"].startswith(f"{drifted:.0f} of ")
    versions = shown(page, f'section[data-model="{MODEL}"] table.versions tr[data-version]')
    for row in versions:
        key = {"model": MODEL, "model_version": row["attrs"]["version"]}
        assert int(row["cells"]["predictions_total"]) == sample(m, "model_predictions_total", **key)
        assert int(row["cells"]["labels_total"]) == sample(m, "model_labels_total", **key)
    # The demo's v2 inverts 5 % of its answers; its comparison is on the page.
    assert page.locator("table.comparison").count() == 1
    assert charts_have_data(page) == len(rows)  # a history chart in every window row
    screenshot(page, "overview")


def test_the_model_page_lists_the_drifted_feature_first_and_draws_it(
    fed: ExporterProcess, page: Page
) -> None:
    m, status = consistent(fed, page, f"/ui/models/{MODEL}")
    for version in ("v1", "v2"):
        for window in ("5m", "10m"):
            section = f'section.window[data-version="{version}"][data-window="{window}"]'
            drift = shown(page, f"{section} table.drift tr.feature")
            assert drift, section
            first = drift[0]["attrs"]
            assert first["verdict"] == "drifted" and first["feature"] in SHIFTED, drift[:3]
            drifted = [r for r in drift if r["attrs"]["verdict"] == "drifted"]
            key = {"model": MODEL, "model_version": version, "window": window}
            assert len(drifted) == sample(m, "model_drift_features_drifted", **key)
            features = status["versions"][version]["windows"][window]["drift"]["features"]
            for row in drift:
                name = row["attrs"]["feature"]
                flagged = sample(m, "model_feature_drift_detected", **key, feature=name)
                assert (row["attrs"]["verdict"] == "drifted") == (flagged == 1.0), name
                pvalue = sample(m, "model_feature_drift_pvalue", **key, feature=name)
                assert float(row["values"]["pvalue"]) == pvalue, name
                assert float(f"{pvalue:.12g}") == features[name]["pvalue"], name
                assert float(row["values"]["psi"]) == sample(
                    m, "model_feature_drift_psi", **key, feature=name
                )
            # The first row's feature is drawn: window over reference on shared bins.
            chart = page.locator(f"{section} svg.chart.histogram")
            assert chart.count() == 1 and int(chart.get_attribute("data-points") or 0) == 60
            classes = shown(page, f"{section} table.classes tr[data-class]")
            for row in classes:
                cls = row["attrs"]["class"]
                assert float(row["values"]["recall"]) == sample(
                    m, "model_class_recall", **key, **{"class": cls}
                )
    charts_have_data(page)
    screenshot(page, "model")
    # Another feature, drawn on request; the table sorted by name.
    page.goto(f"{fed.url}/ui/models/{MODEL}?sort=name&feature=worst_area")
    names = [r["attrs"]["feature"] for r in shown(page, "section.window table.drift tr.feature")]
    per_table = len(names) // 4
    assert names[:per_table] == sorted(names[:per_table])
    charts_have_data(page)
    screenshot(page, "model-sorted")


def test_the_pages_work_without_javascript(
    fed: ExporterProcess, browser_context_factory: Any
) -> None:
    context = browser_context_factory(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{fed.url}/ui/models/{MODEL}")
    assert page.locator("table.drift tr.feature").count() > 0
    assert page.locator("svg.chart").count() > 0


def test_screenshots_are_kept(fed: ExporterProcess, page: Page, tmp_path: Path) -> None:
    page.goto(fed.url + "/")
    path = screenshot(page, "overview-again")
    assert path.stat().st_size > 10_000
