import streamlit as st

from core.data.metrics import headline_metrics, metric_output, prediction_column, table_summary
from core.present.figures import prediction_figure
from ui import context, loaders, render, state

st.title("Overview")
with render.guard():
    ctx = context.current(wait=False)  # drawn before any row is explained; the job starts at the end
model, aligned = ctx.model, ctx.aligned
keys = (ctx.model_key, ctx.data_key, state.get().target)
st.caption(render.md(ctx.source.label))

left, right = st.columns(2)
with left:
    st.subheader("Model")
    render.model_card(model)
    render.notices(model.notices)
with right:
    st.subheader("Data")
    for name, value in table_summary(aligned.frame, aligned.target).items():
        st.markdown(f"**{name}**: {render.md(value)}")
    render.notices(aligned.notices)
metrics = st.container()  # filled last: the chart comes first when the metrics need a second pass over the table

with render.guard():
    shown = loaders.predictions(*keys, ctx.explainer.output, ctx.model, ctx.aligned).unwrap()
column = prediction_column(shown, model.classes, ctx.class_label)
st.plotly_chart(prediction_figure(column, ctx.prediction_units(), actual=aligned.target), key="predictions")

with render.guard():  # the metrics' own pass over the table (probabilities), only when there is a target
    scores = (
        headline_metrics(
            model.task,
            aligned.target,
            loaders.predictions(*keys, metric_output(model.outputs), model, aligned).unwrap(),
            model.classes,
        )
        if aligned.target is not None
        else {}
    )
with metrics:
    if scores:
        st.subheader("How well it predicts this table")
        for box, (name, value) in zip(st.columns(len(scores)), scores.items(), strict=True):
            box.metric(name, f"{value:.3f}")
        if ctx.source.is_demo:
            st.caption(
                "The demo model was trained on these rows, so these scores are optimistic; yours are on your table."
            )
    elif aligned.target is None:
        st.caption("No target column: add one (or pick it in the sidebar) to see accuracy / ROC AUC or R² / MAE here.")
ctx.job.start()  # the first sample and then every row, in the background, for the pages that draw SHAP values
