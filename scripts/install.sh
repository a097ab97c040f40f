#!/usr/bin/env sh
# The one way ModelLens is installed: `make run`, `make test` and the Dockerfile all call this.
#   scripts/install.sh deps [dev]   create .venv (if missing) and install the pinned requirements
#   scripts/install.sh project      install the project itself (the `modellens` command) and compile its kernel
# PYTHON names the interpreter for a new virtualenv: a command or path (python3.13, /usr/bin/python3) or a version
# (3.13: python3.13 on PATH, else pyenv's newest 3.13.x). Default: the first supported one of python3, python3.13,
# python3.12, python3.11, then pyenv's. VENV is the virtualenv's folder (default .venv). The supported versions
# are pyproject's requires-python (tests/test_packaging.py checks they agree).
set -eu
VENV="${VENV:-.venv}"
SUPPORTED="3.11 3.12 3.13"
PYENV_VERSIONS="${PYENV_ROOT:-$HOME/.pyenv}/versions"

supported() {  # supported INTERPRETER: true when it runs and is one of $SUPPORTED
  version=$("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || return 1
  case " $SUPPORTED " in *" $version "*) return 0 ;; *) return 1 ;; esac
}

candidates() {  # candidates [X.Y]: interpreters to try, in order
  if [ -n "${1:-}" ]; then
    echo "python$1"
    ls -dr "$PYENV_VERSIONS/$1".*/bin/"python$1" 2>/dev/null || true
    return 0
  fi
  echo python3 python3.13 python3.12 python3.11
  for v in 3.13 3.12 3.11; do ls -dr "$PYENV_VERSIONS/$v".*/bin/"python$v" 2>/dev/null || true; done
}

find_python() {
  case "${PYTHON:-}" in
    "") list=$(candidates) ;;
    3.[0-9]*) list=$(candidates "$PYTHON") ;;
    *) list="$PYTHON" ;;
  esac
  for candidate in $list; do
    supported "$candidate" && { echo "$candidate"; return 0; }
  done
  echo "ModelLens needs one of Python $SUPPORTED${PYTHON:+, and PYTHON=$PYTHON is none of them (or does not run)}." \
    "Install one, or name it: PYTHON=/path/to/python3.x or PYTHON=3.x" >&2
  return 1
}

case "${1:-}" in
  deps)
    if [ ! -x "$VENV/bin/python" ]; then
      python=$(find_python)
      echo "Creating $VENV with $python ($("$python" -c 'import sys; print(sys.version.split()[0])'))"
      "$python" -m venv "$VENV"
    elif ! supported "$VENV/bin/python"; then
      echo "$VENV was made with a Python other than $SUPPORTED: remove it (make clean) and run again." >&2
      exit 1
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
    "$VENV/bin/python" -c "from core.methods.trees import treeshap; t = treeshap.warm_up(); print('TreeSHAP kernel ready', {k: round(v, 1) for k, v in t.items()})"
    ;;
  *)
    echo "usage: scripts/install.sh deps [dev] | project" >&2
    exit 2
    ;;
esac
