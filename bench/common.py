"""Shared helpers for the benchmarks: servers on 127.0.0.1, wrk runs, seeded payloads."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


class Server:
    """A uvicorn server (the exporter CLI or a baseline app) on an OS-chosen loopback port."""

    def __init__(
        self, args: list[str], env: dict[str, str] | None = None, *, ready: str | None = None
    ) -> None:
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        deadline = time.monotonic() + 30
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            match = re.search(r"running on (http://127\.0\.0\.1:\d+)", line)
            if match:
                self.url = match.group(1)
                break
            if not line and self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {args}")
        else:
            raise RuntimeError(f"server did not start: {args}")
        if ready is not None:  # the exporter listens before it has restored its state
            while time.monotonic() < deadline:
                with (
                    contextlib.suppress(OSError),
                    urllib.request.urlopen(self.url + ready, timeout=2) as answer,
                ):
                    if answer.status == 200:
                        return
                time.sleep(0.02)
            raise RuntimeError(f"server did not become ready: {args}")

    @classmethod
    def exporter(cls, config: str) -> Server:
        path = Path(tempfile.mkstemp(suffix=".yaml")[1])
        path.write_text(config)
        return cls(
            [
                sys.executable,
                "-m",
                "exporter",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--config",
                str(path),
                "--log-level",
                "info",
            ],
            ready="/-/ready",
        )

    @classmethod
    def uvicorn_app(cls, target: str) -> Server:
        return cls(
            [
                sys.executable,
                "-m",
                "uvicorn",
                target,
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--workers",
                "1",
                "--no-access-log",
            ]
        )

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        if self.proc.stdout:
            self.proc.stdout.close()


def prediction_body(model: str, events: int, features: int, seed: int, id_token: str) -> str:
    """A JSON batch whose ids contain ``id_token``, which wrk replaces per request."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(events, features))
    preds = rng.integers(0, 2, events)
    batch = {
        "model": model,
        "model_version": "v1",
        "events": [
            {
                "id": f"{id_token}-{i}",
                "features": {f"f{j}": float(values[i, j]) for j in range(features)},
                "prediction": int(preds[i]),
            }
            for i in range(events)
        ],
    }
    return json.dumps(batch)


LUA_TEMPLATE = """
local body_template = io.open("{body_file}"):read("*a")
local counter = 0
local thread_id = 0
setup = function(thread)
  thread:set("thread_id", thread_id)
  thread_id = thread_id + 1
end
request = function()
  counter = counter + 1
  local token = "R" .. thread_id .. "x" .. counter
  local body = body_template:gsub("{token}", token)
  return wrk.format("POST", "{path}", {{["Content-Type"] = "application/json"}}, body)
end
"""


def wrk(
    url: str, *, duration: float, connections: int, script: str | None = None, threads: int = 1
) -> dict[str, float]:
    """Run wrk; returns requests/s, latency percentiles (s) and non-2xx count."""
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("wrk is not installed: scripts/install-system-packages bench installs it")
    args = [
        binary,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    if script:
        args += ["-s", script]
    out = subprocess.run([*args, url], capture_output=True, text=True, timeout=duration + 60)
    text = out.stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if found is None:
        raise RuntimeError(f"wrk failed ({out.returncode}):\n{text}\n{out.stderr}")
    rps = float(found.group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    result = {"rps": rps, "non2xx": float(non2xx.group(1)) if non2xx else 0.0}
    for pct in ("50", "90", "99"):
        m = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)\b", text)
        if m:
            scale = {"us": 1e-6, "ms": 1e-3, "s": 1.0}[m.group(2)]
            result[f"p{pct}"] = float(m.group(1)) * scale
    errors = re.search(r"Socket errors:.*", text)
    if errors:
        result["socket_errors"] = 1.0
    return result


def ingest_script(tmp: Path, model: str, events: int, features: int, seed: int = 0) -> Path:
    token = "@@ID@@"
    body_file = tmp / f"body-{model}.json"
    body_file.write_text(prediction_body(model, events, features, seed, token))
    script = tmp / f"post-{model}.lua"
    script.write_text(
        LUA_TEMPLATE.replace("{body_file}", str(body_file))
        .replace("{token}", token.replace("@", "%@"))
        .replace("{path}", "/v1/predictions")
        .replace("{{", "{")
        .replace("}}", "}")
    )
    return script
