"""``modellens explain MODEL DATA``: SHAP values for rows of a table, as JSON, CSV or Parquet."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from core.align import align
from core.data_io import load_table
from core.explain import make_explainer
from core.explanation import Explanation
from core.models import load_model
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


def run(args: argparse.Namespace) -> int:
    """Explain the selected rows and write them in the requested format."""
    from core.cli import parse_rows

    model_path, data_path = Path(args.model), Path(args.data)
    model = load_model(model_path.read_bytes(), model_path.name, trusted=args.trust)
    table = load_table(data_path.read_bytes(), data_path.name)
    aligned = align(model, table, target=args.target)
    for notice in aligned.notices:
        print(f"modellens: {notice}", file=sys.stderr)
    explainer = make_explainer(model, aligned.frame, output=args.output)
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
