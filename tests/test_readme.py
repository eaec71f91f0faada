"""The README, run as written: its defaults block, its model example, every ``curl`` example
(top to bottom on one real exporter, giving the outputs the README shows), and the Python
client's snippets (with the caller's variables, such as ``request_id``, supplied).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from exporter.config import load_settings
from tests.helpers import ROOT, ExporterProcess, require_binary

README = (ROOT / "README.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def block_after(marker: str, lang: str) -> str:
    """The first fenced block of ``lang`` after the line holding ``marker``."""
    start = README.index(marker)
    for match in FENCE.finditer(README, start):
        if match.group(1) == lang:
            return match.group(2)
    raise AssertionError(f"no {lang} block after {marker!r}")


def leaf_keys(value: Any, prefix: str = "") -> set[str]:
    if isinstance(value, dict) and value:
        return {k for key, v in value.items() for k in leaf_keys(v, f"{prefix}{key}.")}
    return {prefix.rstrip(".")}


def test_the_defaults_block_is_every_option_with_its_default(tmp_path: Path) -> None:
    text = block_after("Every option, with its default:", "yaml")
    documented = yaml.safe_load(text)
    defaults = load_settings()
    assert leaf_keys(documented) == leaf_keys(defaults.model_dump()), (
        "the README's defaults block and the settings differ in their keys"
    )
    path = tmp_path / "model-exporter.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_settings(path).model_dump() == defaults.model_dump()
    # ... and it starts the exporter as it is.
    exporter = ExporterProcess(config=path)
    try:
        assert exporter.client.get("/-/ready").status_code == 200
    finally:
        exporter.stop()


def test_the_model_example_block_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(block_after("Declared models go under", "yaml"), encoding="utf-8")
    models = load_settings(path).models
    assert {name: spec.task for name, spec in models.items()} == {
        "fraud": "binary",
        "churn": "multiclass",
        "eta_minutes": "regression",
    }
    assert models["fraud"].categorical == ["zip_code"]


def curl_examples() -> Iterator[tuple[str, str | None]]:
    """Each ``curl`` command of the README's sh blocks, in order, with the output shown under
    it (its ``# ...`` lines), if any."""
    for match in FENCE.finditer(README):
        if match.group(1) != "sh":
            continue
        command: list[str] | None = None
        shown: list[str] = []
        for line in match.group(2).splitlines():
            if line.startswith("curl "):
                if command is not None:
                    yield "\n".join(command), "".join(shown) or None
                command, shown = [line], []
            elif command is not None and line.startswith("#"):
                shown.append(line[1:].strip())
            elif command is not None and not shown and line.strip():
                command.append(line)
            elif command is not None:
                yield "\n".join(command), "".join(shown) or None
                command, shown = None, []
        if command is not None:
            yield "\n".join(command), "".join(shown) or None


def matches(shown: str, output: str) -> bool:
    """``output`` is the JSON ``shown``; ``...`` in ``shown`` stands for anything."""
    if "..." not in shown:
        return bool(json.loads(output) == json.loads(shown))
    pos = 0
    for fragment in shown.split("..."):
        found = output.find(fragment, pos)
        if found < 0:
            return False
        pos = found + len(fragment)
    return output.startswith(shown.split("...")[0]) and output.endswith(shown.split("...")[-1])


def test_matches_is_strict() -> None:
    assert matches('{"a":1}', '{"a": 1}')
    assert not matches('{"a":1}', '{"a":2}')
    assert matches('{"m":[{"a":1,...}]}', '{"m":[{"a":1,"b":2}]}')
    assert not matches('{"m":[{"a":2,...}]}', '{"m":[{"a":1,"b":2}]}')


def test_the_curl_examples_give_the_outputs_shown(tmp_path: Path) -> None:
    require_binary("curl")
    examples = list(curl_examples())
    assert len(examples) >= 10, examples  # the parser found the README's examples
    # The CSV reference example uploads a training sample from the current directory.
    (tmp_path / "training_sample.csv").write_text(
        "amount,country\n10.0,DE\n12.5,FR\n8.1,DE\n55.0,PL\n", encoding="utf-8"
    )
    exporter = ExporterProcess()
    try:
        address = exporter.url.removeprefix("http://")
        for command, shown in examples:
            run = subprocess.run(
                ["bash", "-c", "set -o pipefail; " + command.replace("localhost:17090", address)],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert run.returncode == 0, (command, run.stderr)
            output = run.stdout.strip()
            assert output, command
            if shown is not None:
                assert matches(shown, output), f"{command}\nREADME shows: {shown}\ngot: {output}"
            elif output.startswith("{"):
                assert "reason" not in json.loads(output), (command, output)
    finally:
        exporter.stop()


def test_the_python_client_examples_run_as_written() -> None:
    """The client and scikit-learn snippets, run as written with their variables supplied:
    every prediction and label arrives, each row once."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X_all, y_all = load_breast_cancer(return_X_y=True)
    X, y_true = X_all[:40], y_all[:40]
    fitted = make_pipeline(StandardScaler(), LogisticRegression()).fit(X_all, y_all)
    client_block = block_after("### The Python client", "python")
    sklearn_block = block_after("### scikit-learn", "python")
    exporter = ExporterProcess()
    try:
        names: dict[str, Any] = {"request_id": "py-1", "prediction": 1, "true_label": 1}
        exec(client_block.replace("http://127.0.0.1:17090", exporter.url), names)
        names.update(fitted_pipeline=fitted, X=X, y_true=y_true)
        exec(sklearn_block, names)
        monitor = names["monitor"]
        assert monitor.flush(timeout=10)
        stats = monitor.stats()
        monitor.close()
        # 1 + 2 scored + 40 predictions, 1 + 40 labels: every one accepted.
        assert (stats.sent_events, stats.dropped_rejected, stats.dropped_failed) == (84, 0, 0)
        status = exporter.client.get("/v1/models/fraud").json()["versions"]["v2"]
        assert (status["predictions_total"], status["labels_total"]) == (43, 41)
        assert isinstance(names["proba"], np.ndarray) and names["proba"].shape == (40, 2)
    finally:
        exporter.stop()
