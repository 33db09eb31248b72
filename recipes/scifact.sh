#!/usr/bin/env bash
# The SimLM fine-tuning chain on SciFact, shipped in simlm_cli/data/scifact: recipes/beir.sh on that directory
# (see it for the stages, the flags and what chose their settings).
#
#   bash recipes/scifact.sh [--output DIR] [--init MODEL] [--dry-run] [--epochs E] [--lr LR] [--negatives N]
#                           [--rerank-depth K] [--distill-epochs E] [--r2-init best|r1|init] [--seeds "42 43 44"]
#                           [--dev-fraction F] [--stop-after STAGE] [--precision P] [--final-retrain]
#                           [--rank-range "START:END ..."]   (--lr and --rank-range take lists: a grid on dev)
# SciFact ships no dev qrels: a quarter of its train queries is held out as dev (out/scifact-pipeline/qrels/).
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash recipes/beir.sh --data simlm_cli/data/scifact --output out/scifact-pipeline "$@"
