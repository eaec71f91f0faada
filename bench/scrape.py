"""/metrics latency with full windows: idle, and while ingest of fresh events runs.

Fills a one-worker exporter over HTTP (by default 10 models x 20 numeric features, 12,000
predictions and 10,000 labels per model: drift samples of 10,000 values per feature), waits
until the drift worker has computed every window, then measures ``/metrics`` two ways, each
idle and while a second wrk posts 1000-event batches with new ids on every request (to an
11th model, as fast as the server takes them):

* **paced**: scrapes at a fixed interval (default 200 scrapes 50 ms apart), each timed by the
  client, asking for gzip as Prometheus does (and once more without, idle); p50, p99, max;
* **back to back** (``--wrk``): wrk on one connection, as the earlier benchmark did.

Targets (issue 8): paced p99 <= 30 ms under ingest at 10 x 20; with ``--models 100
--features 50``, p99 <= 100 ms idle. The baseline, run in this process on the same data, is
the naive exporter that recomputes scikit-learn's metrics and a loop of scipy.stats.ks_2samp
on every scrape.

``--comparisons`` (issue 10): every model has 3 versions (the full events and labels each)
and a split comparison declared before its first event (champion ``v1``, challengers ``v2``
and ``v3``), so the per-window and the sequential comparison gauges are all exported; the
paced scrapes run with the comparisons, then again after they are ended (``DELETE``) on the
same data in the same server, and the ratios are printed.

    .venv/bin/python -m bench.scrape [--duration 10] [--models 100 --features 50] [--wrk]
    .venv/bin/python -m bench.scrape --comparisons [--no-ingest]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx2 as httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families
from scipy import stats
from sklearn import metrics as skm

from bench.common import Server, ingest_script, prediction_body, wrk

EVENTS, LABELS = 12_000, 10_000
#: The versions of each model with --comparisons: the champion first, then its challengers.
VERSIONS = ("v1", "v2", "v3")
#: The model the ingest phases post to.
INGEST_MODEL = "ingest-load"


def config(models: int) -> str:
    return (
        "log_level: warning\n"
        "drift: {sample_size: 10000, reference_size: 1000}\n"
        f"limits: {{max_models: {models + 1}}}\n"
    )


def fill(
    url: str, models: int, features: int, seed: int = 0, versions: tuple[str, ...] = ("",)
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Events and labels of every model (and version: ``""`` sends none), keyed
    ``model-m`` (``model-m/v2`` with versions)."""
    rng = np.random.default_rng(seed)
    data = {}
    with httpx.Client(base_url=url, timeout=60) as c:
        for m in range(models):
            model = f"model-{m}"
            for version in versions:
                key = f"{model}/{version}" if version else model
                x = rng.normal(size=(EVENTS, features)) + rng.normal(0, 0.1, features)
                y = rng.integers(0, 3, EVENTS)
                p = np.where(rng.random(EVENTS) < 0.8, y, rng.integers(0, 3, EVENTS))
                tag = {"model_version": version} if version else {}
                for lo in range(0, EVENTS, 1000):
                    events = [
                        {
                            "id": f"{key}-{i}",
                            "prediction": int(p[i]),
                            "features": {f"f{j}": float(x[i, j]) for j in range(features)},
                        }
                        for i in range(lo, lo + 1000)
                    ]
                    body = {"model": model, **tag, "events": events}
                    c.post("/v1/predictions", json=body).raise_for_status()
                for lo in range(0, LABELS, 1000):
                    labels = [
                        {"id": f"{key}-{i}", "label": int(y[i])} for i in range(lo, lo + 1000)
                    ]
                    c.post("/v1/labels", json={"model": model, "labels": labels}).raise_for_status()
                data[key] = (x, y[:LABELS], p[:LABELS])
    return data


def declare(url: str, models: int, end: bool = False) -> None:
    """A split comparison per model (champion v1, challengers v2 and v3), or its end."""
    body = {"champion": VERSIONS[0], "challengers": list(VERSIONS[1:]), "mode": "split"}
    with httpx.Client(base_url=url, timeout=60) as c:
        for m in range(models):
            path = f"/v1/models/model-{m}/comparison"
            r = c.delete(path) if end else c.put(path, json=body)
            r.raise_for_status()


def samples_of(text: str, name: str) -> int:
    return sum(len(f.samples) for f in text_string_to_metric_families(text) if f.name == name)


