"""Worker isolation: crashes, memory and time limits become clear errors; the server and other models carry on."""

from __future__ import annotations

import dataclasses
import pickle
import threading
import time

import cloudpickle
import numpy as np
import pandas as pd
import pytest

from core.config import Settings
from core.errors import UnsafeModelError, WorkerError
from core.isolation.workers import ModelWorker, WorkerPool
from core.loading.models import load_model
from tests.core import crashers

FRAME = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
cloudpickle.register_pickle_by_value(crashers)  # the sandboxed worker cannot import the tests package


def _load(cls, pool, settings=None):
    data = cloudpickle.dumps(cls())
    return load_model(data, f"{cls.__name__}.pkl", trusted=True, pool=pool, settings=settings)


def test_segfault_in_predict_is_a_clear_error_and_the_next_request_gets_a_fresh_worker(pool):
    crashing = _load(crashers.SegfaultRegressor, pool)
    fine = _load(crashers.FineRegressor, pool)
    first_pid = crashing.handle.worker().proc.pid
    with pytest.raises(WorkerError, match="crashed in native code"):
        crashing.predict(FRAME, "raw")
    np.testing.assert_array_equal(fine.predict(FRAME, "raw")[:, 0], [4.0, 6.0])  # other models unaffected
    assert crashing.handle.call("ping") == "pong"  # a fresh worker, model reloaded
    assert crashing.handle.worker().proc.pid != first_pid


def test_memory_limit(settings):
    small = _with(settings, worker_memory_mb=1500)
    pool = WorkerPool(small)
    try:
        hog = _load(crashers.MemoryHogRegressor, pool, small)
        with pytest.raises(WorkerError, match="memory"):
            hog.predict(FRAME, "raw")
    finally:
        pool.close()


def _with(settings: Settings, **changes) -> Settings:
    from dataclasses import replace

    return replace(settings, **changes)


def test_cpu_time_limit(settings):
    strict = _with(settings, worker_cpu_seconds=2)
    pool = WorkerPool(strict)
    try:
        spinner = _load(crashers.SpinRegressor, pool, strict)
        started = time.monotonic()
        with pytest.raises(WorkerError, match="CPU-time limit"):
            spinner.predict(FRAME, "raw")
        assert time.monotonic() - started < 60
    finally:
        pool.close()


def test_wall_clock_timeout(pool):
    sleepy = _load(crashers.SleepyRegressor, pool)
    with pytest.raises(WorkerError, match="did not answer in time"):
        sleepy.handle.worker().call("predict", timeout=2, frame=FRAME, output="raw")
    assert sleepy.handle.call("ping") == "pong"  # restarted on demand


def test_refusal_happens_in_the_worker_and_keeps_it_usable(pool):
    data = pickle.dumps({"x": crashers.FineRegressor()}, protocol=4)  # custom class: refused when not trusted
    with pytest.raises(UnsafeModelError, match="custom Python code"):
        load_model(data, "custom.pkl", pool=pool)


def test_idle_workers_are_reaped(pool):
    model = _load(crashers.FineRegressor, pool)
    worker = model.handle.worker()
    assert worker.alive
    assert pool.reap(now=time.monotonic() + 10**6) >= 1
    assert not worker.alive
    np.testing.assert_array_equal(model.predict(FRAME, "raw")[:, 0], [4.0, 6.0])  # reloads transparently


def test_worker_environment_has_no_secrets(pool, monkeypatch, tmp_path):
    monkeypatch.setenv("MODELLENS_PASSWORD", "hunter2")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "abc")
    from core.isolation.workers import _worker_env

    env = _worker_env(Settings.from_env(), tmp_path, {})
    assert "MODELLENS_PASSWORD" not in env and "AWS_SECRET_ACCESS_KEY" not in env


def _tagged(tag: int, pool, settings):
    model = crashers.FineRegressor()
    model.tag = tag  # a different file each time
    return load_model(cloudpickle.dumps(model), f"fine{tag}.pkl", trusted=True, pool=pool, settings=settings)


def _alive(pool) -> int:
    return sum(w.alive for w in pool.workers())


@pytest.mark.parametrize("limit", ["count", "memory"])
def test_the_pool_keeps_to_its_budget_by_stopping_the_least_recently_used_idle_worker(limit):
    budget = {"count": {"max_workers": 2}, "memory": {"workers_memory_mb": 600}}[limit]  # one worker is ~360 MB
    settings = dataclasses.replace(Settings.from_env(), **budget)
    most = 2 if limit == "count" else 1
    pool = WorkerPool(settings)
    try:
        models = []
        for tag in range(3):
            models.append(_tagged(tag, pool, settings))
            assert _alive(pool) <= most
        assert not models[0].handle.worker_alive()  # used longest ago: stopped to make room
        for model in models:  # each comes back on demand, and the budget still holds
            np.testing.assert_array_equal(model.predict(FRAME, "raw")[:, 0], [4.0, 6.0])
            assert _alive(pool) <= most
    finally:
        pool.close()


