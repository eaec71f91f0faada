"""Load and soak: ingest with unique ids, concurrent scrapes and a restart, for a set time.

    .venv/bin/python -m bench.soak [--duration 600] [--restart-at 300] [--rate 3000]
                                   [--senders 2] [--batch 500] [--state-interval 5]

Runs ``python -m exporter serve`` on 127.0.0.1 with its state snapshotted to a temporary
folder (``MODEL_EXPORTER_STATE__PATH``, ``state.interval`` short), and meanwhile:

* ``--senders`` threads post batches of ``--batch`` predictions with unique ids (numeric
  features) to one model, paced to ``--rate`` events/s in all, and labels for half of each batch
  right after it. A 429 (overloaded), or a 503 ``starting`` (restoring the state after the
  restart), is retried after its ``Retry-After``; a batch that could not be sent or answered
  (the server is down) is retried with the same ids, which the exporter counts once; all are
  counted. Any other non-2xx is a failure (a 5xx above all) and is not retried;
* a process of its own scrapes ``/metrics`` every second asking for gzip, as Prometheus does,
  and times it;
* a thread samples the server's RSS (``VmRSS`` of ``/proc/<pid>/status``) every few seconds;
* at ``--restart-at`` (default half way) the server gets SIGTERM: it must drain (``/-/ready``
  503 while still serving), exit 0, and start again on the same port and state path.

At the end it prints a summary with PASS or FAIL for each criterion, and exits 1 on a FAIL:

* predictions and labels accepted (2xx) equal those sent, and equal what the exporter counts
  (``model_predictions_total`` and ``model_labels_total``, summed over series) across the
  restart: the shutdown snapshot restores the counters;
* no 5xx and no other refusal (429 aside); the restart drained, exited 0 and restored a clean
  snapshot;
* RSS flat after warm-up: the last third's maximum within ``--rss-tolerance`` (10 %) of the
  middle third's. The join keeps at most ``join.max_pending_predictions`` unlabelled ids and as
  many joined ones (default 100,000 each): at ``--rate`` 3000 with half labelled, both are full
  after about 67 s, so the middle third of a short run may still be warming up;
* ``/metrics`` p99 under this load within ``--max-scrape-p99`` (30 ms, issue 8's target under
  ingest), before and after the restart.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import multiprocessing
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from bench.common import Server

MODEL = "soak"
FEATURES = 10
#: Seconds a sender waits before trying again a batch the server did not answer.
RECONNECT_PAUSE = 0.1
#: Seconds a sender keeps retrying one batch before it counts it as lost.
GIVE_UP_AFTER = 60.0
#: A line of the server's log that the summary reports.
ERROR = re.compile(r"\bERROR\b|^Traceback")


# -- the server -----------------------------------------------------------------------------------


class Exporter:
    """The exporter subprocess, on one loopback port and state path across restarts. Its log is
    read in a thread, so that a full pipe never blocks it; :attr:`log` keeps every line."""

    def __init__(self, folder: Path, interval: float) -> None:
        self.config = folder / "soak.yaml"
        self.config.write_text(f"state: {{interval: {interval}}}\n")
        self.state = folder / "state"
        self.state.mkdir()
        self.port = 0
        self.log: list[str] = []
        self.server = self._start()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def pid(self) -> int:
        return self.server.proc.pid

    def _start(self) -> Server:
        args = [sys.executable, "-m", "exporter", "serve", "--host", "127.0.0.1"]
        args += ["--port", str(self.port), "--config", str(self.config), "--log-level", "info"]
        server = Server(args, env={"MODEL_EXPORTER_STATE__PATH": str(self.state)})
        self.port = int(server.url.rsplit(":", 1)[1])
        threading.Thread(target=self._read_log, args=(server,), daemon=True).start()
        wait_ready(server.url)
        return server

    def _read_log(self, server: Server) -> None:
        assert server.proc.stdout is not None
        for line in server.proc.stdout:
            self.log.append(line.rstrip())

    def stop(self) -> Stop:
        """SIGTERM, watching ``/-/ready`` while it drains; the exit status."""
        started = time.monotonic()
        self.server.proc.send_signal(signal.SIGTERM)
        ready = watch_drain(self.url)
        try:
            status = self.server.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.server.proc.kill()
            status = self.server.proc.wait()
        return Stop(ready, status, time.monotonic() - started)

    def restart(self) -> None:
        self.server = self._start()


@dataclass
class Stop:
    """What a SIGTERM did: the ``/-/ready`` statuses seen meanwhile, the exit status, seconds."""

    ready: Counter[int]
    status: int
    seconds: float

    @property
    def clean(self) -> bool:
        return self.status == 0 and self.ready[503] > 0 and self.ready[200] == 0


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url + "/-/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise SystemExit(f"{url} not ready after {timeout:.0f} s")


def watch_drain(url: str) -> Counter[int]:
    """``/-/ready`` statuses from SIGTERM until the listener closes."""
    seen: Counter[int] = Counter()
    with httpx.Client(base_url=url, timeout=2) as client:
        while True:
            try:
                seen[client.get("/-/ready").status_code] += 1
            except httpx.TransportError:
                return seen
            time.sleep(0.2)


# -- ingest ---------------------------------------------------------------------------------------


@dataclass
class Tally:
    """One sender's counts (each sender has its own: no lock)."""

    predictions_sent: int = 0
    predictions_accepted: int = 0
    labels_sent: int = 0
    labels_accepted: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    reconnects: int = 0
    overloaded: int = 0
    starting: int = 0
    lost_batches: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.predictions_sent + other.predictions_sent,
            self.predictions_accepted + other.predictions_accepted,
            self.labels_sent + other.labels_sent,
            self.labels_accepted + other.labels_accepted,
            self.statuses + other.statuses,
            self.reconnects + other.reconnects,
            self.overloaded + other.overloaded,
            self.starting + other.starting,
            self.lost_batches + other.lost_batches,
        )


