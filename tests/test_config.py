"""Configuration: defaults, YAML, environment overrides, errors naming key and value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from exporter.config import ConfigError, format_duration, load_settings, parse_duration
from tests.helpers import ROOT


def test_defaults_need_no_file() -> None:
    s = load_settings()
    assert s.port == 17090 and s.host == "0.0.0.0"
    assert s.window_labels == ["1h"]
    assert s.drift.sample_size >= 10_000
    assert s.drift.reference_size == 1000


def test_yaml_then_environment_then_arguments(tmp_path: Path, monkeypatch) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("port: 18000\nwindows: [5m, 1h, 24h]\ndrift: {sample_size: 5000}\n")
    s = load_settings(cfg)
    assert (s.port, s.window_labels, s.drift.sample_size) == (18000, ["5m", "1h", "1d"], 5000)
    monkeypatch.setenv("MODEL_EXPORTER_DRIFT__SAMPLE_SIZE", "20000")
    monkeypatch.setenv("MODEL_EXPORTER_PORT", "18001")
    s = load_settings(cfg)
    assert (s.port, s.drift.sample_size) == (18001, 20000)
    assert load_settings(cfg, port=18002).port == 18002


def test_example_config_in_readme_is_valid_and_complete(tmp_path: Path) -> None:
    """The README's example config parses and mentions every option."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("```yaml\n# model-exporter.yaml")
    block = readme[start + len("```yaml\n") : readme.index("```", start + 7)]
    cfg = tmp_path / "example.yaml"
    cfg.write_text(block)
    settings = load_settings(cfg)
    assert settings.models  # the example declares models

    def keys(model: object, prefix: str = "") -> set[str]:
        out = set()
        for name in type(model).model_fields:
            value = getattr(model, name)
            if hasattr(type(value), "model_fields") and name != "models":
                out |= keys(value, f"{prefix}{name}.")
            else:
                out.add(f"{prefix}{name}")
        return out

    for key in keys(settings):
        assert f"{key.split('.')[-1]}:" in block, f"README example config lacks {key}"


@pytest.mark.parametrize(
    ("yaml_text", "fragments"),
    [
        ("drift: {sample_size: -3}", ["drift.sample_size", "-3"]),
        ("windows: [5m, 1hour]", ["windows.1", "'1hour'"]),
        ("windows: [60s, 1m]", ["windows", "distinct"]),
        ("join: {prediction_ttl: 0}", ["join.prediction_ttl", "0"]),
        ("drfit: {}", ["drfit", "Extra inputs"]),
        ("models: {a: {task: ranking}}", ["models.a.task", "'ranking'"]),
        ("models: {a: {task: regression, positive_class: 1}}", ["models.a", "positive_class"]),
        ("port: 99999", ["port", "99999"]),
        ("- just\n- a list", ["mapping"]),
        ("port: [", ["not valid YAML"]),
    ],
)
def test_invalid_config_names_key_and_value(tmp_path: Path, yaml_text: str, fragments) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml_text)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def test_invalid_environment_override_names_the_key(monkeypatch) -> None:
    monkeypatch.setenv("MODEL_EXPORTER_LIMITS__MAX_MODELS", "zero")
    with pytest.raises(ConfigError, match=r"limits\.max_models.*'zero'"):
        load_settings()


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5m", 300), ("1h30m", 5400), ("1d", 86400), (15, 15), ("250ms", 0.25)],
)
def test_durations(text, seconds) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(parse_duration(text))) == seconds


@pytest.mark.parametrize("bad", ["", "5", "m5", "5 m", "-5m", True, None, "1x"])
def test_bad_durations(bad) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_cli_exits_with_the_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("quality: {min_samples: 0}\n")
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "serve", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert "quality.min_samples" in result.stderr and "0" in result.stderr


def test_cli_reads_the_config_path_from_the_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("port: -1\n")
    result = subprocess.run(
        [sys.executable, "-m", "exporter"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"MODEL_EXPORTER_CONFIG": str(cfg), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2 and "'port'" in result.stderr


def test_cli_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0 and result.stdout.startswith("model-exporter ")
