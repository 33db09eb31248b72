#!/usr/bin/env bash
# The main job on the embedded default: BM25 and zero-shot all-MiniLM-L6-v2 on SciFact (shipped in
# simlm_cli/data/scifact), each evaluated on the test split with the paper's metrics plus nDCG@10 and R@100.
#   bash recipes/scifact_baselines.sh [--output DIR] [--dry-run]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=out/scifact
DRY=()
while [ $# -gt 0 ]; do
  case "$1" in
    --output) OUT=$2; shift 2 ;;
    --dry-run) DRY=(--dry-run); shift ;;
    *) echo "usage: $0 [--output DIR] [--dry-run]" >&2; exit 2 ;;
  esac
done
. recipes/lib.sh
recipe_env offline
scifact_data
METRICS=(--metric ndcg@10 --metric mrr@10 --metric recall@50 --metric recall@100 --metric recall@1000)
mkdir -p "$OUT"/{idx,runs}

simlm index --bm25 --corpus "$C" --output "$OUT/idx/bm25"
simlm search --index "$OUT/idx/bm25" --queries "$Q" --qrels "$TEST_QRELS" --output "$OUT/runs/bm25.trec" $(dry)
evaluate bm25 "$OUT/runs/bm25.trec"

simlm encode --corpus "$C" $(dry) | simlm index --output "$OUT/idx/minilm"
simlm search --index "$OUT/idx/minilm" --queries "$Q" --qrels "$TEST_QRELS" --output "$OUT/runs/minilm.trec" $(dry)
evaluate minilm "$OUT/runs/minilm.trec"

echo "results: $OUT/bm25.json $OUT/minilm.json (runs in $OUT/runs, indexes in $OUT/idx)" >&2