def test_when_every_worker_is_busy_a_new_model_waits_then_says_so():
    settings = dataclasses.replace(Settings.from_env(), max_workers=1, worker_wait_seconds=1)
    pool = WorkerPool(settings)
    try:
        sleepy = _load(crashers.SleepyRegressor, pool, settings)
        worker = sleepy.handle.worker()
        errors_seen: list[Exception] = []

        def hang() -> None:
            try:
                worker.call("predict", timeout=6, frame=FRAME, output="raw")
            except WorkerError as exc:
                errors_seen.append(exc)

        busy = threading.Thread(target=hang)
        busy.start()
        while not worker.busy:
            time.sleep(0.05)
        assert pool.queue() == 0  # full, but nobody waits yet
        refused: list[Exception] = []

        def wait_in_line() -> None:
            try:
                _tagged(7, pool, settings)
            except WorkerError as exc:
                refused.append(exc)

        waiting = threading.Thread(target=wait_in_line)
        waiting.start()
        seen = set()
        while waiting.is_alive():
            seen.add(pool.queue())
            time.sleep(0.02)
        assert 1 in seen  # the page can say "you are number 1" while it waits
        assert len(refused) == 1 and "Every model worker of this server is busy" in str(refused[0])
        assert pool.queue() == 0
        busy.join()
        assert errors_seen and "did not answer in time" in str(errors_seen[0])
        fine = _tagged(7, pool, settings)  # room again once the stuck request was stopped
        np.testing.assert_array_equal(fine.predict(FRAME, "raw")[:, 0], [4.0, 6.0])
    finally:
        pool.close()


def _spare_pid(pool) -> int | None:
    assert pool._spare_ready.wait(120)
    spare = pool._spare
    return spare.proc.pid if spare is not None and spare.alive else None


def test_a_spare_worker_started_ahead_takes_the_next_model_and_is_replaced():
    settings = dataclasses.replace(Settings.from_env(), spare_workers=1, max_workers=2)
    pool = WorkerPool(settings)
    try:
        ahead = _spare_pid(pool)
        assert ahead is not None and not pool.workers()  # started before any model asked
        model = _tagged(1, pool, settings)
        worker = model.handle.worker()
        assert worker.proc.pid == ahead and worker.alive  # the model went into the process started ahead
        if not settings.allow_unsandboxed:  # its sandbox report came along with it
            assert worker.sandbox and worker.sandbox["active"]
        np.testing.assert_array_equal(model.predict(FRAME, "raw")[:, 0], [4.0, 6.0])
        replacement = _spare_pid(pool)
        assert replacement is not None and replacement != ahead  # a new spare for the next model
        assert _alive(pool) == 1
        # the budget (2) counts the spare: a worker that cannot take it over (other limits) stops the spare to
        # make room, never the first model's worker, and no spare comes back where there is no room
        other = dataclasses.replace(settings, worker_cpu_seconds=settings.worker_cpu_seconds - 1)
        second = _tagged(2, pool, other)
        assert second.handle.worker().proc.pid != replacement
        assert _spare_pid(pool) is None and model.handle.worker_alive() and _alive(pool) == 2
        np.testing.assert_array_equal(second.predict(FRAME, "raw")[:, 0], [4.0, 6.0])
    finally:
        pool.close()
    assert _spare_pid(pool) is None and _alive(pool) == 0


def test_a_spare_never_stops_a_model_worker_to_start(monkeypatch):
    settings = dataclasses.replace(Settings.from_env(), spare_workers=1, max_workers=1)
    adopt = ModelWorker._adopt

    def slow_adopt(self, spare):  # a loaded machine: the taker is slow to hold the process it took
        time.sleep(0.5)
        return adopt(self, spare)

    monkeypatch.setattr(ModelWorker, "_adopt", slow_adopt)  # the replacement spare must not start meanwhile
    pool = WorkerPool(settings)
    try:
        ahead = _spare_pid(pool)
        model = _tagged(1, pool, settings)
        assert model.handle.worker().proc.pid == ahead
        assert _spare_pid(pool) is None and model.handle.worker_alive()  # the budget is full: no spare
    finally:
        pool.close()


def test_workers_run_below_the_servers_cpu_priority(pool, settings):
    import psutil

    model = _tagged(5, pool, settings)
    worker = psutil.Process(model.handle.worker().proc.pid)
    assert worker.nice() == min(19, psutil.Process().nice() + settings.worker_nice) and settings.worker_nice == 10
    np.testing.assert_array_equal(model.predict(FRAME, "raw")[:, 0], [4.0, 6.0])
