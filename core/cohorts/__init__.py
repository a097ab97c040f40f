"""Groups and change: compare cohorts, find where the model is wrong, diff two explanations (issue 18).

Pure numpy / pandas / scikit-learn over explanations that already exist: nothing here runs a model. Every number
is an aggregate of per-row values, so it works on every explained row, with seeded bootstrap intervals.
"""
