"""``modellens compare``: cohorts of one table, two tables on one model, or two models on one table.

One JSON document on stdout, ``{"features": [{"feature", "shift", "low", "high", "drift"}, …], "metrics", "rows",
…}``, features sorted by |shift| (second minus first in mean contribution; low/high its bootstrap 95 % interval;
drift the input's own PSI where there are two tables, else null), or with ``--format csv`` the features table. Two
tables are explained by one explainer (one background), so their contributions are comparable. A cohort that names
no column is a :class:`~core.errors.DataError` (exit 6).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.cli.console import Progress, say
from core.cli.whatif import parse_assignment

if TYPE_CHECKING:  # the parser is built on every `modellens` call: the heavy modules load only when a command runs
    import numpy as np
    import pandas as pd

    from core.cohorts.diff import ExplanationDiff
    from core.data.alignment import Aligned
    from core.loading.models import LoadedModel

__all__ = ["DEFAULT_ROWS", "add_parser", "parse_cohort", "run"]

DEFAULT_ROWS = 20_000
_OUTPUT_HELP = "units of the contributions (default auto: probability for classifiers that have one)"


def parse_cohort(text: str) -> tuple[str, str]:
    """``NAME=EXPR`` as (name, query); the query is in the row explorer's search syntax."""
    try:
        return parse_assignment(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=EXPR (e.g. --cohort 'old=age>60')") from None


def add_parser(sub: Any, common: argparse.ArgumentParser, *, model_help: str, epilog: str) -> None:
    """Add ``compare`` to the ``modellens`` subcommands."""
    compare = sub.add_parser(
        "compare",
        parents=[common],
        help="compare explanations: two cohorts, two tables or two models (JSON or CSV)",
        description="Per raw column, the shift (second minus first) in mean contribution with a bootstrap 95 %\n"
        "interval: between two cohorts of DATA, between DATA and --against, or between MODEL and --against-model.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compare.add_argument("model", help=model_help)
    compare.add_argument("data", help="the table to explain: CSV, Parquet or .xlsx")
    what = compare.add_mutually_exclusive_group(required=True)
    what.add_argument("--against", metavar="OTHER_TABLE", help="a second table for the same model (shift: it - DATA)")
    what.add_argument(
        "--against-model", metavar="OTHER_MODEL", help="a second model for the same table (shift: it - MODEL)"
    )
    what.add_argument(
        "--cohort",
        dest="cohorts",
        metavar="NAME=EXPR",
        type=parse_cohort,
        action="append",
        help="a named cohort in the row explorer's search syntax, e.g. 'old=age>60, city=Lyon'; give two "
        "(shift: second - first)",
    )
    compare.add_argument(
        "--class", dest="class_label", metavar="LABEL", help="class label to explain (classifiers; default: positive)"
    )
    compare.add_argument(
        "--output", default="auto", choices=["auto", "probability", "log-odds", "raw"], help=_OUTPUT_HELP
    )
    compare.add_argument(
        "--rows",
        type=int,
        default=DEFAULT_ROWS,
        help=f"explain a seeded sample of at most N rows per table "
        f"(default {DEFAULT_ROWS:,}; the JSON says how many were used)",
    )
    compare.add_argument("--n-boot", type=int, default=200, metavar="B", help="bootstrap replicates (default 200)")
    compare.add_argument("--seed", type=int, default=0, help="seed of the row sample and the bootstrap (default 0)")
    compare.add_argument("--format", default="json", choices=["json", "csv"], help="output format (default json)")
    compare.add_argument("--target", help="name of the target column, if the table has one (default: detected)")


def _load(path: str, trust: bool) -> LoadedModel:
    from core.loading.models import load_model

    return load_model(Path(path).read_bytes(), Path(path).name, trusted=trust)


def _aligned(model: LoadedModel, path: str, target: str | None) -> Aligned:
    from core.data.alignment import align
    from core.data.tables import load_table

    aligned = align(model, load_table(Path(path).read_bytes(), Path(path).name), target=target)
    for notice in aligned.notices:
        say(notice)
    return aligned


def _sample(n: int, limit: int, seed: int) -> np.ndarray:
    import numpy as np

    from core.engine.explain import sample_order

    return np.sort(sample_order(n, seed)[: max(1, limit)])


def _metrics(model: LoadedModel, frame: pd.DataFrame, target: pd.Series | None) -> dict[str, float]:
    from core.data.metrics import headline_metrics, metric_output

    if target is None:
        return {}
    scores = model.predict(frame, output=metric_output(tuple(model.outputs)))
    return headline_metrics(model.task, target.reset_index(drop=True), scores, model.classes)


def _features(diff: pd.DataFrame, drift: bool) -> list[dict[str, Any]]:
    def number(x: Any) -> float | None:
        return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)

    keys = ("shift", "low", "high")
    return [
        {"feature": r["feature"], **{k: number(r[k]) for k in keys}, "drift": number(r["drift"]) if drift else None}
        for r in diff.to_dict("records")
    ]


def _cohorts(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    from core.cohorts.compare import cohort_mask, cohort_table, compare_cohorts
    from core.data.metrics import metric_output
    from core.engine.explain import make_explainer

    if len(args.cohorts) != 2:
        raise _Usage("--cohort needs exactly two cohorts (NAME=EXPR each); the shift is second minus first.")
    model = _load(args.model, args.trust)
    aligned = _aligned(model, args.data, args.target)
    rows = _sample(len(aligned.frame), args.rows, args.seed)
    progress.update(0.3, f"explaining {len(rows):,} rows")
    expl = make_explainer(model, aligned, output=args.output, seed=args.seed).explain(
        rows, class_label=args.class_label
    )
    frame = aligned.frame.iloc[rows].reset_index(drop=True)
    target = None if aligned.target is None else aligned.target.iloc[rows].reset_index(drop=True)
    table = cohort_table(frame, expl.prediction, expl.units, target)
    masks = {name: cohort_mask(table, query) for name, query in args.cohorts}
    scores = model.predict(frame, output=metric_output(tuple(model.outputs))) if target is not None else None
    result = compare_cohorts(
        expl,
        masks,
        n_boot=args.n_boot,
        seed=args.seed,
        target=target,
        prediction=scores,
        classes=model.classes,
        task=model.task,
    )
    (first, _), (second, _) = args.cohorts
    diff = result.difference(first, second, signed=True)
    stats = result.cohorts
    return {
        "mode": "cohorts",
        "units": expl.units,
        "features": _features(diff, drift=False),
        "metrics": {name: stats[name].metrics for name in stats},
        "rows": {name: stats[name].rows for name in stats},
        "prediction": {name: stats[name].prediction for name in stats},
    }


def _diff_doc(mode: str, units: str, diff: ExplanationDiff, metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        "mode": mode,
        "units": units,
        "features": _features(diff.features, drift=not diff.paired),
        "metrics": metrics,
        "rows": diff.rows,
        "prediction": diff.prediction,
        "drift_statistic": None if diff.paired else diff.drift_statistic,
    }


def _tables(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    from core.cohorts.diff import explanation_diff
    from core.data.alignment import Aligned
    from core.engine.explain import make_explainer

    model = _load(args.model, args.trust)
    first, second = _aligned(model, args.data, args.target), _aligned(model, args.against, args.target)
    rows_a = _sample(len(first.frame), args.rows, args.seed)
    rows_b = _sample(len(second.frame), args.rows, args.seed)
    frame_a = first.frame.iloc[rows_a].reset_index(drop=True)
    frame_b = second.frame.iloc[rows_b].reset_index(drop=True)[list(frame_a.columns)]
    both = Aligned(pd.concat([frame_a, frame_b], ignore_index=True))
    progress.update(0.3, f"explaining {len(both.frame):,} rows")
    result = make_explainer(model, both, output=args.output, seed=args.seed).explain_all()
    expl_a = result.take(np.arange(len(frame_a))).for_class(args.class_label)
    expl_b = result.take(np.arange(len(frame_a), len(both.frame))).for_class(args.class_label)
    diff = explanation_diff(
        expl_a, expl_b, first_frame=frame_a, second_frame=frame_b, n_boot=args.n_boot, seed=args.seed
    )
    targets = [None if a.target is None else a.target.iloc[r] for a, r in ((first, rows_a), (second, rows_b))]
    metrics = {"first": _metrics(model, frame_a, targets[0]), "second": _metrics(model, frame_b, targets[1])}
    return _diff_doc("tables", expl_a.units, diff, metrics)


def _models(args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    from core.cohorts.diff import disagreements, explanation_diff
    from core.engine.explain import make_explainer

    first, second = _load(args.model, args.trust), _load(args.against_model, args.trust)
    aligned_a, aligned_b = _aligned(first, args.data, args.target), _aligned(second, args.data, args.target)
    rows = _sample(len(aligned_a.frame), args.rows, args.seed)
    progress.update(0.3, f"explaining {len(rows):,} rows with both models")
    options = {"output": args.output, "seed": args.seed}
    expl_a = make_explainer(first, aligned_a, **options).explain(rows, class_label=args.class_label)
    expl_b = make_explainer(second, aligned_b, **options).explain(rows, class_label=args.class_label)
    frame = aligned_a.frame.iloc[rows].reset_index(drop=True)
    diff = explanation_diff(expl_a, expl_b, first_frame=frame, second_frame=frame, n_boot=args.n_boot, seed=args.seed)
    target = None if aligned_a.target is None else aligned_a.target.iloc[rows]
    frame_b = aligned_b.frame.iloc[rows].reset_index(drop=True)
    metrics = {"first": _metrics(first, frame, target), "second": _metrics(second, frame_b, target)}
    doc = _diff_doc("models", expl_a.units, diff, metrics)
    doc["disagreements"] = disagreements(expl_a, expl_b, k=10).to_dict("records")
    return doc


class _Usage(Exception):
    """A usage mistake argparse cannot see (exit 2)."""


def run(args: argparse.Namespace) -> int:
    """Compute the comparison and print it as JSON or CSV."""
    if args.rows < 1 or args.n_boot < 1:
        say("--rows and --n-boot must be at least 1")
        return 2
    progress = Progress(piped_lines=False)
    progress.update(0.0, "loading")
    try:
        handler = _tables if args.against else _models if args.against_model else _cohorts
        doc = handler(args, progress)
    except _Usage as exc:
        progress.clear()
        say(str(exc))
        return 2
    progress.clear()
    if args.format == "csv":
        import pandas as pd

        sys.stdout.write(pd.DataFrame(doc["features"]).to_csv(index=False))
    else:
        sys.stdout.write(json.dumps(_plain(doc), allow_nan=False) + "\n")
    return 0


def _plain(value: Any) -> Any:
    """Plain JSON: numpy scalars as Python numbers, NaN and infinities as null, anything else as text."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    item = getattr(value, "item", None)
    value = item() if callable(item) else value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value if value is None or isinstance(value, bool | int | str) else str(value)
