"""``modellens explain`` (SHAP values as JSON, CSV or Parquet) and ``modellens report`` (an HTML report).

Each prints its result (stdout or ``--out``), the table's alignment notices and, on a terminal, a progress bar
(:class:`core.cli.console.Progress`); library logs go to the log file (:func:`core.cli.console.routed_logs`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from core.cli.console import Progress, parse_rows, say
from core.data.alignment import align
from core.data.tables import load_table
from core.engine.explain import Explainer, make_explainer
from core.explanation import Explanation
from core.loading.models import LoadedModel, load_model
from core.present.exports import safe_table

__all__ = ["is_batch", "run", "run_batch", "run_report"]


def _as_json(expl: Explanation) -> str:
    return json.dumps(
        {
            "feature_names": list(expl.feature_names),
            "values": expl.values.tolist(),
            "base_values": expl.base_values.tolist(),
            "prediction": expl.prediction.tolist(),
            "output": expl.output,
            "class_label": expl.class_label,
            "method": expl.method,
            "row_ids": expl.row_ids.tolist(),
            "sample": list(expl.sample),
        },
        default=lambda v: v.item() if isinstance(v, np.generic) else str(v),
    )


def _prepare(args: argparse.Namespace, progress: Progress) -> tuple[LoadedModel, Explainer]:
    """Load the model and the table, align them (notices on stderr) and build the explainer."""
    model_path, data_path = Path(args.model), Path(args.data)
    progress.update(0.0, f"loading {model_path.name}")
    model = load_model(model_path.read_bytes(), model_path.name, trusted=args.trust)
    progress.update(0.25, f"reading {data_path.name}")
    table = load_table(data_path.read_bytes(), data_path.name)
    aligned = align(model, table, target=args.target)
    progress.clear()
    for notice in aligned.notices:
        say(notice)
    progress.update(0.5, "preparing the explainer")
    return model, make_explainer(model, aligned.frame, output=args.output)


def run_report(args: argparse.Namespace) -> int:
    """Write the HTML report: global views on a budgeted sample (or every row), the pinned rows in full."""
    from core.present.report import build_report

    progress = Progress(piped_lines=False)
    model, explainer = _prepare(args, progress)
    progress.update(0.6, "explaining a sample")
    result = explainer.explain_sample(budget_seconds=10.0)
    pinned = parse_rows(args.rows) or []
    progress.update(0.8, f"explaining {len(pinned)} pinned rows")
    rows = [explainer.explain_all([r]).for_class(args.class_label).row(0) for r in pinned]
    progress.update(0.9, "writing the report")
    html_text = build_report(
        result.for_class(args.class_label), model.card(), rows=rows, title=args.title, notes=[*model.notices]
    )
    Path(args.out).write_text(html_text, encoding="utf-8")
    progress.clear()
    say(f"wrote {args.out} ({len(html_text) / 1e6:.1f} MB)")
    return 0


def is_batch(args: argparse.Namespace) -> bool:
    """Batch mode: --out names a folder (or batch options are given) and no --rows selection."""
    if args.rows or not args.out:
        return False
    batch_flags = args.workers or args.cluster or args.resume or args.sample or args.rows_per_task != 50_000
    out = Path(args.out)
    return bool(batch_flags) or out.is_dir() or (not out.suffix and "://" not in args.out) or "://" in args.data


def run_batch(args: argparse.Namespace) -> int:
    """Explain every row on Dask, showing progress; Ctrl-C stops within one mini-batch (resume later)."""
    from core.batch.job import BatchJob
    from core.errors import CancelledError

    progress = Progress()
    progress.update(0.0, "starting the Dask workers")
    job = BatchJob(
        args.model,
        args.data,
        args.out,
        workers=args.workers,
        cluster=args.cluster,
        rows_per_task=args.rows_per_task,
        resume=args.resume,
        sample=args.sample,
        class_label=args.class_label,
        output=args.output,
        target=args.target,
        trusted=args.trust,
    )
    try:
        while (state := job.progress()).state == "running":
            progress.update(state.rows_done / max(state.rows_total, 1), state.line())
            time.sleep(0.5)
        summary = job.result()
    except KeyboardInterrupt:
        progress.clear()
        say("stopping the workers after their current mini-batch…")
        job.cancel()
        with contextlib.suppress(CancelledError):
            job.result(timeout=120)
        say(f"cancelled; finished files are kept: run again with --resume to finish {args.out}")
        return 130
    finally:
        job.close()
    progress.clear()
    say(f"wrote {summary['rows_done']:,} rows to {args.out} (summary.json, {summary['tasks']} files)")
    return 0


def run(args: argparse.Namespace) -> int:
    """Explain the selected rows and write them in the requested format (or a whole table in batch mode)."""
    if is_batch(args):
        return run_batch(args)
    if args.format == "parquet" and not args.out:
        say("--format parquet needs --out FILE")
        return 2
    progress = Progress(piped_lines=False)
    _, explainer = _prepare(args, progress)
    rows = parse_rows(args.rows)
    progress.update(0.75, f"explaining {'every row' if rows is None else f'{len(rows)} rows'}")
    expl = explainer.explain(rows, class_label=args.class_label)
    progress.clear()
    if args.format == "json":
        text = _as_json(expl)
    elif args.format == "csv":
        text = safe_table(expl.to_frame()).to_csv(index=False)
    else:
        safe_table(expl.to_frame()).to_parquet(args.out, index=False)
        return 0
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text + ("\n" if not text.endswith("\n") else ""))
    return 0
