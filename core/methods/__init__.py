"""Exact explanation methods per model family (trees, linear, permutation, Azure AutoML ensembles)."""
