#!/usr/bin/env bash
# The SimLM fine-tuning chain (the paper's Figure 2) on any BEIR directory with train and test qrels
# (corpus.jsonl, queries.jsonl, qrels/train.tsv, qrels/test.tsv, optionally qrels/dev.tsv; graded qrels are fine):
#   BM25 -> zero-shot -> zero-shot + BM25 -> Retriever1 (BM25 negatives) -> Retriever2 (the best dense model's
#   negatives) -> best dense + BM25 -> re-ranker over the best run -> Retriever_distill (taught by the best run)
#   -> Retriever_distill + BM25.
#
#   bash recipes/beir.sh --data DIR [--output OUT] [--init MODEL] [--dry-run] [--epochs E] [--lr LR]
#                        [--negatives N] [--rerank-depth K] [--distill-epochs E] [--r2-init best|r1|init]
#                        [--seeds "42 43 44"] [--dev-fraction F] [--stop-after retriever2|reranker|distill]
#                        [--precision P] [--final-retrain] [--rank-range "START:END ..."]
#
# Every choice is made on a dev split that no model trains on, never on the test split:
#   - the dev split: the collection's own qrels/dev.tsv, else a quarter of the train queries held out once
#     (recipes/split_qrels.py, by a hash of the query id) into OUT/qrels/{fit,dev}.tsv; every model trains on fit.
#   - epochs: each trainer saves every epoch's model (--save-epochs); each is evaluated on dev and the best kept
#     (early stopping; --epochs, --distill-epochs and the re-ranker's epochs are the most it may take).
#   - every fusion and interpolation weight is tuned on the dev runs (OUT/NAME.fuse.json).
#   - the learning rate and the mining setting, when given a grid: --lr "1e-5 2e-5 5e-5" and/or
#     --rank-range "1:200 11:200" train Retriever1 once per (lr, rank range) cell, each early-stopped on dev; the
#     best cell on dev is Retriever1 (OUT/sSEED/retriever1.grid.json lists every cell's dev figure), and its lr and
#     rank range are the seed's: Retriever2 trains at that lr, and every later hard-negative file (Retriever2's, the
#     re-ranker's) keeps negatives from that rank range. A rank range that starts below the top (11:200) skips the
#     top-ranked unjudged passages, which on densely judged collections are often unjudged positives. Each cell
#     costs one Retriever1 training, the chain's largest stage on a CPU: the default is one cell (2e-5, 1:200).
#   - stage keeping: a stage that does not beat its input on dev (nDCG@10) is reported, marked "dropped", and not
#     built upon: the next stage starts from the best model / run so far. The final run is the best on dev among the
#     stages kept (and the untrained ones), named as such in the table.
#   - the re-ranker re-ranks the best run so far and is trained on that run's fit-query negatives; the distillation
#     teacher is that run's fused scores over the fit queries; the student starts from the best dense model.
#     The teacher's trained source (the best dense model) has trained on those fit queries: cross-fitting (two
#     halves, each scored by a model trained on the other) would double the dense training, the dominant cost on a
#     CPU, so it is not done; README "The fine-tuning pipeline" says what that costs.
# --seeds "42 43 44" runs every trained stage once per seed (each seed its own chain of choices, under OUT/sSEED/);
# the table shows each stage's mean +- sd over the seeds, how many seeds kept it, and (where `simlm evaluate`
# compares runs) its paired difference on test against its input, with the interval and p.
#
# --final-retrain: once a seed's final run is chosen, its last trained model (the dense model, the re-ranker or the
# student the final run is made of) is trained again on all the train queries (fit + dev), from the same starting
# model, for the epochs dev chose, on negatives (or teacher scores) of the same source run over fit + dev; a fusion
# or interpolation keeps its dev-tuned weights. Reported as its own row ("Final, retrained on fit + dev") with its
# paired test against the dev-chosen final; it has no dev figure (dev is in its training data), so nothing is chosen
# on it, and the stages before it are not retrained (their models gave its negatives and starting point).
#
# --precision P (fp32, bf16, int8, ...) goes to every encode, dense search and rerank run; training keeps its own.
# Every flag is checked before the first stage (one line, exit 2).
#
# Writes OUT/results.{json,md,png} and keeps every model, run, dev figure (OUT/dev), choice (OUT/*.stage.json),
# fusion report and training file under OUT; OUT/commands.log lists every simlm command with its purpose.
#
# Defaults are the method's (the SimLM paper's) or the CPU budget's, never figures of any test split:
set -euo pipefail
cd "$(dirname "$0")/.."
. recipes/lib.sh
DATA=
OUT=
INIT=sentence-transformers/all-MiniLM-L6-v2
EPOCHS=3          # Retriever1's most epochs (the paper's 3 on MS MARCO); early stopping picks one on dev
R2_EPOCHS=2       # Retriever2's most epochs (a second round from a trained model; a CPU budget)
R2_INIT=best      # best: from the best dense model on dev so far (the stage-keeping rule); r1; init (the paper)
LR=2e-5           # the paper's MS MARCO retriever learning rate (recipes/msmarco.sh RET_LR); a list: a grid on dev
RANK_RANGES=1:200 # hard negatives from these ranks of the run (simlm mine --rank-range); a list: a grid on dev
NEG=3             # hard negatives per query, re-sampled every epoch from the top 200 (paper: 15; a CPU budget)
TEMP=0.05         # the initial MiniLM's own training temperature (scale 20); the paper's 0.02 is BERT's from scratch
POOLING=model     # the initial model's own pooling (mean for MiniLM); cls is the paper's
RR_EPOCHS=2       # the re-ranker's most epochs (a CPU budget); early stopping picks one on dev
RR_GROUP=4        # re-ranker: 1 positive + 3 negatives per query (paper: 64; a CPU budget)
RR_LR=1e-4        # the paper's 3e-5 fine-tunes a pretrained ELECTRA discriminator; here a one-logit head starts
                  # from random weights on a bi-encoder checkpoint, which needs a larger step
