"""A worker killed while it loads a model costs its user one action, never the file for good (issue 20)."""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time

import streamlit as st

from core.errors import ModelLoadError, WorkerError
from ui import loaders


class SlowGadget:
    """Unpickling sleeps, then gives back something that is not a model."""

    def __reduce__(self):
        return time.sleep, (3,)


def _kill_when_loading(stop: threading.Event) -> None:
    """SIGKILL (as the kernel's OOM killer does) the first worker seen busy loading."""
    while not stop.is_set():
        for worker in loaders.worker_pool().workers():
            if worker.busy and worker.alive and worker.proc is not None:
                os.kill(worker.proc.pid, signal.SIGKILL)
                return
        time.sleep(0.02)


def test_a_worker_killed_while_loading_is_not_remembered():
    st.cache_resource.clear()
    data = pickle.dumps(SlowGadget())
    digest = loaders.digest(data)
    stop = threading.Event()
    killer = threading.Thread(target=_kill_when_loading, args=(stop,), daemon=True)
    killer.start()
    try:
        first = loaders.model(digest, "slow.pkl", True, data)
    finally:
        stop.set()
        killer.join()
    assert isinstance(first.error, WorkerError) and "killed" in str(first.error)
    second = loaders.model(digest, "slow.pkl", True, data)  # a fresh worker really loads it again
    assert isinstance(second.error, ModelLoadError) and "not a model" in str(second.error)
    third = loaders.model(digest, "slow.pkl", True, data)  # an ordinary refusal stays cached
    assert third is second
    loaders.worker_pool().close()
    st.cache_resource.clear()
