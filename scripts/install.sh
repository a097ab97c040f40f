#!/usr/bin/env sh
# The one way ModelLens is installed: `make run`, `make test` and the Dockerfile all call this.
#   scripts/install.sh deps [dev]   create .venv (if missing) and install the pinned requirements
#   scripts/install.sh project      install the project itself (the `modellens` command) and compile its kernel
set -eu
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
case "${1:-}" in
  deps)
    if [ ! -x "$VENV/bin/python" ]; then
      "$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), "ModelLens needs Python 3.11"'
      "$PYTHON" -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "pip==26.3" "setuptools==84.2.1"
    if [ "${2:-}" = "dev" ]; then
      "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt -c constraints.txt
    else
      "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
    fi
    ;;
  project)
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
    # Compile the TreeSHAP kernel once (numba caches it on disk): ~15 s here instead of at the first upload.
    "$VENV/bin/python" -c "from core import treeshap; t = treeshap.warm_up(); print('TreeSHAP kernel ready', {k: round(v, 1) for k, v in t.items()})"
    ;;
  *)
    echo "usage: scripts/install.sh deps [dev] | project" >&2
    exit 2
    ;;
esac
