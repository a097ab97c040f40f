"""The allowlisting unpickler: every attack refused by name with nothing run; every real model loads exactly."""

from __future__ import annotations

import io
import pickle
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest

from core.errors import MissingDependencyError, ModelLoadError, UnsafeModelError
from core.safety.pickle_scan import list_globals
from core.safety.safe_pickle import safe_load
from tests.conftest import SHARED
from tests.core import attacks, zoo

NAIVE = """
import io, pickle, sys, joblib, numpy as np
data = open(sys.argv[1], 'rb').read()
try:
    obj = joblib.load(io.BytesIO(data))
except Exception:
    obj = pickle.loads(data)
if hasattr(obj, 'transform'):
    obj.transform(np.zeros((1, 1)))
"""


@pytest.fixture(scope="module")
def marker_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    base = tmp_path_factory.mktemp("attacks")
    mark = base / "markers"
    mark.mkdir()
    files = {}
    for name, data in attacks.marker_payloads(mark).items():
        files[name] = base / f"{name}.pkl"
        files[name].write_bytes(data)
    return mark, files


def test_every_marker_payload_is_live_under_naive_loaders(marker_files, tmp_path):
    """Sanity of the corpus: pickle/joblib (and predict) really run each payload."""
    mark, files = marker_files
    for name, path in files.items():
        subprocess.run([sys.executable, "-c", NAIVE, str(path)], capture_output=True, timeout=60, check=False)
        assert (mark / f"ran_{name}").exists(), f"{name} did not run under the naive loader"
        (mark / f"ran_{name}").unlink()


def test_safe_loader_refuses_every_marker_payload_and_runs_nothing(marker_files):
    mark, files = marker_files
    for name, path in files.items():
        with pytest.raises(UnsafeModelError) as info:
            safe_load(path.read_bytes())
        assert info.value.refused, name
        assert all(n in str(info.value) for n in info.value.refused[:3]), name
    assert list(mark.iterdir()) == [], "a refused payload ran"


@pytest.mark.parametrize("name", sorted(attacks.inert_payloads()))
def test_inert_attacks_are_refused_by_name(name):
    data, expected = attacks.inert_payloads()[name]
    with pytest.raises(UnsafeModelError, match=None) as info:
        safe_load(data)
    assert expected in str(info.value) or any(expected in r for r in info.value.refused), str(info.value)


CORPUS_SCRIPT = Path(__file__).parent / "corpus" / "make_unsafe_pickles.py"  # a copy of shared/corpus/


def test_vendored_corpus_script_matches_the_shared_one():
    shared = SHARED / "corpus" / "make_unsafe_pickles.py"
    if not shared.exists():
        pytest.skip("no ../shared beside this checkout (CI clones the project alone)")
    assert CORPUS_SCRIPT.read_bytes() == shared.read_bytes()


def test_shared_corpus(tmp_path):
    out, mark = tmp_path / "corpus", tmp_path / "markers"
    subprocess.run([sys.executable, str(CORPUS_SCRIPT), str(out), str(mark)], check=True)
    broken = {"truncated.pkl", "not_a_pickle.pkl"}
    for path in sorted(out.iterdir()):
        if path.name in broken:
            with pytest.raises(ModelLoadError) as info:
                safe_load(path.read_bytes())
            assert not isinstance(info.value, UnsafeModelError)
            assert "truncated" in str(info.value) or "not a pickle" in str(info.value)
        else:
            with pytest.raises(UnsafeModelError) as info:
                safe_load(path.read_bytes())
            assert any(g in str(info.value) for g in ("system", "exec", "getoutput")), str(info.value)
    assert list(mark.iterdir()) == []


def test_refusal_lists_every_refused_global():
    data = pickle.dumps(
        {
            "a": attacks.Reduce(__import__("os").system, "true"),
            "b": attacks.Reduce(__import__("subprocess").getoutput, "true"),
            "c": attacks.Reduce(eval, "1"),
        },
        protocol=4,
    )
    with pytest.raises(UnsafeModelError) as info:
        safe_load(data)
    assert set(info.value.refused) >= {"posix.system", "subprocess.getoutput", "builtins.eval"}
    for name in ("posix.system", "subprocess.getoutput", "builtins.eval"):
        assert name in str(info.value)


def test_custom_code_is_refused_with_advice():
    import cloudpickle
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    model = make_pipeline(FunctionTransformer(lambda x: x * 2), StandardScaler()).fit(np.ones((4, 2)))
    with pytest.raises(UnsafeModelError) as info:
        safe_load(cloudpickle.dumps(model))
    assert info.value.custom_code
    assert "custom Python code" in str(info.value) and "skops" in str(info.value)


def test_malicious_refusals_never_suggest_trust(marker_files):
    """Issue 19: a file that asks for os/subprocess/eval/pickle.loads ... must not end with "use --trust"."""
    _mark, files = marker_files
    plainly_malicious = {"p01_os_system_proto0", "p_builtins_eval", "p09_nested_pickle_loads", "p_subprocess_popen"}
    for name, path in files.items():
        with pytest.raises(UnsafeModelError) as info:
            safe_load(path.read_bytes())
        assert "--trust" not in str(info.value), f"{name}: {info.value}"
        if name in plainly_malicious:
            assert "No model needs" in str(info.value), f"{name}: {info.value}"


