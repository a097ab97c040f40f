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


# core's layers, bottom first. A module may import its own package and anything in a lower layer, never a
# package beside it or above it: that keeps the graph acyclic and tells a reader where a behaviour lives.
LAYERS = (
    ("core.errors", "core.config", "core.fileio"),
    ("core.classes", "core.explanation", "core.store", "core.safety"),
    ("core.data", "core.isolation"),
    ("core.methods", "core.runtimes"),
    ("core.engine", "core.loading"),
    ("core.worker", "core.batch", "core.whatif", "core.cohorts"),
    ("core.present",),  # draws what the layers below compute (cohort comparisons, what-if scenarios)
    ("core.cli",),
)
# What the Azure AutoML runtime's worker imports, on that runtime's Python 3.9/3.10 (pyproject's ruff
# per-file-target-version checks exactly these as 3.9 code).
RUNTIME_ENTRY = "core.runtimes.automl_worker"
RUNTIME_MODULES = {
    "core",
    "core.errors",
    "core.isolation",
    "core.isolation.serve",
    "core.isolation.wire",
    "core.runtimes",
    "core.runtimes.automl_worker",
    "core.safety",
    "core.safety.allowlist",
    "core.safety.allowlist_sklearn",
    "core.safety.safe_pickle",
    "core.safety.sandbox",
    "core.safety.state_audit",
}


def _module_name(path):
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _core_modules():
    return {_module_name(p): p for p in (ROOT / "core").rglob("*.py") if p.stem != "__main__"}


def _core_imports(path, modules):
    """Every core module a file imports (``from core.x import name`` counts ``core.x.name`` if it is a module)."""
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        yield from (n for n in names if n in modules and n != "core")


def _layer_of(module):
    for index, layer in enumerate(LAYERS):
        for unit in layer:
            if module == unit or module.startswith(unit + "."):
                return index, unit
    return None


def test_every_core_module_has_a_layer():
    assert [m for m in _core_modules() if m != "core" and _layer_of(m) is None] == []


def test_core_imports_only_its_own_package_or_lower_layers():
    modules = _core_modules()
    upward = []
    for name, path in modules.items():
        if name == "core":
            continue  # the public names, re-exported lazily
        (own_layer, own_unit) = _layer_of(name)
        for target in _core_imports(path, modules):
            (layer, unit) = _layer_of(target)
            if unit != own_unit and layer >= own_layer:
                upward.append(f"{name} -> {target}")
    assert upward == []


def test_ui_and_pages_are_never_imported_by_core():
    offenders = [p.name for p in (ROOT / "core").rglob("*.py") if set(_imports(p)) & {"ui", "pages", "app"}]
    assert offenders == []


def test_the_automl_runtime_imports_only_the_modules_checked_as_python_3_9():
    modules = _core_modules()
    seen, todo = set(), [RUNTIME_ENTRY]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # importing a module runs its packages
        todo.extend(_core_imports(modules[name], modules))
    assert seen == RUNTIME_MODULES
    pyproject = (ROOT / "pyproject.toml").read_text()
    for name in RUNTIME_MODULES:
        path = modules[name].relative_to(ROOT).as_posix()
        folder_glob = path.rsplit("/", 1)[0] + "/*.py"
        assert f'"{path}" = "py39"' in pyproject or f'"{folder_glob}" = "py39"' in pyproject, path
