"""The HTML report: self-contained and escaped (its offline rendering is checked in tests/e2e)."""

from __future__ import annotations

from core.present.exports import neutralise_formula, safe_table, shap_csv
from core.present.report import build_report
from tests.core.test_figures import HOSTILE, explanation


def test_report_is_self_contained_and_escapes_every_user_string():
    expl = explanation()
    card = {
        "estimator": "RandomForestClassifier",
        "library": "scikit-learn",
        "task": "binary",
        "classes": ["<b>no</b>", "yes"],
        "filename": "<script>x</script>.pkl",
        "steps": [{"name": "<i>prep</i>", "class": "ColumnTransformer", "detail": HOSTILE}],
    }
    html = build_report(expl, card, rows=[expl.row(3), expl.row(9)], title=f"Churn {HOSTILE}", notes=[HOSTILE])
    assert HOSTILE not in html and "<script>x</script>" not in html and "<b>no</b>" not in html
    assert "&lt;img src=x" in html and "&lt;script&gt;x&lt;/script&gt;.pkl" in html
    assert html.count("<script type='text/javascript'>") == 1 and "<script src=" not in html
    assert "Waterfall for row 3" in html and "Waterfall for row 9" in html and "Force view for row 9" in html
    assert "Predicted" in html and "computed on" not in html  # every row explained: "all 200 rows"
    assert "all 200 rows" in html


def test_spreadsheet_formula_injection_is_neutralised():
    assert neutralise_formula("=cmd|' /C calc'!A0") == "'=cmd|' /C calc'!A0"
    assert (
        neutralise_formula("-2+3") == "'-2+3" and neutralise_formula(-2.5) == -2.5 and neutralise_formula("ok") == "ok"
    )
    frame = explanation().to_frame()
    frame.columns = [*frame.columns[:-1], "@prediction"]
    table = safe_table(frame)
    assert table.columns[-1] == "'@prediction" and (table["row_id"] == frame["row_id"]).all()
    assert shap_csv(frame).decode().splitlines()[0].endswith("'@prediction")
