"""Browser test harness: a real ModelLens server and Debian's Chromium driven by Playwright.

The server fixture starts the dashboard (`modellens serve`, i.e. `streamlit run app.py --server.headless true`)
on a free port with its own MODELLENS_HOME and waits for /_stcore/health. Pages wait on the app's
"script not running" state, never on sleeps. A failing test leaves a screenshot in test-artifacts/.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import ROOT, automl_root
from tests.core import zoo
from tests.e2e.server import CHROMIUM, FLAGS, Server

ARTIFACTS = ROOT / "test-artifacts"
# expect() waits 5 s by default; a loaded 2-core CI machine can take longer than that for a rerun to redraw
expect.set_options(timeout=30_000)
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("e2e-home")
    srv = Server(home, {"MODELLENS_RUNTIMES": str(automl_root())})  # uploads of AutoML models find the runtime
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (make test installs it: apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, request: pytest.FixtureRequest):
    context = browser.new_context(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(90_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.page_errors = errors  # type: ignore[attr-defined]
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def wait_idle(page) -> None:
    """Wait until the app's script has finished running."""
    page.wait_for_selector(IDLE, state="attached")


@pytest.fixture(scope="session")
def uploads(tmp_path_factory):
    base = tmp_path_factory.mktemp("uploads")
    model, frame = zoo.builders()["pipe_rf"]()
    (base / "churn.pkl").write_bytes(pickle.dumps(model))
    frame.assign(churn=model.predict(frame)).to_csv(base / "customers.csv", index=False)
    return base, model, frame
