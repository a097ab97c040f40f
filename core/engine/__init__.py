"""The explain engine: method selection, the public Explainer, progressive jobs, global importance."""
