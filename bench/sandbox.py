"""What the OS sandbox costs: a worker's start (import, warm-up, confinement and self-test) and a request.

Side by side, interleaved: a sandboxed worker and the same worker with its sandbox variables removed (as on
a server that cannot sandbox and was told to go on). The start is what a user waits for on a first upload;
the request is a prediction of a forest on 1,000 rows.
"""

from __future__ import annotations

import dataclasses
import pickle
import sys

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier

from bench.common import interleaved, load, table
from core.config import Settings
from core.isolation.workers import ModelWorker

UNSANDBOXED = [
    sys.executable,
    "-c",
    "import os; os.environ.pop('MODELLENS_SANDBOX_SCRATCH'); from core.worker.main import main; main()",
]


def _workers() -> dict[str, ModelWorker]:
    settings = dataclasses.replace(Settings.from_env(), allow_unsandboxed=True)
    return {
        "sandboxed": ModelWorker(settings, label="sandboxed"),
        "unsandboxed": ModelWorker(settings, command=UNSANDBOXED, label="unsandboxed"),
    }


def run(*, quick: bool = False) -> None:
    """Print start and request medians, sandboxed against unsandboxed."""
    repeats = 3 if quick else 7
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(1_000, 10)), columns=[f"f{i}" for i in range(10)])
    model = pickle.dumps(RandomForestClassifier(n_estimators=100, random_state=0).fit(X, X["f0"] > 0))
    workers = _workers()

    def start(worker: ModelWorker) -> None:
        worker.close()
        worker.start()

    starts = interleaved({name: (lambda w=w: start(w)) for name, w in workers.items()}, repeats)
    for worker in workers.values():
        worker.call("load", data=model, filename="rf.pkl")
    requests = interleaved(
        {name: (lambda w=w: w.call("predict", frame=X, output="probability")) for name, w in workers.items()},
        repeats * 3,
    )
    for worker in workers.values():
        worker.close()
    rows = [[name, f"{starts[name]:.2f}", f"{requests[name] * 1000:.1f}"] for name in ("sandboxed", "unsandboxed")]
    ratio = starts["sandboxed"] / starts["unsandboxed"]
    print(f"## Sandbox overhead (median of {repeats} starts; load {load()})\n")
    print(table(["worker", "start (s)", "predict 1,000 rows (ms)"], rows))
    print(f"\nStart, sandboxed / unsandboxed: {ratio:.2f}x")
