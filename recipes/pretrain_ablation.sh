#!/usr/bin/env bash
# The shape of the SimLM paper's Table 7 (pretraining objectives compared under one budget) on SciFact, shipped in
# simlm_cli/data/scifact: every objective of `simlm pretrain --list-objectives` pretrains the same initial model
# for the same steps and batch on the SciFact corpus, then each is fine-tuned as Retriever1 the same way (BM25
# hard negatives, as recipes/scifact.sh) and evaluated on the test split, beside a "no pretraining" row.
#
#   bash recipes/pretrain_ablation.sh [--output DIR] [--init MODEL] [--objectives "rlm mlm ..."]
#                                     [--pretrain-steps N] [--pretrain-batch B] [--negatives N] [--epochs E]
#                                     [--dry-run]
#
# --init: the model every row starts from (default: the embedded all-MiniLM-L6-v2). Each row costs its pretraining
# plus about one Retriever1 stage of recipes/scifact.sh (fine-tuning, encoding the corpus, searching).
# Every row fine-tunes with the same settings (cls pooling, (title, text) pairs, 32/144 tokens: the paper's), so
# that the rows differ by their pretraining only: a pretrain output is a plain encoder, and the embedded MiniLM's
# own settings (mean pooling, concatenated text, 256 tokens) would otherwise apply to the "no pretraining" row alone.
# Writes DIR/results.{json,md,png} (row x nDCG@10, MRR@10, R@100, R@1k, with each row's time) and keeps every
# model and run under DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=out/pretrain-ablation
INIT=sentence-transformers/all-MiniLM-L6-v2
OBJECTIVES=        # default: all of `simlm pretrain --list-objectives`
PT_STEPS=100       # the same budget for every objective (paper: 80k steps x 2048 passages)
PT_BATCH=8
PT_LR=1e-4         # `simlm pretrain`'s default (paper: 3e-4 at batch 2048)
NEG=3              # as recipes/scifact.sh
EPOCHS=1
DRY=()
usage() {
  echo "usage: $0 [--output DIR] [--init MODEL] [--objectives \"A B\"] [--pretrain-steps N] [--pretrain-batch B]" \
    "[--negatives N] [--epochs E] [--dry-run]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --output) OUT=$2; shift 2 ;;
    --init) INIT=$2; shift 2 ;;
    --objectives) OBJECTIVES=$2; shift 2 ;;
    --pretrain-steps) PT_STEPS=$2; shift 2 ;;
    --pretrain-batch) PT_BATCH=$2; shift 2 ;;
    --negatives) NEG=$2; shift 2 ;;
    --epochs) EPOCHS=$2; shift 2 ;;
    --dry-run) DRY=(--dry-run); shift ;;
    *) usage ;;
  esac
done
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1
D=simlm_cli/data/scifact
C=$D/corpus.jsonl
Q=$D/queries.jsonl
if [ -z "$OBJECTIVES" ]; then
  # One name per objective, in the listing's order (its other lines are the objectives' options).
  OBJECTIVES=$(simlm pretrain --list-objectives | awk -F'\t' '!seen[$1]++ { print $1 }')
fi
mkdir -p "$OUT"/{idx,runs,models,train}
metrics=(--metric ndcg@10 --metric mrr@10 --metric recall@100 --metric recall@1000)
dry=${DRY[@]+"${DRY[@]}"}
began=$(date +%s)

stage_start() { t0=$(date +%s); echo "== $1" >&2; }
stage_end() { echo $(( $(date +%s) - t0 )) > "$OUT/$1.json.time"; }
retriever1() {  # retriever1 NAME MODEL: fine-tune on the BM25 negatives, index, search test, evaluate
  simlm train --model "$2" --train-file "$OUT/train/bm25.jsonl" --corpus $C --output "$OUT/models/$1" \
    --pooling cls --passage-format pair --query-max-length 32 --passage-max-length 144 \
    --negatives $NEG --epochs $EPOCHS $dry
  simlm encode --model "$OUT/models/$1" --corpus $C $dry | simlm index --output "$OUT/idx/$1"
  simlm search --index "$OUT/idx/$1" --queries $Q --qrels $D/qrels/test.tsv --output "$OUT/runs/$1.trec" $dry
  simlm evaluate --qrels $D/qrels/test.tsv --run "$OUT/runs/$1.trec" "${metrics[@]}" --json > "$OUT/$1.json"
  python -m simlm_cli.model_card "$OUT/models/$1" "$OUT/$1.json" --name "Retriever1 ($1)" --dataset BeIR/scifact
}

echo "== BM25 hard negatives for fine-tuning (Pyserini, k1=0.9 b=0.4)" >&2
simlm index --bm25 --corpus $C --output "$OUT/idx/bm25"
simlm search --index "$OUT/idx/bm25" --queries $Q --qrels $D/qrels/train.tsv --k 200 \
  --output "$OUT/runs/bm25.train.trec" $dry
simlm mine --run "$OUT/runs/bm25.train.trec" --queries $Q --qrels $D/qrels/train.tsv \
  --output "$OUT/train/bm25.jsonl" $dry

stage_start "no pretraining: Retriever1 from $INIT"
retriever1 none "$INIT"
stage_end none
rows=("no pretraining=$OUT/none.json")

for objective in $OBJECTIVES; do
  stage_start "$objective: pretrain $INIT for $PT_STEPS steps x $PT_BATCH passages, then Retriever1"
  simlm pretrain --objective "$objective" --model "$INIT" --corpus $C --output "$OUT/models/pretrain-$objective" \
    --max-steps $PT_STEPS --batch-size $PT_BATCH --lr $PT_LR $dry
  retriever1 "$objective" "$OUT/models/pretrain-$objective"
  python -m simlm_cli.model_card "$OUT/models/pretrain-$objective" "$OUT/$objective.json" \
    --name "Retriever1 fine-tuned from it" --dataset BeIR/scifact
  stage_end "$objective"
  rows+=("$objective=$OUT/$objective.json")
done

python recipes/report.py --output "$OUT" "${rows[@]}" \
  --title "SciFact test: Retriever1 after each pretraining objective ($PT_STEPS steps x $PT_BATCH from $(basename "$INIT"))"
echo "recipe: $(( ($(date +%s) - began) / 60 )) min; results: $OUT/results.md $OUT/results.json $OUT/results.png;" \
  "models: $OUT/models; runs: $OUT/runs" >&2
