"""``python -m bench [section ...]``: run the benchmarks (default: all) and print Markdown tables."""

from __future__ import annotations

import argparse
import importlib
import platform
import time

SECTIONS = {
    "treeshap": "bench.treeshap",
    "engine": "bench.engine",
    "foldback": "bench.foldback",
    "browser": "bench.browser",
    "dask": "bench.dask_scaling",
    "automl": "bench.automl",
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("sections", nargs="*", choices=list(SECTIONS), help="sections to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer rows and repeats (a smoke run)")
    args = parser.parse_args()
    chosen = args.sections or list(SECTIONS)
    import os

    print(
        f"# ModelLens benchmarks — {time.strftime('%Y-%m-%d %H:%M')}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}\n"
    )
    for name in chosen:
        started = time.perf_counter()
        importlib.import_module(SECTIONS[name]).run(quick=args.quick)
        print(f"\n_{name}: {time.perf_counter() - started:.0f} s_\n", flush=True)


if __name__ == "__main__":
    main()
