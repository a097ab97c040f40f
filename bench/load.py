"""Issue 20: many users on one server. N Chromium sessions at once (default 6, ``--quick`` 2,
``MODELLENS_BENCH_SESSIONS`` overrides), each uploading a different real model and table to one dashboard.

Each session opens Global importance, switches to "My model" as soon as its page is idle (the demo may still be
explaining its rows: a real user does not wait for that) and uploads its model and CSV; the first model worker
the server names after one session's upload is SIGKILLed while it loads (with six sessions at once, often
another session's: the table says which session saw the crash). Reported: ``/_stcore/health`` latency polled
every 100 ms during the run (median, p90, p99, max), each session's time from its model upload to its own
importance chart, whether each saw only its own columns, files and clicks the page lost, the crash and the
recovery, the most model workers and their total resident memory sampled during the run, and the load average.
The session code is :mod:`tests.e2e.sessions`, which the concurrency test runs at N=2 for correctness.

With ``MODELLENS_BENCH_STACKS=1`` the server's threads are dumped with ``py-spy`` (if installed) whenever a
health check has waited a second (while it still waits), to find what holds the server's event loop or GIL;
the dumps go to a file named here.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import table
from tests.e2e import sessions
from tests.e2e.server import Server


def _count() -> int | None:
    raw = os.environ.get("MODELLENS_BENCH_SESSIONS", "").strip()
    return int(raw) if raw else None


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class _Stacks:
    """py-spy dumps of the server while a health check is slow (at most one every 2 s)."""

    def __init__(self, pid: int, out: Path):
        self.pid, self.out, self.count = pid, out, 0
        self.spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self._busy = threading.Lock()
        self._last = 0.0

    def __call__(self, took: float) -> None:
        if not Path(self.spy).exists() or time.monotonic() - self._last < 2 or not self._busy.acquire(blocking=False):
            return
        try:
            self._last = time.monotonic()
            dump = subprocess.run(  # noqa: S603 - a fixed tool on our own server
                [self.spy, "dump", "--pid", str(self.pid)], capture_output=True, text=True, timeout=30
            )
            with self.out.open("a") as f:
                f.write(
                    f"\n===== {time.strftime('%H:%M:%S')} a health check waiting {took:.0f} s =====\n{dump.stdout}{dump.stderr}"
                )
            self.count += 1
        finally:
            self._busy.release()


def run(*, quick: bool = False) -> None:
    """Print the load test's tables."""
    n = _count() or (2 if quick else 6)
    kinds = [sessions.KINDS[i % len(sessions.KINDS)] for i in range(n)]
    print(f"## {n} concurrent browser sessions on one server (issue 20)\n")
    with tempfile.TemporaryDirectory() as home:
        base = Path(home)
        cases = []
        for i, kind in enumerate(kinds):
            folder = base / f"s{i}"
            folder.mkdir()
            cases.append(sessions.train(folder, kind, rows=300 if quick else 3000, seed=i))
        if len({c.name for c in cases}) < len(cases):  # more sessions than kinds: keep names (and columns) apart
            cases = [
                sessions.Case(f"{c.name}{i}", c.model, c.data, c.columns) if i >= len(sessions.KINDS) else c
                for i, c in enumerate(cases)
            ]
        victim = cases[-1].name
        server = Server(base, log_level="INFO")
        stacks = _Stacks(server.proc.pid, Path(tempfile.gettempdir()) / f"modellens-load-stacks-{server.port}.txt")
        started = time.perf_counter()
        try:
            with sessions.Probe(
                server.url, server.proc.pid, on_slow=stacks if os.environ.get("MODELLENS_BENCH_STACKS") else None
            ) as probe:
                outcomes = sessions.sessions(
                    server.url, cases, server_log=Path(server.log.name), kill=victim, timeout=300
                )
            wall = time.perf_counter() - started
            log = Path(server.log.name).read_text(errors="replace")
        finally:
            server.stop()
    _report(outcomes, probe, victim, wall, log, stacks)


def _report(
    outcomes: list[sessions.Outcome], probe: sessions.Probe, victim: str, wall: float, log: str, stacks: _Stacks
) -> None:
    lat = probe.latencies
    print(
        table(
            ["health checks", "failed", "median", "p90", "p99", "max", "over 2 s"],
            [
                [
                    len(lat),
                    probe.failures,
                    *(
                        f"{v * 1000:.0f} ms"
                        for v in (statistics.median(lat), *(_percentile(lat, q) for q in (0.9, 0.99)))
                    ),
                    f"{max(lat):.2f} s",
                    sum(v > 2 for v in lat),
                ]
            ]
            if lat
            else [[0, probe.failures, "—", "—", "—", "—", "—"]],
        )
    )
    print()
    rows = []
    for o in outcomes:
        rows.append(
            [
                o.case + (" (kill timed at its upload)" if o.case == victim else ""),
                f"{o.first_chart:.1f} s" if o.first_chart is not None else "never",
                "yes" if o.labels and not o.foreign else ("no: " + ", ".join(o.foreign) if o.foreign else "—"),
                o.lost_uploads,
                o.lost_clicks,
                ("crash shown, " if o.error_seen else "") + f"{o.actions} action(s)",
                o.problem or "; ".join(o.notes[:2]) or "",
            ]
        )
    print(
        table(
            [
                "session",
                "upload → own chart",
                "only its own columns",
                "files lost",
                "clicks lost",
                "after a crash",
                "problem",
            ],
            rows,
        )
    )
    print()
    killed = next((o.killed_pid for o in outcomes if o.killed_pid is not None), None)
    recovered = [o for o in outcomes if o.error_seen]
    print(
        table(
            ["killed worker", "server saw it die", "sessions shown the crash", "recovered with one rerun", "run"],
            [
                [
                    killed if killed is not None else "none found",
                    "yes" if "worker model was killed" in log else "no",
                    ", ".join(o.case for o in recovered) or "none",
                    ", ".join(o.case for o in recovered if o.first_chart is not None) or "—",
                    f"{wall:.0f} s",
                ]
            ],
        )
    )
    print()
    print(
        table(
            ["model workers (max)", "their resident memory (max)", "load average (max, 1 min)", "stack dumps"],
            [
                [
                    probe.max_workers,
                    f"{probe.max_worker_rss / 1024**2:,.0f} MB",
                    f"{probe.max_load:.2f}",
                    f"{stacks.count} in {stacks.out}" if stacks.count else "—",
                ]
            ],
        )
    )
