"""A bounded, seeded mutation fuzz of the safe unpickler over legitimate zoo models.

Each mutant (byte flips, truncations, opcode swaps, inserted GLOBALs of allowed names with or without a
call) must either be refused with a typed :class:`~core.errors.ModelLensError` or load to an object whose
post-load audit passes again (inert). Mutants run in one spawned child process with a memory cap, so a
native crash fails the test with the seed and mutant index that caused it instead of killing pytest.

``make test`` runs it for MODELLENS_FUZZ_SECONDS (default 25 s); ``make fuzz`` runs it longer.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import pickle
import pickletools
import random
import warnings
from pathlib import Path

import pytest

SEED = int(os.environ.get("MODELLENS_FUZZ_SEED", "14"))
BUDGET = float(os.environ.get("MODELLENS_FUZZ_SECONDS", "25"))
MODELS = ("dt_reg", "logreg", "hgb_clf", "calibrated", "spline", "function_log1p", "selectkbest", "stacking", "knn")
_OPCODES = sorted({op.code.encode("latin1") for op in pickletools.opcodes})


def _corpus() -> list[tuple[str, bytes]]:
    import joblib

    from tests.core import zoo

    builders = zoo.builders()
    corpus = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in MODELS:
            model, _ = builders[name]()
            for protocol in (2, 4, 5):
                corpus.append((f"{name}/pickle{protocol}", pickle.dumps(model, protocol=protocol)))
            buf = io.BytesIO()
            joblib.dump(model, buf)
            corpus.append((f"{name}/joblib", buf.getvalue()))
    return corpus


def _allowed_globals() -> list[bytes]:
    from core.safety import allowlist

    names = sorted(allowlist.EXACT) + sorted(allowlist.SKLEARN_CLASSES)[:60]
    return [f"c{module}\n{name}\n".encode() for module, name in names]


def _boundaries(data: bytes) -> list[int]:
    try:
        return [pos for _op, _arg, pos in pickletools.genops(io.BytesIO(data))]
    except Exception:  # noqa: BLE001 - joblib array bytes end the parse; the positions before are enough
        return [2]


def mutate(data: bytes, rng: random.Random, boundaries: list[int], globals_: list[bytes]) -> tuple[str, bytes]:
    """One seeded mutation of data, and its kind."""
    kind = rng.choice(("flip", "flip", "truncate", "swap", "global"))
    if kind == "flip":
        out = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(2, len(out))
            out[i] ^= rng.randint(1, 255)
        return kind, bytes(out)
    if kind == "truncate":
        return kind, data[: rng.randrange(1, len(data))]
    at = rng.choice(boundaries)
    if kind == "swap":
        return kind, data[:at] + rng.choice(_OPCODES) + data[at + 1 :]
    tail = rng.choice((b"0", b"", b")R", b")\x81", b"}b", b"N\x85R"))  # POP, leave, call, new, build, call(None)
    return kind, data[:at] + rng.choice(globals_) + tail + data[at:]


def _fuzz(seed: int, budget: float, log_path: str) -> None:
    """Child process: run mutants until the budget is spent, logging each before and after it runs."""
    import resource
    import time

    from core.errors import ModelLensError
    from core.safety.safe_pickle import audit_object, safe_load

    resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))
    warnings.simplefilter("ignore")
    corpus, globals_ = _corpus(), _allowed_globals()
    boundaries = {name: _boundaries(data) for name, data in corpus}
    rng = random.Random(seed)
    deadline = time.monotonic() + budget
    with open(log_path, "a", buffering=1) as log:
        index = 0
        while time.monotonic() < deadline:
            name, data = corpus[rng.randrange(len(corpus))]
            kind, mutant = mutate(data, rng, boundaries[name], globals_)
            log.write(json.dumps({"start": index, "source": name, "kind": kind}) + "\n")
            try:
                audit_object(safe_load(mutant).obj)
                outcome = "inert"
            except ModelLensError as error:
                outcome = type(error).__name__
            except Exception as error:  # noqa: BLE001 - the finding this fuzz exists for
                outcome = f"UNTYPED {type(error).__name__}: {str(error)[:200]}"
            log.write(json.dumps({"done": index, "outcome": outcome}) + "\n")
            index += 1


@pytest.mark.slow
@pytest.mark.timeout(int(BUDGET) + 600)
def test_mutants_of_real_models_are_refused_with_a_typed_error_or_load_inert(tmp_path):
    log_path = tmp_path / "fuzz.jsonl"
    child = multiprocessing.get_context("spawn").Process(target=_fuzz, args=(SEED, BUDGET, str(log_path)))
    child.start()
    child.join(BUDGET + 540)
    if child.is_alive():
        child.kill()
        child.join()
    records = [json.loads(line) for line in Path(log_path).read_text().splitlines()] if log_path.exists() else []
    started = [r for r in records if "start" in r]
    done = {r["done"]: r["outcome"] for r in records if "done" in r}
    unfinished = [r for r in started if r["start"] not in done]
    assert child.exitcode == 0 and not unfinished, f"seed {SEED}: the child died or hung on {unfinished[-1:]}"
    untyped = {i: o for i, o in done.items() if o.startswith("UNTYPED")}
    assert not untyped, f"seed {SEED}: mutants ended in untyped errors: {dict(list(untyped.items())[:5])}"
    assert len(done) >= 50, f"only {len(done)} mutants ran in {BUDGET} s"
    outcomes = set(done.values())
    assert "UnsafeModelError" in outcomes and "ModelLoadError" in outcomes, outcomes
