"""Ingest throughput: batches of 1000 events x 20 numeric features posted by wrk on loopback.

Runs, one after the other on the same machine and load, three one-worker uvicorn servers:
the exporter, a FastAPI + pydantic baseline that only parses the batch, and a server that only
reads the body. Prints events/s and the ratios. Target (issue 2): >= 100,000 events/s.

    .venv/bin/python bench/ingest.py [--duration 10] [--connections 4]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.common import Server, ingest_script, wrk

EVENTS, FEATURES = 1000, 20
TARGET = 100_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    script = ingest_script(tmp, "bench", EVENTS, FEATURES)
    runs = {
        "exporter (msgspec + store)": lambda: Server.exporter("log_level: warning\n"),
        "baseline: FastAPI + pydantic parse only": lambda: Server.uvicorn_app(
            "bench.baselines:pydantic_app"
        ),
        "ceiling: read body, do nothing": lambda: Server.uvicorn_app(
            "bench.baselines:read_only_app"
        ),
    }
    results: dict[str, float] = {}
    for name, start in runs.items():
        server = start()
        try:
            wrk(
                server.url + "/v1/predictions",
                duration=2,
                connections=args.connections,
                script=str(script),
            )  # warm-up
            r = wrk(
                server.url + "/v1/predictions",
                duration=args.duration,
                connections=args.connections,
                script=str(script),
            )
        finally:
            server.stop()
        if r["non2xx"]:
            raise SystemExit(f"{name}: {int(r['non2xx'])} requests failed")
        results[name] = r["rps"] * EVENTS
        print(f"{name:45s} {results[name]:>12,.0f} events/s  (p99 {r.get('p99', 0) * 1e3:.1f} ms)")
    ours = results["exporter (msgspec + store)"]
    print()
    baseline = results["baseline: FastAPI + pydantic parse only"]
    print(f"exporter / pydantic baseline: {ours / baseline:.2f}x")
    print(f"exporter / read-only ceiling: {ours / results['ceiling: read body, do nothing']:.2f}x")
    print(f"target {TARGET:,} events/s: {'met' if ours >= TARGET else 'NOT met'} ({ours:,.0f})")


if __name__ == "__main__":
    main()
