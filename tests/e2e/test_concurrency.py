"""Several users on one server (issue 20), correctness only: each session sees its own model and nothing of
another's, no upload is lost, and a model worker SIGKILLed while it loads costs its user one action at most.

Its own server (at INFO, so the kill finds the loading worker in the log) and Chromium driven by Playwright's
async API from :mod:`tests.e2e.sessions`, the code ``python -m bench load`` runs at N=6 with timings. Sessions
switch to "My model" once the demo's background pass has ended (``settle``): a switch during it can blank the
page, a separate fault the bench reports.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.e2e import sessions
from tests.e2e.conftest import ARTIFACTS
from tests.e2e.server import CHROMIUM, Server

TIMEOUT = 150.0  # per wait in a session; a loaded 2-core CI machine is slow, and nothing here is a timing


@pytest.fixture(scope="module")
def crowd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, sessions.Case]]]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is not installed (make test installs it: apt-get install -y chromium)")
    home = tmp_path_factory.mktemp("crowd")
    cases = {kind: sessions.train(home, kind, rows=200) for kind in ("forest", "logit", "hgb")}
    server = Server(home, log_level="INFO")
    yield server, cases
    server.stop()


def _check(outcome: sessions.Outcome, case: sessions.Case) -> None:
    assert outcome.problem == "", f"{case.name}: {outcome.problem}; {outcome.notes}"
    assert (outcome.lost_uploads, outcome.lost_clicks) == (0, 0), outcome
    assert sorted(outcome.labels) == sorted(case.columns), outcome
    assert outcome.foreign == (), f"{case.name}'s page shows another session's columns: {outcome.foreign}"


def test_two_sessions_at_once_each_chart_only_their_own_model(crowd):
    server, cases = crowd
    chosen = [cases["forest"], cases["logit"]]
    outcomes = sessions.sessions(server.url, chosen, settle=True, timeout=TIMEOUT, artifacts=ARTIFACTS)
    for outcome, case in zip(outcomes, chosen, strict=True):
        _check(outcome, case)  # every upload reached its chart: none was lost


def test_a_worker_killed_while_loading_costs_one_action_and_is_not_remembered(crowd):
    server, cases = crowd
    case, log = cases["hgb"], Path(server.log.name)
    (hit,) = sessions.sessions(
        server.url, [case], server_log=log, kill="hgb", settle=True, timeout=TIMEOUT, artifacts=ARTIFACTS
    )
    assert hit.killed_pid is not None, "no model worker was named in the server's log after the upload"
    # The kill lands while the model loads, or (on a slow machine, the log read late) just after: then no request
    # was under way, no error is shown, and the next request starts a fresh worker. Either costs one action at most.
    if hit.error_seen:
        assert re.search(rb"worker model was killed", log.read_bytes()), "an error shown that the server never saw"
    _check(hit, case)
    assert hit.actions <= 1
    assert hit.killed_pid not in {p.pid for p in sessions.workers(server.proc.pid)}
    # a new session uploading the same file gets a working model, not the remembered crash
    (again,) = sessions.sessions(server.url, [case], settle=True, timeout=TIMEOUT, artifacts=ARTIFACTS)
    _check(again, case)
    assert again.actions == 0 and not again.error_seen


def test_removing_the_table_while_its_rows_are_explained_keeps_the_page(crowd, page, tmp_path):
    """Issue 20's lost uploads: under load, "My model" clicked while the demo's rows were being explained blanked
    the app ("Bad delta path index 11 (should be between [0, 4])") and its uploaders never came back.

    The sidebar's progress is a timed fragment. A whole-app run that ends in ``st.stop()`` (a page asking for a
    file) leaves Streamlit's fragments registered, and a tick of the progress timer that reaches the server during
    or after that run drew the progress at its old place in a sidebar that now has four elements. Under load a
    tick lands in that window by chance; here the browser's connection is routed so that it does every time: the
    tick sent just before the click is held back until the server has finished the run the click started, then
    delivered. The run is the
    one a user starts by removing the table while its rows are explained (a k-NN, explained model-agnostically,
    keeps its pass going for a while); leaving the demo for "My model" is the same run.
    """
    from playwright.sync_api import expect
    from sklearn.neighbors import KNeighborsClassifier
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    from tests.e2e.test_dashboard import upload_files

    server, _ = crowd
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(800, 5)), columns=[f"knn_{c}" for c in "abcde"])
    model = KNeighborsClassifier().fit(frame, (frame["knn_a"] + frame["knn_b"] > 0).astype(int))
    (tmp_path / "knn.pkl").write_bytes(pickle.dumps(model))
    frame.to_csv(tmp_path / "knn.csv", index=False)

    race = {"hold": False, "clicked": False, "finished": False, "tick": None, "delivered": False}

    def route(ws) -> None:
        upstream = ws.connect_to_server()

        def deliver() -> None:
            upstream.send(race["tick"])
            race["tick"], race["delivered"], race["hold"] = None, True, False

        def from_page(message) -> None:
            sent = BackMsg.FromString(message) if isinstance(message, bytes) else None
            if race["hold"] and sent is not None and sent.WhichOneof("type") == "rerun_script":
                if sent.rerun_script.fragment_id:  # a timer tick: held until the click's run has ended
                    race["tick"] = message
                    if race["finished"]:
                        deliver()
                    return
                race["clicked"] = True
            upstream.send(message)

        def from_server(message) -> None:
            ws.send(message)
            got = ForwardMsg.FromString(message) if isinstance(message, bytes) else None
            if race["clicked"] and got is not None and got.WhichOneof("type") == "script_finished":
                race["finished"] = True
                if race["tick"] is not None:
                    deliver()

        ws.on_message(from_page)
        upstream.on_message(from_server)

    page.route_web_socket(re.compile(r"/_stcore/stream"), route)
    upload_files(page, server, tmp_path / "knn.pkl", tmp_path / "knn.csv")
    sidebar = page.locator('[data-testid="stSidebar"]')
    expect(sidebar.get_by_text("Explaining every row")).to_be_visible(timeout=90_000)
    race["hold"] = True
    for _ in range(50):  # the progress timer ticks every second: hold one back, as a slow network would
        if race["tick"] is not None:
            break
        page.wait_for_timeout(100)
    page.locator(".st-key-data_file").get_by_role("button", name="Remove knn.csv").click()
    for _ in range(100):
        if race["delivered"]:
            break
        page.wait_for_timeout(100)
    assert race["delivered"], "no progress tick reached the server after the run the click started"
    page.wait_for_timeout(1500)  # the tick's fragment run, and anything it sends, reaches the page
    assert page.page_errors == [], page.page_errors
    expect(page.locator('.st-key-data_file input[type="file"]')).to_be_attached()
    expect(sidebar.get_by_text("Explaining every row")).to_have_count(0)
    expect(page.get_by_text(re.compile("data file", re.I)).first).to_be_visible()