class Sender(threading.Thread):
    """Posts batches of predictions with fresh ids, then labels for half of each, paced."""

    def __init__(self, number: int, exporter: Exporter, rate: float, batch: int) -> None:
        super().__init__(name=f"sender-{number}", daemon=True)
        self.number = number
        self.exporter = exporter
        self.period = batch / rate
        self.batch = batch
        self.tally = Tally()
        self.halt = threading.Event()
        self._rng = np.random.default_rng(number)
        self._client = httpx.Client(timeout=30)

    def run(self) -> None:
        with self._client:
            next_at = time.monotonic()
            for sequence in itertools.count():
                if self.halt.is_set():
                    return
                self._send_batch(sequence)
                next_at = max(next_at + self.period, time.monotonic())
                self.halt.wait(max(0.0, next_at - time.monotonic()))

    def _send_batch(self, sequence: int) -> None:
        ids = [f"s{self.number}-{sequence}-{i}" for i in range(self.batch)]
        predicted = self._rng.integers(0, 2, self.batch)
        truth = np.where(self._rng.random(self.batch) < 0.8, predicted, 1 - predicted)
        values = self._rng.normal(size=(self.batch, FEATURES)).round(4).tolist()
        events = [
            {"id": i, "prediction": int(p), "features": {f"f{j}": v for j, v in enumerate(row)}}
            for i, p, row in zip(ids, predicted, values, strict=True)
        ]
        self.tally.predictions_sent += len(events)
        body = {"model": MODEL, "events": events}
        if not self._post("/v1/predictions", body):
            return
        self.tally.predictions_accepted += len(events)
        half = self.batch // 2
        labels = [{"id": i, "label": int(y)} for i, y in zip(ids[:half], truth[:half], strict=True)]
        self.tally.labels_sent += len(labels)
        if self._post("/v1/labels", {"model": MODEL, "labels": labels}):
            self.tally.labels_accepted += len(labels)

    def _post(self, path: str, body: Mapping[str, object]) -> bool:
        """Post until answered; True on a 2xx. Retries a 429 or a 503 ``starting`` after
        ``Retry-After`` and a batch the server did not answer (same ids: counted once); any
        other status is final."""
        give_up = time.monotonic() + GIVE_UP_AFTER
        while time.monotonic() < give_up:
            try:
                response = self._client.post(self.exporter.url + path, json=body)
            except httpx.TransportError:
                self.tally.reconnects += 1
                time.sleep(RECONNECT_PAUSE)
                continue
            self.tally.statuses[response.status_code] += 1
            if response.status_code == 429 or starting(response.status_code, response.headers):
                if response.status_code == 429:
                    self.tally.overloaded += 1
                else:
                    self.tally.starting += 1
                time.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            return response.is_success
        self.tally.lost_batches += 1
        return False


def starting(status: int, headers: Mapping[str, str]) -> bool:
    """A 503 asking to come back (``Retry-After``): the exporter restores its state."""
    return status == 503 and "Retry-After" in headers


# -- scrapes and RSS ------------------------------------------------------------------------------


@dataclass
class Scrape:
    at: float
    phase: str
    seconds: float | None  # None: not answered (the server was down)
    status: int | None
    starting: bool = False  # a 503 starting (restoring its state), to retry


