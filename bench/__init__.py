"""ModelLens benchmarks (``make bench`` = ``python -m bench``): speed is measured here, never asserted in tests.

Every comparison is measured side by side in one run (interleaved repeats, medians) and reported as ratios,
because our machines are noisy.
"""
