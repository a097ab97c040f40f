"""Several users on one server (issue 20), correctness only: each session sees its own model and nothing of
another's, no upload is lost, and a model worker SIGKILLed while it loads costs its user one action at most.

Its own server (at INFO, so the kill finds the loading worker in the log) and Chromium driven by Playwright's
async API from :mod:`tests.e2e.sessions`, the code ``python -m bench load`` runs at N=6 with timings. Sessions
switch to "My model" once the demo's background pass has ended (``settle``): a switch during it can blank the
page, a separate fault the bench reports.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

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
    assert re.search(rb"worker model was killed", log.read_bytes()), "the server never saw its worker die"
    _check(hit, case)
    assert hit.killed_pid not in {p.pid for p in sessions.workers(server.proc.pid)}
    # a new session uploading the same file gets a working model, not the remembered crash
    (again,) = sessions.sessions(server.url, [case], settle=True, timeout=TIMEOUT, artifacts=ARTIFACTS)
    _check(again, case)
    assert again.actions == 0 and not again.error_seen