def wait_until(url: str, done: Callable[[str], bool], what: str, timeout: float = 600) -> str:
    """``/metrics`` once ``done`` holds for it (the drift worker has caught up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = httpx.get(url + "/metrics", timeout=60).text
        if done(text):
            return text
        time.sleep(0.5)
    raise SystemExit(f"{what} not exported in time")


def wait_for_drift(url: str, expected: int, timeout: float = 600) -> str:
    """``/metrics`` once ``expected`` features have full drift samples of 10,000 values."""

    def done(text: str) -> bool:
        full = sum(
            1
            for fam in text_string_to_metric_families(text)
            if fam.name == "model_feature_drift_window_values"
            for s in fam.samples
            if s.value == 10_000
        )
        return full == expected

    return wait_until(url, done, "drift", timeout)


def paced(url: str, scrapes: int, interval: float, gzip: bool = True) -> list[float]:
    """Latency of each of ``scrapes`` scrapes started ``interval`` seconds apart, asking for
    gzip as Prometheus does (or not)."""
    seconds = []
    encoding = "gzip" if gzip else "identity"
    with httpx.Client(base_url=url, timeout=30, headers={"Accept-Encoding": encoding}) as c:
        next_at = time.perf_counter()
        for _ in range(scrapes):
            started = time.perf_counter()
            r = c.get("/metrics")
            r.raise_for_status()
            _ = r.content
            seconds.append(time.perf_counter() - started)
            next_at += interval
            time.sleep(max(0.0, next_at - time.perf_counter()))
    return seconds


def summary(seconds: list[float]) -> str:
    a = np.array(seconds) * 1e3
    return (
        f"p50 {np.percentile(a, 50):6.1f} ms  p99 {np.percentile(a, 99):6.1f} ms  "
        f"max {a.max():6.1f} ms  ({a.shape[0]} scrapes)"
    )


def naive_scrape_seconds(
    data: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], features: int
) -> float:
    """What a scrape costs when it recomputes everything: sklearn + a ks_2samp loop."""
    started = time.perf_counter()
    for x, y, p in data.values():
        skm.accuracy_score(y, p)
        for avg in ("macro", "weighted"):
            skm.precision_recall_fscore_support(y, p, average=avg, zero_division=0)
        skm.precision_recall_fscore_support(y, p, average=None, zero_division=0)
        ref = x[:1000]
        for j in range(features):
            stats.ks_2samp(ref[:, j], x[-10_000:, j], method="asymp")
    return time.perf_counter() - started


class Ingest:
    """wrk posting 1000-event batches with fresh ids to the server, in a thread."""

    def __init__(self, url: str, duration: float, features: int) -> None:
        tmp = Path(tempfile.mkdtemp(prefix="bench-scrape-"))
        self._script = ingest_script(tmp, INGEST_MODEL, 1000, features)
        self._url = url
        self._duration = duration
        self.result: dict[str, float] = {}
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        self.result = wrk(
            self._url + "/v1/predictions",
            duration=self._duration,
            connections=2,
            script=str(self._script),
        )

    def __enter__(self) -> Ingest:
        self._thread.start()
        time.sleep(1.0)  # let it reach full speed
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join()

    @property
    def events_per_second(self) -> float:
        return self.result["rps"] * 1000


def series(text: str) -> str:
    count = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    return f"{count:,} series, {len(text.encode()) / 1024:,.0f} KiB"


def phases(url: str, args: argparse.Namespace) -> dict[str, list[float]]:
    """Paced scrapes idle and (unless ``--no-ingest``) under ingest, by phase."""
    out = {"idle": paced(url, args.scrapes, args.interval)}
    if not args.no_ingest:
        with Ingest(url, args.scrapes * args.interval + 2, args.features):
            out["under ingest"] = paced(url, args.scrapes, args.interval)
    return out


def warm_up(url: str, features: int) -> None:
    """The ingest phase's model as new, one batch in: both sides of a comparison export it
    alike (a previous ingest phase's series are gone)."""
    with httpx.Client(base_url=url, timeout=60) as c:
        r = c.delete(f"/v1/models/{INGEST_MODEL}")
        if r.status_code != 404:
            r.raise_for_status()
        body = prediction_body(INGEST_MODEL, 1000, features, 0, "warm-up")
        headers = {"Content-Type": "application/json"}
        c.post("/v1/predictions", content=body, headers=headers).raise_for_status()


def comparisons(args: argparse.Namespace) -> None:
    """Paced scrapes with a split comparison per model (3 versions), then without."""
    server = Server.exporter(config(args.models))
    sequential = "model_comparison_sequential_pvalue"
    challengers = args.models * (len(VERSIONS) - 1)
    try:
        t0 = time.perf_counter()
        declare(server.url, args.models)
        fill(server.url, args.models, args.features, versions=VERSIONS)
        wait_for_drift(server.url, args.models * len(VERSIONS) * args.features)
        warm_up(server.url, args.features)
        text = wait_until(
            server.url, lambda t: samples_of(t, sequential) == challengers, "comparisons"
        )
        print(
            f"filled {args.models} models x {len(VERSIONS)} versions x {args.features} features "
            f"in {time.perf_counter() - t0:.1f} s; {challengers} challengers"
        )
        print(f"with comparisons:    /metrics has {series(text)}")
        ours = phases(server.url, args)
        declare(server.url, args.models, end=True)
        warm_up(server.url, args.features)
        text = wait_until(server.url, lambda t: "\nmodel_comparison_" not in t, "the end")
        print(f"without (ended):     /metrics has {series(text)}")
        theirs = phases(server.url, args)
    finally:
        server.stop()
    for phase, seconds in ours.items():
        print(f"paced, {phase + ', with:':<25} {summary(seconds)}")
        print(f"paced, {phase + ', without:':<25} {summary(theirs[phase])}")
    for phase, seconds in ours.items():
        ratios = [
            float(np.percentile(seconds, q) / np.percentile(theirs[phase], q)) for q in (50, 99)
        ]
        print(f"with / without, {phase}: p50 {ratios[0]:.2f}x  p99 {ratios[1]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--scrapes", type=int, default=200, help="paced scrapes per phase")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between scrapes")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each wrk run")
    parser.add_argument("--wrk", action="store_true", help="also measure back to back with wrk")
    parser.add_argument("--no-ingest", action="store_true", help="idle only")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive baseline")
    parser.add_argument(
        "--comparisons",
        action="store_true",
        help="3 versions per model in a split comparison: scrapes with and without it",
    )
    args = parser.parse_args()
    if args.comparisons:
        comparisons(args)
        return
    server = Server.exporter(config(args.models))
    try:
        t0 = time.perf_counter()
        data = fill(server.url, args.models, args.features)
        text = wait_for_drift(server.url, args.models * args.features)
        series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
        print(
            f"filled {args.models} models x {args.features} features in "
            f"{time.perf_counter() - t0:.1f} s; /metrics has {series:,} series, "
            f"{len(text.encode()) / 1024:,.0f} KiB"
        )
        idle = paced(server.url, args.scrapes, args.interval)
        print(f"paced, idle:                 {summary(idle)}")
        plain = paced(server.url, args.scrapes, args.interval, gzip=False)
        print(f"paced, idle, no gzip:        {summary(plain)}")
        busy: list[float] = []
        if not args.no_ingest:
            scrape_time = args.scrapes * args.interval
            with Ingest(server.url, scrape_time + 2, args.features) as load:
                busy = paced(server.url, args.scrapes, args.interval)
            print(
                f"paced, under ingest:         {summary(busy)}  "
                f"(ingest meanwhile: {load.events_per_second:,.0f} new events/s)"
            )
        if args.wrk:
            r = wrk(server.url + "/metrics", duration=args.duration, connections=1)
            print(
                f"back to back, idle:          p50 {r['p50'] * 1e3:6.1f} ms  "
                f"p99 {r['p99'] * 1e3:6.1f} ms  ({r['rps']:.0f} scrapes/s)"
            )
            if not args.no_ingest:
                with Ingest(server.url, args.duration + 2, args.features) as load:
                    r = wrk(server.url + "/metrics", duration=args.duration, connections=1)
                print(
                    f"back to back, under ingest:  p50 {r['p50'] * 1e3:6.1f} ms  "
                    f"p99 {r['p99'] * 1e3:6.1f} ms  (ingest meanwhile: "
                    f"{load.events_per_second:,.0f} new events/s)"
                )
    finally:
        server.stop()
    print()
    p99_idle = float(np.percentile(idle, 99))
    if not args.no_naive:
        naive = naive_scrape_seconds(data, args.features)
        print(f"naive scrape (sklearn + ks_2samp loop, in process): {naive * 1e3:.0f} ms")
        print(f"naive / ours (p50 idle): {naive / float(np.percentile(idle, 50)):.1f}x")
    if busy:
        p99_busy = float(np.percentile(busy, 99))
        print(f"p99 under ingest / p99 idle: {p99_busy / p99_idle:.2f}x")
        verdict = "met" if p99_busy <= 0.030 else "NOT met"
        print(f"target paced p99 <= 30 ms under ingest: {verdict}")
    print(f"target paced p99 <= 100 ms idle: {'met' if p99_idle <= 0.100 else 'NOT met'}")


if __name__ == "__main__":
    main()
