"""The row explorer's search finds exactly the rows a pandas filter finds, and says why when it finds none."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from core.data.rows import example_query, rows_table, search_rows


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    frame = load_breast_cancer(as_frame=True).frame.drop(columns="target")
    frame.insert(3, "site", np.where(np.arange(len(frame)) % 3 == 0, "Lyon", "Paris"))
    prediction = np.linspace(0, 1, len(frame))
    actual = pd.Series(np.arange(len(frame)) % 2)
    return rows_table(frame, prediction, "probability of 'malignant'", actual)


def _rows(result) -> list[int]:
    return result.rows["row"].tolist()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("worst radius>25", lambda t: t["worst radius"] > 25),
        ('"worst radius">25', lambda t: t["worst radius"] > 25),
        ("`worst radius` > 25", lambda t: t["worst radius"] > 25),
        ("Worst Radius>=25", lambda t: t["worst radius"] >= 25),
        ("prediction>0.9", lambda t: t["prediction (probability of 'malignant')"] > 0.9),
        ("actual=1", lambda t: t["actual"] == 1),
        ("worst radius>20, site=lyon", lambda t: (t["worst radius"] > 20) & (t["site"] == "Lyon")),
        ("mean area<500 site!=Paris", lambda t: (t["mean area"] < 500) & (t["site"] != "Paris")),
        (
            "site=Paris, prediction<=0.1",
            lambda t: (t["site"] == "Paris") & (t["prediction (probability of 'malignant')"] <= 0.1),
        ),
        ("lyon worst radius>20", lambda t: (t["worst radius"] > 20) & (t["site"] == "Lyon")),
        ("row:42", lambda t: t["row"] == 42),
        ("lyon", lambda t: t["site"] == "Lyon"),
    ],
)
def test_each_search_form_finds_what_pandas_finds(table, query, expected):
    result = search_rows(table, query)
    assert _rows(result) == table[expected(table)]["row"].tolist()
    assert result.message is None or result.rows.empty


def test_the_placeholder_example_finds_rows(table):
    example = example_query(table)
    assert example.startswith("row:12, ")
    assert search_rows(table, example.split(", ", 1)[1]).rows.shape[0] > 0


def test_a_term_that_names_no_column_says_so(table):
    result = search_rows(table, "age>60, sex=female")
    assert result.rows.empty and result.message == "No rows match: there is no column named 'age'."


def test_an_empty_result_says_so(table):
    result = search_rows(table, "worst radius>1000")
    assert result.rows.empty and result.message == "No rows match 'worst radius>1000'."


def test_a_text_comparison_needs_a_number(table):
    assert search_rows(table, "site>Lyon").message == "No rows match: 'site' > needs a number, not 'Lyon'."


def test_an_empty_query_keeps_every_row(table):
    result = search_rows(table, "  ")
    assert len(result.rows) == len(table) and result.message is None
