"""Issue 14, finding 5: every server-side parse of an upload ends in a typed error or a correct result, in bounded
memory, however the upload is built. Payloads come from tests/core/hostile.py (gigabytes when expanded, kilobytes
on disk); memory is measured with tracemalloc around the parse; no test asserts a time."""

from __future__ import annotations

import io
import pickle
import tracemalloc
import zipfile

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from core.data.tables import load_table
from core.errors import DataError, ModelLoadError
from core.loading.model_io import inspect_upload
from core.loading.model_zip import parse_pins
from core.loading.models import load_model
from core.safety import pickle_scan
from tests.core import hostile
from tests.core.hostile import GIB, MIB

PEAK_CAP = 160 * MIB  # the 32 MiB scan prefix and its bookkeeping, far below any payload's expanded size


def _peak(fn):
    """(result or raised typed error, peak traced bytes) of one call."""
    tracemalloc.start()
    try:
        try:
            out = fn()
        except (ModelLoadError, DataError) as exc:
            out = exc
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    return LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))


@pytest.fixture(scope="module")
def bz2_bomb():
    return hostile.bz2_opcode_bomb(GIB)


# --- pickles: the static global listing ---------------------------------------------------------


@pytest.mark.slow  # builds a 1 GiB payload (streaming, ~10 s)
def test_bz2_bomb_is_listed_from_a_bounded_prefix(bz2_bomb):
    assert len(bz2_bomb) < 4096
    scan, peak = _peak(lambda: pickle_scan.scan_globals(bz2_bomb))
    assert scan.globals == (hostile.AUTOML_GLOBAL,)
    assert scan.partial and "opcodes" in scan.stopped
    assert peak < PEAK_CAP


@pytest.mark.slow  # builds a 1 GiB payload (streaming, ~10 s)
def test_bz2_bomb_upload_is_still_recognised_as_automl(bz2_bomb):
    info, peak = _peak(lambda: inspect_upload(bz2_bomb, "model.joblib"))
    assert info.format == "pickle" and info.automl and info.globals_partial
    assert peak < PEAK_CAP


@pytest.mark.parametrize("kind", ["gzip", "zlib", "xz", "lzma", "lz4"])
def test_every_joblib_compressor_is_read_only_up_to_the_prefix(kind):
    import gzip
    import lzma
    import zlib

    import lz4.frame

    stream = hostile.automl_head() + hostile.big_strings(96 * MIB)  # 4 MiB strings: few opcodes, many bytes
    compress = {
        "gzip": lambda s: gzip.compress(s, 6),
        "zlib": lambda s: zlib.compress(s, 6),
        "xz": lambda s: lzma.compress(s, format=lzma.FORMAT_XZ, preset=0),
        "lzma": lambda s: lzma.compress(s, format=lzma.FORMAT_ALONE, preset=0),
        "lz4": lz4.frame.compress,
    }[kind]
    data = compress(stream)
    del stream
    scan, peak = _peak(lambda: pickle_scan.scan_globals(data))
    assert scan.globals == (hostile.AUTOML_GLOBAL,)
    assert scan.partial and "first 32 MB" in scan.stopped
    assert peak < PEAK_CAP


