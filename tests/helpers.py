"""Running real processes in tests: the exporter under uvicorn, and the Prometheus tools."""

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
#: Where scripts/install-system-packages unpacks Debian's prometheus and prometheus-alertmanager.
TOOLS = ROOT / ".tools" / "debian" / "usr" / "bin"


def find_binary(*names: str, tools: Path = TOOLS) -> str | None:
    """The first of ``names`` unpacked in ``tools``, else the first on PATH, else ``None``.

    The project's copy wins over one installed on the machine, so that every run tests the
    same versions whatever the machine has.
    """
    for name in names:
        if os.access(tools / name, os.X_OK):
            return str(tools / name)
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    return None


def require_binary(*names: str) -> str:
    """The path of a tool the test runs (several names: alternatives), or skip; fail in CI."""
    path = find_binary(*names)
    if path is None:
        where = f"neither in {TOOLS.relative_to(ROOT)} nor on PATH"
        # CI unpacks these (scripts/test); a developer without them gets a clear message.
        if os.environ.get("CI"):
            pytest.fail(f"{names[0]} is {where}, but CI must have it (scripts/test unpacks it)")
        pytest.skip(f"{names[0]} is {where} (scripts/install-system-packages unpacks it there)")
    return path


#: Where Debian's alertmanager reads its default notification templates (a path built in).
DEBIAN_TEMPLATES = Path("/usr/share/prometheus/alertmanager/default.tmpl")


def alertmanager_command(binary: str) -> list[str]:
    """How to run Debian's alertmanager unpacked in ``.tools``: it reads its default templates
    from a path built in (``/usr/share/prometheus/...``), which only installing the package
    creates (and installing it starts a service). Where they are missing, it runs in a mount
    namespace of its own (``unshare --mount``, root only) in which ``/usr/share`` is an
    overlay of the unpacked package's ``usr/share`` on the machine's: nothing changes outside
    that process. Elsewhere (an upstream build, or the package installed) it runs as is."""
    unpacked = TOOLS.parent.parent  # .tools/debian
    if DEBIAN_TEMPLATES.exists() or not binary.startswith(str(unpacked)):
        return [binary]
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        reason = f"{DEBIAN_TEMPLATES} is missing and cannot be provided without root and unshare"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    overlay = 'mount -t overlay overlay -o "lowerdir=$1/usr/share:/usr/share" /usr/share'
    script = f'{overlay} && shift && exec "$@"'
    return [unshare, "--mount", "--", "sh", "-c", script, "sh", str(unpacked), binary]


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
            # No drain on SIGTERM unless a test asks (exporter/server.py): stop() stays quick.
            env={**os.environ, "MODEL_EXPORTER_SHUTDOWN__DRAIN": "0s", **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        self.url = self._wait_for_url(timeout=30)
        self.client = httpx.Client(base_url=self.url, timeout=10)
        self._wait_until_ready(timeout=30)

    def _wait_until_ready(self, timeout: float) -> None:
        """The listener opens before the state snapshot is restored (503 "starting" until
        then): wait for ``/-/ready``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.client.get("/-/ready").status_code == 200:
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("exporter did not become ready in time:\n" + "".join(self.output))

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
        """SIGTERM, then wait; returns the exit code (0 after a clean stop)."""
        terminate(self.proc)
        if self.proc.stdout is not None:
            self.output.extend(self.proc.stdout.readlines())
            self.proc.stdout.close()
        if hasattr(self, "client"):
            self.client.close()
        return self.proc.returncode
