"""``modellens explain`` (SHAP values as JSON, CSV or Parquet) and ``modellens report`` (an HTML report)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import numpy as np

from core.alignment import align
from core.data_io import load_table
from core.explain import Explainer, make_explainer
from core.explanation import Explanation
from core.models import LoadedModel, load_model
from core.report_data import safe_table

__all__ = ["run"]


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


def _prepare(args: argparse.Namespace) -> tuple[LoadedModel, Explainer]:
    model_path, data_path = Path(args.model), Path(args.data)
    model = load_model(model_path.read_bytes(), model_path.name, trusted=args.trust)
    table = load_table(data_path.read_bytes(), data_path.name)
    aligned = align(model, table, target=args.target)
    for notice in aligned.notices:
        print(f"modellens: {notice}", file=sys.stderr)
    return model, make_explainer(model, aligned.frame, output=args.output)


def run_report(args: argparse.Namespace) -> int:
    """Write the HTML report: global views on a budgeted sample (or every row), the pinned rows in full."""
    from core.cli import parse_rows
    from core.report import build_report

    model, explainer = _prepare(args)
    result = explainer.explain_sample(budget_seconds=10.0)
    pinned = parse_rows(args.rows) or []
    rows = [explainer.explain_all([r]).for_class(args.class_label).row(0) for r in pinned]
    html_text = build_report(
        result.for_class(args.class_label), model.card(), rows=rows, title=args.title, notes=[*model.notices]
    )
    Path(args.out).write_text(html_text, encoding="utf-8")
    print(f"modellens: wrote {args.out} ({len(html_text) / 1e6:.1f} MB)", file=sys.stderr)
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
    import time

    from core.batch import BatchJob
    from core.errors import CancelledError

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
        while job.progress().state == "running":
            print(f"\r{job.progress().line()}   ", end="", file=sys.stderr, flush=True)
            time.sleep(0.5)
        summary = job.result()
    except KeyboardInterrupt:
        print("\nmodellens: stopping the workers after their current mini-batch…", file=sys.stderr)
        job.cancel()
        with contextlib.suppress(CancelledError):
            job.result(timeout=120)
        print(
            f"modellens: cancelled; finished files are kept: run again with --resume to finish {args.out}",
            file=sys.stderr,
        )
        return 130
    finally:
        job.close()
    print(f"\r{job.progress().line()}   ", file=sys.stderr)
    print(
        f"modellens: wrote {summary['rows_done']:,} rows to {args.out} (summary.json, {summary['tasks']} files)",
        file=sys.stderr,
    )
    return 0


def run(args: argparse.Namespace) -> int:
    """Explain the selected rows and write them in the requested format (or a whole table in batch mode)."""
    from core.cli import parse_rows

    if is_batch(args):
        return run_batch(args)

    _, explainer = _prepare(args)
    expl = explainer.explain(parse_rows(args.rows), class_label=args.class_label)
    if args.format == "json":
        text = _as_json(expl)
    elif args.format == "csv":
        text = safe_table(expl.to_frame()).to_csv(index=False)
    else:
        if not args.out:
            print("modellens: --format parquet needs --out FILE", file=sys.stderr)
            return 2
        safe_table(expl.to_frame()).to_parquet(args.out, index=False)
        return 0
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text + ("\n" if not text.endswith("\n") else ""))
    return 0
