#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv and install mdsurrogate with its tools.
# Idempotent: a second call only checks. Uses the CPU build of PyTorch that pip finds locally when present.
set -euo pipefail
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
.venv/bin/python -c "import mdsurrogate.simulation.runtime as r; r.check_engine()"
