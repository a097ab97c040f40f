"""A legitimate model zoo trained in the tests: every family the loader and the engine support."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd


def tabular(n: int = 240, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """A mixed table (numeric, string categorical, missing values) with a binary and a numeric target."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n).astype(float),
            "income": rng.lognormal(10, 0.5, n).round(0),
            "tenure": rng.exponential(5, n).round(2),
            "city": rng.choice(["Lyon", "Paris", "Nice"], n),
            "plan": rng.choice(["basic", "pro"], n),
        }
    )
    frame.loc[rng.choice(n, n // 10, replace=False), "tenure"] = np.nan
    score = 0.04 * (frame["age"] - 50) + (frame["city"] == "Paris") * 1.2 - 0.1 * frame["tenure"].fillna(3)
    y_class = (score + rng.normal(0, 0.7, n) > 0).astype(int).to_numpy()
    y_reg = (score * 10 + frame["income"] / 1e4 + rng.normal(0, 1, n)).to_numpy()
    return frame, y_class, y_reg


def numeric(n: int = 240, seed: int = 0, k: int = 3) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Numeric features with NaNs, a binary, a k-class and a numeric target."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 6)), columns=[f"x{i}" for i in range(6)])
    logits = X["x0"] * 1.5 - X["x1"] + 0.5 * X["x2"] * X["x3"]
    y_bin = (logits + rng.normal(0, 0.5, n) > 0).astype(int).to_numpy()
    y_multi = np.digitize(logits + rng.normal(0, 0.3, n), np.quantile(logits, np.linspace(0, 1, k + 1)[1:-1]))
    y_reg = (logits * 3 + rng.normal(0, 0.5, n)).to_numpy()
    return X, y_bin, y_multi, y_reg


def _pipeline_frame(est: Any) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    prep = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(add_indicator=True), StandardScaler()), ["age", "income", "tenure"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city", "plan"]),
        ]
    )
    return make_pipeline(prep, est)