RR_DEPTH=20       # passages re-ranked per query (a CPU budget: one cross-encoder forward each)
D_EPOCHS=2        # distillation's most epochs (paper: 6; a CPU budget); early stopping picks one on dev
D_NEG=7           # negatives per query with teacher scores, sampled each epoch from the teacher's top 200 (paper: 23)
D_LR=3e-5         # the paper's distillation learning rate (recipes/msmarco.sh KD_LR)
TEACHER_T=0.05    # the teacher's fused scores lie in [0, 1]: divided by 0.05 they span 20 logits, as the student's
SEEDS=42
STOP_AFTER=distill  # --stop-after retriever2|reranker|distill: the chain's last trained stage (a shorter budget)
DEV_FRACTION=0.25 # train queries held out as dev when the collection has no dev qrels: enough dev queries for a
                  # difference of a few points to show, three quarters left to train on
DRY=()
FINAL_RETRAIN=0   # --final-retrain: the final run's last trained model trained again on fit + dev (see above)
PRECISION=()      # --precision P: the inference commands' precision (encode, search, rerank run), not training's
usage="usage: $0 --data DIR [--output OUT] [--init MODEL] [--dry-run] [--epochs E] [--lr LR] [--negatives N] [--rerank-depth K] [--distill-epochs E] [--r2-init best|r1|init] [--seeds \"S1 S2\"] [--dev-fraction F] [--stop-after STAGE] [--precision P] [--final-retrain] [--rank-range \"START:END ...\"]"
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=(--dry-run); shift; continue ;;
    --final-retrain) FINAL_RETRAIN=1; shift; continue ;;
    --data|--output|--init|--epochs|--lr|--negatives|--rerank-depth|--distill-epochs|--r2-init|--seeds|\
    --dev-fraction|--stop-after|--precision|--rank-range) need_value "$@" ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
  case "$1" in
    --data) DATA=$2 ;;
    --output) OUT=$2 ;;
    --init) INIT=$2 ;;
    --epochs) EPOCHS=$2 ;;
    --lr) LR=$2 ;;
    --negatives) NEG=$2 ;;
    --rerank-depth) RR_DEPTH=$2 ;;
    --distill-epochs) D_EPOCHS=$2 ;;
    --r2-init) R2_INIT=$2 ;;
    --seeds) SEEDS=$2 ;;
    --dev-fraction) DEV_FRACTION=$2 ;;
    --stop-after) STOP_AFTER=$2 ;;
    --precision) PRECISION=(--precision "$2") ;;
    --rank-range) RANK_RANGES=$2 ;;
  esac
  shift 2
done
if [ -z "$DATA" ]; then echo "$usage" >&2; exit 2; fi
for f in corpus.jsonl queries.jsonl qrels/train.tsv qrels/test.tsv; do
  [ -f "$DATA/$f" ] || die "$DATA/$f: not found (a BEIR directory with train and test qrels)"
