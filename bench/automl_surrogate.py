"""Azure's own explanation of an AutoML model, for the AutoML benchmark: azureml-interpret's LightGBM surrogate.

Run by ``bench.automl`` with a Python that has the AutoML runtime plus ``azureml-interpret==1.62.0``
(``MODELLENS_BENCH_INTERPRET_PYTHON``): ``python bench/automl_surrogate.py MODEL_DIR`` prints one JSON line with
the seconds the surrogate took and the largest gap between what its raw-column explanation adds up to and the
model's own output (the surrogate's units are mapped back: sigmoid for binary, softmax for multiclass).
"""

import json
import os
import pickle
import sys
import time
import warnings

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")


def _feature_map(dt):
    raw = list(dt._raw_feature_names)
    index = {c: i for i, c in enumerate(raw)}
    docs = dt.get_json_strs_for_engineered_feature_names()
    out = np.zeros((len(raw), len(docs)))
    for j, text in enumerate(docs):
        for column in json.loads(text)["Transformations"]["Transformer1"]["Input"]:
            if column in index:
                out[index[column], j] = 1.0
    return out


def main(folder):
    from azureml.interpret import MimicWrapper
    from interpret_community.mimic.models.lightgbm_model import LGBMExplainableModel

    with open(os.path.join(folder, "meta.json")) as fh:
        meta = json.load(fh)
    with open(os.path.join(folder, "model.pkl"), "rb") as fh:
        model = pickle.load(fh)  # noqa: S301 - a model the benchmark built itself
    inner = getattr(model, "pipeline", model)
    dt, est = inner.steps[0][1], inner.steps[-1][1]
    raw = pd.read_csv(os.path.join(folder, "data.csv")).drop(columns=[meta["target_column"]])
    classifier = meta["task"] == "classification"
    started = time.perf_counter()
    Xt = dt.transform(raw)
    explainer = MimicWrapper(
        None,
        est,
        LGBMExplainableModel,
        init_dataset=Xt,
        features=dt.get_engineered_feature_names(),
        feature_maps=[_feature_map(dt)],
        classes=[str(c) for c in model.classes_] if classifier else None,
        model_task="classification" if classifier else "regression",
        explainer_kwargs={"augment_data": False, "explainable_model_args": {"n_jobs": 1}},
    )
    explanation = explainer.explain(
        ["local", "global"], eval_dataset=Xt, get_raw=True, raw_feature_names=list(dt._raw_feature_names), upload=False
    )
    seconds = time.perf_counter() - started
    values = np.asarray(explanation.local_importance_values)
    expected = np.asarray(explanation.expected_values)
    if not classifier:
        gap = np.abs(values.sum(axis=1) + expected - model.predict(raw)).max()
    elif values.shape[0] == 2:
        proba = np.asarray(model.predict_proba(raw))[:, 1]
        gap = np.abs(1 / (1 + np.exp(-(values[1].sum(axis=1) + expected[1]))) - proba).max()
    else:
        logits = values.sum(axis=2).T + expected
        soft = np.exp(logits - logits.max(axis=1, keepdims=True))
        gap = np.abs(soft / soft.sum(axis=1, keepdims=True) - np.asarray(model.predict_proba(raw))).max()
    print(json.dumps({"seconds": seconds, "gap": float(gap), "rows": len(raw)}))


if __name__ == "__main__":
    main(sys.argv[1])
