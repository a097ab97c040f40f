"""The architecture the brief fixes: core never imports streamlit, pages stay thin."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.conftest import ROOT


def test_importing_core_does_not_import_streamlit():
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in (ROOT / "core").rglob("*.py")
        if p.stem not in {"__init__", "__main__"}
    )
    code = (
        "import sys, importlib\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "assert 'streamlit' not in sys.modules, sorted(k for k in sys.modules if k.startswith('streamlit'))\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module.split(".")[0]


def test_no_streamlit_in_core_source():
    offenders = [p.name for p in (ROOT / "core").rglob("*.py") if "streamlit" in set(_imports(p))]
    assert offenders == []


def test_pages_are_thin():
    for page in (ROOT / "pages").glob("*.py"):
        imported = set(_imports(page))
        assert not imported & {"shap", "pandas", "sklearn", "plotly"}, f"{page.name} imports {imported}"
        assert len(page.read_text().splitlines()) <= 80, page.name
    assert len((ROOT / "app.py").read_text().splitlines()) <= 40


def test_docker_build_context_leaves_host_state_out():
    """``COPY . .`` runs after the image's venv is built: the host's .venv, .git and secrets must not follow it."""
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".venv", ".git", ".streamlit/secrets.toml", "test-artifacts", ".modellens"} <= ignored
