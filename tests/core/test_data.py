"""Tables in, aligned frames out; every messy input is a typed error that names the problem."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from core.data.alignment import align
from core.data.tables import load_table
from core.errors import DataError, SchemaError


def test_csv_variants_read_the_same_table():
    expected = pd.DataFrame({"age": [31.5, 40.0], "city": ["Lyon", "Nice"]})
    variants = {
        "comma.csv": b"age,city\n31.5,Lyon\n40,Nice\n",
        "bom.csv": "\ufeffage,city\n31.5,Lyon\n40,Nice\n".encode(),
        "semicolon_decimal_comma.csv": b"age;city\n31,5;Lyon\n40;Nice\n",
        "tabs.tsv": b"age\tcity\n31.5\tLyon\n40\tNice\n",
        "latin1.csv": "age,city\n31.5,Lyon\n40,Nice\n".encode("latin-1"),
    }
    for name, data in variants.items():
        frame = load_table(data, name)
        assert list(frame.columns) == ["age", "city"], name
        np.testing.assert_allclose(frame["age"].to_numpy(dtype=float), expected["age"], err_msg=name)
        assert frame["city"].tolist() == ["Lyon", "Nice"], name


def test_latin1_text_is_decoded():
    frame = load_table("ville,âge\nMâcon,3\n".encode("latin-1"), "fr.csv")
    assert list(frame.columns) == ["ville", "âge"] and frame.iloc[0, 0] == "Mâcon"


def test_parquet_and_excel():
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    buf = io.BytesIO()
    frame.to_parquet(buf)
    assert load_table(buf.getvalue(), "t.parquet").equals(frame)
    buf = io.BytesIO()
    frame.to_excel(buf, index=False)
    assert load_table(buf.getvalue(), "t.xlsx")["b"].tolist() == ["x", "y"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"a,b,c\n", "header but no rows"),
        (b"a,b,a\n1,2,3\n", "duplicate column names: 'a'"),
        (b"\x00\x01\x02binary\x00", "not a text table"),
        (b"PAR1garbage", "Parquet file"),
        (b"PK\x03\x04garbage", "Excel"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504), r"old-format Excel workbook \(.xls\); save it as .xlsx"),
    ],
)
def test_bad_tables(data, message):
    with pytest.raises(DataError, match=message):
        load_table(data, "upload.csv")


def test_row_cap():
    with pytest.raises(DataError, match="over this server's cap of 3"):
        load_table(b"a\n1\n2\n3\n4\n", "big.csv", max_rows=3)


def card(names=("age", "income", "city"), kinds=None, classes=("no", "yes"), n=None):
    return SimpleNamespace(
        feature_names=list(names) if names is not None else None,
        n_features=n if n is not None else (len(names) if names else None),
        input_kinds=kinds or {"age": "numeric", "income": "numeric", "city": "categorical"},
        categories={"city": ["Lyon", "Nice"]},
        classes=list(classes) if classes else None,
    )


def test_align_reorders_sets_aside_target_and_extras():
    table = pd.DataFrame(
        {"id": [1, 2], "city": ["Lyon", "Nice"], "churn": ["yes", "no"], "income": ["1,5", "2"], "Age ": [30, 40]}
    )
    table.columns = ["id", "city", "churn", "income", "Age"]
    aligned = align(card(), table)
    assert list(aligned.frame.columns) == ["age", "income", "city"]
    assert aligned.target_name == "churn" and aligned.ignored == ("id",)
    assert aligned.frame["income"].tolist() == [1.5, 2.0]
    text = " ".join(aligned.notices)
    assert "'churn' looks like the target" in text and "'id'" in text and "ignoring case" in text


def test_align_names_missing_columns():
    with pytest.raises(SchemaError, match="lacks 2 columns the model needs: 'income', 'city'") as info:
        align(card(), pd.DataFrame({"age": [1]}))
    assert info.value.missing == ("income", "city")


def test_align_text_in_a_numeric_column():
    with pytest.raises(DataError, match="'income' must hold numbers"):
        align(card(), pd.DataFrame({"age": [1], "income": ["lots"], "city": ["Lyon"]}))
    aligned = align(card(), pd.DataFrame({"age": [1, 2], "income": ["5", "n/a"], "city": ["Lyon", "Paris"]}))
    assert np.isnan(aligned.frame["income"].iloc[1])
    assert any("not numbers" in n for n in aligned.notices) and any(
        "not seen in training" in n for n in aligned.notices
    )


def test_bare_array_models_match_by_position():
    model = card(names=None, classes=None, n=2)
    aligned = align(model, pd.DataFrame({"u": [1.0], "v": [2.0], "target": [3.0]}))
    assert aligned.by_position and list(aligned.frame.columns) == ["u", "v"] and aligned.target_name == "target"
    with pytest.raises(SchemaError, match="fitted on 2 unnamed columns but the table has 4"):
        align(model, pd.DataFrame({"u": [1.0], "v": [2.0], "w": [3.0], "x": [4.0]}))


def test_explicit_target_that_does_not_exist():
    with pytest.raises(SchemaError, match="'label' is not in the table"):
        align(card(), pd.DataFrame({"age": [1], "income": [2], "city": ["Lyon"]}), target="label")


@pytest.mark.parametrize(
    ("values", "expected", "how"),
    [
        (["72,000", "1,234.5", "17.25"], [72000.0, 1234.5, 17.25], "thousands separator"),
        (["3,5", "1.234,5", "2"], [3.5, 1234.5, 2.0], "decimal comma"),
        (["3,5", "72,000"], [3.5, 72.0], "decimal comma"),  # one value decides the column's convention
    ],
)
def test_numbers_written_with_commas_are_read_by_the_column_convention(values, expected, how):
    frame = pd.DataFrame({"age": [1] * len(values), "income": values, "city": ["Lyon"] * len(values)})
    aligned = align(card(), frame)
    assert aligned.frame["income"].tolist() == expected
    assert any(how in n and "'income'" in n for n in aligned.notices)
