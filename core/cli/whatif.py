"""``modellens whatif`` (a row with edited raw columns, both explained exactly) and ``modellens counterfactual``.

Both print one JSON document on stdout: ``whatif`` the :meth:`core.whatif.scenario.WhatIf.to_json` document,
``counterfactual`` ``{"row", "goal", "output", "class", "candidates": [{"changes": {column: [old, new]},
"prediction", "base", "contributions"}, …]}``. Progress shows only on a terminal; a value the model cannot read
is a :class:`~core.errors.DataError` (exit 6). In ``counterfactual``, ``--target`` is the goal (a class or a
threshold); the table's own target column is detected by :func:`core.data.alignment.align`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.cli.console import Progress, say

if TYPE_CHECKING:  # the parser is built on every `modellens` call: the heavy modules load only when a command runs
    from core.engine.explain import Explainer
    from core.loading.models import LoadedModel

__all__ = ["add_parsers", "parse_assignment", "parse_bound", "run_counterfactual", "run_whatif"]

_OUTPUT_HELP = "units of the prediction and contributions (default auto: probability for classifiers that have one)"


def parse_assignment(text: str) -> tuple[str, str]:
    """``COL=VALUE`` as (column, value text); argparse turns a malformed one into a usage error."""
    column, sep, value = text.partition("=")
    if not sep or not column.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not COL=VALUE (e.g. --set age=41)")
    return column.strip(), value


def parse_bound(text: str) -> tuple[str, tuple[float | None, float | None]]:
    """``COL=LO:HI`` (either side may be empty) as (column, (low, high)); the search's own parser reads it."""
    from core.errors import DataError
    from core.whatif.counterfactual import parse_bound as read_bound

    try:
        return read_bound(text)
    except DataError:
        raise argparse.ArgumentTypeError(f"{text!r} is not COL=LOW:HIGH (e.g. --bound income=20000:60000)") from None


def _common(parser: argparse.ArgumentParser, model_help: str, class_help: str) -> None:
    parser.add_argument("model", help=model_help)
    parser.add_argument("data", help="the table the row comes from: CSV, Parquet or .xlsx")
    parser.add_argument("--row", type=int, required=True, help="the row's position in the table (from 0)")
    parser.add_argument("--class", dest="class_label", help=class_help)
    parser.add_argument(
        "--output", default="auto", choices=["auto", "probability", "log-odds", "raw"], help=_OUTPUT_HELP
    )


def add_parsers(sub: Any, common: argparse.ArgumentParser, *, model_help: str, epilog: str) -> None:
    """Add ``whatif`` and ``counterfactual`` to the ``modellens`` subcommands."""
    style: dict[str, Any] = {"epilog": epilog, "formatter_class": argparse.RawDescriptionHelpFormatter}
    whatif = sub.add_parser(
        "whatif",
        parents=[common],
        help="explain a row with some columns changed, beside the original (JSON)",
        description="Edit raw columns of one row and print both exact explanations as JSON.",
        **style,
    )
    _common(whatif, model_help, "class label to explain (classifiers; default: the positive or first class)")
    whatif.add_argument(
        "--set",
        dest="changes",
        metavar="COL=VALUE",
        type=parse_assignment,
        action="append",
        required=True,
        help="a new value for a raw column (repeat for several; NA for missing where the table has missing values)",
    )
    whatif.add_argument("--target", help="name of the table's target column, if it has one (default: detected)")
    cf = sub.add_parser(
        "counterfactual",
        parents=[common],
        help="find the fewest column changes that reach a class or a threshold (JSON)",
        description="Search for up to K diverse edits of one row that reach a goal, fewest changed columns first;\n"
        "values only from the table, frozen columns never changed. Each candidate is explained exactly.",
        **style,
    )
    _common(
        cf,
        model_help,
        "class whose prediction and contributions are shown (default: a class goal's, else positive or first)",
    )
    cf.add_argument(
        "--target",
        dest="goal",
        metavar="LABEL|>T",
        required=True,
        help="the goal: a class label (e.g. Yes), or a threshold on the explained class's probability or a "
        "regressor's prediction (e.g. '>0.7', '<=120'); the table's target column is detected automatically",
    )
    cf.add_argument(
        "--freeze", nargs="+", action="extend", default=[], metavar="COL", help="columns that must not change"
    )
    cf.add_argument(
        "--bound",
        dest="bounds",
        metavar="COL=LO:HI",
        type=parse_bound,
        action="append",
        default=[],
        help="allowed range of a numeric column's new value (either side may be empty, e.g. income=:60000)",
    )
    cf.add_argument("-k", type=int, default=3, help="how many candidates at most (default 3)")


def _prepare(args: argparse.Namespace, target: str | None, progress: Progress) -> tuple[LoadedModel, Explainer]:
    """Load the model and the table, align them (notices on stderr) and build the explainer."""
    from core.data.alignment import align
    from core.data.tables import load_table
    from core.engine.explain import make_explainer
    from core.loading.models import load_model

    model_path, data_path = Path(args.model), Path(args.data)
    progress.update(0.0, f"loading {model_path.name}")
    model = load_model(model_path.read_bytes(), model_path.name, trusted=args.trust)
    progress.update(0.25, f"reading {data_path.name}")
    aligned = align(model, load_table(data_path.read_bytes(), data_path.name), target=target)
    progress.clear()
    for notice in aligned.notices:
        say(notice)
    progress.update(0.5, "preparing the explainer")
    return model, make_explainer(model, aligned, output=args.output)


def _print(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc, default=str) + "\n")


def run_whatif(args: argparse.Namespace) -> int:
    """Explain the row and its edited copy; print the what-if document."""
    from core.whatif.scenario import what_if

    progress = Progress(piped_lines=False)
    model, explainer = _prepare(args, args.target, progress)
    progress.update(0.75, f"explaining row {args.row} and its edited copy")
    result = what_if(explainer, model, args.row, dict(args.changes), class_label=args.class_label)
    progress.clear()
    _print(result.to_json())
    return 0


def run_counterfactual(args: argparse.Namespace) -> int:
    """Search for counterfactuals of the row; print them (an empty list, and one sentence why, when none)."""
    from core.classes import default_class
    from core.whatif.counterfactual import counterfactuals, goal_reached, parse_goal

    if args.k < 1:
        say("-k must be at least 1")
        return 2
    progress = Progress(piped_lines=False)
    model, explainer = _prepare(args, None, progress)
    goal = parse_goal(args.goal, model.classes, model.task)
    progress.update(0.6, f"searching for {goal.describe()}")
    options = {"freeze": args.freeze, "bounds": dict(args.bounds), "k": args.k, "class_label": args.class_label}
    found = counterfactuals(model, explainer, args.row, goal, **options)
    progress.clear()
    if found:
        label = found[0].what_if.to_json()["class"]
    else:
        label = args.class_label if args.class_label is not None or not goal.is_class else goal.label
        label = default_class(model.classes) if label is None else label
        if goal_reached(model, explainer, args.row, goal, class_label=args.class_label):
            say(f"row {args.row} already reaches {goal.describe()}; there is nothing to change.")
        else:
            say(
                f"no change of up to 3 columns to values seen in the table reaches {goal.describe()} for row "
                f"{args.row} (try fewer frozen columns or wider bounds)."
            )
    doc = {"row": args.row, "goal": args.goal, "output": explainer.output, "class": label}
    _print({**doc, "candidates": [c.to_json() for c in found]})
    return 0
