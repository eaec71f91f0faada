"""Drift computation time: 50 numeric features, reference 10,000 and window 10,000 values.

Ours computes every statistic the exporter exports per feature (KS statistic and p-value,
Wasserstein, PSI, Jensen-Shannon, out-of-range ratio) plus the corrected verdicts. Side by side,
in one run, on the same data (seeded; 10 of the 50 features shifted):

* a loop of ``scipy.stats.ks_2samp(method="asymp")`` (the KS test alone), and the same loop
  plus ``wasserstein_distance`` (closer to what we compute);
* alibi-detect's ``KSDrift`` and Evidently's ``DataDriftPreset(method="ks")``, each in its own
  virtual environment (``bench/.venv-alibi``, ``bench/.venv-evidently``, created on first run
  from ``bench/peers/requirements-*.txt``; ``--no-peers`` skips them).

Targets: all drift statistics recomputed in <= 30 ms (issue 3), p-values identical to SciPy's;
<= 15 ms on two threads (issue 8). Also timed: a whole run of the drift worker for one model
holding the same window and reference (snapshot of the reservoirs, uniform sample, detector),
and the part of it that draws the status page's histograms (issue 13).

    .venv/bin/python -m bench.drift [--repeats 15] [--no-peers]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from exporter.config import load_settings
from exporter.detector import DetectorSettings, FeatureDrift, verdicts
from exporter.drift_worker import DriftWorker
from exporter.reference import build_reference
from exporter.runtime import tune_malloc
from exporter.stats.distribution import shared_histogram
from exporter.stats.drift import NumericReference, numeric_drift
from exporter.store import Store

FEATURES, SIZE, SHIFTED = 50, 10_000, 10
TARGET = 0.015
HERE = Path(__file__).resolve().parent


def data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(SIZE, FEATURES))
    win = rng.normal(size=(SIZE, FEATURES))
    win[:, :SHIFTED] += np.linspace(0.05, 0.5, SHIFTED)
    return ref, win


def median_time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def ours(ref: np.ndarray, win: np.ndarray, executor, chunks: int):
    refs = [NumericReference.from_values(ref[:, j]) for j in range(FEATURES)]
    settings = DetectorSettings()

    def run():
        results = numeric_drift(refs, win, executor=executor, chunks=chunks)
        features = {
            f"f{j}": FeatureDrift("numeric", r.window_values, r.reference_values, 0.0, numeric=r)
            for j, r in enumerate(results)
        }
        return results, verdicts(features, settings)

    return run


@dataclass
class _Event:
    id: str
    features: dict[str, float]
    prediction: int
    timestamp: float | None = None
    label: int | None = None
    score: float | None = None
    probabilities: dict[str, float] | None = None


def worker_run(ref: np.ndarray, win: np.ndarray, repeats: int) -> float:
    """A whole drift worker run for one model whose window holds ``win`` and whose uploaded
    reference is ``ref``: snapshot of the reservoirs, uniform sample, detector, cache."""
    settings = load_settings(
        windows=["1h"], drift={"sample_size": SIZE, "reference_size": SIZE, "threads": 2}
    )
    store = Store(settings, clock=lambda: 1_800_000_000.0)
    names = [f"f{j}" for j in range(FEATURES)]
    columns = {name: ref[:, j].tolist() for j, name in enumerate(names)}
    reference = build_reference(columns, settings=settings.drift, source="upload", created=0.0)
    store.set_reference("m", None, reference)
    for lo in range(0, SIZE, 1000):
        events = [
            _Event(f"e{i}", dict(zip(names, win[i].tolist(), strict=True)), i % 2)
            for i in range(lo, lo + 1000)
        ]
        store.add_predictions("m", None, events)
    worker = DriftWorker(store)
    try:
        return median_time(lambda: worker.run_once(force=True), repeats)
    finally:
        worker.stop()


def peer(name: str, script: str, ref_file: str, win_file: str, repeats: int) -> dict | None:
    venv = HERE / f".venv-{name}"
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"  creating {venv} (one time; about 1 GB) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "-r",
                str(HERE / "peers" / f"requirements-{name}.txt"),
            ],
            check=True,
        )
    out = subprocess.run(
        [str(python), str(HERE / "peers" / script), ref_file, win_file, str(repeats)],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    if out.returncode != 0:
        print(f"  {name} failed:\n{out.stderr[-2000:]}")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--no-peers", action="store_true")
    args = parser.parse_args()
    tune_malloc()  # as model-exporter serve does (exporter/runtime.py)
    ref, win = data()

    serial = ours(ref, win, None, 1)
    with ThreadPoolExecutor(2) as pool:
        threaded = ours(ref, win, pool, 2)
        t_two = median_time(threaded, args.repeats)
        results, verdicts = threaded()
    t_one = median_time(serial, args.repeats)
    t_worker = worker_run(ref, win, args.repeats)
    sorted_refs = [np.sort(ref[:, j]) for j in range(FEATURES)]
    t_hist = median_time(
        lambda: [shared_histogram(sorted_refs[j], win[:, j]) for j in range(FEATURES)],
        args.repeats,
    )

    def scipy_ks():
        return [stats.ks_2samp(ref[:, j], win[:, j], method="asymp") for j in range(FEATURES)]

    def scipy_ks_w():
        for j in range(FEATURES):
            stats.ks_2samp(ref[:, j], win[:, j], method="asymp")
            stats.wasserstein_distance(ref[:, j], win[:, j])

    t_scipy = median_time(scipy_ks, max(3, args.repeats // 5))
    t_scipy_w = median_time(scipy_ks_w, max(3, args.repeats // 5))
    expected = scipy_ks()
    same_stat = all(r.ks_statistic == e.statistic for r, e in zip(results, expected, strict=True))
    worst = max(
        abs(r.ks_pvalue - e.pvalue) / max(e.pvalue, 1e-300)
        for r, e in zip(results, expected, strict=True)
    )
    drifted = sum(1 for f in verdicts.values() if f.drifted)

    rows = [
        ("ours, all statistics, 2 threads", t_two, drifted),
        ("ours, all statistics, 1 thread", t_one, drifted),
        ("ours, whole worker run (sample + detector)", t_worker, None),
        ("  of it: the status page's histograms", t_hist, None),
        ("scipy ks_2samp loop (KS only)", t_scipy, None),
        ("scipy ks_2samp + wasserstein loop", t_scipy_w, None),
    ]
    if not args.no_peers:
        tmp = Path(tempfile.mkdtemp(prefix="bench-drift-"))
        np.save(tmp / "ref.npy", ref.astype(np.float32))
        np.save(tmp / "win.npy", win.astype(np.float32))
        np.save(tmp / "ref64.npy", ref)
        np.save(tmp / "win64.npy", win)
        repeats = max(3, args.repeats // 5)
        alibi = peer("alibi", "alibi_ks.py", str(tmp / "ref.npy"), str(tmp / "win.npy"), repeats)
        if alibi:
            rows.append(("alibi-detect KSDrift (FDR)", alibi["seconds"], None))
        evid = peer(
            "evidently", "evidently_drift.py", str(tmp / "ref64.npy"), str(tmp / "win64.npy"), 3
        )
        if evid:
            rows.append(("Evidently DataDriftPreset(method=ks)", evid["seconds"], evid["drifted"]))

    print(
        f"{FEATURES} numeric features, reference {SIZE:,} and window {SIZE:,} values; "
        f"{SHIFTED} features shifted by 0.05..0.5 sd"
    )
    print(f"{'':40s} {'median':>10s}  {'vs ours (2 threads)':>20s}  flagged")
    for name, seconds, flagged in rows:
        ratio = seconds / t_two
        shown = "" if flagged is None else str(flagged)
        print(f"{name:40s} {seconds * 1e3:8.1f} ms  {ratio:18.1f}x  {shown}")
    print()
    print(
        f"KS statistics bit-identical to scipy: {same_stat}; "
        f"max relative p-value difference: {worst:.1e}"
    )
    print(
        f"target <= {TARGET * 1e3:.0f} ms: 2 threads {'met' if t_two <= TARGET else 'NOT met'} "
        f"({t_two * 1e3:.1f} ms); 1 thread {'met' if t_one <= TARGET else 'NOT met'} "
        f"({t_one * 1e3:.1f} ms)"
    )


if __name__ == "__main__":
    main()