done
[ -n "$INIT" ] || die "--init: expected a model"
check_int --epochs "$EPOCHS" 1
check_list --lr "$LR" check_positive
check_list --rank-range "$RANK_RANGES" check_rank_range
check_int --negatives "$NEG" 1
check_int --rerank-depth "$RR_DEPTH" 1
check_int --distill-epochs "$D_EPOCHS" 1
check_choice --r2-init "$R2_INIT" best r1 init
check_seeds --seeds "$SEEDS"
check_fraction --dev-fraction "$DEV_FRACTION"
check_choice --stop-after "$STOP_AFTER" retriever2 reranker distill
if [ ${#PRECISION[@]} -gt 0 ]; then check_choice --precision "${PRECISION[1]}" $PRECISIONS; fi
OUT=${OUT:-out/beir-$(basename "$DATA")}
check_output --output "$OUT"
recipe_env offline
card() {  # card MODEL_DIR STAGE NAME: add a stage's test figures to the model's card (README.md)
  python -m simlm_cli.model_card "$1" "$OUT/$2.json" --name "$3" --dataset "BeIR/$(basename "$DATA")"
}
C=$DATA/corpus.jsonl
Q=$DATA/queries.jsonl
TEST_QRELS=$DATA/qrels/test.tsv
TRAIN_QRELS=$DATA/qrels/train.tsv
DATA_DEV_QRELS=$DATA/qrels/dev.tsv
METRICS=(--metric ndcg@10 --metric mrr@10 --metric recall@100 --metric recall@1000)
R=$OUT/runs
mkdir -p "$OUT"/{idx,runs,models,train,dev}
: > "$OUT/commands.log"
# Every trainer below takes --overwrite: run again into the same OUT, the recipe replaces its own earlier models
# (only the files simlm wrote; a directory simlm did not create is still refused).
began=$(date +%s)
# The paper's 32/144 tokens: simlm train would otherwise keep the initial model's own (MiniLM: 256), twice the
# passage tokens per step.
LENGTHS=(--query-max-length 32 --passage-max-length 144)
train_flags=(--pooling $POOLING "${LENGTHS[@]}" --negatives $NEG --temperature $TEMP --batch-size 16)
COMPARES=0  # `simlm evaluate` compares runs (--baseline): each stage's paired test against its input on test
if command simlm evaluate --help 2>/dev/null | grep -q -- --baseline; then COMPARES=1; fi

compare() {  # compare NAME INPUT: the paired difference on test of NAME against INPUT (reported, never chosen on)
  if [ "$COMPARES" = 1 ]; then
    PURPOSE=report simlm evaluate --qrels "$TEST_QRELS" --run "$R/$2.trec" --run "$R/$1.trec" --baseline "$R/$2.trec" \
      --metric "$SELECT_METRIC" --json > "$OUT/$1.compare.json"
  fi
}
keep_stage() {  # keep_stage NAME INPUT [KEY=VALUE...]: does NAME beat INPUT on dev? (OUT/NAME.stage.json records it)
  local name=$1 input=$2 fields=() kv v
  shift 2
  for kv in "input=$input" "$@"; do fields+=(--field "$kv"); done
  compare "$name" "$input"
  v=$(choose keep "$OUT/dev/$name.json" "$OUT/dev/$input.json" --record "$OUT/$name.stage.json" "${fields[@]}")
  # the decision, in order among the commands; JUDGED_ONLY=1: a candidate for the final run only, which a dropped
  # verdict does not stop the next step from using (the re-ranker alone: its interpolation is always built)
  printf '%s\t%s %s\n' "$([ "${JUDGED_ONLY:-}" = 1 ] && echo judged || echo keep)" "$name" "$v" >> "$OUT/commands.log"
  echo "$v"
}
better_of() {  # better_of A B: the stage (of two) with the better dev figure, the first on a tie
  local best
  best=$(choose best "$OUT/dev/$1.json" "$OUT/dev/$2.json")
  if [ "$best" = "$OUT/dev/$1.json" ]; then echo "$1"; else echo "$2"; fi
}
epoch_number() { echo "${1##*epoch-}"; }  # epoch-3 -> 3

early_stopped_dense() {  # early_stopped_dense NAME: every epoch of models/NAME (--save-epochs) indexed and judged on
  # dev; the best (the earliest of equals) is the stage: its runs become runs/NAME.{trec,fit.trec,dev.trec}
  local name=$1 dir files=() best e split
  for dir in $(ls -d "$OUT/models/$name"/epochs/epoch-* | sort -V); do
    e=$(basename "$dir")
    dense_index "$name.$e" "$dir"
    dense_search "$name.$e" dev
    dev_evaluate "$name.$e" "$(split_run "$name.$e" dev)"
    files+=("$OUT/dev/$name.$e.json")
  done
  best=$(choose best "${files[@]}")
  e=$(basename "$best" .json); e=${e##*.}
  dense_search "$name.$e" "test fit"
  for split in test fit dev; do cp "$(split_run "$name.$e" $split)" "$(split_run "$name" $split)"; done
  cp "$best" "$OUT/dev/$name.json"
  MODEL_OF[$name]=$OUT/models/$name/epochs/$e
  EPOCH_OF[$name]=$(epoch_number "$e")
}

# The three trainers, each: NAME FROM_MODEL TRAIN_FILE EPOCHS SEED [FLAGS...] -> models/NAME (the chain adds
# --save-epochs: every epoch kept for early stopping; the final retrain trains the chosen number of epochs once).
train_dense() {  # simlm train (contrastive); train_dense NAME FROM FILE EPOCHS SEED LR [FLAGS...]
  local name=$1 from=$2 file=$3 epochs=$4 seed=$5 lr=$6
  shift 6
  simlm train --model "$from" --train-file "$file" --corpus "$C" --output "$OUT/models/$name" --overwrite "${train_flags[@]}" \
    --lr "$lr" --epochs "$epochs" --seed "$seed" "$@" $(dry)
}
train_reranker() {  # simlm rerank train (listwise), from the initial model
  local name=$1 from=$2 file=$3 epochs=$4 seed=$5
  shift 5
  simlm rerank train --model "$from" --train-file "$file" --corpus "$C" --output "$OUT/models/$name" --overwrite \
    --group-size $RR_GROUP --epochs "$epochs" --lr $RR_LR --seed "$seed" "$@" $(dry)
}
train_distill() {  # simlm distill (KL from the teacher's scores + 0.2 x contrastive)
  local name=$1 from=$2 file=$3 epochs=$4 seed=$5
  shift 5
  simlm distill --model "$from" --train-file "$file" --corpus "$C" --output "$OUT/models/$name" --overwrite \
    --pooling $POOLING "${LENGTHS[@]}" --negatives $D_NEG --alpha 0.2 --teacher-temperature $TEACHER_T \
    --temperature $TEMP --epochs "$epochs" --lr $D_LR --batch-size 16 --seed "$seed" "$@" $(dry)
}

declare -A MODEL_OF=([zeroshot]=$INIT) EPOCH_OF=()  # a dense stage's model (its best epoch), and that epoch
# A trained stage's starting model and the run its negatives (or teacher scores) came from: the final retrain's recipe
declare -A FROM_OF=() SOURCE_OF=()
# A dense stage's learning rate and the rank range its hard negatives came from (a grid cell's, or the seed's)
declare -A LR_OF=() RANKS_OF=()

stage_start "dev split"
dev_split "$DEV_FRACTION"
stage_end dev_split

stage_start "BM25 (Pyserini, k1=0.9 b=0.4)"
bm25_runs
evaluate bm25 "$R/bm25.trec"
dev_evaluate bm25 "$R/bm25.dev.trec"
stage_end bm25

stage_start "zero-shot $INIT"
dense_runs zeroshot "$INIT"
evaluate zeroshot "$R/zeroshot.trec"
dev_evaluate zeroshot "$R/zeroshot.dev.trec"
stage_end zeroshot

stage_start "zero-shot + BM25 (min-max interpolation, weights tuned on dev)"
fuse_dev zeroshot_bm25 zeroshot bm25
evaluate zeroshot_bm25 "$R/zeroshot_bm25.trec"
dev_evaluate zeroshot_bm25 "$R/zeroshot_bm25.dev.trec"
untrained=(bm25 zeroshot)  # the stages every seed's chain may end on
v=$(keep_stage zeroshot_bm25 "$(better_of zeroshot bm25)")
if [ "$v" = kept ]; then untrained+=(zeroshot_bm25); fi
stage_end zeroshot_bm25

GRID_CELLS=$(( $(wc -w <<< "$LR") * $(wc -w <<< "$RANK_RANGES") ))
ranks_tag() {  # ranks_tag START:END: a file-name tag for a rank range in a grid ("" without a rank-range grid)
  if [ "$(wc -w <<< "$RANK_RANGES")" -gt 1 ]; then echo ".ranks${1/:/-}"; fi
}
stage_start "BM25 hard negatives of the fit queries"
for ranks in $RANK_RANGES; do
  mine "$R/bm25.fit.trec" "$OUT/train/bm25$(ranks_tag $ranks).jsonl" "$FIT_QRELS" --rank-range "$ranks"
done
stage_end mine_bm25


best_stage() {  # best_stage NAME...: the stage with the best dev figure (the first of equals)
  local names=("$@") files=() name best
  for name in "${names[@]}"; do files+=("$OUT/dev/$name.json"); done
  best=$(choose best "${files[@]}")
  best=${best#"$OUT/dev/"}
  echo "${best%.json}"
}

retriever1_grid() {  # Retriever1 of seed $s ($p: run_seed's locals) once per --lr x --rank-range cell, each
  # early-stopped on dev; the best cell on dev (the first of equals: list the default first) becomes $p/retriever1,
  # its lr and rank range the seed's (SEED_LR, SEED_RANKS); OUT/$p/retriever1.grid.json records every cell's dev figure
  local lr ranks cell cells=() best split
  for lr in $LR; do
    for ranks in $RANK_RANGES; do
      cell=$p/retriever1
      if [ "$GRID_CELLS" -gt 1 ]; then cell=$p/retriever1.lr$lr$(ranks_tag "$ranks"); fi
      train_dense $cell "$INIT" "$OUT/train/bm25$(ranks_tag "$ranks").jsonl" $EPOCHS $s $lr --save-epochs
      early_stopped_dense $cell
      LR_OF[$cell]=$lr RANKS_OF[$cell]=$ranks
      cells+=("$cell")
    done
  done
  best=$(best_stage "${cells[@]}")
  if [ "$best" != $p/retriever1 ]; then
    for split in test fit dev; do cp "$(split_run "$best" $split)" "$(split_run $p/retriever1 $split)"; done
    cp "$OUT/dev/$best.json" "$OUT/dev/$p/retriever1.json"
    MODEL_OF[$p/retriever1]=${MODEL_OF[$best]} EPOCH_OF[$p/retriever1]=${EPOCH_OF[$best]}
  fi
  SEED_LR=${LR_OF[$best]} SEED_RANKS=${RANKS_OF[$best]}
  LR_OF[$p/retriever1]=$SEED_LR RANKS_OF[$p/retriever1]=$SEED_RANKS
  python -c 'import json, sys
out, best, metric, cells = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
rows = [dict(zip(("name", "lr", "rank_range", "epoch", "dev_file"), c.split("|"))) for c in cells]
for row in rows:
    row["dev"] = json.load(open(row.pop("dev_file")))[metric]
json.dump({"metric": metric, "chosen": best, "cells": rows}, open(out + ".tmp", "w"), indent=1)' \
    "$OUT/$p/retriever1.grid.json" "$best" "$SELECT_METRIC" \
    $(for cell in "${cells[@]}"; do echo "$cell|${LR_OF[$cell]}|${RANKS_OF[$cell]}|${EPOCH_OF[$cell]}|$OUT/dev/$cell.json"; done)
  mv "$OUT/$p/retriever1.grid.json.tmp" "$OUT/$p/retriever1.grid.json"
}

run_seed() {  # run_seed SEED: every trained stage for one seed (OUT/sSEED/...), each choice made on dev
  local s=$1 p=s$1 dense=zeroshot run input v dir e files
  local candidates=("${untrained[@]}")
  mkdir -p "$OUT/$p" "$OUT/models/$p" "$OUT/train/$p" "$R/$p" "$OUT/dev/$p"

  stage_start "Retriever1 (seed $s): BM25 hard negatives, from $INIT ($GRID_CELLS lr x rank-range cell(s))"
  retriever1_grid
  FROM_OF[$p/retriever1]=$INIT SOURCE_OF[$p/retriever1]=bm25
  evaluate $p/retriever1 "$R/$p/retriever1.trec"
  card "${MODEL_OF[$p/retriever1]}" $p/retriever1 "Retriever1 (seed $s)"
  v=$(keep_stage $p/retriever1 zeroshot "epoch=${EPOCH_OF[$p/retriever1]}" "lr=$SEED_LR" "rank_range=$SEED_RANKS")
  if [ "$v" = kept ]; then dense=$p/retriever1; candidates+=($p/retriever1); fi
  stage_end $p/retriever1

  case $R2_INIT in best) input=$dense ;; r1) input=$p/retriever1 ;; init) input=zeroshot ;; esac
  stage_start "Retriever2 (seed $s): negatives of $dense (the best dense model on dev so far), from $input"
  mine "$R/$dense.fit.trec" "$OUT/train/$p/retriever2.jsonl" "$FIT_QRELS" --rank-range "$SEED_RANKS"
  train_dense $p/retriever2 "${MODEL_OF[$input]}" "$OUT/train/$p/retriever2.jsonl" $R2_EPOCHS $s $SEED_LR --save-epochs
  FROM_OF[$p/retriever2]=${MODEL_OF[$input]} SOURCE_OF[$p/retriever2]=$dense
  LR_OF[$p/retriever2]=$SEED_LR RANKS_OF[$p/retriever2]=$SEED_RANKS
  early_stopped_dense $p/retriever2
  evaluate $p/retriever2 "$R/$p/retriever2.trec"
  card "${MODEL_OF[$p/retriever2]}" $p/retriever2 "Retriever2 (seed $s)"
  v=$(keep_stage $p/retriever2 "$input" "epoch=${EPOCH_OF[$p/retriever2]}" "negatives_from=$dense")
  if [ "$v" = kept ]; then dense=$p/retriever2; candidates+=($p/retriever2); fi
  stage_end $p/retriever2
  if [ "$STOP_AFTER" = retriever2 ]; then finish_seed; return; fi

  stage_start "best dense model ($dense) + BM25, weights tuned on dev"
  fuse_dev $p/dense_bm25 "$dense" bm25
  evaluate $p/dense_bm25 "$R/$p/dense_bm25.trec"
  dev_evaluate $p/dense_bm25 "$R/$p/dense_bm25.dev.trec"
  v=$(keep_stage $p/dense_bm25 "$(better_of "$dense" bm25)" "dense=$dense")
  if [ "$v" = kept ]; then candidates+=($p/dense_bm25); fi
  stage_end $p/dense_bm25

  run=$(best_stage "${candidates[@]}")
  stage_start "re-ranker (seed $s): cross-encoder over the top $RR_DEPTH of $run (the best run on dev so far)"
  mine "$R/$run.fit.trec" "$OUT/train/$p/reranker.jsonl" "$FIT_QRELS" --rank-range "$SEED_RANKS"
  train_reranker $p/reranker "$INIT" "$OUT/train/$p/reranker.jsonl" $RR_EPOCHS $s --save-epochs
  FROM_OF[$p/reranker_alone]=$INIT SOURCE_OF[$p/reranker_alone]=$run RANKS_OF[$p/reranker_alone]=$SEED_RANKS
  files=()
  for dir in $(ls -d "$OUT/models/$p/reranker"/epochs/epoch-* | sort -V); do
    e=$(basename "$dir")
    simlm rerank run --model "$dir" --run "$R/$run.dev.trec" --queries "$Q" --corpus "$C" --depth $RR_DEPTH \
      --output "$R/$p/reranker_alone.$e.dev.trec" $(precision) $(dry)
    dev_evaluate $p/reranker_alone.$e "$R/$p/reranker_alone.$e.dev.trec"
    files+=("$OUT/dev/$p/reranker_alone.$e.json")
  done
  e=$(choose best "${files[@]}"); e=$(basename "$e" .json); e=${e##*.}
  cp "$R/$p/reranker_alone.$e.dev.trec" "$R/$p/reranker_alone.dev.trec"
  cp "$OUT/dev/$p/reranker_alone.$e.json" "$OUT/dev/$p/reranker_alone.json"
  simlm rerank run --model "$OUT/models/$p/reranker/epochs/$e" --run "$R/$run.trec" --queries "$Q" --corpus "$C" \
    --depth $RR_DEPTH --output "$R/$p/reranker_alone.trec" $(precision) $(dry)
  evaluate $p/reranker_alone "$R/$p/reranker_alone.trec"
  card "$OUT/models/$p/reranker/epochs/$e" $p/reranker_alone "Re-ranker alone (seed $s, top $RR_DEPTH)"
  # Alone, the re-ranker is only a candidate for the final run: the interpolation below is how the chain uses it
  # (its dev-tuned weight ranges from the re-ranker alone to the first stage alone).
  EPOCH_OF[$p/reranker_alone]=$(epoch_number "$e")
  v=$(JUDGED_ONLY=1 keep_stage $p/reranker_alone "$run" "epoch=${EPOCH_OF[$p/reranker_alone]}")
  if [ "$v" = kept ]; then candidates+=($p/reranker_alone); fi
  stage_end $p/reranker_alone

  stage_start "re-ranker (seed $s) interpolated with $run, the weight tuned on dev"
  fuse_dev $p/reranker $p/reranker_alone "$run" test
  evaluate $p/reranker "$R/$p/reranker.trec"
  dev_evaluate $p/reranker "$R/$p/reranker.dev.trec"
  v=$(keep_stage $p/reranker "$run")
  if [ "$v" = kept ]; then candidates+=($p/reranker); fi
  stage_end $p/reranker
  if [ "$STOP_AFTER" = reranker ]; then finish_seed; return; fi

  stage_start "Retriever_distill (seed $s): KL from $run's scores + 0.2 x contrastive, from $dense"
  mine "$R/$run.fit.trec" "$OUT/train/$p/teacher.jsonl" "$FIT_QRELS" --teacher
  train_distill $p/distill "${MODEL_OF[$dense]}" "$OUT/train/$p/teacher.jsonl" $D_EPOCHS $s --save-epochs
  FROM_OF[$p/distill]=${MODEL_OF[$dense]} SOURCE_OF[$p/distill]=$run
  early_stopped_dense $p/distill
  evaluate $p/distill "$R/$p/distill.trec"
  card "${MODEL_OF[$p/distill]}" $p/distill "Retriever_distill (seed $s)"
  v=$(keep_stage $p/distill "$dense" "epoch=${EPOCH_OF[$p/distill]}" "teacher=$run")
  stage_end $p/distill
  if [ "$v" = kept ]; then
    candidates+=($p/distill)
    stage_start "Retriever_distill (seed $s) + BM25, weights tuned on dev"
    fuse_dev $p/distill_bm25 $p/distill bm25
    evaluate $p/distill_bm25 "$R/$p/distill_bm25.trec"
    dev_evaluate $p/distill_bm25 "$R/$p/distill_bm25.dev.trec"
    v=$(keep_stage $p/distill_bm25 "$(better_of $p/distill bm25)")
    if [ "$v" = kept ]; then candidates+=($p/distill_bm25); fi
    stage_end $p/distill_bm25
  fi

  finish_seed
}

finish_seed() {  # the seed's final run: the best on dev of its candidates (run_seed's locals p, s, candidates)
  local final v
  final=$(best_stage "${candidates[@]}")
  echo "final (seed $s): $final, the best on dev of: ${candidates[*]}" >&2
  cp "$OUT/$final.json" "$OUT/$p/final.json"
  cp "$R/$final.trec" "$R/$p/final.trec"
  cp "$OUT/dev/$final.json" "$OUT/dev/$p/final.json"
  # Compared (on test, reported only) with the best untrained stage on dev: what the chain adds to no training.
  v=$(keep_stage $p/final "$(best_stage "${untrained[@]}")" "final=$final" "candidates=${candidates[*]}")
  # SIMLM_RECIPE_RETRAIN_STAGE (tests only): retrain that stage of the seed instead of the final run, so that a test
  # on a tiny budget, whose final run is often an untrained one, still reaches every path of the retrain
  if [ "$FINAL_RETRAIN" = 1 ]; then final_retrain "${SIMLM_RECIPE_RETRAIN_STAGE:+$p/$SIMLM_RECIPE_RETRAIN_STAGE}"; fi
}

all_qrels() {  # all_qrels: OUT/qrels/all.tsv, the fit and dev qrels together (every train query; the final retrain's)
  ALL_QRELS=$OUT/qrels/all.tsv
  { cat "$FIT_QRELS"; tail -n +2 "$DEV_QRELS"; } > "$ALL_QRELS.tmp" && mv "$ALL_QRELS.tmp" "$ALL_QRELS"
}

final_retrain() {  # final_retrain FINAL: FINAL's last trained model trained again on fit + dev, FINAL's other parts
  # (a fusion partner, the dev-tuned weights) as they were; results in OUT/sSEED/final_retrained.json. Runs after
  # every choice of the seed: nothing is chosen on it (PURPOSE=retrain in commands.log).
  local final=${1:-$final} stage partner='' src name model all weights kind
  case ${final#"$p/"} in
    retriever1|retriever2|distill|reranker_alone) stage=$final ;;
    dense_bm25) stage=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["dense"])' "$OUT/$final.stage.json"); partner=bm25 ;;
    distill_bm25) stage=$p/distill; partner=bm25 ;;
    reranker) stage=$p/reranker_alone; partner=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["input"])' "$OUT/$final.stage.json") ;;
    *) echo "final retrain (seed $s): the final run ($final) has no trained model; nothing to retrain" >&2; return ;;
  esac
  if [ "$stage" = zeroshot ]; then echo "final retrain (seed $s): $final has no trained model" >&2; return; fi
  stage_start "final retrain (seed $s): ${stage#"$p/"} on fit + dev for ${EPOCH_OF[$stage]} epoch(s), for $final"
  export PURPOSE=retrain
  [ -n "${ALL_QRELS:-}" ] || all_qrels
  src=${SOURCE_OF[$stage]} name=$p/retrained.${stage#"$p/"}
  all=$R/$p/retrained.${src//\//_}.all.trec
  cat "$(split_run "$src" fit)" "$(split_run "$src" dev)" > "$all"
  kind=${stage#"$p/"}
  case $kind in
    retriever1|retriever2)
      mine "$all" "$OUT/train/$name.jsonl" "$ALL_QRELS" --rank-range "${RANKS_OF[$stage]}"
      train_dense "$name" "${FROM_OF[$stage]}" "$OUT/train/$name.jsonl" "${EPOCH_OF[$stage]}" $s "${LR_OF[$stage]}" ;;
    distill)
      mine "$all" "$OUT/train/$name.jsonl" "$ALL_QRELS" --teacher
      train_distill "$name" "${FROM_OF[$stage]}" "$OUT/train/$name.jsonl" "${EPOCH_OF[$stage]}" $s ;;
    reranker_alone)
      mine "$all" "$OUT/train/$name.jsonl" "$ALL_QRELS" --rank-range "${RANKS_OF[$stage]}"
      train_reranker "$name" "${FROM_OF[$stage]}" "$OUT/train/$name.jsonl" "${EPOCH_OF[$stage]}" $s ;;
  esac
  model=$OUT/models/$name
  if [ "$kind" = reranker_alone ]; then
    simlm rerank run --model "$model" --run "$R/$src.trec" --queries "$Q" --corpus "$C" --depth $RR_DEPTH \
      --output "$R/$name.trec" $(precision) $(dry)
  else
    dense_index "$name" "$model"
    dense_search "$name" test
  fi
  if [ -n "$partner" ]; then  # the final's fusion: the same two runs' roles, the weights tuned on dev
    weights=$(python -c 'import json, sys; print(" ".join(f"--weight {w}" for w in json.load(open(sys.argv[1]))["weights"]))' \
      "$OUT/$final.fuse.json")
    simlm fuse "$R/$name.trec" "$R/$partner.trec" --method interpolate --norm minmax $weights -o "$R/$p/final_retrained.trec"
  else
    cp "$R/$name.trec" "$R/$p/final_retrained.trec"
  fi
  evaluate $p/final_retrained "$R/$p/final_retrained.trec"
  compare $p/final_retrained $p/final
  unset PURPOSE
  stage_end $p/final_retrained
}

