#!/usr/bin/env bash
# The SimLM fine-tuning chain on SciFact, shipped in simlm_cli/data/scifact: recipes/beir.sh on that directory
# (see it for the stages, the flags and what chose their settings).
#
#   bash recipes/scifact.sh [--output DIR] [--init MODEL] [--dry-run] [--epochs E] [--lr LR] [--negatives N]
#                           [--rerank-depth K] [--distill-epochs E] [--r2-init r1|init] [--precision P]
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash recipes/beir.sh --data simlm_cli/data/scifact --output out/scifact-pipeline "$@"
