#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, slow real-data tests included. Extra args go to pytest,
# e.g. `bash scripts/test.sh -m "not slow"` for the fast unit tests only.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
ruff check .
ruff format --check .
# The 20 slowest tests close the log: where CI time goes, on whichever CPU ran it.
python -m pytest tests --durations=20 "$@"