for seed in $SEEDS; do run_seed "$seed"; done

rows=("BM25=$OUT/bm25.json" "zero-shot=$OUT/zeroshot.json" "zero-shot + BM25=$OUT/zeroshot_bm25.json")
for stage in "Retriever1=retriever1" "Retriever2=retriever2" "best dense + BM25=dense_bm25" \
  "Re-ranker alone (top $RR_DEPTH)=reranker_alone" "Re-ranker + its first stage=reranker" \
  "Retriever_distill=distill" "Retriever_distill + BM25=distill_bm25" "Final: the best on dev=final" \
  "Final, retrained on fit + dev=final_retrained"; do
  for seed in $SEEDS; do
    if [ -f "$OUT/s$seed/${stage#*=}.json" ]; then rows+=("${stage%%=*}=$OUT/s$seed/${stage#*=}.json"); fi
  done
done
python recipes/report.py --output "$OUT" --title "$(basename "$DATA") test: the SimLM chain from $(basename "$INIT")" \
  --note "Every model trained on the fit split ($FIT_QRELS); every choice made on dev ($DEV_QRELS); seeds: $SEEDS." \
  "${rows[@]}"
echo "recipe: $(( ($(date +%s) - began) / 60 )) min; results: $OUT/results.md $OUT/results.json $OUT/results.png" >&2
