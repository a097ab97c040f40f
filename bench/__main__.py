"""``python -m bench [section ...]``: run the benchmarks (default: all) and print Markdown tables."""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import time
import warnings

SECTIONS = {
    "treeshap": "bench.treeshap",
    "engine": "bench.engine",
    "foldback": "bench.foldback",
    "browser": "bench.browser",
    "dask": "bench.dask_scaling",
    "automl": "bench.automl",
    "hostile": "bench.hostile",
    "sandbox": "bench.sandbox",
    "whatif": "bench.whatif",
    "cohorts": "bench.cohorts",
    "firstview": "bench.firstview",
    "load": "bench.load",
}


def sections(argv: list[str] | None = None) -> tuple[list[str], bool]:
    """The sections to run (all when none are named) and whether ``--quick`` was given."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    # argparse rejects an empty ``nargs="*"`` list against ``choices`` (Python < 3.12), so sections are checked here.
    parser.add_argument("sections", nargs="*", metavar="section", help=f"one of {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer rows and repeats (a smoke run)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.sections if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section {', '.join(unknown)} (choose from {', '.join(SECTIONS)})")
    return args.sections or list(SECTIONS), args.quick


def main() -> None:
    chosen, quick = sections()
    os.environ.setdefault("MODELLENS_LOG_LEVEL", "WARNING")  # workers' start-up lines would break the tables
    warnings.filterwarnings("ignore", category=UserWarning)  # shap's and Dask's notices, same reason
    print(
        f"# ModelLens benchmarks — {time.strftime('%Y-%m-%d %H:%M')}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}\n"
    )
    for name in chosen:
        started = time.perf_counter()
        importlib.import_module(SECTIONS[name]).run(quick=quick)
        print(f"\n_{name}: {time.perf_counter() - started:.0f} s_\n", flush=True)


if __name__ == "__main__":
    main()
