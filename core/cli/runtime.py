"""``modellens runtime``: install, list and remove the separate runtimes some models need (Azure AutoML).

Usage::

    modellens runtime install azureml-automl [--version 1.62.0] [--python PATH] [--xgboost cpu|pypi]
    modellens runtime list
    modellens runtime remove azureml-automl [--version 1.62.0]

Also runs on its own: ``python -m core.cli.runtime install azureml-automl``. Progress goes to stderr; the
installed runtime's folder (``install``) and the table (``list``) go to stdout.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.cli.console import common_options, routed_logs
from core.config import Settings
from core.errors import MissingDependencyError, ModelLensError
from core.runtimes import registry as runtimes

__all__ = ["add_parser", "main", "run"]


def add_parser(subparsers: Any, *, parents: Sequence[argparse.ArgumentParser] = ()) -> argparse.ArgumentParser:
    """Add the ``runtime`` command to ``subparsers`` (from ``ArgumentParser.add_subparsers``).

    Args:
        subparsers: What ``ArgumentParser.add_subparsers`` returned.
        parents: Options every subcommand accepts (``--trust``, ``-v``), passed on to each runtime command.

    Returns:
        The ``runtime`` parser; dispatch its parsed arguments to :func:`run`.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "runtime",
        parents=parents,
        help="install, list or remove model runtimes (Azure AutoML)",
        description="Manage the separate Python runtimes some models need. Runtimes live in MODELLENS_RUNTIMES "
        "(default: <MODELLENS_HOME>/runtimes).",
    )
    sub = parser.add_subparsers(
        dest="runtime_command", required=True, metavar="{install,list,remove}", help="what to do"
    )
    install = sub.add_parser("install", parents=parents, help=f"install a runtime: {runtimes.NAME}")
    install.add_argument("name", help=f"the runtime: {runtimes.NAME}")
    install.add_argument(
        "--version",
        default=runtimes.DEFAULT_VERSION,
        help=f"{', '.join(runtimes.KNOWN_VERSIONS)} (others: the nearest of these; default {runtimes.DEFAULT_VERSION})",
    )
    install.add_argument("--python", help="the Python 3.10 interpreter to build it from (default: search)")
    install.add_argument(
        "--xgboost",
        choices=("cpu", "pypi"),
        default="cpu",
        help="cpu: build a CPU-only wheel once (needs cmake, g++); pypi: PyPI's wheel (525 MB CUDA library)",
    )
    sub.add_parser("list", parents=parents, help="list the installed runtimes")
    remove = sub.add_parser("remove", parents=parents, help="remove a runtime")
    remove.add_argument("name", help=f"the runtime: {runtimes.NAME}")
    remove.add_argument("--version", help="the version to remove (default: every installed version)")
    return parser


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _table(records: list[runtimes.RuntimeRecord]) -> str:
    rows = [("NAME", "VERSION", "PYTHON", "PATH", "CREATED")]
    rows += [(r.name, r.version, r.python_version, str(r.path), r.created) for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def _remove(root: Path, version: str | None) -> int:
    versions = [version] if version else [record.version for record in runtimes.installed(root)]
    removed = [v for v in versions if runtimes.remove(root, v)]
    for v in removed:
        print(f"Removed {runtimes.NAME} {v}.", file=sys.stderr)
    if not removed:
        which = f"{runtimes.NAME} {version}" if version else f"no {runtimes.NAME} runtime"
        print(f"modellens: {which} is installed in {root}; nothing to remove.", file=sys.stderr)
    return 1 if version and not removed else 0


def run(args: argparse.Namespace) -> int:
    """Carry out a parsed ``runtime`` command.

    Returns:
        The exit status: 0 done, 1 nothing to remove, 2 unknown runtime or malformed version.

    Raises:
        MissingDependencyError: The install failed (no Python 3.10, no compiler, pip failed); the message
            says what to do.
    """
    root = runtimes.runtimes_root(Settings.from_env())
    if args.runtime_command == "list":
        records = runtimes.installed(root)
        print(_table(records) if records else f"No runtimes are installed in {root}.")
        return 0
    if args.name != runtimes.NAME:
        print(f"modellens: unknown runtime {args.name!r}; ModelLens manages {runtimes.NAME} only.", file=sys.stderr)
        return 2
    try:
        if args.runtime_command == "remove":
            return _remove(root, args.version)
        record = runtimes.install(root, args.version, python=args.python, xgboost=args.xgboost, progress=_say)
    except ValueError as exc:
        print(f"modellens: {exc}", file=sys.stderr)
        return 2
    print(record.path)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m core.cli.runtime ARGS`` is ``modellens runtime ARGS``."""
    parser = argparse.ArgumentParser(prog="modellens", parents=[common_options(top=True)])
    add_parser(parser.add_subparsers(dest="command", required=True), parents=[common_options(top=False)])
    args = parser.parse_args(["runtime", *(sys.argv[1:] if argv is None else argv)])
    with routed_logs(Settings.from_env().home / "logs", verbose=args.verbose):
        try:
            return run(args)
        except ModelLensError as exc:
            print(f"modellens: {exc}", file=sys.stderr)
            return 4 if isinstance(exc, MissingDependencyError) else 7
        except KeyboardInterrupt:
            print("modellens: interrupted; nothing was left half-installed.", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
