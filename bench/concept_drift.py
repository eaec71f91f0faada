"""Concept-drift detectors (``exporter/stats/concept_drift.py``): cost per value against
River's, and detection delay on River's concept-drift streams.

1. **Cost.** Each detector at its defaults on a 0/1 error stream (errors at 10, 20, 10 and
   15 % in four equal parts) and, for ADWIN and Page-Hinkley, on a regression's absolute errors
   (``|N(0, s)|``, ``s`` 1, 1.5, 1 and 1.2), so that the detectors find changes and reset now
   and then; River's detector is fed one value
   at a time (its only interface), ours in batches of 100 (and, for information, of 1 and
   1000). The best of ``--repeats`` runs, in one process; the ratio is River's time over ours
   (above 1: ours is faster). Both detect at the same values (checked, printed).
2. **Delay.** Two concepts joined at value 5000: SEA (variant 0, ``att1 + att2 > 8``, to
   variant 3, ``> 9.5``; 10 % label noise) and Agrawal (classification function 0 to 2), each
   abrupt (the first concept's stream for 5000 values, then the second's, as the SEA paper
   switches) and gradual (River's ``ConceptDriftStream``, ``position`` 5000, ``width`` 1000;
   it cannot make the abrupt case: at ``position`` 5000 its sigmoid overflows ``math.exp``
   for widths below 29).
   The model is River's incremental ``HoeffdingTreeClassifier`` trained on 5000 examples of
   the first concept (another seed), then frozen, as a deployed model is: its error stream
   (1 wrong, 0 right) over 5000 predictions before the drift and 3000 after is fed to each
   detector at its defaults, to ADWIN with ``delta=0.02, clock=8`` (faster, but see section
   4's false alarms) and with ``delta=0.0002`` (quieter), in batches of 100 as label requests
   would bring it. The delay is counted in labeled predictions from value 5000
   to the first detection at or after the change starts (abrupt: value 5000; gradual: where
   the new concept's share reaches 1 %, ``position - width ln(99) / 4``, 1149 values before
   the middle, so a gradual delay can be negative); detections before that are counted as
   false alarms (on a gradual stream some are not: the sigmoid's tail already mixes in a few
   examples of the new concept, 0.25 % of them 1500 values before the middle, and where the
   model makes no error on the first concept, as on Agrawal, any error is one of those); none
   by the end is a miss. Over ``--seeds`` seeds: median and range. The target (issue 12):
   within 400 labeled predictions of the drift.
3. **In the exporter.** The same abrupt streams (features, label, the frozen tree's
   prediction) replayed into a :class:`~exporter.store.Store` as issue 12 sets it: labels
   inline, 500 events/s on the store's clock, 4 s windows (2,000 events), batches of 100, each
   detector at its defaults. The delay of the first detection after the drift comes from the
   version's ``last_detection`` (the event it came at; "as alone": equal to section 2's for the
   same errors), next to ``model_accuracy``'s: batches after the drift until the window's
   accuracy crossed halfway from its value at the drift to its value at the end.
4. **False alarms.** Detections on stationary 0/1 error streams (``--stationary`` outcomes at
   error rates 0.05, 0.1 and 0.3), for the defaults and ADWIN at other deltas, and what they
   make per day at 500 labels/s: the rate to weigh against the delays above.
5. **Cost on the join path.** Events per second a store takes in batches of 1000 predictions
   with their labels inline, with each detector and with ``off`` (in this process, the runs
   interleaved, best of twice ``--repeats``).

    .venv/bin/python -m bench.concept_drift [--seeds 10] [--values 200000] [--repeats 5]
                                            [--stationary 10000000] [--no-cost]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from river import drift, tree
from river.datasets import synth

from exporter.config import load_settings
from exporter.stats.concept_drift import (
    AdwinSettings,
    ConceptDriftSettings,
    DdmSettings,
    PageHinkleySettings,
    make_detector,
)
from exporter.store import Store

TARGET = 400
POSITION = 5000
AFTER = 3000
TRAIN = 5000
BATCH = 100

DEFAULTS: dict[str, ConceptDriftSettings] = {
    "ADWIN": AdwinSettings(),
    "DDM": DdmSettings(),
    "Page-Hinkley": PageHinkleySettings(),
}
#: The delays also for a faster ADWIN, and for a quieter one (see section 4).
DETECTORS = {
    **DEFAULTS,
    "ADWIN .02/8": AdwinSettings(delta=0.02, clock=8),
    "ADWIN .0002": AdwinSettings(delta=0.0002),
}


def river_of(settings: ConceptDriftSettings) -> Any:
    if isinstance(settings, AdwinSettings):
        return drift.ADWIN(delta=settings.delta, clock=settings.clock)
    if isinstance(settings, DdmSettings):
        return drift.binary.DDM()
    return drift.PageHinkley()


def river_hits(settings: ConceptDriftSettings, xs: np.ndarray) -> list[int]:
    det, hits = river_of(settings), []
    binary = isinstance(settings, DdmSettings)
    for i, v in enumerate(xs.tolist()):
        det.update(int(v) if binary else v)
        if det.drift_detected:
            hits.append(i)
    return hits


def our_hits(settings: ConceptDriftSettings, xs: np.ndarray, batch: int) -> list[int]:
    det, hits = make_detector(settings), []
    for start in range(0, xs.shape[0], batch):
        hits += [start + o for o in det.update(xs[start : start + batch])]
    return hits


# --- 1. cost ---------------------------------------------------------------------------------


def best_time(run: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def cost(values: int, repeats: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    quarter = values // 4
    rates = np.repeat([0.1, 0.2, 0.1, 0.15], quarter)
    binary = (rng.random(rates.shape[0]) < rates).astype(np.float64)
    scales = np.repeat([1.0, 1.5, 1.0, 1.2], quarter)
    regression = np.abs(rng.normal(0.0, scales))
    print(f"1. Cost per value, {rates.shape[0]:,} values, best of {repeats} runs")
    print(
        f"{'detector':<14}{'stream':<12}{'River':>9}{'ours, 100':>11}{'ratio':>7}"
        f"{'ours, 1':>10}{'ours, 1000':>12}  same detections"
    )
    for name, settings in DEFAULTS.items():
        for label, xs in (("0/1", binary), ("|error|", regression)):
            if isinstance(settings, DdmSettings) and label != "0/1":
                continue
            theirs = best_time(lambda s=settings, x=xs: river_hits(s, x), repeats)
            ours = {
                b: best_time(lambda s=settings, x=xs, b=b: our_hits(s, x, b), repeats)
                for b in (BATCH, 1000)
            }
            single = xs[: values // 20]  # one value a call: 20 times fewer values
            ours[1] = best_time(lambda s=settings, x=single: our_hits(s, x, 1), repeats) * 20
            same = river_hits(settings, xs) == our_hits(settings, xs, BATCH)
            us = {b: t / xs.shape[0] * 1e6 for b, t in ours.items()}
            print(
                f"{name:<14}{label:<12}{theirs / xs.shape[0] * 1e6:>7.3f}us"
                f"{us[BATCH]:>9.3f}us{theirs / ours[BATCH]:>6.2f}x"
                f"{us[1]:>8.3f}us{us[1000]:>10.3f}us  {'yes' if same else 'NO'}"
                f" ({len(our_hits(settings, xs, BATCH))} detections)"
            )


# --- 2. delay --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    before: Callable[[int], Any]  # seed -> the first concept's stream
    after: Callable[[int], Any]
    width: int


SCENARIOS = [
    Scenario(
        "SEA 0->3, abrupt",
        lambda s: synth.SEA(variant=0, noise=0.1, seed=s),
        lambda s: synth.SEA(variant=3, noise=0.1, seed=s),
        1,
    ),
    Scenario(
        "SEA 0->3, gradual",
        lambda s: synth.SEA(variant=0, noise=0.1, seed=s),
        lambda s: synth.SEA(variant=3, noise=0.1, seed=s),
        1000,
    ),
    Scenario(
        "Agrawal 0->2, abrupt",
        lambda s: synth.Agrawal(classification_function=0, seed=s),
        lambda s: synth.Agrawal(classification_function=2, seed=s),
        1,
    ),
    Scenario(
        "Agrawal 0->2, gradual",
        lambda s: synth.Agrawal(classification_function=0, seed=s),
        lambda s: synth.Agrawal(classification_function=2, seed=s),
        1000,
    ),
]


def predicted_stream(scenario: Scenario, seed: int) -> list[tuple[dict[str, Any], Any, Any]]:
    """The drifting stream as (features, label, the frozen model's prediction)."""
    model = tree.HoeffdingTreeClassifier()
    for x, y in scenario.before(10_000 + seed).take(TRAIN):
        model.learn_one(x, y)
    if scenario.width == 1:
        examples: Any = itertools.chain(
            scenario.before(seed).take(POSITION), scenario.after(20_000 + seed).take(AFTER)
        )
    else:
        examples = synth.ConceptDriftStream(
            stream=scenario.before(seed),
            drift_stream=scenario.after(20_000 + seed),
            position=POSITION,
            width=scenario.width,
            seed=seed,
        ).take(POSITION + AFTER)
    return [(x, y, model.predict_one(x)) for x, y in examples]


def error_stream(scenario: Scenario, seed: int) -> np.ndarray:
    """The frozen model's errors on the drifting stream (1 wrong, 0 right)."""
    return np.array([float(p != y) for _, y, p in predicted_stream(scenario, seed)])


def delays(seeds: int) -> None:
    print(
        f"\n2. Delay in labeled predictions from the drift at {POSITION} to the first detection"
        f" ({seeds} seeds; frozen Hoeffding tree; batches of {BATCH})"
    )
    print(
        f"{'stream':<23}{'errors before/after':>20}  {'detector':<14}{'median':>7}"
        f"{'range':>14}{'<= 400':>8}{'missed':>7}{'false alarms':>13}  same as River"
    )
    for scenario in SCENARIOS:
        streams = [error_stream(scenario, seed) for seed in range(seeds)]
        start = POSITION
        if scenario.width > 1:
            start -= round(scenario.width * math.log(99) / 4)
        before = statistics.median(float(xs[: start - 500].mean()) for xs in streams)
        after = statistics.median(float(xs[POSITION + 500 :].mean()) for xs in streams)
        rates = f"{before:.3f}/{after:.3f}"
        for name, settings in DETECTORS.items():
            found, missed, alarms, same = [], 0, 0, True
            for xs in streams:
                hits = our_hits(settings, xs, BATCH)
                same &= hits == river_hits(settings, xs)
                alarms += sum(h < start for h in hits)
                late = [h for h in hits if h >= start]
                if late:
                    found.append(late[0] - POSITION)
                else:
                    missed += 1
            if found:
                median = f"{statistics.median(found):.0f}"
                span = f"[{min(found)}, {max(found)}]"
                within = f"{sum(d <= TARGET for d in found)}/{seeds}"
            else:
                median, span, within = "-", "-", f"0/{seeds}"
            print(
                f"{scenario.name:<23}{rates:>20}  {name:<14}{median:>7}{span:>14}{within:>8}"
                f"{missed:>7}{alarms:>13}  {'yes' if same else 'NO'}"
            )
            rates = ""


# --- 3. in the exporter ----------------------------------------------------------------------

#: Events a second, and the window that holds 2,000 of them (issue 12's setting).
RATE = 500
WINDOW = "4s"


class Clock:
    """The store's clock, moved by hand: a replay at exactly ``RATE`` events a second."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass(slots=True)
class Event:
    id: str
    features: dict[str, Any]
    prediction: Any
    timestamp: float
    label: Any
    score: float | None = None
    probabilities: dict[str, float] | None = None


def through_exporter(
    rows: list[tuple[dict[str, Any], Any, Any]], settings: ConceptDriftSettings
) -> tuple[int | None, int | None, bool]:
    """Feed the stream to a store (labels inline, ``RATE`` events a second, batches of
    ``BATCH``); returns the delay of the first detection at or after the drift (from
    ``model_concept_drift_last_detection_timestamp_seconds``: the event it came at), the
    delay until the window's accuracy crossed halfway from its level at the drift to its
    level at the end (at batch ends), and whether a detection came before the drift."""
    start = 1.8e9
    clock = Clock(start)
    config = {"detector": settings.kind, settings.kind: dataclass_fields(settings)}
    store = Store(load_settings(windows=[WINDOW], concept_drift=config), clock=clock)
    accuracy: list[tuple[int, float]] = []
    detections: list[int] = []
    seen = 0
    for begin in range(0, len(rows), BATCH):
        batch = rows[begin : begin + BATCH]
        events = [
            Event(
                f"e{begin + i}", {str(k): v for k, v in x.items()}, p, start + (begin + i) / RATE, y
            )
            for i, (x, y, p) in enumerate(batch)
        ]
        clock.now = events[-1].timestamp
        store.add_predictions("m", None, events)
        version = store.get("m").snapshot(clock.now).versions[0]
        info = version.concept
        if info is not None and info.detections > seen:
            assert info.last_detection is not None
            seen = info.detections
            detections.append(round((info.last_detection - start) * RATE))
        confusion = version.windows[0].confusion
        if confusion is not None and confusion.sum():
            accuracy.append((begin + len(batch), float(np.trace(confusion) / confusion.sum())))
    found = [d - POSITION for d in detections if d >= POSITION]
    at_drift = next(a for end, a in accuracy if end >= POSITION)
    halfway = (at_drift + accuracy[-1][1]) / 2
    crossed = [end - POSITION for end, a in accuracy if end > POSITION and a <= halfway]
    early = any(d < POSITION for d in detections)
    return (found[0] if found else None), (crossed[0] if crossed else None), early


def dataclass_fields(settings: ConceptDriftSettings) -> dict[str, Any]:
    return {f.name: getattr(settings, f.name) for f in fields(settings) if f.name != "kind"}


def exporter_delays(seeds: int) -> None:
    print(
        f"\n3. In the exporter: labels inline, {RATE} events/s, {WINDOW} windows (2,000 events),"
        f" batches of {BATCH}; delay after the drift at {POSITION} ({seeds} seeds)"
    )
    print(
        f"{'stream':<23}{'detector':<14}{'detection median':>17}{'range':>14}{'<= 400':>8}"
        f"{'early':>6}   {'model_accuracy halfway: median':>31}{'range':>15}  as alone"
    )
    for scenario in SCENARIOS:
        if scenario.width != 1:
            continue  # the abrupt drifts: a gradual one has no single point to count from
        streams = [predicted_stream(scenario, seed) for seed in range(seeds)]
        for name, settings in DEFAULTS.items():
            runs = [through_exporter(rows, settings) for rows in streams]
            alone = []  # the detector fed the same errors directly (section 2's way)
            for rows in streams:
                errors = np.array([float(p != y) for _, y, p in rows])
                late = [h - POSITION for h in our_hits(settings, errors, BATCH) if h >= POSITION]
                alone.append(late[0] if late else None)
            same = alone == [d for d, _, _ in runs]
            found = [d for d, _, _ in runs if d is not None]
            halves = [h for _, h, _ in runs if h is not None]
            early = sum(e for _, _, e in runs)
            median = f"{statistics.median(found):.0f}" if found else "-"
            span = f"[{min(found)}, {max(found)}]" if found else "-"
            within = f"{sum(d <= TARGET for d in found)}/{seeds}"
            half = f"{statistics.median(halves):.0f}" if halves else "-"
            half_span = f"[{min(halves)}, {max(halves)}]" if halves else "-"
            print(
                f"{scenario.name:<23}{name:<14}{median:>17}{span:>14}{within:>8}{early:>6}"
                f"   {half:>31}{half_span:>15}  {'yes' if same else 'NO'}"
            )


# --- 4. false alarms ---------------------------------------------------------------------------

#: Settings whose false alarms on stationary streams are counted (the defaults, and ADWIN's
#: delta either side of River's).
QUIET = {
    "ADWIN": AdwinSettings(),
    "ADWIN .0002": AdwinSettings(delta=0.0002),
    "ADWIN .005/8": AdwinSettings(delta=0.005, clock=8),
    "ADWIN .02/8": AdwinSettings(delta=0.02, clock=8),
    "DDM": DdmSettings(),
    "Page-Hinkley": PageHinkleySettings(),
}


def false_alarms(values: int, seed: int) -> None:
    print(
        f"\n4. False alarms on stationary 0/1 error streams ({values:,} outcomes each, batches of"
        " 1000): detections, and per day at 500 labels/s"
    )
    rates = (0.05, 0.1, 0.3)
    print(f"{'detector':<14}" + "".join(f"{f'error {p}':>22}" for p in rates))
    per_day = 500 * 86_400
    for name, settings in QUIET.items():
        cells = []
        for p in rates:
            rng = np.random.default_rng(seed)
            detector = make_detector(settings)
            hits = 0
            for _ in range(values // 1000):
                hits += len(detector.update((rng.random(1000) < p).astype(np.float64)))
            cells.append(f"{hits:>8} ({hits / values * per_day:>6.1f}/day)")
        print(f"{name:<14}" + "".join(f"{c:>22}" for c in cells))


# --- 5. cost on the join path ---------------------------------------------------------------


def join_cost(repeats: int, seed: int) -> None:
    """Labels joined per second by a store (batches of 1000 predictions with their labels
    inline, 20 features, fresh ids), each detector against ``off``, in this process."""
    rng = np.random.default_rng(seed)
    batches, size = 50, 1000
    rows = [
        [
            Event(
                f"b{b}-{i}",
                {f"f{j}": float(v) for j, v in enumerate(rng.normal(size=20))},
                int(rng.integers(2)),
                1.8e9 + b,
                int(rng.integers(2)),
            )
            for i in range(size)
        ]
        for b in range(batches)
    ]

    def run(detector: str) -> float:
        clock = Clock(1.8e9 + batches)
        store = Store(load_settings(concept_drift={"detector": detector}), clock=clock)
        gc.collect()
        started = time.perf_counter()
        for batch in rows:
            store.add_predictions("m", None, batch)
        return time.perf_counter() - started

    detectors = ("off", "adwin", "ddm", "page_hinkley")
    times: dict[str, list[float]] = {d: [] for d in detectors}
    for _ in range(repeats * 2):  # interleaved: each detector sees the same machine
        for detector in detectors:
            times[detector].append(run(detector))
    print(
        f"\n5. Cost on the join path: {batches} batches of {size} predictions with inline labels"
        f" (20 features), runs interleaved, best of {repeats * 2}"
    )
    off = min(times["off"])
    print(f"{'off':<14}{batches * size / off:>12,.0f} events/s")
    for detector in detectors[1:]:
        seconds = min(times[detector])
        extra = (seconds - off) / (batches * size) * 1e6
        print(
            f"{detector:<14}{batches * size / seconds:>12,.0f} events/s  "
            f"{off / seconds:.3f}x of off ({extra:+.2f} us/event)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--values", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--no-cost", action="store_true", help="skip the cost")
    parser.add_argument(
        "--stationary", type=int, default=10_000_000, help="outcomes per false-alarm stream"
    )
    args = parser.parse_args()
    if not args.no_cost:
        cost(args.values, args.repeats, args.seed)
    delays(args.seeds)
    exporter_delays(args.seeds)
    false_alarms(args.stationary, args.seed)
    join_cost(args.repeats, args.seed)


if __name__ == "__main__":
    main()
