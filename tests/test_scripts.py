"""The shell entry points, run for real on copies in a temporary directory with fake commands
(``apt-get``, ``sudo``, ``python3``) first on PATH: which Python they pick, what they install,
and that the tests run the project's own copy of the Prometheus tools."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT, TOOLS, find_binary, require_binary

MINIMUM = re.search(
    r'^requires-python = ">=(\d+\.\d+)"$', (ROOT / "pyproject.toml").read_text(), re.MULTILINE
)
assert MINIMUM is not None
MINIMUM_PYTHON = MINIMUM.group(1)
TOOL_NAMES = ("promtool", "prometheus", "amtool", "prometheus-alertmanager")


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def fake_python(path: Path, version: str, log: Path) -> Path:
    """A ``python`` that reports ``version`` and logs how it was called (``-m venv ...``)."""
    return executable(
        path,
        f'#!/bin/sh\necho "$(basename "$0") $*" >> {log}\n'
        f'[ "$1" = -c ] && echo {version}\nexit 0\n',
    )


def missing(path: Path) -> Path:
    """A command that fails as a missing one does (what pyenv's shims do for absent versions)."""
    return executable(path, "#!/bin/sh\nexit 127\n")


def repo(tmp_path: Path, *scripts: str) -> Path:
    """A copy of pyproject.toml and of ``scripts``: what they read and run, nothing else."""
    copy = tmp_path / "repo"
    (copy / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", copy)
    for name in scripts:
        shutil.copy(ROOT / "scripts" / name, copy / "scripts" / name)
    return copy


def run(
    copy: Path, script: str, bin_dir: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(copy / "scripts" / script), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(copy), **env},
    )


def pythons(bin_dir: Path, log: Path, **versions: str) -> None:
    """python3 and python3.X on PATH: a version each, or missing."""
    names = ["python3"] + [f"python3.{y}" for y in range(int(MINIMUM_PYTHON.split(".")[1]), 14)]
    for name in names:
        version = versions.get(name.replace(".", "_"))
        if version is None:
            missing(bin_dir / name)
        else:
            fake_python(bin_dir / name, version, log)


# -- which Python ---------------------------------------------------------------------------


@pytest.mark.parametrize("script", ["run", "test"])
def test_too_old_a_python_gets_one_line(tmp_path: Path, script: str) -> None:
    copy = repo(tmp_path, script, "find-python")
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    pythons(bin_dir, log, python3="3.10.12")
    result = run(copy, script, bin_dir, "demo")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"scripts/{script}: model-exporter needs Python >= {MINIMUM_PYTHON}; python3 is 3.10.12 "
        f"(try: sudo apt-get install python{MINIMUM_PYTHON}-venv, "
        f"or PYTHON=/path/to/python{MINIMUM_PYTHON} scripts/{script})"
    ]
    assert not (copy / ".venv").exists()
    assert "-m venv" not in (log.read_text() if log.exists() else "")


def test_no_python_at_all_gets_one_line(tmp_path: Path) -> None:
    copy = repo(tmp_path, "run", "find-python")
    bin_dir = tmp_path / "bin"
    pythons(bin_dir, tmp_path / "calls.log")
    result = run(copy, "run", bin_dir)
    assert result.returncode == 1
    assert result.stderr.startswith("scripts/run: model-exporter needs Python >= ")
    assert "; python3 is missing (try: " in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_newer_python_is_found_when_python3_is_too_old(tmp_path: Path) -> None:
    copy = repo(tmp_path, "find-python")
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    pythons(bin_dir, log, python3="3.10.12", python3_12="3.12.3", python3_13="3.13.0")
    result = run(copy, "find-python", bin_dir, "scripts/run")
    assert (result.returncode, result.stdout, result.stderr) == (0, "python3.12\n", "")


def test_python3_is_preferred_when_recent_enough(tmp_path: Path) -> None:
    copy = repo(tmp_path, "find-python")
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    pythons(bin_dir, log, python3=f"{MINIMUM_PYTHON}.0", python3_13="3.13.0")
    assert run(copy, "find-python", bin_dir, "x").stdout == "python3\n"


def test_python_from_the_environment_is_the_only_candidate(tmp_path: Path) -> None:
    copy = repo(tmp_path, "find-python")
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    pythons(bin_dir, log, python3="3.13.0")
    old = fake_python(tmp_path / "old" / "python", "3.9.2", log)
    result = run(copy, "find-python", bin_dir, "scripts/test", PYTHON=str(old))
    assert result.returncode == 1 and result.stdout == ""
    assert f"; {old} is 3.9.2 (try: " in result.stderr
    good = fake_python(tmp_path / "good" / "python", "3.12.1", log)
    assert run(copy, "find-python", bin_dir, "x", PYTHON=str(good)).stdout == f"{good}\n"