def builders() -> dict[str, Callable[[], tuple[Any, Any]]]:
    """name -> () -> (fitted model, the X it takes)."""
    import catboost
    import lightgbm as lgb
    import xgboost as xgb
    from sklearn import ensemble, linear_model, neighbors, neural_network, svm, tree
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.decomposition import PCA
    from sklearn.feature_selection import SelectKBest, f_classif
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, SplineTransformer, StandardScaler

    X, yb, ym, yr = numeric()
    F, fb, fr = tabular()
    Xa = X.to_numpy()
    Xf = X.fillna(0)

    def fit(model: Any, data: Any, y: Any) -> tuple[Any, Any]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return model.fit(data, y), data

    return {
        "rf_clf": lambda: fit(ensemble.RandomForestClassifier(n_estimators=20, random_state=0), X, yb),
        "rf_multi": lambda: fit(ensemble.RandomForestClassifier(n_estimators=20, random_state=0), X, ym),
        "rf_reg": lambda: fit(ensemble.RandomForestRegressor(n_estimators=20, random_state=0), X, yr),
        "et_clf": lambda: fit(ensemble.ExtraTreesClassifier(n_estimators=20, random_state=0), Xf, yb),
        "dt_reg": lambda: fit(tree.DecisionTreeRegressor(max_depth=5, random_state=0), X, yr),
        "gb_clf": lambda: fit(ensemble.GradientBoostingClassifier(n_estimators=30, random_state=0), Xf, yb),
        "gb_multi": lambda: fit(ensemble.GradientBoostingClassifier(n_estimators=20, random_state=0), Xf, ym),
        "gb_reg": lambda: fit(ensemble.GradientBoostingRegressor(n_estimators=30, random_state=0), Xf, yr),
        "hgb_clf": lambda: fit(ensemble.HistGradientBoostingClassifier(max_iter=30, random_state=0), X, yb),
        "hgb_multi": lambda: fit(ensemble.HistGradientBoostingClassifier(max_iter=20, random_state=0), X, ym),
        "hgb_reg": lambda: fit(ensemble.HistGradientBoostingRegressor(max_iter=30, random_state=0), X, yr),
        "xgb_clf": lambda: fit(xgb.XGBClassifier(n_estimators=30, max_depth=3, n_jobs=1), X, yb),
        "xgb_multi": lambda: fit(xgb.XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1), X, ym),
        "xgb_reg": lambda: fit(xgb.XGBRegressor(n_estimators=30, max_depth=3, n_jobs=1), X, yr),
        "lgbm_clf": lambda: fit(lgb.LGBMClassifier(n_estimators=30, verbose=-1, n_jobs=1), X, yb),
        "lgbm_multi": lambda: fit(lgb.LGBMClassifier(n_estimators=20, verbose=-1, n_jobs=1), X, ym),
        "lgbm_reg": lambda: fit(lgb.LGBMRegressor(n_estimators=30, verbose=-1, n_jobs=1), X, yr),
        "catboost_clf": lambda: fit(
            catboost.CatBoostClassifier(iterations=30, verbose=0, thread_count=1, allow_writing_files=False), X, yb
        ),
        "catboost_reg": lambda: fit(
            catboost.CatBoostRegressor(iterations=30, verbose=0, thread_count=1, allow_writing_files=False), X, yr
        ),
        "logreg": lambda: fit(make_pipeline(StandardScaler(), linear_model.LogisticRegression()), Xf, yb),
        "logreg_multi": lambda: fit(linear_model.LogisticRegression(max_iter=500), Xf, ym),
        "ridge": lambda: fit(linear_model.Ridge(), Xf, yr),
        "linreg_array": lambda: fit(linear_model.LinearRegression(), np.nan_to_num(Xa[:, :4]), yr),
        "svc": lambda: fit(svm.SVC(probability=True, random_state=0), Xf, yb),
        "knn": lambda: fit(neighbors.KNeighborsClassifier(), Xf, yb),
        "mlp": lambda: fit(neural_network.MLPRegressor(hidden_layer_sizes=(8,), max_iter=300, random_state=0), Xf, yr),
        "calibrated": lambda: fit(CalibratedClassifierCV(linear_model.LogisticRegression(), cv=3), Xf, yb),
        "stacking": lambda: fit(
            ensemble.StackingClassifier(
                [
                    ("rf", ensemble.RandomForestClassifier(n_estimators=5, random_state=0)),
                    ("lr", linear_model.LogisticRegression()),
                ]
            ),
            Xf,
            yb,
        ),
        "voting": lambda: fit(
            ensemble.VotingClassifier(
                [
                    ("gb", ensemble.GradientBoostingClassifier(n_estimators=5)),
                    ("lr", linear_model.LogisticRegression()),
                ],
                voting="soft",
            ),
            Xf,
            yb,
        ),
        "ttr_log1p": lambda: fit(
            TransformedTargetRegressor(linear_model.Ridge(), func=np.log1p, inverse_func=np.expm1), Xf, np.abs(yr)
        ),
        "function_log1p": lambda: fit(make_pipeline(FunctionTransformer(np.log1p), linear_model.Ridge()), Xf.abs(), yr),
        "selectkbest": lambda: fit(
            make_pipeline(SelectKBest(f_classif, k=3), linear_model.LogisticRegression()), Xf, yb
        ),
        "spline": lambda: fit(make_pipeline(SplineTransformer(), linear_model.Ridge()), Xf, yr),
        "pca_pipeline": lambda: fit(make_pipeline(StandardScaler(), PCA(3), linear_model.LogisticRegression()), Xf, yb),
        "pipe_rf": lambda: fit(
            _pipeline_frame(ensemble.RandomForestClassifier(n_estimators=20, random_state=0)), F, fb
        ),
        "pipe_gb_reg": lambda: fit(
            _pipeline_frame(ensemble.GradientBoostingRegressor(n_estimators=30, random_state=0)), F, fr
        ),
        "pipe_lgbm": lambda: fit(_pipeline_frame(lgb.LGBMClassifier(n_estimators=20, verbose=-1, n_jobs=1)), F, fb),
        "pipe_xgb": lambda: fit(_pipeline_frame(xgb.XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1)), F, fb),
        "pipe_logreg": lambda: fit(_pipeline_frame(linear_model.LogisticRegression(max_iter=500)), F, fb),
    }


def outputs_of(model: Any, X: Any) -> list[np.ndarray]:
    """Every output a model offers on X (predict, and predict_proba / decision_function where available)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = [np.asarray(model.predict(X))]
        for name in ("predict_proba", "decision_function"):
            try:
                method = getattr(model, name)
            except AttributeError:
                continue
            out.append(np.asarray(method(X)))
    return out
