"""Start the dashboard: ``python -m ui.serve --port 8501`` (what ``modellens serve`` and ``make run`` run).

It is ``streamlit run app.py`` with two fixes. app.py drives navigation with ``st.navigation``, and the
project's ``pages/`` folder must never switch Streamlit to its legacy folder-based navigation, which would
run a page without the shared sidebar when a fresh server's first request is a page URL. And Streamlit's
full garbage collection after every script run (``runner.postScriptGC``, fragment runs included) is off: it
holds the GIL for the whole collection, 0.25-1.5 s each on a server holding several users' tables and
explanations, during which no page and no health check is answered (issue 20; ``python -m bench load``).
Python's own generational collector still runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> None:
    """Parse ``--port`` / ``--address`` and run the Streamlit server in this process."""
    parser = argparse.ArgumentParser(prog="modellens serve")
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--address", default="127.0.0.1")
    args = parser.parse_args(argv)
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.web import cli as streamlit_cli

    PagesManager.uses_pages_directory = False
    sys.argv = [
        "streamlit",
        "run",
        str(ROOT / "app.py"),
        "--server.port",
        str(args.port),
        "--server.address",
        args.address,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--runner.postScriptGC",
        "false",
    ]
    streamlit_cli.main()


if __name__ == "__main__":
    main()
