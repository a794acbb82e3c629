#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv and install mdsurrogate with its tools.
# Idempotent: a second call only checks. Uses the CPU build of PyTorch that pip finds locally when present.
#   bash scripts/setup.sh               the package, its tools and the test dependencies
#   bash scripts/setup.sh --with-dft    also PROXIMA's expensive targets: tblite (GFN1-xTB, PyPI) and CP2K (Debian's
#                                       `cp2k`, needs root and apt); `proxima smoke tblite|cp2k` and the slow tests use them
set -euo pipefail
WITH_DFT=0
for arg in "$@"; do
    case "$arg" in
        --with-dft) WITH_DFT=1 ;;
        *) echo "setup: unknown option $arg (allowed: --with-dft)" >&2; exit 2 ;;
    esac
done
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
    .venv/bin/pip install -q --upgrade pip
fi
# CPU PyTorch first so that nothing pulls a multi-GB CUDA build.
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    .venv/bin/pip install -q "torch==2.13.0" || .venv/bin/pip install -q torch
fi
stamp=.venv/.mdsurrogate-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/pip install -q -e '.[dev]'
    touch "$stamp"
fi
# The web app's browser tests (tests/test_app.py) drive Debian's chromium through Playwright (no browser download):
# install it when missing and possible; never fail the setup for it (the tests then skip and say why).
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        { apt-get install -y -q chromium >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }; } \
            || echo "setup: could not install chromium with apt; the app's browser tests will skip" >&2
    else
        echo "setup: chromium is not installed (installing it needs root and apt); the app's browser tests will skip" >&2
    fi
fi
if [ "$WITH_DFT" = 1 ]; then
    .venv/bin/pip install -q -e '.[dev,proxima]' || echo "setup: could not install tblite; proxima smoke tblite will refuse" >&2
    if ! command -v cp2k_shell >/dev/null 2>&1 && ! command -v cp2k_shell.psmp >/dev/null 2>&1 && ! command -v cp2k_shell.ssmp >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            export DEBIAN_FRONTEND=noninteractive
            { apt-get install -y -q --no-install-recommends cp2k >/dev/null 2>&1 \
                || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends cp2k >/dev/null 2>&1; }; } \
                || echo "setup: could not install cp2k with apt; proxima smoke cp2k will refuse" >&2
        else
            echo "setup: cp2k is not installed (Debian's cp2k needs root and apt)" >&2
        fi
    fi
fi
.venv/bin/python -c "import mdsurrogate.simulation.runtime as r; r.check_engine()"
