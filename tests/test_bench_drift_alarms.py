"""bench/drift_alarms.py: the shifts sit at their thresholds, and the outputs are read right."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from bench import drift_alarms as da


def test_location_shift_has_the_ks_distance() -> None:
    shift = da.location_shift()
    assert shift.mean == pytest.approx(0.1505, abs=1e-4)
    grid = np.linspace(-5, 5, 200_001)
    d = np.max(np.abs(stats.norm.cdf(grid) - stats.norm.cdf(grid - shift.mean)))
    assert d == pytest.approx(0.06, abs=1e-6)


def test_scale_shift_has_the_psi_and_its_ks_distance() -> None:
    shift = da.scale_shift()
    assert shift.scale > 1
    q = da.normal_decile_shares(0.0, shift.scale)
    assert da.psi(np.full(10, 0.1), q) == pytest.approx(0.06, abs=1e-9)
    grid = np.linspace(-6, 6, 200_001)
    d = np.max(np.abs(stats.norm.cdf(grid) - stats.norm.cdf(grid / shift.scale)))
    assert shift.population_d == pytest.approx(d, abs=1e-6)


def test_category_shift_has_the_psi() -> None:
    shift = da.category_shift()
    p = np.array(da.CATEGORIES[shift.feature])
    q = np.array(shift.shares)
    assert q.sum() == pytest.approx(1.0)
    assert da.psi(p, q) == pytest.approx(0.06, abs=1e-9)


def test_episodes_are_maximal_runs() -> None:
    rows = [(60.0 * i, float(v)) for i, v in enumerate([0, 1, 2, 0, 0, 1, 0, 3, 3])]
    assert da.episodes(rows) == 3
    assert da.episodes(rows, until=300.0) == 2
    assert da.episodes([]) == 0


def test_openmetrics_lines_are_read(tmp_path: Path) -> None:
    om = tmp_path / "out.om"
    base = 'model="m",model_version="default",window="1h"'
    om.write_text(
        "# TYPE model_feature_drift_detected gauge\n"
        f'model_feature_drift_detected{{{base},feature="f3"}} 1 1800000060\n'
        f'model_feature_drift_detected{{{base},feature="f3"}} 0 1800000120\n'
        f'model_feature_drift_detected{{{base},feature="f17"}} 1 1800000120.000\n'
        f"model_drift_features_tested{{{base}}} 0 1800000060\n"
        f"model_drift_features_tested{{{base}}} 20 1800000120\n"
        "# EOF\n",
        encoding="utf-8",
    )
    tested, flagged = da.read_openmetrics(om)
    assert tested == 1
    assert flagged["f3"] == [1800000060.0]
    assert flagged["f17"] == [1800000120.0]
    assert flagged["f0"] == []


def test_log_is_a_poisson_process_with_the_shift_after_the_change(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    shift = da.location_shift()
    chunks = list(da.log_chunks(rng, 3600, 7200.0, shift, 3600.0))
    times = np.concatenate([t for t, _ in chunks])
    assert abs(times.size - 7200) < 5 * math.sqrt(7200)
    assert np.all(np.diff(times) >= 0)
    before, after = (np.concatenate([c["f0"][(t >= 3600) == s] for t, c in chunks]) for s in (0, 1))
    assert abs(before.mean()) < 0.06
    assert after.mean() == pytest.approx(shift.mean, abs=0.06)
    rows = da.write_log(tmp_path / "log.csv", np.random.default_rng(2), 360, 600.0)
    lines = (tmp_path / "log.csv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == rows + 1
    assert lines[0].split(",")[:4] == ["id", "timestamp", "prediction", "label"]


@pytest.mark.parametrize("upload", [True, False])
def test_a_short_run_through_the_real_backtest(upload: bool) -> None:
    """Three hours at 3,600 events an hour, stationary: with an upload every look is tested;
    with the first 10,000 events as the reference, none before they are in (2.8 h), some after;
    no false episode either way."""
    rng = np.random.default_rng(7)
    run = da.simulate(rng, 3600, 3 * 3600.0, upload=upload)
    assert run.events > 10_000
    assert len(run.drifted) >= 179
    if upload:
        assert run.tested_steps >= 179
    else:
        assert 0 < run.tested_steps < 20
    assert da.episodes(run.drifted) == 0
    assert da.parse_args(["--reference", "first_events"]).reference == "first_events"