class Watcher(threading.Thread):
    """Calls ``sample`` every ``every`` seconds until halted."""

    def __init__(self, every: float) -> None:
        super().__init__(daemon=True)
        self.every = every
        self.halt = threading.Event()

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.halt.is_set():
            self.sample()
            next_at = max(next_at + self.every, time.monotonic())
            self.halt.wait(max(0.0, next_at - time.monotonic()))

    def sample(self) -> None:
        raise NotImplementedError


PHASES = ("before", "restart", "after")


class Scraper:
    """``/metrics`` every second with gzip, timed, from a **process of its own**, as Prometheus
    scrapes from its own: in a thread of this process the timings would include waiting for
    this interpreter's GIL behind the senders building their batches, and this process's own
    garbage collections (15-33 ms every ~10 s, measured with a ``gc.callbacks`` probe), which
    is time the exporter did not spend. ``phase`` names the part of the run; :meth:`stop` ends
    the process and collects its scrapes."""

    def __init__(self, exporter: Exporter, started: float) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of this process's threads
        self.started = started
        self.scrapes: list[Scrape] = []
        self._phase = context.Value("i", 0)
        self._halt = context.Event()
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(
            target=scrape_every_second,
            args=(exporter.url, started, self._phase, self._halt, send),
            daemon=True,
        )

    @property
    def phase(self) -> str:
        return PHASES[self._phase.value]

    @phase.setter
    def phase(self, value: str) -> None:
        self._phase.value = PHASES.index(value)

    def start(self) -> None:
        self._process.start()

    def stop(self) -> None:
        self._halt.set()
        self.scrapes = [Scrape(*row) for row in self._receive.recv()]
        self._process.join(timeout=30)

    def latencies(self, phase: str) -> list[float]:
        return [
            s.seconds
            for s in self.scrapes
            if s.phase == phase and s.seconds is not None and s.status == 200
        ]


def scrape_every_second(url: str, started: float, phase: Any, halt: Any, send: Connection) -> None:
    """The scraper process: a scrape a second until ``halt``, then its scrapes to ``send``
    (``time.monotonic`` is the system's clock, the same in every process)."""
    gc.freeze()  # what the imports made is no garbage: keep collections short here too
    rows: list[tuple[float, str, float | None, int | None, bool]] = []
    client = httpx.Client(timeout=30, headers={"Accept-Encoding": "gzip"})
    next_at = time.monotonic()
    while not halt.is_set():
        at, now_phase = time.monotonic() - started, PHASES[phase.value]
        began = time.perf_counter()
        try:
            response = client.get(url + "/metrics")
            _ = response.content
        except httpx.TransportError:
            rows.append((at, now_phase, None, None, False))
        else:
            seconds = time.perf_counter() - began
            status = response.status_code
            rows.append((at, now_phase, seconds, status, starting(status, response.headers)))
        next_at = max(next_at + 1.0, time.monotonic())
        halt.wait(max(0.0, next_at - time.monotonic()))
    send.send(rows)


class RssSampler(Watcher):
    """The server's resident set size (MiB) every ``every`` seconds: (time, pid, MiB)."""

    def __init__(self, exporter: Exporter, started: float, every: float) -> None:
        super().__init__(every)
        self.exporter = exporter
        self.started = started
        self.samples: list[tuple[float, int, float]] = []

    def sample(self) -> None:
        pid = self.exporter.pid
        mib = rss_mib(pid)
        if mib is not None:
            self.samples.append((time.monotonic() - self.started, pid, mib))


