"""Issue 5: click-to-waterfall latency in a real browser (Playwright + Debian's Chromium) on the demo.

From the click on a table row to the new waterfall's title on screen, median and 90th percentile over
repeated clicks on different rows; the explanations are ready (as after a first visit), so this is the
dashboard's own latency: rerun, cached lookup, figure, render.
"""

from __future__ import annotations

import re
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import load, table
from tests.e2e.server import CHROMIUM, FLAGS, Server


def run(*, quick: bool = False) -> None:
    """Print click-to-waterfall latencies."""
    from playwright.sync_api import sync_playwright

    print("## Click-to-waterfall latency in the browser (issue 5)\n")
    clicks = 8 if quick else 20
    with tempfile.TemporaryDirectory() as home:
        server = Server(Path(home))
        url = server.url
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1100})
                page.goto(f"{url}/rows")
                page.wait_for_selector(".st-key-waterfall .gtitle", timeout=120_000)
                grid = page.locator('.st-key-table [data-testid="stDataFrame"]')
                grid.scroll_into_view_if_needed()
                times = []
                for i in range(clicks):
                    row = 1 + i % 5  # rows 1-5 are on screen; row 6 resets the cycle so each click is a new row
                    if row == 1 and i:
                        grid.click(position={"x": 15, "y": 35 * (6 + 1) + 17})
                        page.wait_for_selector(".st-key-waterfall .gtitle >> text=/^Waterfall for row 6$/")
                    started = time.perf_counter()
                    grid.click(position={"x": 15, "y": 35 * (row + 1) + 17})
                    title = page.locator(
                        ".st-key-waterfall .gtitle", has_text=re.compile(rf"^Waterfall for row {row}$")
                    )
                    title.first.wait_for(timeout=30_000)
                    times.append(time.perf_counter() - started)
                browser.close()
        finally:
            server.stop()
    times.sort()
    print(
        table(
            ["clicks", "median", "90th percentile", "fastest", "slowest", "load"],
            [
                [
                    len(times),
                    f"{statistics.median(times) * 1000:.0f} ms",
                    f"{times[int(0.9 * (len(times) - 1))] * 1000:.0f} ms",
                    f"{times[0] * 1000:.0f} ms",
                    f"{times[-1] * 1000:.0f} ms",
                    load(),
                ]
            ],
        )
    )
