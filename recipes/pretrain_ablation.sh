#!/usr/bin/env bash
# The SimLM paper's Table 7 (pretraining objectives compared under one budget) in miniature, on SciFact (shipped in
# simlm_cli/data/scifact): every objective of `simlm pretrain --list-objectives` pretrains the same initial model
# for the same steps and batch on the SciFact corpus, then each is fine-tuned exactly as the improved Retriever1 of
# recipes/beir.sh (BM25 hard negatives; lr, negatives, temperature, epochs, batch as there) and evaluated on the
# test split, beside "no pretraining" rows (Retriever1 straight from the initial model).
#
#   bash recipes/pretrain_ablation.sh [--output DIR] [--init MODEL] [--objectives "rlm mlm ..."]
#                                     [--pretrain-steps N] [--pretrain-batch B] [--pretrain-lr LR]
#                                     [--seeds "42 43"] [--seeded "none rlm"] [--pooling P]
#                                     [--epochs E] [--lr LR] [--negatives N] [--dry-run]
#
# --seeds: the seeds of the rows named in --seeded (default: none and rlm, twice each, so that the table shows
# whether a difference is larger than seed noise); every other objective runs with the first seed. A seed drives
# pretraining (initialisation of new parts, masking, data order) and fine-tuning (data order, negative sampling).
# Every row fine-tunes with the same passage settings (--pooling, default mean: the initial MiniLM's own and the
# improved Retriever1's; concatenated title + text; 32/144 tokens), so that rows differ by their pretraining only:
# a pretrain output carries no pooling of its own. --pooling cls asks the paper's question about the [CLS]
# bottleneck instead. The default budget (100 steps x 16 passages per objective) fits about two hours of a 2-core
# CPU with the fine-tuning; on a GPU, scale it with --pretrain-steps/--pretrain-batch (the paper: 80k x 2,048).
# The first seed's rlm output is also evaluated zero-shot ([CLS], as `simlm encode` reads a pretrain output).
#
# Writes DIR/results.{json,md,png} (row x nDCG@10, MRR@10, R@100, R@1k, with each row's time: pretraining +
# fine-tuning + encoding + search), DIR/losses.png (every pretraining loss curve) and keeps models and runs.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=out/pretrain-ablation
INIT=sentence-transformers/all-MiniLM-L6-v2
OBJECTIVES=        # default: all of `simlm pretrain --list-objectives`
PT_STEPS=100       # the same budget for every objective (paper: 80k steps x 2048 passages)
PT_BATCH=16
PT_LR=1e-4         # `simlm pretrain`'s CPU default (paper: 3e-4 at batch 2048)
SEEDS="42 43"
SEEDED="none rlm"
POOLING=mean
# Retriever1 as recipes/beir.sh trains it (the paper's lr; 3 epochs, fixed here so every row has the same budget).
EPOCHS=3
LR=2e-5
NEG=3
TEMP=0.05
DRY=()
usage() {
  echo "usage: $0 [--output DIR] [--init MODEL] [--objectives \"A B\"] [--pretrain-steps N] [--pretrain-batch B]" \
    "[--pretrain-lr LR] [--seeds \"S1 S2\"] [--seeded \"none rlm\"] [--pooling P] [--epochs E] [--lr LR]" \
    "[--negatives N] [--dry-run]" >&2
  exit 2
}
. recipes/lib.sh  # flag checks and stage functions (definitions only)
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=(--dry-run); shift; continue ;;
    --output|--init|--objectives|--pretrain-steps|--pretrain-batch|--pretrain-lr|--seeds|--seeded|--pooling|\
    --epochs|--lr|--negatives) need_value "$@" ;;
    *) usage ;;
  esac
  case "$1" in
    --output) OUT=$2 ;;
    --init) INIT=$2 ;;
    --objectives) OBJECTIVES=$2 ;;
    --pretrain-steps) PT_STEPS=$2 ;;
    --pretrain-batch) PT_BATCH=$2 ;;
    --pretrain-lr) PT_LR=$2 ;;
    --seeds) SEEDS=$2 ;;
    --seeded) SEEDED=$2 ;;
    --pooling) POOLING=$2 ;;
    --epochs) EPOCHS=$2 ;;
    --lr) LR=$2 ;;
    --negatives) NEG=$2 ;;
  esac
  shift 2
