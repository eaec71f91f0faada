"""Configuration: defaults, YAML, environment overrides, errors naming key and value."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from exporter.config import (
    ConfigError,
    Settings,
    format_duration,
    load_settings,
    parse_duration,
    parse_env_list,
)
from tests.helpers import ROOT


def test_defaults_need_no_file() -> None:
    s = load_settings()
    assert s.port == 17090 and s.host == "0.0.0.0"
    assert s.window_labels == ["1h"]
    # The worst case at these limits stays within 50k series and 1 GiB (bench/worst_case.py):
    assert s.drift.sample_size == 5000 and s.limits.max_series == 50_000
    assert (s.limits.max_models, s.limits.max_versions_per_model, s.limits.max_classes) == (
        10,
        3,
        20,
    )
    assert s.drift.reference_size == 10_000


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
    assert "\n" not in str(info.value)


def test_a_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_bytes(b"port: \xff\n")
    with pytest.raises(ConfigError, match=r"^config file '.*bad\.yaml' is not UTF-8: .* byte 6$"):
        load_settings(cfg)


def test_invalid_environment_override_names_the_key(monkeypatch) -> None:
    monkeypatch.setenv("MODEL_EXPORTER_LIMITS__MAX_MODELS", "zero")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith(
        "invalid configuration: config key 'limits.max_models' "
        "(MODEL_EXPORTER_LIMITS__MAX_MODELS): Input should be a valid integer"
    )
    assert str(info.value).endswith("(got 'zero')")


#: Every list-valued setting, the variable that sets it, and what "a, b" in it becomes.
LIST_SETTINGS = {
    "windows": ("MODEL_EXPORTER_WINDOWS", ("5m", "1h"), [300.0, 3600.0]),
    "models.*.categorical": (
        "MODEL_EXPORTER_MODELS__FRAUD__CATEGORICAL",
        ("zip", "channel"),
        ["zip", "channel"],
    ),
    "auth.write_tokens": (
        "MODEL_EXPORTER_AUTH__WRITE_TOKENS",
        ("tok-1", "tok-2"),
        ["tok-1", "tok-2"],
    ),
    "auth.metrics_tokens": ("MODEL_EXPORTER_AUTH__METRICS_TOKENS", ("r-1", "r-2"), ["r-1", "r-2"]),
}


def _list_value(settings, key: str):
    if key == "windows":
        return settings.windows
    if key.startswith("auth."):
        return getattr(settings.auth, key.removeprefix("auth."))
    return settings.models["fraud"].categorical


def test_every_list_setting_is_tested() -> None:
    """A new list-valued option fails here until LIST_SETTINGS covers it."""

    def lists(model: type, prefix: str) -> set[str]:
        found = set()
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if getattr(annotation, "__origin__", None) is list:
                found.add(prefix + name)
            elif getattr(annotation, "__origin__", None) is dict:
                found |= lists(annotation.__args__[1], f"{prefix}{name}.*.")
            elif hasattr(annotation, "model_fields"):
                found |= lists(annotation, f"{prefix}{name}.")
        return found

    assert lists(Settings, "") == set(LIST_SETTINGS)


@pytest.mark.parametrize("key", sorted(LIST_SETTINGS))
@pytest.mark.parametrize(
    "spelling", ["{a},{b}", " {a} , {b} ", "[{a},{b}]", "[ {a}, '{b}' ]", '["{a}", "{b}"]']
)
def test_list_settings_from_the_environment(monkeypatch, key: str, spelling: str) -> None:
    variable, (a, b), expected = LIST_SETTINGS[key]
    monkeypatch.setenv(variable, spelling.format(a=a, b=b))
    if key != "windows":
        monkeypatch.setenv("MODEL_EXPORTER_MODELS__FRAUD__TASK", "binary")
    assert _list_value(load_settings(), key) == expected


def test_an_empty_list_variable_is_an_empty_list(monkeypatch) -> None:
    monkeypatch.setenv("MODEL_EXPORTER_MODELS__FRAUD__TASK", "binary")
    monkeypatch.setenv("MODEL_EXPORTER_MODELS__FRAUD__CATEGORICAL", "")
    assert load_settings().models["fraud"].categorical == []
    monkeypatch.setenv("MODEL_EXPORTER_WINDOWS", "")  # but windows needs at least one
    with pytest.raises(ConfigError, match=r"'windows' \(MODEL_EXPORTER_WINDOWS\): List should"):
        load_settings()


def test_nested_sections_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("MODEL_EXPORTER_DRIFT__CORRECTION", "bonferroni")
    monkeypatch.setenv("MODEL_EXPORTER_JOIN", '{"label_ttl": "1m", "max_pending_labels": 7}')
    monkeypatch.setenv("MODEL_EXPORTER_JOIN__MAX_PENDING_LABELS", "9")  # deeper wins
    monkeypatch.setenv("MODEL_EXPORTER_MODELS", '{"churn": {"task": "multiclass"}}')
    monkeypatch.setenv("MODEL_EXPORTER_MODELS__FRAUD__TASK", "binary")
    monkeypatch.setenv("MODEL_EXPORTER_CONFIG", "not/a/setting.yaml")  # the CLI's, ignored
    monkeypatch.setenv("MODEL_EXPORTER_NO_SUCH_OPTION", "x")  # top-level unknowns: ignored
    s = load_settings()
    assert s.drift.correction == "bonferroni"
    assert (s.join.label_ttl, s.join.max_pending_labels) == (60.0, 9)
    assert {name: spec.task for name, spec in s.models.items()} == {
        "churn": "multiclass",
        "fraud": "binary",
    }
    assert Settings().drift.correction == "bonferroni"  # create_app's default reads it too


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        # values that cannot be decoded: the variable's own type is wrong
        (
            "MODEL_EXPORTER_WINDOWS",
            "5m,,1h",
            "config key 'windows' (MODEL_EXPORTER_WINDOWS): "
            "item 2 of the list is empty (got '5m,,1h')",
        ),
        (
            "MODEL_EXPORTER_WINDOWS",
            "[5m,1h",
            "config key 'windows' (MODEL_EXPORTER_WINDOWS): "
            "a list that starts with '[' must end with ']' (got '[5m,1h')",
        ),
        (
            "MODEL_EXPORTER_MODELS",
            "{fraud: {task: binary}}",
            "config key 'models' (MODEL_EXPORTER_MODELS): expected a JSON object: Expecting "
            "property name enclosed in double quotes: line 1 column 2 (char 1) "
            "(got '{fraud: {task: binary}}')",
        ),
        (
            "MODEL_EXPORTER_MODELS",
            '["fraud"]',
            "config key 'models' (MODEL_EXPORTER_MODELS): expected a JSON object "
            "(got '[\"fraud\"]')",
        ),
        (
            "MODEL_EXPORTER_DRIFT",
            "5",
            "config key 'drift' (MODEL_EXPORTER_DRIFT): expected a JSON object (got '5')",
        ),
        (
            "MODEL_EXPORTER_PORT__HTTP",
            "80",
            "config key 'port.http' (MODEL_EXPORTER_PORT__HTTP): "
            "'port' has no keys below it (got '80')",
        ),
        # values that decode but fail validation
        (
            "MODEL_EXPORTER_WINDOWS",
            "5m,1hour",
            "config key 'windows.1' (MODEL_EXPORTER_WINDOWS): expected a duration such as "
            "'30s', '5m', '1h' or '1d' (got '1hour')",
        ),
        (
            "MODEL_EXPORTER_PORT",
            "http",
            "config key 'port' (MODEL_EXPORTER_PORT): Input should be a valid integer, "
            "unable to parse string as an integer (got 'http')",
        ),
        (
            "MODEL_EXPORTER_AUTO_REGISTER",
            "maybe",
            "config key 'auto_register' (MODEL_EXPORTER_AUTO_REGISTER): "
            "Input should be a valid boolean, unable to interpret input (got 'maybe')",
        ),
        (
            "MODEL_EXPORTER_DRIFT__ALPHA",
            "2",
            "config key 'drift.alpha' (MODEL_EXPORTER_DRIFT__ALPHA): "
            "Input should be less than 1 (got '2')",
        ),
        (
            "MODEL_EXPORTER_DRIFT__SAMPEL_SIZE",
            "5",
            "config key 'drift.sampel_size' (MODEL_EXPORTER_DRIFT__SAMPEL_SIZE): "
            "Extra inputs are not permitted (got '5')",
        ),
        (
            "MODEL_EXPORTER_MODELS__FRAUD__TASK",
            "ranking",
            "config key 'models.fraud.task' (MODEL_EXPORTER_MODELS__FRAUD__TASK): "
            "Input should be 'binary', 'multiclass' or 'regression' (got 'ranking')",
        ),
    ],
)
def test_bad_environment_values_are_one_line(monkeypatch, variable, value, expected) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value) == f"invalid configuration: {expected}"


def test_every_bad_variable_is_named_at_once(monkeypatch) -> None:
    monkeypatch.setenv("MODEL_EXPORTER_WINDOWS", "[5m")
    monkeypatch.setenv("MODEL_EXPORTER_MODELS", "{")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "(MODEL_EXPORTER_MODELS)" in message and "(MODEL_EXPORTER_WINDOWS)" in message
    assert message.count("config key") == 2 and "\n" not in message


def test_a_value_from_elsewhere_is_not_blamed_on_a_variable(tmp_path: Path, monkeypatch) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("drift: {alpha: 7}\n")
    monkeypatch.setenv("MODEL_EXPORTER_DRIFT", '{"bins": 5}')  # merged with the file's drift
    monkeypatch.setenv("MODEL_EXPORTER_PORT", "18000")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, port=99999)
    message = str(info.value)
    assert "config key 'drift.alpha': Input should be less than 1 (got 7)" in message
    assert "config key 'port': Input should be less than or equal to 65535" in message
    assert "MODEL_EXPORTER" not in message


@pytest.mark.parametrize(
    ("text", "items"),
    [
        ("5m,1h", ["5m", "1h"]),
        ("  5m ,\t1h  ", ["5m", "1h"]),
        ("[5m,1h]", ["5m", "1h"]),
        ("[ '5m' , \"1h\" ]", ["5m", "1h"]),
        ('["5m", 3600]', ["5m", 3600]),
        ("single", ["single"]),
        ("", []),
        ("[]", []),
        ("[ ]", []),
        ("'a,b'", ["'a", "b'"]),  # quotes are per item; a comma in an item needs JSON
        ('["a,b"]', ["a,b"]),
    ],
)
def test_parse_env_list(text: str, items: list) -> None:
    assert parse_env_list(text) == items


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,,b", "item 2 of the list is empty"),
        ("a,b,", "item 3 of the list is empty"),
        ("[a,]", "item 2 of the list is empty"),
        ("[a,b", "must end with ']'"),
    ],
)
def test_parse_env_list_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_env_list(text)


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


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("MODEL_EXPORTER_WINDOWS", "[5m,1h", "windows"),
        ("MODEL_EXPORTER_DRIFT__SAMPLE_SIZE", "many", "drift.sample_size"),
    ],
)
def test_cli_prints_one_line_for_a_bad_variable(variable: str, value: str, key: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", variable: value},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"model-exporter: invalid configuration: config key '{key}' ")
    assert f"({variable})" in lines[0] and lines[0].endswith(f"(got {value!r})")


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
