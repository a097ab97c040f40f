"""Runtime manager for Azure AutoML: finding Python, known versions, records, install and the CLI.

Everything here runs without network except ``test_real_install``, which installs the real 1.62 runtime into
``MODELLENS_RUNTIMES`` (default ``~/.modellens/runtimes``; `make test` installs it before the tests run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli import runtime as cli_runtime
from core.errors import MissingDependencyError
from core.runtimes import registry as runtimes
from tests.conftest import ROOT


def fake_python(path: Path, version: str = "3.10.13", *, real: Path | None = None, fail: bool = False) -> Path:
    """A shell script that answers the version probe like a Python would (or fails like a pyenv shim)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fail:
        body = "echo 'pyenv: python3.10: command not found' >&2\nexit 127\n"
    else:
        body = f"echo {version}\n" + (f"echo {real}\n" if real else "")
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


@pytest.fixture
def fake_home(tmp_path):
    """An empty HOME, PATH and no pyenv/uv: each test adds the interpreters it needs."""
    home = tmp_path / "home"
    (home / "bin").mkdir(parents=True)
    return home, {"HOME": str(home), "PATH": str(home / "bin")}


def test_explicit_python_comes_first(fake_home):
    home, env = fake_home
    explicit = fake_python(home / "explicit" / "python", "3.10.4")
    env["MODELLENS_AUTOML_PYTHON"] = str(fake_python(home / "envvar" / "python", "3.10.5"))
    assert runtimes.find_python(str(explicit), env=env) == explicit


def test_explicit_python_of_the_wrong_version_is_an_error_not_replaced(fake_home):
    home, env = fake_home
    fake_python(home / "bin" / "python3.10")
    wrong = fake_python(home / "py311" / "python", "3.11.7")
    with pytest.raises(MissingDependencyError, match=r"is Python 3\.11\.7; the runtime needs Python 3\.10"):
        runtimes.find_python(str(wrong), env=env)
    with pytest.raises(MissingDependencyError, match="not a working Python"):
        runtimes.find_python(str(home / "missing"), env=env)


def test_env_variable_then_path(fake_home):
    home, env = fake_home
    on_path = fake_python(home / "bin" / "python3.10")
    chosen = fake_python(home / "envvar" / "python", "3.10.1")
    assert runtimes.find_python(env={**env, "MODELLENS_AUTOML_PYTHON": str(chosen)}) == chosen
    wrong = fake_python(home / "wrong" / "python", "3.12.1")
    assert runtimes.find_python(env={**env, "MODELLENS_AUTOML_PYTHON": str(wrong)}) == on_path


def test_a_failing_shim_on_path_falls_through_to_pyenv_newest_patch_first(fake_home):
    home, env = fake_home
    fake_python(home / "bin" / "python3.10", fail=True)
    versions = home / ".pyenv" / "versions"
    fake_python(versions / "3.10.9" / "bin" / "python", "3.10.9")
    newest = fake_python(versions / "3.10.13" / "bin" / "python", "3.10.13")
    fake_python(versions / "3.11.7" / "bin" / "python", "3.11.7")
    assert runtimes.find_python(env=env) == newest
    other = home / "elsewhere"
    moved = fake_python(other / "versions" / "3.10.2" / "bin" / "python", "3.10.2")
    assert runtimes.find_python(env={**env, "PYENV_ROOT": str(other)}) == moved


def test_pyenv_before_uv_and_uv_last(fake_home):
    home, env = fake_home
    uv = home / ".local" / "share" / "uv" / "python"
    fake_python(uv / "cpython-3.10.8-linux-x86_64-gnu" / "bin" / "python3.10", "3.10.8")
    newest_uv = fake_python(uv / "cpython-3.10.14-linux-x86_64-gnu" / "bin" / "python3.10", "3.10.14")
    assert runtimes.find_python(env=env) == newest_uv
    pyenv = fake_python(home / ".pyenv" / "versions" / "3.10.1" / "bin" / "python", "3.10.1")
    assert runtimes.find_python(env=env) == pyenv


def test_a_shim_resolves_to_the_interpreter_it_runs(fake_home):
    home, env = fake_home
    real = fake_python(home / "real" / "python3.10")
    fake_python(home / "bin" / "python3.10", real=real)
    assert runtimes.find_python(env=env) == real


def test_python_39_only_where_allowed(fake_home):
    home, env = fake_home
    py39 = fake_python(home / "bin" / "python3.9", "3.9.18")
    assert runtimes.find_python(minors=("3.10", "3.9"), env=env) == py39
    with pytest.raises(MissingDependencyError, match="No Python 3.10 found"):
        runtimes.find_python(env=env)