done
check_output --output "$OUT"
[ -n "$INIT" ] || die "--init: expected a model"
check_int --pretrain-steps "$PT_STEPS" 1
check_int --pretrain-batch "$PT_BATCH" 1
check_positive --pretrain-lr "$PT_LR"
check_seeds --seeds "$SEEDS"
check_choice --pooling "$POOLING" cls mean model
check_int --epochs "$EPOCHS" 1
check_positive --lr "$LR"
check_int --negatives "$NEG" 1
recipe_env offline
scifact_data
KNOWN=$(simlm pretrain --list-objectives | awk -F'\t' '!seen[$1]++ { print $1 }')
for objective in $OBJECTIVES; do check_choice --objectives "$objective" $KNOWN; done
for objective in $SEEDED; do check_choice --seeded "$objective" none $KNOWN; done
METRICS=(--metric ndcg@10 --metric mrr@10 --metric recall@100 --metric recall@1000)
R=$OUT/runs
# One name per objective, in the listing's order (its other lines are the objectives' options).
OBJECTIVES=${OBJECTIVES:-$KNOWN}
mkdir -p "$OUT"/{idx,runs,models,train}
# A quarter of SciFact's train queries held out once (OUT/qrels/{fit,dev}.tsv): every row fine-tunes on fit only and
# is also evaluated on dev (OUT/dev/NAME.json), the figure to choose on; test stays the reported one.
dev_split 0.25
began=$(date +%s)
first_seed=${SEEDS%% *}
train_flags=(--pooling "$POOLING" --passage-format concat --query-max-length 32 --passage-max-length 144
             --negatives $NEG --temperature $TEMP --lr $LR --batch-size 16 --epochs $EPOCHS)

seeds_of() {  # seeds_of ROW: every seed for the rows named in --seeded, else the first
  case " $SEEDED " in *" $1 "*) echo "$SEEDS" ;; *) echo "$first_seed" ;; esac
}
row_name() {  # row_name OBJECTIVE SEED: the table's label (a seed only where the row has several)
  local label=$1
  if [ "$1" = none ]; then label="no pretraining"; fi
  case " $SEEDED " in *" $1 "*) label="$label, seed $2" ;; esac
  echo "$label"
}
retriever1() {  # retriever1 NAME MODEL SEED: fine-tune as the improved Retriever1, index, search, evaluate
  simlm train --model "$2" --train-file "$OUT/train/bm25.jsonl" --corpus "$C" --output "$OUT/models/$1" \
    --overwrite "${train_flags[@]}" --seed "$3" $(dry)
  dense_runs "$1" "$OUT/models/$1"
  evaluate "$1" "$R/$1.trec"
  dev_evaluate "$1" "$R/$1.dev.trec"
  python -m simlm_cli.model_card "$OUT/models/$1" "$OUT/$1.json" --name "Retriever1 ($1)" --dataset BeIR/scifact
}

stage_start "BM25 hard negatives for fine-tuning (Pyserini, k1=0.9 b=0.4)"
bm25_runs
mine "$R/bm25.fit.trec" "$OUT/train/bm25.jsonl"
rows=()

for seed in $(seeds_of none); do
  stage_start "no pretraining (seed $seed): Retriever1 from $INIT"
  retriever1 "none-$seed" "$INIT" "$seed"
  stage_end "none-$seed"
  rows+=("$(row_name none "$seed")=$OUT/none-$seed.json")
done

for objective in $OBJECTIVES; do
  for seed in $(seeds_of "$objective"); do
    name=$objective-$seed
    stage_start "$objective (seed $seed): pretrain $INIT for $PT_STEPS steps x $PT_BATCH passages, then Retriever1"
    simlm pretrain --objective "$objective" --model "$INIT" --corpus "$C" --output "$OUT/models/pretrain-$name" \
      --overwrite --max-steps $PT_STEPS --batch-size $PT_BATCH --lr $PT_LR --seed "$seed" --log-steps 5 $(dry)
    retriever1 "$name" "$OUT/models/pretrain-$name" "$seed"
    python -m simlm_cli.model_card "$OUT/models/pretrain-$name" "$OUT/$name.json" \
      --name "Retriever1 fine-tuned from it" --dataset BeIR/scifact
    stage_end "$name"
    rows+=("$(row_name "$objective" "$seed")=$OUT/$name.json")
    if [ "$objective" = rlm ] && [ "$seed" = "$first_seed" ]; then
      stage_start "rlm (seed $seed) zero-shot, before fine-tuning"
      dense_runs "zeroshot-$name" "$OUT/models/pretrain-$name"
      evaluate "zeroshot-$name" "$R/zeroshot-$name.trec"
      stage_end "zeroshot-$name"
      rows+=("rlm, seed $seed, zero-shot (no fine-tuning)=$OUT/zeroshot-$name.json")
    fi
  done
done

title="SciFact test: Retriever1 ($POOLING pooling) after each pretraining objective"
title="$title ($PT_STEPS steps x $PT_BATCH passages from $(basename "$INIT"))"
python recipes/report.py --output "$OUT" "${rows[@]}" --title "$title"
python recipes/plot_losses.py --output "$OUT/losses.png" "$OUT"/models/pretrain-*/train_log.jsonl
echo "recipe: $(( ($(date +%s) - began) / 60 )) min; results: $OUT/results.md $OUT/results.json $OUT/results.png" \
  "$OUT/losses.png; models: $OUT/models; runs: $OUT/runs" >&2
