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
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1
D=simlm_cli/data/scifact
mkdir -p "$OUT"
metrics=(--metric ndcg@10 --metric mrr@10 --metric recall@50 --metric recall@100 --metric recall@1000)

simlm index --bm25 --corpus $D/corpus.jsonl --output "$OUT/idx/bm25"
simlm search --index "$OUT/idx/bm25" --queries $D/queries.jsonl --qrels $D/qrels/test.tsv \
  --output "$OUT/runs/bm25.trec" ${DRY[@]+"${DRY[@]}"}
simlm evaluate --qrels $D/qrels/test.tsv --run "$OUT/runs/bm25.trec" "${metrics[@]}" --json > "$OUT/bm25.json"

simlm encode --corpus $D/corpus.jsonl ${DRY[@]+"${DRY[@]}"} | simlm index --output "$OUT/idx/minilm"
simlm search --index "$OUT/idx/minilm" --queries $D/queries.jsonl --qrels $D/qrels/test.tsv \
  --output "$OUT/runs/minilm.trec" ${DRY[@]+"${DRY[@]}"}
simlm evaluate --qrels $D/qrels/test.tsv --run "$OUT/runs/minilm.trec" "${metrics[@]}" --json > "$OUT/minilm.json"

echo "results: $OUT/bm25.json $OUT/minilm.json (runs in $OUT/runs, indexes in $OUT/idx)" >&2