def test_the_minimum_comes_from_pyproject(tmp_path: Path) -> None:
    copy = repo(tmp_path, "find-python")
    pyproject = copy / "pyproject.toml"
    pyproject.write_text(
        re.sub(r'requires-python = ">=[\d.]+"', 'requires-python = ">=3.12"', pyproject.read_text())
    )
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    pythons(bin_dir, log, python3="3.11.9")
    result = run(copy, "find-python", bin_dir, "x")
    assert result.returncode == 1
    assert "needs Python >= 3.12; python3 is 3.11.9" in result.stderr


@pytest.mark.parametrize("venv_version", ["3.10.12", None])
def test_scripts_test_builds_a_venv_where_none_is_good(
    tmp_path: Path, venv_version: str | None
) -> None:
    """No .venv yet, or one a too-old Python made (an earlier failed run): built afresh."""
    copy = repo(tmp_path, "test", "find-python")
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    pythons(bin_dir, log, python3=f"{MINIMUM_PYTHON}.4")
    executable(  # the system packages are another test's business: record the call only
        copy / "scripts" / "install-system-packages",
        f'#!/bin/sh\necho "install-system-packages PYTHON=$PYTHON" >> {log}\n',
    )
    if venv_version is not None:
        fake_python(copy / ".venv" / "bin" / "python", venv_version, log)
    result = run(copy, "test", bin_dir)
    assert result.returncode != 0  # the fake venv has no pip: the script stops there
    calls = log.read_text().splitlines()
    assert "install-system-packages PYTHON=python3" in calls
    assert "python3 -m venv --clear .venv" in calls


def test_scripts_test_keeps_a_good_venv(tmp_path: Path) -> None:
    copy = repo(tmp_path, "test", "find-python")
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    pythons(bin_dir, log, python3=f"{MINIMUM_PYTHON}.4")
    executable(copy / "scripts" / "install-system-packages", "#!/bin/sh\nexit 0\n")
    fake_python(copy / ".venv" / "bin" / "python", f"{MINIMUM_PYTHON}.4", log)
    run(copy, "test", bin_dir)
    assert not any("-m venv" in line for line in log.read_text().splitlines())


# -- what install-system-packages does -------------------------------------------------------


