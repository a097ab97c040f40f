import streamlit as st

from core.engine.importance import global_importances, strongest_interaction
from core.present.figures import dependence_figure, importance_figure
from ui import context, loaders, progress, render, selection, state, whatif

st.title("Global importance")
with render.guard():
    ctx = context.current()
app = state.get()
views = ["raw", "engineered"] if ctx.result.engineered is not None else ["raw"]
if len(views) > 1:
    app.view = (
        st.segmented_control(
            "Columns",
            views,
            default=app.view if app.view in views else "raw",
            key="view_pick",
            help="raw: the columns you uploaded; engineered: what the model's final step sees",
        )
        or "raw"
    )
view = app.view if app.view in views else "raw"
expl = ctx.explanation(view)

model_imp = loaders.model_importances(
    ctx.model_key, ctx.data_key, app.target, ctx.explainer.output, ctx.explainer
).value
permutation = None
if (
    ctx.aligned.target is not None
    and view == "raw"
    and st.toggle("Compute permutation importance (needs the target; its progress shows below)")
):
    with render.guard():
        permutation = loaders.permutation(
            ctx.model_key, ctx.data_key, ctx.aligned.target_name, ctx.model, ctx.aligned, progress.permutation()
        ).unwrap()
all_classes = ctx.result.mean_abs_all_classes(view=view) if ctx.model.task == "multiclass" else None
kinds = global_importances(
    expl,
    all_classes=all_classes,
    model_importance=(model_imp or {}).get("model") if view == "raw" else None,
    permutation=permutation,
)
labels = {k.kind: k for k in kinds}
names = {
    "shap": "SHAP (this class)" if ctx.model.is_classifier else "SHAP",
    "shap-all-classes": "SHAP (all classes)",
    "model": "Model's own",
    "permutation": "Permutation",
}
kind = (
    st.segmented_control("Importance", list(labels), default="shap", format_func=names.get, key="kind_pick") or "shap"
)
top_n = render.top_n("Features shown", len(expl.feature_names), 15)
if labels[kind].note:
    st.caption(
        labels[kind].note.capitalize()
        + (" — the bars' whiskers are 95% bands." if labels[kind].error is not None else "")
    )
event = st.plotly_chart(
    importance_figure(labels[kind], top_n=top_n), key="importance", on_select="rerun", selection_mode="points"
)

clicked = selection.clicked_point(event, "importance")
if clicked and clicked[0] in expl.feature_names:
    st.session_state["dependence_pick"] = clicked[0]
st.subheader("Dependence")
st.caption("Click a bar to see how that feature's value drives its contribution.")
order = list(expl.mean_abs().index)
feature = st.selectbox("Feature", order, key="dependence_pick")
st.plotly_chart(dependence_figure(expl, feature, color_by=strongest_interaction(expl, feature)), key="dependence")
whatif.ice_section(ctx, feature)
