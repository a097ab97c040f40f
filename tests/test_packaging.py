"""pyproject.toml declares what ModelLens supports; requirements.txt + constraints.txt are the lock that make and
the Dockerfile install. The two must agree: every pin inside its declared range, the same packages in both, and
scripts/install.sh accepting exactly the Pythons that requires-python accepts.
"""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _pins(name: str) -> dict[str, Version]:
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", f"{name}: {line} is not an exact pin"
            pins[canonicalize_name(requirement.name)] = Version(spec.version)
    return pins


def test_every_pin_lies_in_its_declared_range():
    declared = {canonicalize_name(r.name): r.specifier for r in map(Requirement, PROJECT["dependencies"])}
    pins = _pins("requirements.txt")
    assert set(declared) == set(pins), "pyproject's dependencies and requirements.txt name different packages"
    outside = {name: f"{pins[name]} not in {spec}" for name, spec in declared.items() if pins[name] not in spec}
    assert not outside
    assert all(spec and all(s.operator != "==" for s in spec) for spec in declared.values()), "ranges, not pins"


def test_the_lock_pins_requirements_the_same_way():
    lock = _pins("constraints.txt")
    for name in ("requirements.txt", "requirements-dev.txt"):
        for package, version in _pins(name).items():
            assert lock.get(package) == version, (
                f"{name} pins {package}=={version}, constraints.txt {lock.get(package)}"
            )


def test_install_script_accepts_exactly_the_supported_pythons():
    script = (ROOT / "scripts" / "install.sh").read_text()
    supported = re.search(r'^SUPPORTED="([^"]+)"$', script, re.M).group(1).split()
    requires = SpecifierSet(PROJECT["requires-python"])
    accepted = [f"3.{minor}" for minor in range(6, 20) if Version(f"3.{minor}.0") in requires]
    assert supported == accepted == ["3.11", "3.12", "3.13"]


def test_pre_commit_runs_what_make_lint_runs():
    import yaml

    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    lint = {line.strip().removeprefix("$(BIN)/") for line in recipe if line.startswith("\t")}
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = {hook["entry"].removeprefix(".venv/bin/") for repo in config["repos"] for hook in repo["hooks"]}
    assert {"ruff check .", "ruff format --check .", "mypy", "hadolint Dockerfile"} <= lint
    assert hooks == lint
