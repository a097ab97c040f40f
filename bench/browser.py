"""Issue 5: click-to-waterfall latency in a real browser (Playwright + Debian's Chromium) on the demo.

From the click on a table row to the new waterfall's title on screen, median and 90th percentile over
repeated clicks on different rows; the explanations are ready (as after a first visit), so this is the
dashboard's own latency: rerun, cached lookup, figure, render.
"""

from __future__ import annotations

import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.common import load, table

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[1]


def _serve(home: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ui.serve", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "MODELLENS_HOME": home},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)  # noqa: S310 - our own local server
            return proc, url
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the dashboard did not start")


def run(*, quick: bool = False) -> None:
    """Print click-to-waterfall latencies."""
    from playwright.sync_api import sync_playwright

    print("## Click-to-waterfall latency in the browser (issue 5)\n")
    clicks = 8 if quick else 20
    with tempfile.TemporaryDirectory() as home:
        proc, url = _serve(home)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
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
            proc.terminate()
            proc.wait(timeout=20)
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