def test_no_python_says_what_to_install_and_how_to_point_at_it(fake_home):
    _, env = fake_home
    with pytest.raises(MissingDependencyError) as caught:
        runtimes.find_python(env=env)
    message = str(caught.value)
    assert "install" in message and "--python" in message and "MODELLENS_AUTOML_PYTHON" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("1.62.0", "1.62.0"),
        ("1.60.0", "1.60.0"),
        ("1.62.0.post1", "1.62.0"),
        ("1.61", "1.61.0"),
        ("1.61.3", "1.61.0"),
        ("1.59.0", "1.60.0"),
        ("1.70.0", "1.62.0"),
        ("2.0", "1.62.0"),
        (None, "1.62.0"),
        ("latest", "1.62.0"),
    ],
)
def test_nearest_known(version, expected):
    assert runtimes.nearest_known(version) == expected


def test_known_versions_agree_with_their_constraints_files():
    for version, known in runtimes.KNOWN_VERSIONS.items():
        pins = set(known.constraints.read_text().split())
        assert {"setuptools==65.5.0", "xgboost==1.5.2", "numpy==1.23.5", "scikit-learn==1.5.2"} <= pins, version
        assert set(known.requirements) <= pins, version
        assert known.python_minors[0] == "3.10" and known.package_count == 116
    assert runtimes.KNOWN_VERSIONS["1.60.0"].python_minors == ("3.10", "3.9")
    assert runtimes.KNOWN_VERSIONS["1.62.0"].python_minors == ("3.10",)
    assert "azureml-automl-runtime==1.62.0.post1" in runtimes.KNOWN_VERSIONS["1.62.0"].requirements


def test_runtimes_root(settings, tmp_path):
    assert runtimes.runtimes_root(settings, env={}) == settings.home / "runtimes"
    assert runtimes.runtimes_root(settings, env={"MODELLENS_RUNTIMES": str(tmp_path)}) == tmp_path


def fake_runtime(root: Path, version: str, *, python_runs: bool = True) -> Path:
    """A runtime folder with a record and a venv interpreter that runs (exit 0) or not."""
    folder = root / f"{runtimes.NAME}-{version}"
    python = folder / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text("#!/bin/sh\nexit 0\n" if python_runs else "#!/bin/sh\nexit 1\n")
    python.chmod(0o755)
    record = {
        "name": runtimes.NAME,
        "version": version,
        "python": "/usr/bin/python3.10",
        "python_version": "3.10.13",
        "packages": {"numpy": "1.23.5"},
        "xgboost": "cpu",
        "created": "2026-01-02T03:04:05+00:00",
    }
    (folder / runtimes.RECORD_FILE).write_text(json.dumps(record))
    return folder


def test_installed_get_runtime_and_remove(tmp_path):
    root = tmp_path / "runtimes"
    assert runtimes.installed(root) == [] and runtimes.get_runtime(root) is None
    fake_runtime(root, "1.62.0")
    fake_runtime(root, "1.60.0")
    (root / f"{runtimes.NAME}-1.61.0" / "venv").mkdir(parents=True)  # half-built: no record
    (root / f"{runtimes.NAME}-9.9.9").mkdir()
    (root / f"{runtimes.NAME}-9.9.9" / runtimes.RECORD_FILE).write_text("{not json")  # unreadable: skipped
    records = runtimes.installed(root)
    assert [r.version for r in records] == ["1.60.0", "1.62.0"]
    assert records[0].python_executable == root / f"{runtimes.NAME}-1.60.0" / "venv" / "bin" / "python"
    assert records[0].packages == {"numpy": "1.23.5"} and records[0].path.name == f"{runtimes.NAME}-1.60.0"
    assert runtimes.get_runtime(root, "1.60.0").version == "1.60.0"
    assert runtimes.get_runtime(root, "1.61.0").version == "1.62.0"  # nearest installed; a tie goes to the newer
    assert runtimes.get_runtime(root, "1.62.0.post1").version == "1.62.0"
    assert runtimes.get_runtime(root).version == "1.62.0"
    assert runtimes.remove(root, "1.62.0") is True
    assert runtimes.remove(root, "1.62.0") is False
    assert runtimes.remove(root, "1.61.0") is True  # half-built folders can be removed too
    assert [r.version for r in runtimes.installed(root)] == ["1.60.0"]
    with pytest.raises(ValueError, match="not a runtime version"):
        runtimes.remove(root, "../../etc")


def test_install_returns_an_existing_runtime_at_once(tmp_path):
    root = tmp_path / "runtimes"
    fake_runtime(root, "1.62.0")
    said: list[str] = []
    record = runtimes.install(root, "1.62.0", python="/nonexistent", progress=said.append)  # never looked for
    assert record.version == "1.62.0" and record.created == "2026-01-02T03:04:05+00:00"
    assert any("already installed" in line for line in said)


