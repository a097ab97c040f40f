"""The ``modellens`` command: serve the dashboard, inspect a model file, explain a table, manage runtimes.

A command prints its result and its own messages, nothing else: library logs go to a log file
(:mod:`core.cli.console`), and the exit status says what went wrong (:data:`EXIT_STATUS`, also in ``--help``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from core import errors
from core.cli import compare as cli_compare
from core.cli import runtime as cli_runtime
from core.cli import whatif as cli_whatif
from core.cli.console import common_options, parse_rows, routed_logs, say
from core.config import Settings

__all__ = ["EXIT_STATUS", "build_parser", "main", "parse_rows"]

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[2]
EXIT_CODES = (
    (errors.UnsafeModelError, 3),
    (errors.MissingDependencyError, 4),
    (errors.ModelLoadError, 5),
    (errors.DataError, 6),
    (errors.ModelLensError, 7),
)
EXIT_STATUS = {
    0: "success",
    1: "an unexpected error (its traceback is in the log file), or `runtime remove` found nothing to remove",
    2: "usage error: bad arguments, a missing or unreadable file, an unknown runtime",
    3: "the model was refused as unsafe",
    4: "a missing dependency (e.g. the Azure AutoML runtime; the message names the install command)",
    5: "the model could not be loaded",
    6: "the data could not be read or does not fit the model",
    7: "the explanation or a model worker failed",
    130: "interrupted (Ctrl-C)",
}


def _config_folder() -> Path:
    """The folder whose ``.streamlit/config.toml`` the server reads: the source tree, or ``<prefix>/share/modellens``.

    A wheel (``pip install .``) installs the source tree's config file as data under the environment's prefix.
    """
    for folder in (PROJECT_ROOT, Path(sys.prefix) / "share" / "modellens"):
        if (folder / ".streamlit" / "config.toml").is_file():
            return folder
    return PROJECT_ROOT


def _version() -> str:
    try:
        return metadata.version("modellens")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _serve(args: argparse.Namespace) -> int:
    """Replace this process with the dashboard server (:mod:`ui.serve`, i.e. ``streamlit run app.py``)."""
    env = dict(os.environ)
    if args.trust:
        env["MODELLENS_TRUST_PICKLES"] = "1"
    command = [sys.executable, "-m", "ui.serve", "--port", str(args.port), "--address", args.address]
    os.chdir(_config_folder())
    os.execve(sys.executable, command, env)  # noqa: S606 - a fixed command, no shell (it never returns)


def _inspect(args: argparse.Namespace) -> int:
    from core.loading.models import load_model

    path = Path(args.model)
    model = load_model(path.read_bytes(), path.name, trusted=args.trust)
    print(json.dumps(model.card(), indent=2, default=str))
    return 0


def _explain(args: argparse.Namespace) -> int:
    from core.cli import explain as cli_explain

    return cli_explain.run(args)


def _report(args: argparse.Namespace) -> int:
    from core.cli import explain as cli_explain

    return cli_explain.run_report(args)


_MODEL_HELP = "the model file: pickle, joblib, .skops, XGBoost .json/.ubj, LightGBM .txt, CatBoost .cbm, or a zip"
_OUTPUT_CHOICES = ["auto", "probability", "log-odds", "raw"]
_OUTPUT_HELP = "units of the SHAP values (default auto: probability for classifiers that have one)"


def _epilog() -> str:
    lines = [f"  {code:>3}  {meaning}" for code, meaning in EXIT_STATUS.items()]
    return "exit status:\n" + "\n".join(lines)


def _add_explain(sub: Any, common: argparse.ArgumentParser) -> None:
    explain = sub.add_parser(
        "explain",
        parents=[common],
        help="write SHAP values for rows of a table",
        description="Explain rows of a table: SHAP values as JSON or CSV on stdout (or --out), or Parquet.\n"
        "With --out naming a folder (or a batch option), the whole table is explained on Dask.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    explain.add_argument("model", help=_MODEL_HELP)
    explain.add_argument(
        "data", help="the table to explain: CSV, Parquet, .xlsx (batch: CSV or Parquet, a folder, glob or fsspec URL)"
    )
    explain.add_argument("--rows", help="rows as lists and ranges, e.g. 0,5,9 or 0-39 (default: every row)")
    explain.add_argument("--class", dest="class_label", help="class label to explain (classifiers)")
    explain.add_argument(
        "--output", default="auto", choices=["auto", "probability", "log-odds", "raw"], help=_OUTPUT_HELP
    )
    explain.add_argument("--format", default="json", choices=["json", "csv", "parquet"], help="output format")
    explain.add_argument("--out", help="output file (default: stdout for json/csv); a folder for batch mode")
    explain.add_argument("--target", help="name of the target column, if the table has one")
    batch = explain.add_argument_group("batch (a whole table on Dask; --out names a folder)")
    batch.add_argument("--workers", type=int, help="worker processes of the embedded LocalCluster (default: cores)")
    batch.add_argument("--cluster", help="address of an existing Dask scheduler, e.g. tcp://host:8786")
    batch.add_argument("--rows-per-task", type=int, default=50_000, help="about this many rows per task and file")
    batch.add_argument("--resume", action="store_true", help="compute only the tasks whose output is missing")
    batch.add_argument("--sample", type=int, help="explain a seeded random sample of this many rows")


def _add_report(sub: Any, common: argparse.ArgumentParser) -> None:
    report = sub.add_parser(
        "report",
        parents=[common],
        help="write a self-contained HTML report",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("model", help=_MODEL_HELP)
    report.add_argument("data", help="the table the report explains: CSV, Parquet or .xlsx")
    report.add_argument("--rows", help="rows to pin in the report, e.g. 3,17")
    report.add_argument("--class", dest="class_label", help="class label to explain (classifiers)")
    report.add_argument(
        "--output", default="auto", choices=["auto", "probability", "log-odds", "raw"], help=_OUTPUT_HELP
    )
    report.add_argument("--out", required=True, help="the HTML file to write")
    report.add_argument(
        "--title", default="", help="the report's title (default: 'Why <estimator> predicts what it predicts')"
    )
    report.add_argument("--target", help="name of the target column, if the table has one")


def build_parser() -> argparse.ArgumentParser:
    """The `modellens` argument parser with every command (what `main` parses; tests walk it)."""
    parser = argparse.ArgumentParser(
        prog="modellens",
        description="Look inside a trained model. Without a command: the dashboard (modellens serve).",
        parents=[common_options(top=True)],
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"modellens {_version()}")
    common = common_options(top=False)
    sub = parser.add_subparsers(
        dest="command",
        metavar="{serve,inspect,explain,report,whatif,counterfactual,compare,runtime}",
        help="the command (default: serve)",
    )
    serve = sub.add_parser("serve", parents=[common], help="start the dashboard")
    serve.add_argument("--port", type=int, default=8501, help="the port to serve on (default 8501)")
    serve.add_argument("--address", default="127.0.0.1", help="the address to bind (default 127.0.0.1; 0.0.0.0: all)")
    inspect = sub.add_parser(
        "inspect",
        parents=[common],
        help="print a model file's card as JSON",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    inspect.add_argument("model", help=_MODEL_HELP)
    _add_explain(sub, common)
    _add_report(sub, common)
    cli_whatif.add_parsers(sub, common, model_help=_MODEL_HELP, epilog=_epilog())
    cli_compare.add_parser(sub, common, model_help=_MODEL_HELP, epilog=_epilog())
    cli_runtime.add_parser(sub, parents=[common])
    return parser


def _run(args: argparse.Namespace) -> int:
    handlers: dict[str, Any] = {
        "inspect": _inspect,
        "explain": _explain,
        "report": _report,
        "whatif": cli_whatif.run_whatif,
        "counterfactual": cli_whatif.run_counterfactual,
        "compare": cli_compare.run,
        "runtime": cli_runtime.run,
    }
    try:
        return int(handlers[args.command](args))
    except errors.ModelLensError as exc:
        say(str(exc))
        return next(code for kind, code in EXIT_CODES if isinstance(exc, kind))
    except FileNotFoundError as exc:
        say(f"no such file: {exc.filename}")
        return 2
    except (IsADirectoryError, PermissionError) as exc:
        say(f"cannot read {exc.filename}: {exc.strerror}")
        return 2
    except KeyboardInterrupt:
        say("interrupted.")
        return 130
    finally:
        from core.isolation.workers import close_default_pool

        close_default_pool()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``modellens`` console script; returns the exit status (see :data:`EXIT_STATUS`)."""
    args = build_parser().parse_args(argv)
    if args.command in (None, "serve"):
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        if args.command is None:
            args.port, args.address = 8501, "127.0.0.1"
        return _serve(args)
    try:
        home = Settings.from_env().home
    except ValueError as exc:
        say(str(exc))
        return 2
    with routed_logs(home / "logs", verbose=args.verbose) as log_path:
        try:
            return _run(args)
        except Exception as exc:  # the last resort: a short line here, the traceback in the log
            log.exception("modellens %s failed", args.command)
            where = f"; the traceback is in {log_path}" if log_path else ""
            say(f"unexpected error: {type(exc).__name__}: {exc}{where}")
            return 1


if __name__ == "__main__":
    sys.exit(main())
