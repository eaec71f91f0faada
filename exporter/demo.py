"""``model-exporter demo``: the exporter plus a simulated model server with real models.

Two versions of a breast-cancer classifier (scikit-learn's bundled dataset) serve traffic, 80/20:
``v1`` a standardised logistic regression, ``v2`` a faulty build of it that inverts 5 % of its
answers, so it is worse by a known amount (``5 % x (2 accuracy - 1)``, about 5 points, measured
on the held-out split and printed at start). ``v2`` is declared the challenger of ``v1`` in a
split comparison, so the always-valid p-value reaches a verdict within a few minutes. The
simulated server reports every prediction through :class:`exporter.client.MonitorClient` and
the ground truth after a delay (5 % of labels never come). After ``--drift-after`` seconds the
input distribution shifts (ten features scaled up) and some labels flip, so accuracy drops below
0.9 and drift shows on ``/metrics`` within a couple of windows.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel

from exporter.config import Settings, load_settings
from exporter.errors import ConfigError

DEMO_CONFIG: dict[str, Any] = {
    "windows": ["1m", "5m"],
    "window_buckets": 30,
    "quality": {"min_samples": 30},
    "drift": {"min_samples": 60, "refresh_interval": 2.0, "sample_size": 5000},
    "models": {
        "breast-cancer": {
            "task": "binary",
            "positive_class": 1,
            "comparison": {"champion": "v1", "challengers": ["v2"], "mode": "split"},
        }
    },
}
MODEL = "breast-cancer"
COMPARISON: dict[str, Any] = DEMO_CONFIG["models"][MODEL]["comparison"]
SHIFTED_FEATURES = 10
#: Share of ``v2``'s answers inverted: its accuracy is ``acc - FAULT * (2 acc - 1)``.
FAULT = 0.05


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="0.0.0.0", help="listen address (default: %(default)s)")
    parser.add_argument(
        "--port",
        type=int,
        default=17090,
        help="listen port, 0: any (default: %(default)s)",
    )
    parser.add_argument(
        "--url", help="send to this running exporter instead of starting one (default: start one)"
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("MODEL_EXPORTER_TOKEN"),
        help="a write token of the exporter, sent as 'Authorization: Bearer'; needed with --url "
        "to another address than loopback (default: $MODEL_EXPORTER_TOKEN)",
    )
    parser.add_argument(
        "--rate", type=float, default=20.0, help="predictions per second (default: %(default)s)"
    )
    parser.add_argument(
        "--label-delay",
        type=float,
        default=20.0,
        help="mean seconds until a prediction's label comes (default: %(default)s)",
    )
    parser.add_argument(
        "--drift-after",
        type=float,
        default=180.0,
        help="seconds until the drift starts (default: %(default)s)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=0.0,
        help="stop after this many seconds, 0: never (default: %(default)s)",
    )
    parser.add_argument(
        "--windows",
        default=",".join(DEMO_CONFIG["windows"]),
        help="the exporter's windows, comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed (default: %(default)s)",
    )


def demo_settings(args: argparse.Namespace) -> Settings:
    """The exporter's settings in the demo: :data:`DEMO_CONFIG` with the windows of the flags.

    Raises :class:`~exporter.errors.ConfigError` for an invalid value (``--windows 5x``).
    """
    windows = [w.strip() for w in args.windows.split(",") if w.strip()]
    config = dict(DEMO_CONFIG, windows=windows)
    return load_settings(None, host=args.host, port=args.port, log_level="warning", **config)


def _options(section: BaseModel, prefix: str = "") -> dict[str, Any]:
    """Every option of a settings section by its dotted key (``drift.min_samples``)."""
    out: dict[str, Any] = {}
    for name in type(section).model_fields:
        value = getattr(section, name)
        if isinstance(value, BaseModel):
            out.update(_options(value, f"{prefix}{name}."))
        else:
            out[prefix + name] = value
    return out


def _shown(value: Any) -> str:
    """A setting as the settings line shows it (``a,b`` for a list, ``{k: v}`` as JSON)."""
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def settings_line(settings: Settings, defaults: Settings) -> str:
    """The options of ``settings`` that differ from ``defaults`` (``key=value (default d)``),
    then the models it declares; not the address (the serving line shows the one bound)."""
    ours, theirs = (_options(s) | {"windows": s.window_labels} for s in (settings, defaults))
    changed = [
        f"{key}={_shown(value)} (default {_shown(theirs[key])})"
        for key, value in ours.items()
        if key not in ("host", "port", "models") and value != theirs[key]
    ]
    line = "settings that differ from the defaults: " + (", ".join(changed) or "none")
    for name, spec in settings.models.items():
        declared = spec.model_dump(exclude_defaults=True)
        line += f"; model {name}: " + ", ".join(f"{k}={_shown(v)}" for k, v in declared.items())
    return line


def serving_line(sockname: tuple[Any, ...]) -> tuple[str, str]:
    """The URL to open and the line announcing it, from the listening socket's name.

    >>> serving_line(("0.0.0.0", 17090))[1]
    'serving on http://127.0.0.1:17090 (metrics at /metrics), listening on 0.0.0.0:17090'
    >>> serving_line(("::1", 8080, 0, 0))
    ('http://[::1]:8080', 'serving on http://[::1]:8080 (metrics at /metrics)')
    """
    host, port = str(sockname[0]), int(sockname[1])
    local = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # a wildcard: this machine

    def bracketed(name: str) -> str:
        return f"[{name}]" if ":" in name else name

    url = f"http://{bracketed(local)}:{port}"
    line = f"serving on {url} (metrics at /metrics)"
    if local != host:
        line += f", listening on {bracketed(host)}:{port}"
    return url, line


@dataclass
class Simulation:
    """The simulated model server."""

    url: str
    rate: float
    label_delay: float
    drift_after: float
    duration: float
    seed: int
    declare: bool = False  # declare the comparison over the API (an exporter started elsewhere)
    token: str | None = None  # a write token of the exporter
    stop: threading.Event = field(default_factory=threading.Event)
    sent: int = 0
    labelled: int = 0

    def run(self) -> None:
        from sklearn.datasets import load_breast_cancer
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import train_test_split
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        from exporter.client import MonitorClient

        data = load_breast_cancer()
        names = [n.replace(" ", "_") for n in data.feature_names]
        X_train, X_test, y_train, y_test = train_test_split(
            data.data, data.target, test_size=0.4, random_state=self.seed, stratify=data.target
        )
        # Live traffic is drawn from the whole dataset, and so is the reference: before the
        # drift, window and reference come from one distribution (a reference of the training
        # split only would differ from it by the sampling noise of 569 rows, which the tests
        # rightly detect at these sample sizes).
        X_live, y_live = data.data, data.target
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        model.fit(X_train, y_train)
        rng = np.random.default_rng(self.seed)
        print(held_out_line(model.predict(X_test), y_test, rng), flush=True)
        client = MonitorClient(self.url, model=MODEL, flush_interval=0.5, token=self.token)
        reference = {name: X_live[:, j].tolist() for j, name in enumerate(names)}
        self._reference(client, reference, model.predict(X_live), y_live)
        if self.declare:
            self._declare()
        pending: list[tuple[float, str, int]] = []  # (when, id, label)
        started = time.monotonic()
        interval = 1.0 / self.rate
        next_at = started
        try:
            while not self.stop.is_set():
                now = time.monotonic()
                elapsed = now - started
                if self.duration and elapsed >= self.duration:
                    break
                while pending and pending[0][0] <= now:
                    _, ident, label = heapq.heappop(pending)
                    client.log_label(ident, label)
                    self.labelled += 1
                if now < next_at:
                    self.stop.wait(min(next_at - now, 0.05))
                    continue
                next_at += interval
                i = int(rng.integers(X_live.shape[0]))
                x = X_live[i] * rng.normal(1.0, 0.02, X_live.shape[1])
                label = int(y_live[i])
                if elapsed >= self.drift_after:
                    x[:SHIFTED_FEATURES] *= 1.35  # covariate shift in the "mean" features
                    if rng.random() < 0.12:
                        label = 1 - label  # and the world changed: some labels flip
                version = "v1" if rng.random() < 0.8 else "v2"
                answer = model.predict(x.reshape(1, -1))
                prediction = int((faulty(answer, rng) if version == "v2" else answer)[0])
                # The positive class's probability, inverted with an inverted answer.
                score = float(model.predict_proba(x.reshape(1, -1))[0, 1])
                if prediction != int(answer[0]):
                    score = 1.0 - score
                ident = f"{version}-{self.sent}"
                client.log_prediction(
                    ident,
                    dict(zip(names, x.tolist(), strict=True)),
                    prediction,
                    model_version=version,
                    score=score,
                )
                self.sent += 1
                if rng.random() >= 0.05:  # 5 % of labels never arrive
                    delay = self.label_delay * rng.uniform(0.5, 1.5)
                    heapq.heappush(pending, (now + delay, ident, label))
        finally:
            client.close(timeout=5.0)

    @staticmethod
    def _reference(client: Any, features: dict[str, list[float]], preds: Any, labels: Any) -> None:
        from exporter.client import MonitorError

        for _ in range(50):  # the exporter may still be starting
            try:
                client.set_reference(features, predictions=preds.tolist(), labels=labels.tolist())
                return
            except MonitorError:
                time.sleep(0.2)
        print("demo: could not upload the reference; drift will use the first predictions")

    def _declare(self) -> None:
        import urllib.request

        request = urllib.request.Request(
            f"{self.url}/v1/models/{MODEL}/comparison",
            data=json.dumps(COMPARISON).encode(),
            headers={
                "Content-Type": "application/json",
                **({"Authorization": f"Bearer {self.token}"} if self.token else {}),
            },
            method="PUT",
        )
        try:
            with urllib.request.urlopen(request, timeout=5):
                print(f"demo: declared the comparison {_shown(COMPARISON)}", flush=True)
        except OSError as exc:  # HTTPError included: a refusal (a pinned conflict, ...)
            print(f"demo: could not declare the comparison: {exc}", flush=True)


def faulty(answers: npt.NDArray[np.int_], rng: np.random.Generator) -> npt.NDArray[np.int_]:
    """``v2``: the binary ``answers`` with a share :data:`FAULT` of them inverted."""
    inverted = rng.random(answers.shape) < FAULT
    out: npt.NDArray[np.int_] = np.where(inverted, 1 - answers, answers)
    return out


def held_out_line(
    answers: npt.NDArray[np.int_],
    labels: npt.NDArray[np.int_],
    rng: np.random.Generator,
    passes: int = 200,
) -> str:
    """Both versions' accuracy on the held-out split, ``v2``'s over ``passes`` draws of its
    fault, and their difference beside the one its construction predicts."""
    v1 = float(np.mean(answers == labels))
    v2 = float(np.mean([np.mean(faulty(answers, rng) == labels) for _ in range(passes)]))
    return (
        f"model-exporter demo: held-out accuracy ({labels.shape[0]} rows): v1 {v1:.3f}, "
        f"v2 {v2:.3f}; v2 - v1 = {v2 - v1:+.3f} (by construction "
        f"{-FAULT * (2 * v1 - 1):+.3f}: {FAULT:.0%} of v2's answers inverted)"
    )


def comparison_part(metrics: str) -> str:
    """The status line's comparison, from ``/metrics``: the difference since the comparison
    started with its confidence sequence and always-valid p-value, or the burn-in."""
    from prometheus_client.parser import text_string_to_metric_families

    champion, challenger = COMPARISON["champion"], COMPARISON["challengers"][0]
    ours = {"model": MODEL, "champion": champion, "challenger": challenger}
    values: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(metrics):
        for s in family.samples:
            if (
                s.name.startswith("model_comparison_sequential_")
                and ours.items() <= s.labels.items()
            ):
                name = s.name.removeprefix("model_comparison_sequential_")
                values[name, s.labels.get("arm", "")] = s.value
    arms = [values.get(("labeled_predictions", arm), 0.0) for arm in ("champion", "challenger")]
    versus = f"{challenger} vs {champion} since the start ({arms[0]:,.0f} / {arms[1]:,.0f} labels)"
    if ("pvalue", "") not in values:
        return f"{versus}: burn-in"
    lower, upper = values["difference_lower", ""], values["difference_upper", ""]
    verdict = f" {challenger} WORSE" if upper < 0 else f" {challenger} BETTER" if lower > 0 else ""
    return (
        f"{versus}: accuracy difference {values['accuracy_difference', '']:+.3f} "
        f"[{lower:+.3f}, {upper:+.3f}], always-valid p {values['pvalue', '']:.2g}{verdict}"
    )


def _status_line(url: str, sim: Simulation, started: float) -> str:
    import urllib.request

    elapsed = time.monotonic() - started
    parts = [f"t={elapsed:5.0f}s sent {sim.sent:,} predictions, {sim.labelled:,} labels"]
    try:
        with urllib.request.urlopen(f"{url}/v1/models/{MODEL}", timeout=2) as response:
            status = json.loads(response.read())
        for version in ("v1", "v2"):
            windows = status["versions"].get(version, {}).get("windows", {})
            if not windows:
                continue
            name, window = next(iter(windows.items()))  # the shortest window
            quality = window.get("quality") or {}
            accuracy = quality.get("accuracy")
            drift = window.get("drift") or {}
            shown = "   -" if accuracy is None else f"{accuracy:.2f}"
            drifted = drift.get("features_drifted", "-")
            parts.append(f"{version}: accuracy({name}) {shown}, drifted features {drifted}")
        with urllib.request.urlopen(f"{url}/metrics", timeout=2) as response:
            parts.append(comparison_part(response.read().decode()))
    except (OSError, ValueError, KeyError):
        parts.append("(exporter not answering yet)")
    if elapsed < sim.drift_after:
        parts.append(f"drift in {sim.drift_after - elapsed:.0f}s")
    else:
        parts.append("DRIFTING")
    parts.append(f"page {url}/")
    return " | ".join(parts)


def _look_at(url: str, drift_after: float) -> str:
    return (
        f"\nLook at:\n  {url}/                            (the status page: quality, drift, "
        f"join health, charts;\n    {url}/ui/models/{MODEL} draws each feature over its "
        "reference)\n"
        f"  {url}/metrics                     (model_accuracy, "
        "model_drift_features_drifted, model_feature_drift_psi, ...,\n"
        "    model_comparison_sequential_pvalue: v2, the challenger, against v1)\n"
        f"  {url}/v1/models/{MODEL}     (status JSON)\n"
        "  Prometheus + Grafana + Alertmanager: docker compose up (see the README)\n"
        f"Drift starts after {drift_after:.0f}s; Ctrl-C stops.\n"
    )


def run(args: argparse.Namespace) -> int:
    print(__doc__.split("\n\n")[0].replace("``", ""), flush=True)
    if args.url is not None:
        url = args.url.rstrip("/")
        print(f"model-exporter demo: sending to {url}", flush=True)
        print(_look_at(url, args.drift_after), flush=True)
        return _simulate_only(args, url)
    try:
        settings = demo_settings(args)
    except ConfigError as exc:
        print(f"model-exporter demo: {exc}", file=sys.stderr)
        return 2
    return _serve_and_simulate(args, settings)


def _progress(url: str, sim: Simulation, started: float, stop: threading.Event) -> None:
    while not stop.wait(5.0):
        print(_status_line(url, sim, started), flush=True)


def _simulate_only(args: argparse.Namespace, url: str) -> int:
    sim = Simulation(
        url,
        args.rate,
        args.label_delay,
        args.drift_after,
        args.duration,
        args.seed,
        declare=True,
        token=args.token,
    )
    stop = threading.Event()
    reporter = threading.Thread(
        target=_progress, args=(url, sim, time.monotonic(), stop), daemon=True
    )
    reporter.start()
    try:
        sim.run()
    except KeyboardInterrupt:
        sim.stop.set()
    stop.set()
    return 0


def _serve_and_simulate(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from exporter.app import create_app
    from exporter.runtime import freeze_startup_heap, tune_malloc

    tune_malloc()
    app = create_app(settings)
    freeze_startup_heap()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            workers=1,
            timeout_graceful_shutdown=5,
        )
    )
    holder: dict[str, Simulation] = {}
    stop = threading.Event()

    def simulate() -> None:
        while not server.started:  # wait for the socket (the port may be 0: ask the server)
            if stop.wait(0.05):
                return
        url, line = serving_line(server.servers[0].sockets[0].getsockname())
        print(f"model-exporter demo: {line}", flush=True)
        defaults = Settings.model_construct()  # the built-in defaults: no file, no environment
        print(f"model-exporter demo: {settings_line(settings, defaults)}", flush=True)
        print(_look_at(url, args.drift_after), flush=True)
        sim = Simulation(
            url,
            args.rate,
            args.label_delay,
            args.drift_after,
            args.duration,
            args.seed,
            token=args.token,  # the exporter's own settings may hold write tokens
        )
        holder["sim"] = sim
        reporter = threading.Thread(
            target=_progress, args=(url, sim, time.monotonic(), stop), daemon=True
        )
        reporter.start()
        sim.run()
        if args.duration:
            server.should_exit = True

    worker = threading.Thread(target=simulate, name="demo-model-server", daemon=True)
    worker.start()
    server.run()
    stop.set()
    if "sim" in holder:
        holder["sim"].stop.set()
    worker.join(10)
    return 0
