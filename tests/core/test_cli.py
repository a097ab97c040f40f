"""The modellens command: model cards as JSON, exit statuses, explanations as JSON/CSV/Parquet, a quiet and
conventional command line (--version, help on every argument, library logs in the log file, no progress when piped).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import subprocess
import sys
import tomllib

import pandas as pd
import pytest

from core.cli.main import EXIT_CODES, EXIT_STATUS, build_parser
from tests.conftest import ROOT
from tests.core import attacks, zoo


def run(*args: str, home=None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"MODELLENS_HOME": str(home)} if home else {})}
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    model, F = zoo.builders()["pipe_rf"]()
    frame = F.copy()
    frame["churn"] = model.predict(F)
    frame.loc[0, "city"] = '=HYPERLINK("http://x")'
    (base / "model.pkl").write_bytes(pickle.dumps(model))
    frame.to_csv(base / "data.csv", index=False)
    (base / "evil.pkl").write_bytes(pickle.dumps(attacks.Reduce(__import__("os").system, "true")))
    (base / "broken.pkl").write_bytes(b"\x80\x04garbage")
    (base / "automl.pkl").write_bytes(
        b"\x80\x04" + attacks._s("azureml.training.tabular.models.x") + attacks._s("Y") + b"\x93."
    )
    return base


def test_inspect_prints_the_model_card(files):
    out = run("inspect", str(files / "model.pkl"))
    assert out.returncode == 0, out.stderr
    card = json.loads(out.stdout)
    assert card["task"] == "binary" and card["estimator"] == "RandomForestClassifier"
    assert card["feature_names"] == ["age", "income", "tenure", "city", "plan"]


@pytest.mark.parametrize(
    ("name", "code", "text"),
    [
        ("evil.pkl", 3, "posix.system"),
        ("automl.pkl", 4, "modellens runtime install azureml-automl"),
        ("broken.pkl", 5, "truncated or damaged"),
    ],
)
def test_inspect_exit_status(files, name, code, text, tmp_path, monkeypatch):
    monkeypatch.setenv("MODELLENS_RUNTIMES", str(tmp_path))  # no AutoML runtime: exit 4 with the install command
    out = run("inspect", str(files / name))
    assert out.returncode == code, out.stderr
    assert text in out.stderr and "Traceback" not in out.stderr


def test_explain_json_rows_and_class(files, tmp_path):
    target = tmp_path / "out.json"
    out = run(
        "explain",
        str(files / "model.pkl"),
        str(files / "data.csv"),
        "--rows",
        "0-3,7",
        "--class",
        "1",
        "--out",
        str(target),
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(target.read_text())
    assert doc["row_ids"] == [0, 1, 2, 3, 7] and doc["class_label"] == 1 and doc["output"] == "probability"
    assert set(doc) >= {"feature_names", "values", "base_values", "prediction", "method"}
    for base, values, pred in zip(doc["base_values"], doc["values"], doc["prediction"], strict=True):
        assert base + sum(values) == pytest.approx(pred, abs=1e-9)
    assert "looks like the target" in out.stderr


def test_explain_csv_neutralises_formulas_and_parquet_needs_out(files, tmp_path):
    out = run("explain", str(files / "model.pkl"), str(files / "data.csv"), "--rows", "0", "--format", "csv")
    assert out.returncode == 0, out.stderr
    assert "'=HYPERLINK" in out.stdout
    assert run("explain", str(files / "model.pkl"), str(files / "data.csv"), "--format", "parquet").returncode == 2
    target = tmp_path / "v.parquet"
    assert (
        run(
            "explain",
            str(files / "model.pkl"),
            str(files / "data.csv"),
            "--rows",
            "0-9",
            "--format",
            "parquet",
            "--out",
            str(target),
        ).returncode
        == 0
    )
    table = pd.read_parquet(target)
    assert len(table) == 10 and "shap:age" in table.columns and "prediction" in table.columns


def test_version_is_the_projects():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    out = run("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"modellens {version}"


def _parsers(parser: argparse.ArgumentParser, path: str = "modellens"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, f"{path} {name}")


def test_every_argument_of_every_command_has_help():
    seen = []
    for path, parser in _parsers(build_parser()):
        for action in parser._actions:
            name = "/".join(action.option_strings) or action.dest
            seen.append(f"{path} {name}")
            assert action.help and action.help != argparse.SUPPRESS, f"{path} {name} has no help text"
            if isinstance(action, argparse._SubParsersAction):
                assert all(choice.help for choice in action._choices_actions), f"{path}: a command has no help"
    assert {"modellens explain model", "modellens explain data", "modellens runtime install name"} <= set(seen)
    assert "modellens --version" in seen and "modellens runtime remove --version" in seen


def test_help_and_readme_document_every_exit_status():
    out = run("explain", "--help")
    assert out.returncode == 0
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Command line") :]
    section = section[: section.index("\n## ", 1)]
    for code in {code for _, code in EXIT_CODES} | {0, 1, 2, 130}:
        assert code in EXIT_STATUS
        assert re.search(rf"^\s+{code}  {re.escape(EXIT_STATUS[code])}$", out.stdout, re.M), code
        assert re.search(rf"`{code}`", section), f"README's Command line section lacks exit status {code}"


def test_usage_errors_exit_2(files, tmp_path):
    bad_option = run("explain", str(files / "model.pkl"), str(files / "data.csv"), "--format", "xml")
    assert bad_option.returncode == 2 and "invalid choice" in bad_option.stderr
    missing = run("inspect", str(tmp_path / "nothing.pkl"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    folder = run("explain", str(tmp_path), str(files / "data.csv"))
    assert folder.returncode == 2 and "cannot read" in folder.stderr and "Traceback" not in folder.stderr


def test_a_table_that_does_not_fit_exits_6(files, tmp_path):
    (tmp_path / "other.csv").write_text("a,b\n1,2\n3,4\n")
    out = run("explain", str(files / "model.pkl"), str(tmp_path / "other.csv"))
    assert out.returncode == 6 and "lacks 5 columns" in out.stderr and "Traceback" not in out.stderr


def test_explain_piped_prints_the_result_and_nothing_else(files, tmp_path):
    data = tmp_path / "features.csv"
    pd.read_csv(files / "data.csv").drop(columns="churn").iloc[1:].to_csv(data, index=False)  # no notices
    out = run("explain", str(files / "model.pkl"), str(data), "--rows", "0-4", home=tmp_path / "home")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["row_ids"] == [0, 1, 2, 3, 4]  # stdout is exactly one JSON document
    assert out.stderr == ""
    log = (tmp_path / "home" / "logs" / "modellens.log").read_text()
    assert "worker INFO" in log and "sandbox" in log  # the model worker's log lines went to the log file


def test_an_unwritable_home_still_explains(files, tmp_path):
    home = tmp_path / "home"
    home.write_text("a file, not a folder")
    out = run("explain", str(files / "model.pkl"), str(files / "data.csv"), "--rows", "0", home=home)
    assert out.returncode == 0, out.stderr
    assert "no log file in" in out.stderr and json.loads(out.stdout)["row_ids"] == [0]


def test_verbose_puts_library_logs_on_stderr(files, tmp_path):
    out = run("explain", "-v", str(files / "model.pkl"), str(files / "data.csv"), "--rows", "0", home=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "worker INFO" in out.stderr and "core.isolation.workers" in out.stderr
    assert json.loads(out.stdout)["row_ids"] == [0]


@pytest.mark.slow
def test_batch_piped_shows_a_few_progress_lines_and_no_dask_logs(files, tmp_path):
    target = tmp_path / "explained"
    out = run(
        "explain", str(files / "model.pkl"), str(files / "data.csv"), "--out", str(target), "--workers", "1",
        home=tmp_path / "home",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert "\r" not in out.stderr and 2 <= len(lines) <= 8, lines
    assert all(line.startswith("modellens: ") for line in lines), lines
    assert lines[-1].startswith(f"modellens: wrote 240 rows to {target}")
    assert "INFO" not in out.stderr and "distributed" not in out.stderr
    log = (tmp_path / "home" / "logs" / "modellens.log").read_text()
    assert "distributed.scheduler" in log  # Dask's INFO logging is in the log file instead
    assert sum(len(pd.read_parquet(part)) for part in target.glob("part-*.parquet")) == 240


@pytest.mark.parametrize(
    ("argv", "trust", "verbose"),
    [
        (["--trust", "-v", "inspect", "m.pkl"], True, True),  # before the command: a command's default keeps them
        (["inspect", "m.pkl", "--trust", "-v"], True, True),
        (["explain", "m.pkl", "d.csv"], False, False),
        (["runtime", "list", "-v"], False, True),
    ],
)
def test_common_options_before_or_after_the_command(argv, trust, verbose):
    args = build_parser().parse_args(argv)
    assert (args.trust, args.verbose) == (trust, verbose)
