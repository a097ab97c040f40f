"""Issue 8: Azure AutoML models: worker start, load, first sample, rows/s, and Azure's own surrogate beside it.

Models are the tests' AutoML builds (``tests/automl/build_models.py``, run in the installed runtime). For each:
the cold load (a fresh model worker plus the runtime worker, importing and unpickling), the first global view's
sample (2 s budget), the whole table's rows/s, and how far the explanation's sum is from the model's own output.
With ``MODELLENS_BENCH_INTERPRET_PYTHON`` pointing at a Python that has the runtime plus
``azureml-interpret==1.62.0``, azureml-interpret's MimicWrapper (the LightGBM surrogate Azure shows) runs on the
same rows: its seconds and its gap.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import load, table

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("binary_int", "multiclass_str", "regression", "binary_dense", "binary_trees")


def _surrogate(folder: Path) -> dict | None:
    python = os.environ.get("MODELLENS_BENCH_INTERPRET_PYTHON")
    if not python:
        return None
    out = subprocess.run(  # noqa: S603 - the configured interpreter and our own script
        [python, str(ROOT / "bench" / "automl_surrogate.py"), str(folder)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {"error": out.stderr[-300:]}


def run(*, quick: bool = False) -> None:
    """Print the AutoML table."""
    from core.data.alignment import align
    from core.engine.explain import make_explainer
    from core.isolation.workers import close_default_pool
    from core.loading.models import load_model
    from core.runtimes import registry as runtimes

    record = runtimes.get_runtime(runtimes.runtimes_root())
    print("## Azure AutoML\n")
    if record is None:
        print("Skipped: no AutoML runtime installed (`make automl-runtime`).")
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        built = subprocess.run(  # noqa: S603
            [str(record.python_executable), str(ROOT / "tests" / "automl" / "build_models.py"), tmp],
            capture_output=True, text=True, timeout=600, check=True,
        )  # fmt: skip
        del built
        for name in NAMES[:2] if quick else NAMES:
            folder = Path(tmp) / name
            meta = json.loads((folder / "meta.json").read_text())
            close_default_pool()  # a cold start for every model
            started = time.perf_counter()
            model = load_model((folder / "model.pkl").read_bytes(), "model.pkl")
            loaded = time.perf_counter() - started
            frame = align(model, pd.read_csv(folder / "data.csv"), target=meta["target_column"]).frame
            explainer = make_explainer(model, frame)
            started = time.perf_counter()
            sample = explainer.explain_sample(2.0)
            first = time.perf_counter() - started
            started = time.perf_counter()
            everything = explainer.explain_all(None)
            seconds = time.perf_counter() - started
            own = np.load(folder / "expected_output.npy")[everything.row_ids]
            total = everything.base + everything.values.sum(axis=1)
            gap = float(np.abs(total - own).max())
            sur = _surrogate(folder)
            sur_text = (
                "—"
                if sur is None
                else ("failed" if "error" in sur else f"{sur['seconds']:.2f} s, gap {sur['gap']:.3g}")
            )
            rows.append([
                name, len(frame), len(model.automl["members"]), f"{loaded:.2f}",
                f"{first:.2f} ({len(sample)} rows)", f"{len(frame) / seconds:.0f}", f"{gap:.1e}", sur_text,
            ])  # fmt: skip
    print(f"Runtime {record.version} (Python {record.python_version}); load average {load()}.\n")
    headers = ["model", "rows", "members", "cold load s", "first view s", "rows/s (all)", "ModelLens gap",
               "azureml-interpret surrogate"]  # fmt: skip
    print(table(headers, rows))
    print(
        "\n_gap: largest |base + sum of contributions - the pipeline's own output| over all rows, in the model's "
        "units (probability or prediction). The surrogate's gap maps its raw-column sum back through its link._"
    )