def test_a_complete_pickle_is_listed_whole_and_a_truncated_one_says_partial(model):
    data = pickle.dumps(model, protocol=4)
    whole = pickle_scan.scan_globals(data)
    assert not whole.partial and ("sklearn.linear_model._logistic", "LogisticRegression") in whole.globals
    cut = pickle_scan.scan_globals(data[: len(data) // 2])
    assert cut.partial and set(cut.globals) <= set(whole.globals)


def test_marks_and_memo_are_linear():
    # 90k MARKs closed by one TUPLE, then 90k GETs of one memo entry: each opcode is O(1) (amortised)
    stream = b"\x80\x04" + b"(" * 90_000 + b"t" + b"N\x94" + b"h\x00" * 90_000 + b"."
    scan = pickle_scan.scan_globals(stream)
    assert scan == pickle_scan.GlobalScan((), partial=False, stopped="")


# --- model zips --------------------------------------------------------------------------------


def test_a_requirements_file_of_spaces_has_no_pins(model):
    info, peak = _peak(lambda: inspect_upload(hostile.pins_zip(model, b" " * MIB), "model.zip"))
    assert info.format == "pickle" and info.pins == {}
    assert peak < PEAK_CAP


def test_pins_are_parsed_after_a_line_of_a_million_spaces():
    text = (
        " " * (MIB - 4096)  # the file cap is 1 MiB: the pins below still fit
        + "\n"
        + (
            "scikit-learn == 1.3.0\n  - numpy=1.26.4=py311_0\n- pip:\n  - azureml-train-automl-runtime==1.60.0\n"
            "python=3.10\npip==23\n" + " -" * 100_000 + "\n"
        )
    )
    assert parse_pins(text) == {
        "scikit-learn": "1.3.0",
        "numpy": "1.26.4",
        "azureml-train-automl-runtime": "1.60.0",
        "python": "3.10",
    }


def test_an_oversized_requirements_file_is_refused(model):
    with pytest.raises(ModelLoadError, match="'model/requirements.txt' is larger than the 1 MB cap"):
        inspect_upload(hostile.pins_zip(model, b"x" * (MIB + 1)), "model.zip")


@pytest.mark.slow  # builds a 1 GiB payload (streaming, ~10 s)
def test_a_gigabyte_json_member_is_refused_by_its_declared_size():
    data = hostile.json_zip(GIB)
    assert len(data) < 4 * MIB
    with pytest.raises(ModelLoadError, match="'model/model.pkl' is larger than the 1024 MB cap"):
        load_model(data, "model.zip")


def test_a_large_json_member_is_sniffed_without_parsing_it():
    data = hostile.json_zip(64 * MIB)
    err, peak = _peak(lambda: inspect_upload(data, "model.zip"))
    assert isinstance(err, ModelLoadError) and "not an XGBoost model" in str(err)
    assert peak < PEAK_CAP


def test_xgboost_json_is_recognised_by_its_first_key():
    info = inspect_upload(b'{ "learner" : {"attributes": {}}, "version": [2, 1, 0]}', "model.json")
    assert info.format == "xgboost-json"
    reordered = inspect_upload(b'{"version": [2, 1, 0], "learner": {}}', "model.json")
    assert reordered.format == "xgboost-json"
    assert inspect_upload(b"{L\x00\x00\x00\x00\x00\x00\x00\x07learner{}}", "model.ubj").format == "xgboost-ubj"


def test_a_member_whose_header_lies_about_its_size_is_damaged():
    data = hostile.lying_zip(hostile.json_zip(64 * MIB), "model/model.pkl", 1000)
    err, peak = _peak(lambda: inspect_upload(data, "model.zip"))
    assert isinstance(err, ModelLoadError) and "'model/model.pkl' is damaged" in str(err)
    assert peak < 16 * MIB


def test_bzip2_members_are_refused(model):
    data = hostile.zip_of({"model.pkl": pickle.dumps(model)}, compression=zipfile.ZIP_BZIP2)
    with pytest.raises(ModelLoadError, match="compression other than deflate"):
        inspect_upload(data, "model.zip")


def test_zip_nesting_is_bounded_with_a_sentence(model):
    with pytest.raises(ModelLoadError, match="nests zips more than 3 deep; upload the innermost model zip"):
        load_model(hostile.nested_zip(model, 700), "model.zip")
    inner = inspect_upload(hostile.nested_zip(model, 3), "model.zip")
    assert inner.format == "pickle" and ("sklearn.linear_model._logistic", "LogisticRegression") in inner.globals


def test_zip_entries_are_capped(model):
    files = {f"f{i}.txt": b"" for i in range(10_001)} | {"model.pkl": pickle.dumps(model)}
    with pytest.raises(ModelLoadError, match="10,002 entries, over the cap of 10,000"):
        inspect_upload(hostile.zip_of(files, compression=zipfile.ZIP_STORED), "model.zip")


# --- tables ------------------------------------------------------------------------------------


@pytest.mark.parametrize("run", [b'",', b'";', b"\t", b",", b'"\t,;|'])
def test_a_long_run_of_quotes_and_delimiters_is_a_typed_error(run):
    data = b"a,b\n" + run * (MIB // len(run)) + b"\n1,2\n"
    err, peak = _peak(lambda: load_table(data, "upload.csv"))
    assert isinstance(err, DataError) and "is not a well-formed table" in str(err)
    assert peak < PEAK_CAP


def test_the_dialect_comes_from_a_bounded_sample():
    rows = "".join(f"{i};{i},5;Lyon\n" for i in range(20_000))  # ~300 KB, sniffed on its first 64 KiB
    frame = load_table(("id;x;city\n" + rows).encode(), "big.csv")
    assert frame.shape == (20_000, 3) and frame["x"].iloc[3] == 3.5
    hostile_sample = b"a;b\n" + b"\t" * 60_000 + b"\n1,5;2\n"  # the old decimal-comma pattern backtracked here
    frame = load_table(hostile_sample, "t.csv")
    assert frame.shape == (1, 2) and frame["a"].tolist() == [1.5]  # (the line of tabs is blank to pandas)


def test_a_wide_header_is_refused_by_the_column_cap():
    header = b",".join(b"c%d" % i for i in range(200_000))
    with pytest.raises(DataError, match="200,000 columns, over this server's cap of 10,000"):
        load_table(header + b"\n" + b"1," * 199_999 + b"1\n", "wide.csv")


def test_parquet_rows_are_counted_from_the_footer():
    data = hostile.parquet_rows(20_000_000)
    assert len(data) < 200_000
    err, peak = _peak(lambda: load_table(data, "big.parquet"))
    assert isinstance(err, DataError) and "20,000,000 rows, over this server's cap of 2,000,000" in str(err)
    assert peak < 16 * MIB
    assert len(load_table(hostile.parquet_rows(3_000, group=1_000), "ok.parquet")) == 3_000


def test_parquet_columns_are_capped():
    with pytest.raises(DataError, match="10,001 columns, over this server's cap of 10,000"):
        load_table(hostile.parquet_columns(10_001), "wide.parquet")


@pytest.mark.slow  # builds a 1 GiB payload (streaming, ~10 s)
def test_an_excel_zip_bomb_is_refused_before_openpyxl():
    data = hostile.xlsx_bomb(GIB)
    assert len(data) < 4 * MIB
    err, peak = _peak(lambda: load_table(data, "bomb.xlsx"))
    assert isinstance(err, DataError) and "expands to more than 128 MB" in str(err)
    assert peak < 16 * MIB


def test_an_excel_member_that_lies_about_its_size_is_refused_and_a_padded_one_reads():
    padded = hostile.xlsx_bomb(32 * MIB)
    frame = load_table(padded, "padded.xlsx")
    assert frame.equals(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}))
    lying = hostile.lying_zip(padded, "xl/worksheets/sheet1.xml", 2000)
    err, peak = _peak(lambda: load_table(lying, "lying.xlsx"))
    assert isinstance(err, DataError) and "not a readable Excel workbook" in str(err)
    assert peak < 16 * MIB


def test_excel_row_cap_stops_the_read():
    buf = io.BytesIO()
    pd.DataFrame({"a": range(50)}).to_excel(buf, index=False)
    with pytest.raises(DataError, match="over this server's cap of 10"):
        load_table(buf.getvalue(), "t.xlsx", max_rows=10)


def test_a_long_csv_is_read_only_one_row_past_the_cap():
    data = b"a,b\n" + b"1,2\n" * 500_000
    with pytest.raises(DataError, match="has more than 1,000 rows, over this server's cap of 1,000"):
        load_table(data, "long.csv", max_rows=1_000)  # "more than": the read stopped at row 1,001


def test_the_server_peeks_at_a_large_model_member_and_the_worker_reads_it_whole():
    data = hostile.streamed_zip("model/model.pkl", hostile.automl_head(), 200 * MIB, filler=b"N")
    info, peak = _peak(lambda: inspect_upload(data, "automl.zip", peek=True))
    assert info.automl and info.globals_partial and len(info.model_bytes) == 32 * MIB
    assert peak < PEAK_CAP
    assert len(inspect_upload(data, "automl.zip").model_bytes) == len(hostile.automl_head()) + 200 * MIB
