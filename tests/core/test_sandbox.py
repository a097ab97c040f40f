"""The OS sandbox around model workers: a model, even one loaded with --trust, can do nothing but compute.

Each payload here is a *trusted* pickle (the plain unpickler runs whatever it says), so the allowlist is out
of the way and only the sandbox stands between the file and the machine.
"""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import Settings
from core.errors import ModelLensError, SandboxError
from core.isolation.workers import ModelWorker
from core.loading.models import load_model
from core.safety import sandbox
from tests.conftest import ROOT
from tests.core import zoo

LAYERS = [
    "write outside scratch",
    "read the parent's environment",
    "list the root directory",
    "open a socket",
    "start a process",
    "execute a program",
]


class Gadget:
    """Unpickling this calls ``func(*args)``: what a hostile file does the moment it is loaded."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _forest() -> bytes:
    from sklearn.ensemble import RandomForestClassifier

    X, y, _, _ = zoo.numeric(n=60)
    return pickle.dumps(RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y))


@pytest.fixture(scope="module")
def worker():
    """One sandboxed worker for every payload (a failed load leaves it serving)."""
    worker = ModelWorker(Settings.from_env(), label="model")
    yield worker
    worker.close()


def _trusted(worker, func, *args):
    data = pickle.dumps(Gadget(func, *args))
    return worker.call("load", data=data, filename="gadget.pkl", trusted=True)


def test_a_worker_confines_itself_and_checks_every_layer():
    worker = ModelWorker(Settings.from_env(), label="probe")
    try:
        worker.start()
        report = worker.sandbox
        scratch = worker.scratch
        assert report["active"], report
        assert report["landlock"] >= 1 and report["seccomp"] and report["capabilities_dropped"]
        assert report["verified"] == LAYERS
        assert scratch is not None and scratch.is_dir()
    finally:
        worker.close()
    assert not scratch.exists()  # the scratch directory goes with the worker


def test_the_model_card_names_the_sandbox(pool):
    model = load_model(_forest(), "rf.pkl", pool=pool)
    assert model.runtime["sandbox"]["active"]
    assert model.isolation.startswith("Sandboxed in its worker (Landlock ABI")
    assert model.isolation.endswith(f"): {len(LAYERS)} forbidden actions checked to fail.")


@pytest.mark.parametrize(
    "target",
    ["absolute", "project", "home"],
)
def test_a_trusted_model_cannot_write_outside_its_scratch(worker, tmp_path, target):
    path = {
        "absolute": tmp_path / "planted.txt",
        "project": ROOT / "sitecustomize.py",
        "home": Path.home() / ".modellens-planted",
    }[target]
    with pytest.raises(ModelLensError, match="PermissionError"):
        _trusted(worker, open, str(path), "w")
    assert not path.exists()


@pytest.mark.parametrize(
    "path",
    [
        lambda: f"/proc/{os.getpid()}/environ",  # the server's secrets (MODELLENS_PASSWORD, cloud keys)
        lambda: str(ROOT / "README.md"),  # the checkout
        lambda: "/etc/hostname",
    ],
    ids=["server-environ", "checkout", "etc"],
)
def test_a_trusted_model_cannot_read_files_it_does_not_need(worker, path):
    with pytest.raises(ModelLensError, match="PermissionError"):
        _trusted(worker, Path.read_bytes, Path(path()))


def test_a_trusted_model_cannot_list_the_home_directory(worker):
    with pytest.raises(ModelLensError, match="PermissionError"):
        _trusted(worker, os.listdir, str(Path.home()))


@pytest.mark.parametrize(
    ("func", "args"),
    [
        (socket.socket, ()),
        (os.fork, ()),
        (subprocess.Popen, (["/bin/true"],)),
        (os.kill, (os.getpid(), 0)),  # not even a harmless signal to the server
    ],
    ids=["socket", "fork", "exec", "signal-the-server"],
)
def test_a_trusted_model_cannot_network_spawn_or_signal(worker, func, args):
    with pytest.raises(ModelLensError, match="PermissionError"):
        _trusted(worker, func, *args)


def test_a_planted_sitecustomize_dies_with_the_scratch_and_never_runs(pool, tmp_path):
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').close()\n"
    # The attack of the security issue: a relative path lands in the worker's working directory.
    planter = ModelWorker(Settings.from_env(), label="model")
    planter.start()
    scratch = planter.scratch
    with pytest.raises(ModelLensError, match="planted"):
        _trusted(planter, exec, f"open('sitecustomize.py', 'w').write({code!r}); raise RuntimeError('planted')")
    assert (scratch / "sitecustomize.py").exists() and not (ROOT / "sitecustomize.py").exists()
    planter.close()
    assert not scratch.exists()
    benign = load_model(_forest(), "rf.pkl", pool=pool)  # a fresh worker
    assert benign.runtime["sandbox"]["active"]
    subprocess.run([sys.executable, "-c", "pass"], cwd=ROOT, check=True)  # a Python started in the checkout
    assert not marker.exists()


def test_a_server_that_cannot_sandbox_refuses_to_open_models(tmp_path):
    # A worker whose sandbox variables were removed reports no sandbox, like one on a kernel without Landlock.
    command = [
        sys.executable,
        "-c",
        "import os; os.environ.pop('MODELLENS_SANDBOX_SCRATCH'); from core.worker.main import main; main()",
    ]
    worker = ModelWorker(Settings.from_env(), command=command, label="model")
    with pytest.raises(SandboxError, match="MODELLENS_ALLOW_UNSANDBOXED=1"):
        worker.start()
    assert not worker.alive
    opted_out = ModelWorker(Settings.from_env({"MODELLENS_ALLOW_UNSANDBOXED": "1"}), command=command, label="model")
    try:
        opted_out.start()
        assert opted_out.sandbox is None and opted_out.call("ping") == "pong"
    finally:
        opted_out.close()


def test_the_seccomp_filter_is_well_formed():
    for may_spawn in (False, True):
        program = sandbox._seccomp_program(1234, may_spawn)
        assert len(program) % 8 == 0 and len(program) // 8 < 4096


def test_a_kernel_compiled_inside_the_sandbox_runs_though_its_cache_is_read_only(tmp_path):
    (tmp_path / "kernels.py").write_text("from numba import njit\n\n@njit(cache=True)\ndef inc(x):\n    return x + 1\n")
    script = f"""
import sys, tempfile
from pathlib import Path
sys.path.insert(0, {str(tmp_path)!r})
import kernels
assert kernels.inc(1) == 2  # compiled and cached before the sandbox
from core.safety import sandbox
from core.isolation.serve import numba_cache_read_only
report = sandbox.confine(sandbox.SandboxSpec(Path(tempfile.mkdtemp()), read=({str(tmp_path)!r},)))
assert report.active, report
numba_cache_read_only()
print(kernels.inc(1.5))  # a new signature: compiled in the sandbox, not saved
"""
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.strip() == "2.5"