def test_custom_code_refusal_offers_trust_for_your_own_code():
    import cloudpickle
    from sklearn.preprocessing import FunctionTransformer

    error = _refused(cloudpickle.dumps(FunctionTransformer(lambda x: x + 1)))
    assert error.custom_code and "`modellens --trust`" in str(error)
    error = _refused(b"\x80\x04" + attacks._s("my_features") + attacks._s("AgeBucketer") + b"\x93)\x81.")
    assert "`modellens --trust`" in str(error)


def test_custom_code_next_to_a_malicious_global_does_not_offer_trust():
    data = pickle.dumps(
        [attacks.Reduce(__import__("os").system, "true"), attacks.Reduce(print, "x")],
        protocol=4,
    )
    data = data.replace(b"builtins", b"my_utils")  # print from the user's own module, beside os.system
    error = _refused(data)
    assert "my_utils.print" in str(error) and "--trust" not in str(error)


def _refused(data: bytes) -> UnsafeModelError:
    with pytest.raises(UnsafeModelError) as info:
        safe_load(data)
    return info.value


def test_user_module_class_is_custom_code():
    data = b"\x80\x04" + attacks._s("my_features") + attacks._s("AgeBucketer") + b"\x93)\x81."
    with pytest.raises(UnsafeModelError) as info:
        safe_load(data)
    assert info.value.custom_code and "my_features.AgeBucketer" in str(info.value)


def test_missing_dependency_is_not_unsafe():
    data = b"\x80\x04" + attacks._s("azureml.training.tabular.models") + attacks._s("Thing") + b"\x93)\x81."
    with pytest.raises(MissingDependencyError) as info:
        safe_load(data)
    assert info.value.package == "azureml-automl-runtime"


def test_empty_and_garbage_files():
    with pytest.raises(ModelLoadError, match="empty"):
        safe_load(b"")
    with pytest.raises(ModelLoadError, match="not a pickle"):
        safe_load(b"%PDF-1.7 not a model")
    with pytest.raises(ModelLoadError, match="damaged or truncated"):
        safe_load(b"\x1f\x8b" + b"\x00" * 20)


def test_decompressed_size_is_capped():
    from core.safety.safe_pickle import Policy

    buf = io.BytesIO()
    joblib.dump(np.zeros(2_000_000), buf, compress=3)
    with pytest.raises(ModelLoadError, match="expands to more than"):
        safe_load(buf.getvalue(), Policy(max_bytes=1_000_000))


ZOO = zoo.builders()


@pytest.fixture(scope="module")
def fitted_zoo():
    return {name: build() for name, build in ZOO.items()}


def _dumps(model, fmt: str) -> bytes:
    if fmt.startswith("pickle"):
        return pickle.dumps(model, protocol=int(fmt[-1]))
    buf = io.BytesIO()
    compress = {
        "joblib": 0,
        "joblib-zlib": 3,
        "joblib-gzip": ("gzip", 3),
        "joblib-bz2": ("bz2", 3),
        "joblib-xz": ("xz", 3),
        "joblib-lzma": ("lzma", 3),
        "joblib-lz4": ("lz4", 3),
    }[fmt]
    joblib.dump(model, buf, compress=compress)
    return buf.getvalue()


FORMATS = [
    "pickle2",
    "pickle3",
    "pickle4",
    "pickle5",
    "joblib",
    "joblib-zlib",
    "joblib-gzip",
    "joblib-bz2",
    "joblib-xz",
    "joblib-lzma",
    "joblib-lz4",
]


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_loads_and_predicts_exactly_in_every_format(fitted_zoo, name):
    model, X = fitted_zoo[name]
    expected = zoo.outputs_of(model, X)
    for fmt in FORMATS:
        loaded = safe_load(_dumps(model, fmt)).obj
        for want, got in zip(expected, zoo.outputs_of(loaded, X), strict=True):
            np.testing.assert_array_equal(got, want, err_msg=f"{name} / {fmt}")


def test_list_globals_resolves_stack_global_through_the_memo():
    data = pickle.dumps(zoo.builders()["rf_clf"]()[0], protocol=4)
    found = list_globals(data)
    assert ("sklearn.ensemble._forest", "RandomForestClassifier") in found
    assert ("sklearn.tree._tree", "Tree") in found


def test_a_bytearray_longer_than_the_file_is_not_allocated():
    """Found by the fuzz: pickle's BYTEARRAY8 allocates the declared size (up to 2**63) before reading."""
    bomb = b"\x80\x05\x96" + (2**40).to_bytes(8, "little") + b"."
    with pytest.raises(ModelLoadError, match="longer than the file"):
        safe_load(bomb)
    assert safe_load(pickle.dumps(bytearray(b"model bytes"), protocol=5)).obj == bytearray(b"model bytes")
