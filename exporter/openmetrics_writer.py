"""Time series as OpenMetrics text, for ``promtool tsdb create-blocks-from openmetrics``.

OpenMetrics wants each metric family's samples together, after its ``# TYPE`` (and ``# HELP``)
lines, and the file ended by ``# EOF``; a backtest produces the samples of every family at
every step, interleaved. :class:`OpenMetricsWriter` therefore spools each family's sample lines
to a file of its own as they come (bounded memory, whatever the length of the run) and writes
the families one after the other at :meth:`finish`. Samples are the ones
``prometheus_client`` families hold; their timestamps are the step's, in seconds.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from prometheus_client.metrics_core import Metric

#: OpenMetrics types of prometheus_client's (``untyped`` is ``unknown`` there).
_TYPES = {"untyped": "unknown"}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    number = float(value)
    if -1e15 < number < 1e15:  # finite (NaN compares false): the common case, one test
        return str(int(number)) if number.is_integer() else repr(number)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    return repr(number)


class OpenMetricsWriter:
    """Spools samples per family; :meth:`finish` writes the OpenMetrics file."""

    #: Series whose formatted names are kept (the cache is emptied beyond it).
    MAX_CACHED = 200_000

    def __init__(self, out: Path) -> None:
        self.out = out
        self._dir = Path(tempfile.mkdtemp(prefix=".openmetrics-", dir=out.parent or None))
        self._files: dict[str, IO[str]] = {}
        self._headers: dict[str, str] = {}
        self._series: dict[tuple[str | tuple[str, str], ...], str] = {}
        self.samples = 0

    def add(self, families: Iterable[Metric], timestamp: float) -> None:
        """Every sample of ``families`` at ``timestamp`` (Unix seconds)."""
        stamp = _number(round(timestamp, 3))
        for family in families:
            if not family.samples:
                continue
            spool = self._files.get(family.name)
            if spool is None:
                spool = self._open(family)
            lines = []
            series_of = self._series
            number = _number
            for sample in family.samples:
                labels = sample.labels
                key: tuple[str | tuple[str, str], ...] = (sample.name, *labels.items())
                series = series_of.get(key)
                if series is None:
                    series = series_of[key] = self._format(sample.name, labels)
                if series:
                    lines.append(f"{series} {number(sample.value)} {stamp}\n")
            spool.writelines(lines)
            self.samples += len(lines)

    def _format(self, name: str, labels: dict[str, str]) -> str:
        """A series as its line starts (escaped once, then cached); "" for ``_created``."""
        if name.endswith("_created"):
            return ""
        if len(self._series) > self.MAX_CACHED:
            self._series.clear()  # bounded: a run's series are usually far fewer
        text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        return f"{name}{{{text}}}" if text else name

    def _open(self, family: Metric) -> IO[str]:
        kind = _TYPES.get(family.type, family.type)
        header = (
            f"# HELP {family.name} {_escape(family.documentation)}\n# TYPE {family.name} {kind}\n"
        )
        if family.unit:
            header += f"# UNIT {family.name} {family.unit}\n"
        self._headers[family.name] = header
        spool = (self._dir / f"{len(self._files)}.txt").open("w", encoding="utf-8")
        self._files[family.name] = spool
        return spool

    def finish(self) -> None:
        """Write the OpenMetrics file (atomically: a temporary file renamed over it)."""
        partial = self.out.with_name(f".{self.out.name}.partial")
        with partial.open("w", encoding="utf-8") as out:
            for name, spool in self._files.items():
                spool.close()
                out.write(self._headers[name])
                with Path(spool.name).open(encoding="utf-8") as lines:
                    shutil.copyfileobj(lines, out)
            out.write("# EOF\n")
        partial.replace(self.out)
        self.close()

    def close(self) -> None:
        for spool in self._files.values():
            spool.close()
        shutil.rmtree(self._dir, ignore_errors=True)
