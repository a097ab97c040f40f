import time

import streamlit as st

from core.present.exports import shap_csv, shap_parquet
from core.present.report import build_report
from ui import auth, cohorts, context, loaders, render, share, state, whatif

st.title("Share & export")
with render.guard():
    ctx = context.current()
app, expl = state.get(), ctx.explanation()

st.subheader("Share link")
if ctx.read_only:
    st.info("This is a shared view: it can be viewed and exported, not re-shared.", icon=":material/visibility:")
else:
    title = share.title_input(ctx)
    with st.form("share_form"):
        days = st.number_input("Valid for (days)", 1, 365, loaders.settings().share_days)
        if st.form_submit_button("Create link", type="primary", icon=":material/share:"):
            with render.guard():
                record = share.create(ctx, title=title, days=float(days))
            app.share_link = share.link(
                record, page="rows" if app.row is not None else "", row=app.row, class_label=app.class_label
            )
    if app.share_link:
        st.code(app.share_link, language=None, wrap_lines=True)
    owner = auth.current_user()
    records = loaders.store().shares_of(owner)
    st.subheader(f"Your shares ({len(records)})")
    for record in records:
        left, middle, right = st.columns([5, 3, 1])
        left.markdown(f"[{render.md(record.title)}]({share.link(record)})")
        middle.caption(f"until {time.strftime('%d %b %Y', time.localtime(record.expires))}")
        right.button("Delete", key=f"delete_{record.id}", on_click=loaders.store().delete, args=(record.id, owner))

st.subheader("Report")
st.caption(
    "One HTML file with the model card, global importance, the beeswarm, the pinned rows, the pinned what-if "
    "scenarios and the group views pinned on Cohorts & errors and Explanation diff; it opens offline."
)
choices = sorted({*app.pinned, *([app.row] if app.row is not None else [])})
rows = st.multiselect("Rows in the report", choices, default=choices, help="Pin rows in the row explorer.")
title = share.view_title(ctx)  # typed above (even unsubmitted), else a share's own title or the files' names
groups = (app.report_parts, app.cohorts, app.cohort_pair)  # pinned group views: cohorts, errors, diff
report_key = repr((ctx.model_key, ctx.data_key, ctx.class_label, expl.output, rows, app.scenarios, groups, title))
if st.button("Build report", icon=":material/description:"):
    with render.guard(), st.spinner("Building the report…"):
        pinned = [ctx.job.row(r).for_class(ctx.class_label).row(0) for r in rows]
        # kept in the session: a rerun (e.g. the background refinement finishing) must not lose the download
        app.report = (
            report_key,
            build_report(
                expl,
                ctx.model.card(),
                rows=pinned,
                scenarios=whatif.scenario_views(ctx),
                groups=cohorts.report_sections(ctx),
                title=title,
                notes=list(ctx.model.notices),
            ),
        )
built = app.report
if built and built[0] == report_key:  # only the report of what is on screen
    st.download_button(
        "Download report (HTML)",
        built[1],
        file_name="modellens-report.html",
        mime="text/html",
        type="primary",
    )

st.subheader("SHAP values")
what = "row id, feature values, contributions, base value, prediction"
st.caption(f"{expl.coverage_label.capitalize()}, {render.md(expl.units)}: {what}.")
table = expl.to_frame()
left, right = st.columns(2)
left.download_button("CSV", shap_csv(table), file_name="shap-values.csv", mime="text/csv", icon=":material/download:")
right.download_button("Parquet", shap_parquet(table), file_name="shap-values.parquet", icon=":material/download:")
