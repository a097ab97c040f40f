"""A real ModelLens server and the Chromium flags this machine needs: shared by the browser tests and
``make bench`` (no pytest here)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_LOGGING_SITE = """import logging, sys
logging.basicConfig(level={level!r}, stream=sys.stderr, format="%(asctime)s server %(levelname)s %(name)s: %(message)s")
"""


class Server:
    """A running dashboard.

    Args:
        home: Its MODELLENS_HOME; the server's log is written here too (``self.log.name``).
        env: Extra environment variables.
        log_level: When given (``"INFO"``), the server's own ``core`` loggers write to its log at that level
            (a ``sitecustomize`` on its PYTHONPATH; Streamlit configures only its own loggers). The
            concurrency test and ``bench load`` read which worker loads a model from these lines.
    """

    def __init__(self, home: Path, env: dict[str, str] | None = None, *, log_level: str | None = None):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(home / f"server-{self.port}.log", "wb")  # noqa: SIM115 - closed in stop()
        extra = dict(env or {})
        if log_level is not None:
            site = home / f"server-{self.port}-site"
            site.mkdir(exist_ok=True)
            (site / "sitecustomize.py").write_text(_LOGGING_SITE.format(level=log_level.upper()))
            extra["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "core.cli", "serve", "--port", str(self.port), "--address", "127.0.0.1"],
            cwd=ROOT,
            env={**os.environ, "MODELLENS_HOME": str(home), **extra},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the dashboard did not become healthy; see {self.log.name}")

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()
