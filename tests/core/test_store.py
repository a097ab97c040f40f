"""The share store: atomic saves (even when killed mid-write), restarts, concurrency, expiry, dedup, bad ids."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from core.engine.explain import ExplainResult, make_explainer
from core.errors import ShareError
from core.store import ShareStore
from tests.conftest import ROOT
from tests.core import zoo


def _save(store: ShareStore, n: int = 0, **kwargs):
    return store.save(
        model=b"model-%d" % n,
        model_name="m.pkl",
        data=b"a,b\n1,2\n",
        data_name="d.csv",
        settings={"output": "probability", "row": n},
        **kwargs,
    )


def _consistent(root) -> None:
    """Every indexed share opens with intact blobs, and no blob file is partial."""
    store = ShareStore(root)
    import sqlite3

    ids = [r[0] for r in sqlite3.connect(root / "index.sqlite").execute("SELECT id FROM shares")]
    for share_id in ids:
        store.open(share_id)
    for path in (root / "blobs").glob("*/*"):
        if not path.name.startswith("."):  # a write cut short leaves only a hidden temporary file
            assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name


def test_save_open_restart_and_dedup(tmp_path):
    store = ShareStore(tmp_path)
    first, second = _save(store, 1, title="Churn model"), _save(store, 1)
    assert first.id != second.id and len(first.id) == 32  # 192 random bits
    assert first.model_sha == second.model_sha and len(list((tmp_path / "blobs").glob("*/*"))) == 2
    reopened = ShareStore(tmp_path)  # a restarted server
    share = reopened.open(first.id)
    assert share.model == b"model-1" and share.record.title == "Churn model" and share.record.settings["row"] == 1


def test_expiry_unknown_and_malformed_ids(tmp_path):
    store = ShareStore(tmp_path)
    expired = _save(store, days=-1)
    with pytest.raises(ShareError, match="expired on"):
        store.open(expired.id)
    with pytest.raises(ShareError, match="does not exist"):
        store.open("A" * 32)
    for bad in ("", "../../etc/passwd", "x" * 31, "'; DROP TABLE shares; --"):
        with pytest.raises(ShareError, match="malformed"):
            store.open(bad)


def test_owner_listing_delete_and_garbage_collection(tmp_path):
    store = ShareStore(tmp_path)
    mine = _save(store, 1, owner="ada@corp.com")
    _save(store, 2, owner="bob@corp.com")
    assert [r.id for r in store.shares_of("ada@corp.com")] == [mine.id]
    assert not store.delete(mine.id, "bob@corp.com") and store.delete(mine.id, "ada@corp.com")
    with pytest.raises(ShareError):
        store.open(mine.id)
    assert store.collect_garbage(min_age_seconds=0) == 1  # model-1's blob; the shared data blob stays
    _consistent(tmp_path)


def _save_in_process(root: str, n: int) -> str:
    return _save(ShareStore(__import__("pathlib").Path(root)), n).id


def test_concurrent_saves_from_threads_and_processes(tmp_path):
    store = ShareStore(tmp_path)
    ids: list[str] = []
    threads = [threading.Thread(target=lambda n=n: ids.append(_save(store, n).id)) for n in range(12)]
    for t in threads:
        t.start()
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as pool:
        ids += list(pool.map(_save_in_process, [str(tmp_path)] * 12, range(100, 112)))
    for t in threads:
        t.join()
    assert len(set(ids)) == 24
    for share_id in ids:
        store.open(share_id)
    _consistent(tmp_path)


KILLED_SAVE = """
import os, sys, time, sqlite3
from pathlib import Path
from core.store import ShareStore
root, stage, marker = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
def pause():
    marker.write_text("paused")
    time.sleep(60)
if stage == "blob":
    real = os.replace
    def replace(src, dst):
        if "blobs" in str(dst):
            pause()
        return real(src, dst)
    os.replace = replace
else:
    class Conn(sqlite3.Connection):
        def execute(self, sql, *args):
            if sql == "COMMIT":
                pause()
            return super().execute(sql, *args)
    real_connect = sqlite3.connect
    sqlite3.connect = lambda *a, **k: real_connect(*a, factory=Conn, **k)
ShareStore(root).save(model=os.urandom(3_000_000), model_name="m.pkl", data=b"x", data_name="d.csv", settings={})
"""


@pytest.mark.parametrize("stage", ["blob", "commit"])
def test_a_save_killed_mid_write_leaves_the_store_consistent(tmp_path, stage):
    store = ShareStore(tmp_path)
    kept = _save(store, 7)
    marker = tmp_path / "paused"
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(KILLED_SAVE), str(tmp_path), stage, str(marker)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the save never reached the stage to kill"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    reopened = ShareStore(tmp_path)
    assert reopened.open(kept.id).model == b"model-7"
    assert [r.id for r in reopened.shares_of("local")] == [kept.id]  # the killed save left no share
    _consistent(tmp_path)


def test_explanations_round_trip_through_the_store(tmp_path):
    model, X = zoo.builders()["rf_multi"]()
    result = make_explainer(model, X).explain_all(range(0, 240, 3))
    store = ShareStore(tmp_path)
    record = store.save(model=b"m", model_name="m", data=b"d", data_name="d", settings={}, result=result.to_bytes())
    back = ExplainResult.from_bytes(store.open(record.id).result, X.reset_index(drop=True))
    for label in result.classes:
        a, b = result.for_class(label), back.for_class(label)
        np.testing.assert_array_equal(a.values, b.values)
        np.testing.assert_array_equal(a.row_ids, b.row_ids)
        assert a.method == b.method and a.sample == b.sample and a.data.equals(b.data)
