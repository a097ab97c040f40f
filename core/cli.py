"""The ``modellens`` command: serve the dashboard, inspect a model file, explain a table, manage runtimes.

Exit status: 0 success, 2 usage error, 3 refused (unsafe) model, 4 missing dependency, 5 other model load
error, 6 data error, 7 explanation or worker error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from core import cli_runtime, errors

__all__ = ["main", "parse_rows"]

PROJECT_ROOT = Path(__file__).resolve().parents[1]
EXIT_CODES = (
    (errors.UnsafeModelError, 3),
    (errors.MissingDependencyError, 4),
    (errors.ModelLoadError, 5),
    (errors.DataError, 6),
    (errors.ModelLensError, 7),
)


def parse_rows(text: str | None) -> list[int] | None:
    """Row selection like ``0,5,9`` or ``0-39,50``: a list of row positions (None: all rows)."""
    if not text:
        return None
    rows: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part[1:]:
            start, end = part.split("-", 1)
            rows.extend(range(int(start), int(end) + 1))
        else:
            rows.append(int(part))
    return rows


def _serve(args: argparse.Namespace) -> int:
    """Replace this process with the dashboard server (:mod:`ui.serve`, i.e. ``streamlit run app.py``)."""
    env = dict(os.environ)
    if args.trust:
        env["MODELLENS_TRUST_PICKLES"] = "1"
    command = [sys.executable, "-m", "ui.serve", "--port", str(args.port), "--address", args.address]
    os.chdir(PROJECT_ROOT)
    os.execve(sys.executable, command, env)  # noqa: S606 - a fixed command, no shell
    return 0  # pragma: no cover


def _inspect(args: argparse.Namespace) -> int:
    from core.models import load_model

    path = Path(args.model)
    model = load_model(path.read_bytes(), path.name, trusted=args.trust)
    print(json.dumps(model.card(), indent=2, default=str))
    return 0


def _explain(args: argparse.Namespace) -> int:
    from core import cli_explain

    return cli_explain.run(args)


def _report(args: argparse.Namespace) -> int:
    from core import cli_explain

    return cli_explain.run_report(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modellens", description="Look inside a trained model.")
    parser.add_argument("--trust", action="store_true", help="trust pickles (local, single-user use only)")
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="start the dashboard")
    serve.add_argument("--port", type=int, default=8501)
    serve.add_argument("--address", default="127.0.0.1")
    serve.add_argument("--trust", action="store_true", help="trust pickles (local, single-user use only)")
    inspect = sub.add_parser("inspect", help="print a model file's card as JSON")
    inspect.add_argument("model")
    inspect.add_argument("--trust", action="store_true")
    explain = sub.add_parser("explain", help="write SHAP values for rows of a table")
    explain.add_argument("model")
    explain.add_argument("data")
    explain.add_argument("--rows", help="rows as lists and ranges, e.g. 0,5,9 or 0-39")
    explain.add_argument("--class", dest="class_label", help="class label to explain (classifiers)")
    explain.add_argument("--output", default="auto", choices=["auto", "probability", "log-odds", "raw"])
    explain.add_argument("--format", default="json", choices=["json", "csv", "parquet"])
    explain.add_argument("--out", help="output file (default: stdout for json/csv)")
    explain.add_argument("--target", help="name of the target column, if the table has one")
    explain.add_argument("--trust", action="store_true")
    batch = explain.add_argument_group("batch (a whole table on Dask; --out names a folder)")
    batch.add_argument("--workers", type=int, help="worker processes of the embedded LocalCluster (default: cores)")
    batch.add_argument("--cluster", help="address of an existing Dask scheduler, e.g. tcp://host:8786")
    batch.add_argument("--rows-per-task", type=int, default=50_000, help="about this many rows per task and file")
    batch.add_argument("--resume", action="store_true", help="compute only the tasks whose output is missing")
    batch.add_argument("--sample", type=int, help="explain a seeded random sample of this many rows")
    report = sub.add_parser("report", help="write a self-contained HTML report")
    report.add_argument("model")
    report.add_argument("data")
    report.add_argument("--rows", help="rows to pin in the report, e.g. 3,17")
    report.add_argument("--class", dest="class_label", help="class label to explain (classifiers)")
    report.add_argument("--output", default="auto", choices=["auto", "probability", "log-odds", "raw"])
    report.add_argument("--out", required=True, help="the HTML file to write")
    report.add_argument("--title", default="")
    report.add_argument("--target", help="name of the target column, if the table has one")
    report.add_argument("--trust", action="store_true")
    cli_runtime.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``modellens`` console script."""
    logging.basicConfig(level=os.environ.get("MODELLENS_LOG", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    parser = _parser()
    args = parser.parse_args(argv)
    handlers: dict[str | None, Any] = {
        "serve": _serve,
        "inspect": _inspect,
        "explain": _explain,
        "report": _report,
        "runtime": cli_runtime.run,
    }
    if args.command is None:
        args.port, args.address = 8501, "127.0.0.1"
        return _serve(args)
    try:
        return int(handlers[args.command](args))
    except errors.ModelLensError as exc:
        print(f"modellens: {exc}", file=sys.stderr)
        return next(code for kind, code in EXIT_CODES if isinstance(exc, kind))
    except FileNotFoundError as exc:
        print(f"modellens: no such file: {exc.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("modellens: interrupted.", file=sys.stderr)
        return 130
    finally:
        from core.worker import close_default_pool

        close_default_pool()


if __name__ == "__main__":
    sys.exit(main())
