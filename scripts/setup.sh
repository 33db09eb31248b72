#!/usr/bin/env bash
# Create .venv and install simlm with its test tools. Safe to re-run; a second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# torch is pinned in the same pip command: an unpinned torch (ours or a dependency's) would pull a multi-GB
# CUDA build. 2.13.0 is the CPU build on this project's machines; override with TORCH_SPEC elsewhere.
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet "$TORCH_SPEC" -e ".[dev]"
echo "simlm installed in $(pwd)/.venv ($(python -c 'import torch; print("torch", torch.__version__)'))" >&2
