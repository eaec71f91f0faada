"""Running real processes in tests: the exporter under uvicorn, and promtool."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        # CI installs these (scripts/test); a developer without them gets a clear message.
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed, but CI must have it (scripts/test installs it)")
        pytest.skip(
            f"{name} is not installed (scripts/test installs it: apt-get install prometheus)"
        )
    return path


def promtool_check_metrics(text: str) -> subprocess.CompletedProcess[str]:
    promtool = require_binary("promtool")
    return subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )


def terminate(proc: subprocess.Popen[str]) -> None:
    """Stop a process this test started, by its PID: SIGTERM, then SIGKILL after 15 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class ExporterProcess:
    """``python -m exporter serve`` on 127.0.0.1 with an OS-chosen port."""

    def __init__(self, config: Path | None = None, env: dict[str, str] | None = None) -> None:
        args = [sys.executable, "-m", "exporter", "serve", "--host", "127.0.0.1", "--port", "0"]
        if config is not None:
            args += ["--config", str(config)]
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        self.url = self._wait_for_url(timeout=30)
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def _wait_for_url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                if self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("exporter exited:\n" + "".join(self.output))
                continue
            self.output.append(line)
            match = re.search(r"running on (http://127\.0\.0\.1:\d+)", line)
            if match:
                return match.group(1)
        self.stop()
        raise RuntimeError("exporter did not start in time:\n" + "".join(self.output))

    def stop(self) -> int:
        """SIGTERM, then wait; returns the exit code (uvicorn re-raises SIGTERM: -15)."""
        terminate(self.proc)
        if self.proc.stdout is not None:
            self.output.extend(self.proc.stdout.readlines())
            self.proc.stdout.close()
        if hasattr(self, "client"):
            self.client.close()
        return self.proc.returncode