@pytest.fixture
def debs(tmp_path: Path) -> Path:
    """Two small .deb files standing in for Debian's prometheus and prometheus-alertmanager."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed (not a Debian-based machine)")
    out = tmp_path / "debs"
    out.mkdir()
    contents = {
        "prometheus": ("2.42.0+ds-5", ["prometheus", "promtool"]),
        "prometheus-alertmanager": ("0.25.0-1", ["prometheus-alertmanager", "amtool"]),
    }
    for package, (version, binaries) in contents.items():
        tree = tmp_path / "trees" / package
        for name in binaries:
            executable(tree / "usr" / "bin" / name, f"#!/bin/sh\necho {name} {version}\n")
        control = tree / "DEBIAN" / "control"
        control.parent.mkdir()
        control.write_text(
            f"Package: {package}\nVersion: {version}\nArchitecture: all\n"
            "Maintainer: test <test@example.org>\nDescription: a stand-in\n"
        )
        subprocess.run(
            ["dpkg-deb", "--root-owner-group", "--build", str(tree), str(out / f"{package}.deb")],
            check=True,
            capture_output=True,
        )
    return out


def fake_apt(bin_dir: Path, debs: Path, log: Path, lists: Path) -> None:
    """apt-get (download works once ``lists`` exists; update creates it), sudo and a non-root id."""
    executable(
        bin_dir / "apt-get",
        f'#!/bin/sh\necho "apt-get $*" >> {log}\n'
        f'case "$*" in\n'
        f"  *update*) : > {lists} ;;\n"
        f"  *download*) [ -e {lists} ] || exit 100; cp {debs}/*.deb . ;;\n"
        "esac\n",
    )
    executable(bin_dir / "sudo", f'#!/bin/sh\necho "sudo $*" >> {log}\nexec "$@"\n')
    executable(bin_dir / "id", "#!/bin/sh\necho 1000\n")


def test_tools_are_unpacked_not_installed_and_then_reused(tmp_path: Path, debs: Path) -> None:
    copy = repo(tmp_path, "install-system-packages")
    bin_dir, log, lists = tmp_path / "bin", tmp_path / "calls.log", tmp_path / "lists"
    fake_apt(bin_dir, debs, log, lists)
    lists.touch()  # the machine has package lists: no root needed at all
    python = fake_python(tmp_path / "py" / "python3", "3.11.2", tmp_path / "py.log")
    result = run(copy, "install-system-packages", bin_dir, PYTHON=str(python))
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines() == [
        "apt-get download -qq prometheus prometheus-alertmanager"
    ]
    tools = copy / ".tools" / "debian"
    for name in TOOL_NAMES:
        out = subprocess.run([tools / "usr" / "bin" / name], capture_output=True, text=True)
        assert out.stdout.split()[0] == name
    assert sorted((tools / "VERSIONS").read_text().splitlines()) == [
        "prometheus 2.42.0+ds-5",
        "prometheus-alertmanager 0.25.0-1",
    ]
    assert sorted(p.name for p in (copy / ".tools").iterdir()) == ["debian"]  # no leftovers
    log.unlink()
    again = run(copy, "install-system-packages", bin_dir, PYTHON=str(python))
    assert again.returncode == 0 and not log.exists()  # present: nothing downloaded


def test_missing_package_lists_need_root_for_the_update_only(tmp_path: Path, debs: Path) -> None:
    copy = repo(tmp_path, "install-system-packages")
    bin_dir, log, lists = tmp_path / "bin", tmp_path / "calls.log", tmp_path / "lists"
    fake_apt(bin_dir, debs, log, lists)
    python = fake_python(tmp_path / "py" / "python3", "3.11.2", tmp_path / "py.log")
    result = run(copy, "install-system-packages", bin_dir, PYTHON=str(python))
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines() == [
        "apt-get download -qq prometheus prometheus-alertmanager",
        "sudo apt-get update -qq",
        "apt-get update -qq",
        "apt-get download -qq prometheus prometheus-alertmanager",
    ]
    assert os.access(copy / ".tools" / "debian" / "usr" / "bin" / "promtool", os.X_OK)


def test_a_python_without_venv_gets_its_venv_package(tmp_path: Path, debs: Path) -> None:
    copy = repo(tmp_path, "install-system-packages")
    bin_dir, log, lists = tmp_path / "bin", tmp_path / "calls.log", tmp_path / "lists"
    fake_apt(bin_dir, debs, log, lists)
    lists.touch()
    python = executable(  # Debian's python3 without python3-venv: no ensurepip
        tmp_path / "py" / "python3",
        '#!/bin/sh\ncase "$2" in\n  "import ensurepip") exit 1 ;;\n'
        "  *) echo python3.11-venv ;;\nesac\n",
    )
    result = run(copy, "install-system-packages", bin_dir, PYTHON=str(python))
    assert result.returncode == 0, result.stderr
    install = "apt-get install -y -qq --no-install-recommends python3.11-venv"
    assert log.read_text().splitlines()[-2:] == [
        f"sudo env DEBIAN_FRONTEND=noninteractive {install}",
        f"apt-get {install.removeprefix('apt-get ')}",
    ]


def test_wrk_is_for_the_benchmarks_only(tmp_path: Path, debs: Path) -> None:
    copy = repo(tmp_path, "install-system-packages")
    bin_dir, log, lists = tmp_path / "bin", tmp_path / "calls.log", tmp_path / "lists"
    fake_apt(bin_dir, debs, log, lists)
    lists.touch()
    python = fake_python(tmp_path / "py" / "python3", "3.11.2", tmp_path / "py.log")
    run(copy, "install-system-packages", bin_dir, PYTHON=str(python))
    assert "wrk" not in log.read_text()
    # `bench` on a PATH without wrk: only what that branch runs, and the fakes.
    for name in ("bash", "env", "dirname"):
        os.symlink(shutil.which(name) or name, bin_dir / name)
    log.unlink()
    result = subprocess.run(
        [str(copy / "scripts" / "install-system-packages"), "bench"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": str(bin_dir)},
    )
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines() == [
        "sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
        "wrk",
        "apt-get install -y -qq --no-install-recommends wrk",
    ]


# -- which binaries the tests run ------------------------------------------------------------


def test_the_project_copy_wins_over_path(tmp_path: Path, monkeypatch) -> None:
    tools, on_path = tmp_path / "tools", tmp_path / "path"
    for name in ("promtool", "prometheus-alertmanager", "amtool"):
        executable(on_path / name, "#!/bin/sh\n")
    executable(tools / "promtool", "#!/bin/sh\n")
    executable(tools / "alertmanager", "#!/bin/sh\n")
    (tools / "amtool").write_text("not executable")
    monkeypatch.setenv("PATH", str(on_path))
    assert find_binary("promtool", tools=tools) == str(tools / "promtool")
    assert find_binary("amtool", tools=tools) == str(on_path / "amtool")
    assert find_binary("prometheus-alertmanager", "alertmanager", tools=tools) == str(
        tools / "alertmanager"
    )
    assert find_binary("prometheus", tools=tools) is None


@pytest.mark.parametrize("name", TOOL_NAMES)
def test_the_tests_run_the_unpacked_copy(name: str) -> None:
    """Once scripts/install-system-packages has run (always in CI), the tests use its copy,
    even where the machine has the same tool installed."""
    if not (TOOLS / name).exists() and not os.environ.get("CI"):
        pytest.skip("scripts/install-system-packages has not run here")
    path = Path(require_binary(name))
    assert path == TOOLS / name and path.is_relative_to(ROOT)
    version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    assert version.returncode == 0, version.stderr