def test_failed_install_leaves_nothing_and_quotes_the_output(tmp_path):
    root = tmp_path / "runtimes"
    fake_runtime(root, "1.60.0", python_runs=False)  # a record whose Python no longer runs: rebuilt
    base = tmp_path / "py" / "python3.10"
    base.parent.mkdir()
    script = 'if [ "$1" = "-m" ]; then echo "Error: ensurepip is not available" >&2; exit 1; fi\necho 3.10.13\n'
    base.write_text("#!/bin/sh\n" + script)
    base.chmod(0o755)
    said: list[str] = []
    with pytest.raises(MissingDependencyError, match="environment failed.*ensurepip is not available") as caught:
        runtimes.install(root, "1.59", python=str(base), progress=said.append)
    assert "\n" not in str(caught.value) and "Traceback" not in str(caught.value)
    assert said[0].startswith(f"{runtimes.NAME} 1.59 is not a known-good runtime") and "1.60.0" in said[0]
    assert "Creating the virtual environment…" in said
    assert not (root / f"{runtimes.NAME}-1.60.0").exists()
    with pytest.raises(ValueError, match="cpu' or 'pypi"):
        runtimes.install(root, xgboost="cuda")


def test_cli_rejects_other_runtimes(capsys):
    for command in (["install", "tensorflow"], ["remove", "azureml"]):
        assert cli_runtime.main(command) == 2
        err = capsys.readouterr().err.strip()
        assert err == "modellens: unknown runtime '" + command[1] + "'; ModelLens manages azureml-automl only."


def test_cli_argument_errors(capsys):
    with pytest.raises(SystemExit) as caught:
        cli_runtime.main(["install", "azureml-automl", "--xgboost", "cuda"])
    assert caught.value.code == 2 and "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        cli_runtime.main([])
    assert caught.value.code == 2
    assert cli_runtime.main(["remove", "azureml-automl", "--version", "../x"]) == 2
    assert "not a runtime version" in capsys.readouterr().err


def test_cli_list_and_remove(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MODELLENS_RUNTIMES", str(tmp_path))
    assert cli_runtime.main(["list"]) == 0
    assert capsys.readouterr().out.startswith("No runtimes are installed")
    fake_runtime(tmp_path, "1.62.0")
    assert cli_runtime.main(["list"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["NAME", "VERSION", "PYTHON", "PATH", "CREATED"]
    folder = str(tmp_path / "azureml-automl-1.62.0")
    assert row.split() == ["azureml-automl", "1.62.0", "3.10.13", folder, "2026-01-02T03:04:05+00:00"]
    assert cli_runtime.main(["remove", "azureml-automl", "--version", "1.60.0"]) == 1
    assert cli_runtime.main(["remove", "azureml-automl"]) == 0
    assert "Removed azureml-automl 1.62.0." in capsys.readouterr().err
    assert runtimes.installed(tmp_path) == []


def test_cli_as_a_module_reports_a_missing_python(tmp_path):
    env = {**os.environ, "MODELLENS_RUNTIMES": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "core.cli.runtime", "install", "azureml-automl", "--python", str(tmp_path / "none")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 4, out.stderr
    assert "is not a working Python interpreter" in out.stderr and "Traceback" not in out.stderr
    assert list(tmp_path.glob("azureml-automl-*")) == []


@pytest.mark.automl
@pytest.mark.timeout(3600)
def test_real_install():
    """Install the real 1.62 runtime (`make test` installs it first, so this checks the install and its reuse)."""
    root = Path(os.environ.get("MODELLENS_RUNTIMES") or Path.home() / ".modellens" / "runtimes")
    said: list[str] = []
    record = runtimes.install(root, "1.62.0", progress=said.append)
    assert record.name == "azureml-automl" and record.version == "1.62.0"
    assert record.python_version.startswith("3.10.") and record.python_executable.is_file()
    stored = json.loads((record.path / runtimes.RECORD_FILE).read_text())
    assert stored["version"] == "1.62.0" and stored["packages"] == record.packages
    expected = {"azureml-automl-runtime": "1.62.0.post1", "azureml-core": "1.61.0.post4", "xgboost": "1.5.2"}
    expected |= {"numpy": "1.23.5", "pandas": "1.5.3", "scikit-learn": "1.5.2", "setuptools": "65.5.0"}
    assert {name: record.packages.get(name) for name in expected} == expected
    assert runtimes.check_imports(record.python_executable) == record.packages
    assert runtimes.get_runtime(root, "1.62.0.post1") == record
    said.clear()
    again = runtimes.install(root, "1.62.0", progress=said.append)
    assert again == record  # same record (same creation time): nothing was rebuilt
    assert said == [f"azureml-automl 1.62.0 is already installed: {record.path}"]
