"""Concurrent browser sessions on one ModelLens server: shared by the concurrency test and ``python -m bench load``.

Issue 20 found lost uploads, a server that stopped answering, unbounded workers and a crash remembered across
sessions, all only under several users at once. This module holds what both the test (small N, correctness) and
the load benchmark (N=6, numbers) need, so they drive the dashboard the same way:

* :func:`train` builds a distinct real model and table per session, every column prefixed with the case's name,
  so a column from another session's model on a page is cross-talk that a text search sees.
* :func:`drive` runs one session with Playwright's async API (one browser, one context per session, all on one
  event loop: the sync API cannot share a browser between threads): open the Global importance page, upload the
  model and the table, wait until the importance chart shows exactly this model's columns, and check that no
  other case's column is anywhere on the page. One session may SIGKILL its model worker while it loads and must
  then recover with at most one action (a rerun).
* :class:`Probe` polls ``/_stcore/health`` and samples the server's model workers (count, resident memory) and
  the load average from a thread while the sessions run.

Nothing here asserts timings; callers decide what to assert (the test) or report (the bench).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
WORKER_MARK = "core.worker.main"
# kinds in the order sessions take them: the first ones are the quickest to train and load (the test uses them)
KINDS = ("forest", "logit", "hgb", "pipe", "lgbm", "xgb")


@dataclass(frozen=True)
class Case:
    """One session's upload: a model file, its table, and the model's input columns (all prefixed ``name_``)."""

    name: str
    model: Path
    data: Path
    columns: tuple[str, ...]


def _frame(prefix: str, rows: int, seed: int, *, categorical: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {
        f"{prefix}_age": rng.integers(18, 80, rows).astype(float),
        f"{prefix}_income": rng.lognormal(10, 0.5, rows).round(0),
    }
    if categorical:  # a string column in the middle of the numeric ones
        data[f"{prefix}_city"] = rng.choice(["Lyon", "Paris", "Nice", "Lille"], rows)
    data[f"{prefix}_tenure"] = rng.exponential(5, rows).round(2)
    data[f"{prefix}_visits"] = rng.poisson(3, rows).astype(float)
    return pd.DataFrame(data)


def _signal(frame: pd.DataFrame, prefix: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    score = 0.04 * (frame[f"{prefix}_age"] - 50) - 0.1 * frame[f"{prefix}_tenure"] + 0.2 * frame[f"{prefix}_visits"]
    if f"{prefix}_city" in frame:
        score = score + (frame[f"{prefix}_city"] == "Paris") * 1.2
    return (score + rng.normal(0, 0.5, len(frame))).to_numpy()


def _estimator(kind: str) -> tuple[Any, bool, bool]:
    """(unfitted estimator, is a regressor, needs a categorical column) for a kind."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if kind == "forest":
        return RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0), False, False
    if kind == "logit":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)), False, False
    if kind == "hgb":
        return HistGradientBoostingRegressor(max_iter=40, random_state=0), True, False
    if kind == "pipe":
        prep = ColumnTransformer(
            [
                ("num", StandardScaler(), ["pipe_age", "pipe_income", "pipe_tenure", "pipe_visits"]),
                ("cat", OneHotEncoder(handle_unknown="ignore"), ["pipe_city"]),
            ]
        )
        return make_pipeline(prep, RandomForestClassifier(n_estimators=30, max_depth=6, random_state=0)), False, True
    if kind == "lgbm":
        import lightgbm

        return lightgbm.LGBMClassifier(n_estimators=40, num_leaves=15, verbose=-1, random_state=0), False, False
    if kind == "xgb":
        import xgboost

        return xgboost.XGBClassifier(n_estimators=40, max_depth=4, random_state=0), False, False
    raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")