def rss_mib(pid: int) -> float | None:
    """``VmRSS`` of a process in MiB; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


@dataclass
class Exported:
    """What the exporter says at the end: its counts and its last state snapshot."""

    predictions: float  # model_predictions_total, summed over its series
    labels: float  # model_labels_total, likewise
    clean_restores: float  # model_exporter_state_restores_total{outcome="restored"}
    snapshots: float
    snapshot_bytes: float
    snapshot_seconds: float


def exported(url: str) -> Exported:
    sums: defaultdict[str, float] = defaultdict(float)
    text = httpx.get(url + "/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("outcome", "restored") == "restored":
                sums[sample.name] += sample.value
    return Exported(
        sums["model_predictions_total"],
        sums["model_labels_total"],
        sums["model_exporter_state_restores_total"],
        sums["model_exporter_state_snapshots_total"],
        sums["model_exporter_state_snapshot_size_bytes"],
        sums["model_exporter_state_snapshot_duration_seconds"],
    )


# -- the run --------------------------------------------------------------------------------------


@dataclass
class Result:
    tally: Tally
    exported: Exported
    restart: Stop
    down_seconds: float
    final: Stop
    scraper: Scraper
    rss: RssSampler
    seconds: float
    errors: list[str]  # ERROR lines and tracebacks in the server's log


def run(args: argparse.Namespace) -> Result:
    folder = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    exporter = Exporter(folder, args.state_interval)
    print(f"exporter on {exporter.url}, state in {exporter.state}, pid {exporter.pid}")
    try:
        return soak(exporter, args)
    except BaseException:
        exporter.server.proc.kill()
        raise


def soak(exporter: Exporter, args: argparse.Namespace) -> Result:
    started = time.monotonic()
    scraper = Scraper(exporter, started)
    rss = RssSampler(exporter, started, args.rss_every)
    senders = [
        Sender(n, exporter, args.rate / args.senders, args.batch) for n in range(args.senders)
    ]
    scraper.start()
    for thread in (rss, *senders):
        thread.start()
    sleep_until(started + args.restart_at)
    restart, down_seconds = restart_once(exporter, scraper)
    sleep_until(started + args.duration)
    for sender in senders:
        sender.halt.set()
        sender.join()  # its batch in flight is finished first
    seconds = time.monotonic() - started
    scraper.stop()
    rss.halt.set()
    rss.join()
    figures = exported(exporter.url)
    final = exporter.stop()
    tally = sum((s.tally for s in senders), Tally())
    errors = [line for line in exporter.log if ERROR.search(line)]
    return Result(tally, figures, restart, down_seconds, final, scraper, rss, seconds, errors)


def sleep_until(when: float) -> None:
    time.sleep(max(0.0, when - time.monotonic()))


def restart_once(exporter: Exporter, scraper: Scraper) -> tuple[Stop, float]:
    """SIGTERM, then the server again on the same port and state; the seconds it was down."""
    print(f"SIGTERM at {time.monotonic() - scraper.started:.0f} s")
    scraper.phase = "restart"
    stop = exporter.stop()
    down = time.monotonic()
    exporter.restart()
    down_seconds = time.monotonic() - down
    scraper.phase = "after"
    print(
        f"exit {stop.status} after {stop.seconds:.1f} s; /-/ready while draining "
        f"{dict(stop.ready)}; ready again {down_seconds:.1f} s later, pid {exporter.pid}"
    )
    return stop, down_seconds


# -- the summary ----------------------------------------------------------------------------------


def verdict(ok: bool, text: str) -> bool:
    print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return ok


def percentiles(seconds: list[float]) -> str:
    if not seconds:
        return "no scrapes"
    ms = np.array(seconds) * 1e3
    return (
        f"p50 {np.percentile(ms, 50):5.1f} ms  p99 {np.percentile(ms, 99):5.1f} ms  "
        f"max {ms.max():5.1f} ms  ({ms.size} scrapes)"
    )


def slowest(scrapes: list[Scrape], count: int = 5) -> str:
    """The ``count`` slowest answered scrapes and when they started."""
    timed = sorted(((s.seconds, s.at) for s in scrapes if s.seconds is not None), reverse=True)
    return ", ".join(f"{seconds * 1e3:.0f} ms at {at:.0f} s" for seconds, at in timed[:count])


def over_time(result: Result, rows: int = 16) -> None:
    """Every k-th RSS sample (at most ``rows``, the last one included), marking a new process,
    with the p50 of the scrapes answered since the row before."""
    samples = result.rss.samples
    print("  time s     pid   RSS MiB   /metrics p50 ms (since the row before)")
    step = max(1, -(-len(samples) // rows))
    shown = samples[::step]
    if samples and shown[-1] is not samples[-1]:
        shown.append(samples[-1])
    last_pid, since = None, -1.0
    for at, pid, mib in shown:
        seconds = [
            s.seconds
            for s in result.scraper.scrapes
            if since < s.at <= at and s.seconds is not None and s.status == 200
        ]
        p50 = f"{np.median(seconds) * 1e3:6.1f}" if seconds else "     -"
        mark = "  (restarted)" if last_pid is not None and pid != last_pid else ""
        print(f"  {at:6.0f}  {pid:6d}  {mib:8.1f}   {p50}{mark}")
        last_pid, since = pid, at


def rss_flat(result: Result, tolerance: float) -> bool:
    third = result.seconds / 3
    middle = [mib for at, _, mib in result.rss.samples if third <= at < 2 * third]
    last = [mib for at, _, mib in result.rss.samples if at >= 2 * third]
    if not middle or not last:
        return verdict(False, "RSS flat after warm-up: too few samples")
    ratio = max(last) / max(middle)
    return verdict(
        ratio <= 1 + tolerance,
        f"RSS flat after warm-up: last third max {max(last):.1f} MiB, middle third max "
        f"{max(middle):.1f} MiB ({ratio:.3f}x, at most {1 + tolerance:.2f}x)",
    )


def counts(what: str, sent: int, accepted: int, exported: float) -> bool:
    return verdict(
        sent == accepted == exported,
        f"{what}: sent {sent:,}, accepted {accepted:,}, exporter counts {exported:,.0f}",
    )


def report(result: Result, args: argparse.Namespace) -> bool:
    t, scraper = result.tally, result.scraper
    e = result.exported
    scrape_status = Counter(s.status for s in scraper.scrapes if s.status is not None)
    unanswered = sum(1 for s in scraper.scrapes if s.status is None)
    print()
    print(
        f"{result.seconds:.0f} s: {t.predictions_accepted / result.seconds:,.0f} predictions/s "
        f"and {t.labels_accepted / result.seconds:,.0f} labels/s accepted; "
        f"write statuses {dict(t.statuses)}; retried: {t.reconnects} not answered "
        f"(server down), {t.overloaded} 429, {t.starting} 503 starting"
    )
    print(f"scrape statuses {dict(scrape_status)}; {unanswered} not answered (server down)")
    print(
        f"state: {e.snapshots:.0f} snapshots since the restart, the last "
        f"{e.snapshot_bytes / 2**20:.1f} MiB in {e.snapshot_seconds * 1e3:.0f} ms"
    )
    for line in result.errors[:10]:
        print(f"server log: {line}")
    print()
    print("the server over time:")
    over_time(result)
    print()
    for phase in ("before", "after"):
        print(
            f"/metrics (gzip) {phase + ' the restart:':<20} {percentiles(scraper.latencies(phase))}"
        )
    print(f"slowest scrapes: {slowest(scraper.scrapes)}")
    print()
    # A 503 starting (with Retry-After, while the state is restored) is asked for: retried.
    waited = t.starting + sum(1 for s in scraper.scrapes if s.starting)
    fivexx = sum(n for code, n in (t.statuses + scrape_status).items() if code >= 500) - waited
    refused = sum(n for code, n in t.statuses.items() if 400 <= code < 500 and code != 429)
    restart = result.restart
    checks = [
        counts("predictions", t.predictions_sent, t.predictions_accepted, e.predictions),
        counts("labels", t.labels_sent, t.labels_accepted, e.labels),
        verdict(fivexx == 0, f"no 5xx: {fivexx} (503 starting, retried, aside: {waited})"),
        verdict(
            refused == 0 and t.lost_batches == 0,
            f"no other refusal: {refused} 4xx (429 aside), {t.lost_batches} batches given up",
        ),
        verdict(
            restart.clean,
            f"restart: /-/ready {dict(restart.ready)} while draining, exit {restart.status} "
            f"after {restart.seconds:.1f} s, back ready {result.down_seconds:.1f} s later",
        ),
        verdict(e.clean_restores >= 1, f"restored the shutdown snapshot: {e.clean_restores:.0f}x"),
        verdict(result.final.status == 0, f"final stop: exit {result.final.status}"),
        verdict(not result.errors, f"server log: {len(result.errors)} ERROR lines"),
        rss_flat(result, args.rss_tolerance),
    ]
    for phase in ("before", "after"):
        seconds = scraper.latencies(phase)
        p99 = float(np.percentile(seconds, 99)) if seconds else float("inf")
        checks.append(
            verdict(
                p99 <= args.max_scrape_p99,
                f"/metrics p99 {phase} the restart: {p99 * 1e3:.1f} ms "
                f"(at most {args.max_scrape_p99 * 1e3:.0f} ms)",
            )
        )
    return all(checks)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of the run")
    parser.add_argument("--restart-at", type=float, help="seconds (default: half way)")
    parser.add_argument("--rate", type=float, default=3000.0, help="predictions/s in all")
    parser.add_argument("--senders", type=int, default=2, help="sender threads")
    parser.add_argument("--batch", type=int, default=500, help="predictions per batch")
    parser.add_argument("--state-interval", type=float, default=5.0, help="state.interval, s")
    parser.add_argument("--rss-every", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--rss-tolerance", type=float, default=0.10)
    parser.add_argument("--max-scrape-p99", type=float, default=0.030, help="seconds")
    args = parser.parse_args()
    if args.restart_at is None:
        args.restart_at = args.duration / 2
    if not 0 < args.restart_at < args.duration:
        parser.error("--restart-at must fall within --duration")
    result = run(args)
    sys.exit(0 if report(result, args) else 1)


if __name__ == "__main__":
    main()
