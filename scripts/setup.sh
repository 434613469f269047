#!/usr/bin/env bash
# Quick start, step 1: create .venv, install speat with its test tools, register the evaluate module, run the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# The CPU build of torch first: an unpinned torch resolves to a CUDA build of several GB.
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[dev]"
.venv/bin/speat register
.venv/bin/speat evaluate