def train(directory: Path, kind: str, *, rows: int = 300, seed: int = 0) -> Case:
    """Train one kind of model on its own columns and save it (joblib or pickle) with its CSV in ``directory``."""
    import pickle

    import joblib

    estimator, regressor, categorical = _estimator(kind)
    frame = _frame(kind, rows, seed, categorical=categorical)
    score = _signal(frame, kind, seed)
    target = score if regressor else (score > np.median(score)).astype(int)
    estimator.fit(frame, target)
    model = directory / f"{kind}_model.{'joblib' if kind in ('pipe', 'lgbm', 'hgb') else 'pkl'}"
    if model.suffix == ".joblib":
        joblib.dump(estimator, model)
    else:
        model.write_bytes(pickle.dumps(estimator))
    data = directory / f"{kind}_rows.csv"
    frame.assign(target=target).to_csv(data, index=False)
    return Case(kind, model, data, tuple(frame.columns))


# -- the server's processes ---------------------------------------------------------------------------------
def workers(server_pid: int) -> list[Any]:
    """The server's model worker processes (psutil), oldest first."""
    import psutil

    try:
        children = psutil.Process(server_pid).children(recursive=True)
    except psutil.Error:
        return []
    found = []
    for child in children:
        try:
            if any(WORKER_MARK in part for part in child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return sorted(found, key=lambda p: p.create_time())


_LOADER = re.compile(rb"worker model (?:started|took over a spare worker) \(pid (\d+)\)")


def kill_loading_worker(server_log: Path, offset: int, *, within: float = 60.0) -> int | None:
    """SIGKILL the first model worker the server's log names after ``offset`` (it is about to load a model).

    A model's worker is either started for it or a spare taken over (``core.isolation.workers`` logs both at
    INFO, with the pid) just before the model is sent to it, so the kill lands while the model loads. Returns
    its pid, or None if no worker was named within ``within`` seconds.
    """
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with open(server_log, "rb") as log:
            log.seek(offset)
            found = _LOADER.search(log.read())
        if found:
            pid = int(found.group(1))
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return pid
        time.sleep(0.02)
    return None


@dataclass
class Probe:
    """Health latency, worker count and memory, and load average sampled while sessions run."""

    url: str
    server_pid: int
    every: float = 0.1
    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    max_workers: int = 0
    max_worker_rss: int = 0
    max_load: float = 0.0
    on_slow: Callable[[float], None] | None = None  # called (from a timer thread) when a check has waited 1 s
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Probe:
        for target in (self._health, self._resources):
            thread = threading.Thread(target=target, daemon=True, name=f"probe-{target.__name__}")
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _health(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            slow = None
            if self.on_slow is not None:  # called while the check is still waiting, to see what holds the server
                slow = threading.Timer(1.0, self.on_slow, args=(1.0,))
                slow.daemon = True
                slow.start()
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=30) as reply:
                    reply.read()
                self.latencies.append(time.perf_counter() - started)
            except OSError:
                self.failures += 1
            finally:
                if slow is not None:
                    slow.cancel()
            self._stop.wait(self.every)

    def _resources(self) -> None:
        import psutil

        while not self._stop.is_set():
            procs = workers(self.server_pid)
            rss = 0
            for proc in procs:
                try:
                    rss += sum(p.memory_info().rss for p in (proc, *proc.children(recursive=True)))
                except psutil.Error:
                    continue
            self.max_workers = max(self.max_workers, len(procs))
            self.max_worker_rss = max(self.max_worker_rss, rss)
            self.max_load = max(self.max_load, os.getloadavg()[0])
            self._stop.wait(0.5)


# -- one browser session ------------------------------------------------------------------------------------
@dataclass
class Outcome:
    """What one session saw."""

    case: str
    first_chart: float | None = None  # seconds from the model upload to its own importance chart
    labels: tuple[str, ...] = ()  # the importance chart's feature labels
    foreign: tuple[str, ...] = ()  # other cases' columns found anywhere on the page (cross-talk)
    killed_pid: int | None = None
    error_seen: bool = False  # the page said its worker died
    actions: int = 0  # extra actions the user needed after a crash
    lost_uploads: int = 0  # files the uploader never showed (given again once)
    lost_clicks: int = 0  # "My model" clicks the page showed but the script never saw (a rerun resent them)
    notes: list[str] = field(default_factory=list)  # page errors and crashes seen on the way
    problem: str = ""  # why the session did not reach its chart

    @property
    def ok(self) -> bool:
        """Reached its own chart, with nothing of another session."""
        return self.first_chart is not None and not self.foreign and not self.problem


_STATE = """([columns, crashed]) => {
    const labels = [...document.querySelectorAll('.st-key-importance .ytick text')].map(t => t.textContent);
    const mine = labels.length === columns.length && columns.every(c => labels.includes(c));
    if (mine) return {state: 'chart', labels};
    return crashed && /worker[^.]*(killed|stopped unexpectedly)/i.test(document.body.innerText)
        ? {state: 'crashed', labels} : '';
}"""


async def _wait_state(
    page: Any, columns: tuple[str, ...], timeout: float, *, crashed: bool = True
) -> tuple[str, tuple[str, ...]]:
    """('chart', its labels) once the importance chart shows exactly these columns, or ('crashed', ...) if the page
    says its worker died. The labels are read in the same instant: a rerun may briefly show a second copy."""
    handle = await page.wait_for_function(_STATE, arg=[list(columns), crashed], timeout=timeout * 1000, polling=100)
    seen = await handle.json_value()
    return str(seen["state"]), tuple(seen["labels"])


async def _upload(page: Any, key: str, path: Path, timeout: float) -> int:
    """Give one file to an uploader and wait until it shows the file; how many times it had to be given again.

    A file the uploader never shows within 30 s is lost (issue 20): it is given once more, as a user would.
    """
    from playwright.async_api import TimeoutError as PlaywrightTimeout
    from playwright.async_api import expect

    field_input = page.locator(f'.st-key-{key} input[type="file"]')
    registered = page.locator(f".st-key-{key}").get_by_role("button", name=f"Remove {path.name}")
    for attempt in range(2):
        await field_input.wait_for(state="attached", timeout=timeout * 1000)
        await field_input.set_input_files(str(path))
        try:
            await expect(registered).to_be_visible(timeout=30_000 if attempt == 0 else timeout * 1000)
            return attempt
        except AssertionError:
            if attempt:
                raise
        except PlaywrightTimeout:
            if attempt:
                raise
    return 1


async def drive(
    browser: Any,
    url: str,
    case: Case,
    others: list[Case],
    *,
    server_log: Path | None = None,
    settle: bool = False,
    timeout: float = 240.0,
    artifacts: Path | None = None,
) -> Outcome:
    """One user: open Global importance, upload ``case``, wait for its chart; maybe SIGKILL its worker mid-load.

    With ``server_log`` (the server's log, at INFO), the first model worker the log names after the model
    upload is killed at once (:func:`kill_loading_worker`). Any session whose page then says its worker died
    takes one action (a rerun, as pressing R does) and must reach its chart.

    With ``settle`` (and always before a kill: its workers would be named in the log too), the session lets the
    demo's background pass end before it switches to "My model". Without it, the switch may land while the
    sidebar's progress fragment reruns every second, which sometimes breaks the page ("Bad delta path index",
    a blank app: issue 20's lost upload); ``bench load`` does that on purpose, the test does not.
    """
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    outcome = Outcome(case.name)
    context = await browser.new_context(viewport={"width": 1400, "height": 1100})
    page = await context.new_page()
    page.on("crash", lambda _: outcome.notes.append("the browser tab crashed"))
    page.on("pageerror", lambda exc: outcome.notes.append(f"page error: {exc}"))
    try:
        page.set_default_timeout(timeout * 1000)
        await page.goto(f"{url}/importance")
        await page.wait_for_selector('[data-testid="stSidebar"] .st-key-mode', state="attached")
        await page.wait_for_selector(IDLE, state="attached")
        if settle or server_log is not None:  # see drive's docstring
            await page.wait_for_function(
                "() => !document.body.innerText.includes('Explaining every row')", timeout=timeout * 1000
            )
            await page.wait_for_selector(IDLE, state="attached")
        await page.locator(".st-key-mode button", has_text="My model").click()
        try:
            await page.locator(".st-key-model_file").wait_for(state="attached", timeout=30_000)
        except PlaywrightTimeout:  # the click reached the page but not the script: one rerun sends it again
            outcome.lost_clicks += 1
            await page.keyboard.press("r")
            await page.locator(".st-key-model_file").wait_for(state="attached")
        started = time.perf_counter()
        killer = None
        if server_log is not None:
            offset = server_log.stat().st_size
            killer = asyncio.create_task(asyncio.to_thread(kill_loading_worker, server_log, offset))
        outcome.lost_uploads += await _upload(page, "model_file", case.model, timeout)
        # the page acknowledges the model before the table is given: the idle flag alone flips too late
        await page.get_by_text(f"Received {case.model.name}").first.wait_for(timeout=timeout * 1000)
        await page.wait_for_selector(IDLE, state="attached")
        outcome.lost_uploads += await _upload(page, "data_file", case.data, timeout)
        if killer is not None:
            outcome.killed_pid = await killer
        state, labels = await _wait_state(page, case.columns, timeout)
        if state == "crashed":
            outcome.error_seen = True
            outcome.actions = 1
            await page.locator("h1").first.click()
            await page.keyboard.press("r")  # Streamlit's rerun key: the one action the user takes
            state, labels = await _wait_state(page, case.columns, timeout, crashed=False)
        if state != "chart":
            outcome.problem = "the worker error stayed after one rerun"
            return outcome
        outcome.first_chart = time.perf_counter() - started
        outcome.labels = labels
        await page.wait_for_selector(IDLE, state="attached")
        text = await page.locator("body").inner_text()
        outcome.foreign = tuple(c for other in others for c in other.columns if c in text)
    except Exception as exc:  # a lost upload or a hung page is a result to report, not a crash of the run
        outcome.problem = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        with contextlib.suppress(Exception):  # what the page was doing, for the report
            script = await page.get_attribute('[data-testid="stApp"]', "data-test-script-state", timeout=2000)
            outcome.problem += f" (the page's script was {script})"
        if artifacts is not None:
            artifacts.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(Exception):
                await page.screenshot(path=str(artifacts / f"session-{case.name}.png"), full_page=True, timeout=10_000)
    finally:
        await context.close()
    return outcome


async def run_sessions(
    url: str,
    cases: list[Case],
    *,
    server_log: Path | None = None,
    kill: str | None = None,
    settle: bool = False,
    timeout: float = 240.0,
    artifacts: Path | None = None,
) -> list[Outcome]:
    """Every case in its own browser context at once (one Chromium); ``kill`` names the case whose worker dies.

    The kill reads ``server_log``: the server must log at INFO (``MODELLENS_LOG_LEVEL=INFO``).
    """
    from playwright.async_api import async_playwright

    from tests.e2e.server import CHROMIUM, FLAGS

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            jobs = [
                drive(
                    browser,
                    url,
                    case,
                    [c for c in cases if c is not case],
                    server_log=server_log if case.name == kill else None,
                    settle=settle,
                    timeout=timeout,
                    artifacts=artifacts,
                )
                for case in cases
            ]
            return list(await asyncio.gather(*jobs))
        finally:
            await browser.close()


def sessions(url: str, cases: list[Case], **options: Any) -> list[Outcome]:
    """:func:`run_sessions` on a fresh event loop in its own thread (safe beside Playwright's sync API)."""
    result: list[list[Outcome]] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(run_sessions(url, cases, **options)))
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=target, name="browser-sessions")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]
