#!/usr/bin/env bash
# The SimLM paper's Table 7 (pretraining objectives compared under one budget) in miniature, on SciFact (shipped in
# simlm_cli/data/scifact), designed so that a gain from pretraining could show (issue 24):
#
#   stage 0  an MLM head fitted on the FROZEN initial encoder, once (`simlm pretrain --objective mlm --train-only
#            head`): every row starts from this checkpoint, so no objective sends a random head's loss into the
#            encoder. Its encoder is the initial model's, bit for bit.
#   stage 0b rlm's/rtd's frozen generator: that checkpoint, MLM-trained whole for --generator-steps more steps (0:
#            the head-fitted checkpoint itself). A head fitted on the frozen MiniLM plateaus at MLM loss ~7 and
#            replaces ~100% of the masked tokens (CHANGELOG, issue 24 item 1): not the plausible replacements of
#            the paper's ELECTRA generator. Each rlm/rtd row's `replaced` ratio is in the table either way.
#   rows     none (the head-fitted checkpoint, not pretrained further), and each objective of --rows pretrained
#            from it for the same --steps x --batch-size passages of --max-length tokens (lr, warmup, precision
#            the same); each row runs once per seed of --seeds (pretraining draws and fine-tuning order change).
#   per row  zero-shot: the row's start encoded with [CLS] pooling (what the bottleneck objectives train), test
#            and dev; then fine-tuned as Retriever1 with the settings FIXED below (BM25 hard negatives of the fit
#            queries, --pooling cls, the same epochs, lr, negatives, temperature, batch and lengths for every row,
#            no early stopping, nothing chosen on any split), evaluated on test and on dev.
#   table    each row's mean and sd over seeds of test nDCG@10 (and MRR@10, R@100), dev nDCG@10 and zero-shot
#            [CLS] nDCG@10; its paired difference on the test queries against "none" and against "mlm", per seed
#            (row seed s against baseline seed s: the same fine-tuning seed, `simlm evaluate --run ... --baseline
#            ... --json`, 95% paired bootstrap interval, p Holm-corrected over the rows of that seed); rlm/rtd's
#            replaced ratio (mean over the logged steps) and each pretraining's last logged loss.
#
#   bash recipes/pretrain_ablation.sh [--preset gpu|cpu-tiny] [--output DIR] [--init MODEL] [--rows "none mlm ..."]
#        [--seeds "42 43"] [--steps N] [--batch-size B] [--max-length L] [--lr LR] [--warmup F]
#        [--head-steps N] [--head-lr LR] [--generator-steps N] [--precision P] [--ft-epochs E] [--parallel N]
#        [--negatives-file FILE] [--stop-after negatives|models] [--from-runs] [--dry-run]
#
# --preset sets the budget (the flags after it may still change one value; the fine-tuning settings do not move):
#   gpu       400 steps x 256 passages of 144 tokens (~19 epochs of SciFact's 5,183 passages, the issue's scale of
#             the paper's ~19 epochs of MS MARCO), lr 2e-4, warmup 10%, bf16; head fit 200 steps at lr 1e-3;
#             generator 400 steps; rows none mlm enc-dec-mlm condenser rlm rtd autoencoder; 4 rows in parallel.
#   cpu-tiny  4 steps x 4 passages of 64 tokens, head 4 steps, generator 2 steps, rows none mlm rlm, 1 fine-tuning
#             epoch: a smoke run of the whole design (tests), never a result.
#   default   (no preset) 100 steps x 16 passages of 144 tokens, lr 1e-4: what a 2-core CPU does in ~2 hours.
# --negatives-file FILE: the BM25 hard negatives of the fit queries (OUT/train/bm25.jsonl of an earlier run with
#   --stop-after negatives), so a machine without Java (the GPU machine) skips BM25; its queries are checked to be
#   fit queries only. --stop-after negatives: stop once that file is written; models: after the last fine-tuning
#   (no retrieval). --from-runs: OUT holds such a run's models/ logs and the runs recipes/gpu/dense_runs.py wrote
#   (OUT/runs/NAME.trec, NAME.dev.trec): evaluate, compare and report only (recipes/gpu/pretrain_ablation_gpu.sh).
# --parallel N: rows (row x seed) run N at a time, sharing one GPU (each CLI start costs ~18 s there).
# Every flag is checked before the first stage (one line, exit 2). OUT/commands.log lists every simlm command with
# its purpose (run; report: a test or dev figure shown in the table; nothing here is chosen on any figure).
#
# Writes OUT/results.{json,md} (recipes/ablation_report.py), OUT/losses.png and OUT/settings.json (the fixed
# settings, written before the first row), and keeps models, runs and every evaluation under OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
. recipes/lib.sh  # flag checks and stage functions (definitions only)

# -- fine-tuning: FIXED before any row runs, identical for every row (Retriever1 of recipes/beir.sh, the paper's lr;
# never chosen on a test or dev figure; pooling cls: the vector the bottleneck objectives train) --------------------
FT_LR=2e-5
FT_NEG=3          # hard negatives per query, re-sampled every epoch from BM25's top 200
FT_TEMP=0.05      # the initial MiniLM's own training temperature
FT_BATCH=16
FT_EPOCHS=3       # the paper's 3 (MS MARCO); --ft-epochs changes it for every row at once
FT_LENGTHS=(--query-max-length 32 --passage-max-length 144)
FT_FORMAT=concat  # title + ' ' + text, as MiniLM was trained
DEV_FRACTION=0.25

# -- pretraining budget (flags and presets) ---------------------------------------------------------------------
OUT=out/pretrain-ablation
INIT=sentence-transformers/all-MiniLM-L6-v2
ROW_CHOICES="none mlm enc-dec-mlm condenser rlm rtd autoencoder"
ROWS="none mlm enc-dec-mlm condenser rlm"
SEEDS="42 43"
STEPS=100
BATCH=16
MAX_LENGTH=144
LR=1e-4
WARMUP=0.1
HEAD_STEPS=100
HEAD_LR=1e-3      # a fresh head on a frozen encoder (README: --train-only head)
GEN_STEPS=100
TRAIN_PRECISION=auto  # training (pretrain, train); lib.sh's PRECISION is inference's
PARALLEL=1
NEGATIVES_FILE=
STOP_AFTER=report
FROM_RUNS=0       # --from-runs: the runs are under OUT/runs already (recipes/gpu/dense_runs.py): evaluate, report
DRY=()
preset() {  # preset NAME: a budget, set before the flags that follow it
  case "$1" in
    gpu) STEPS=400 BATCH=256 MAX_LENGTH=144 LR=2e-4 WARMUP=0.1 HEAD_STEPS=200 HEAD_LR=1e-3 GEN_STEPS=400 \
         TRAIN_PRECISION=bf16 PARALLEL=4 ROWS=$ROW_CHOICES ;;
    cpu-tiny) STEPS=4 BATCH=4 MAX_LENGTH=64 HEAD_STEPS=4 GEN_STEPS=2 FT_EPOCHS=1 ROWS="none mlm rlm" ;;
    *) die "--preset '$1': expected one of: gpu cpu-tiny" ;;
  esac
}
usage() {
  echo "usage: $0 [--preset gpu|cpu-tiny] [--output DIR] [--init MODEL] [--rows \"none mlm ...\"] [--seeds \"S1 S2\"]" \
    "[--steps N] [--batch-size B] [--max-length L] [--lr LR] [--warmup F] [--head-steps N] [--head-lr LR]" \
    "[--generator-steps N] [--precision P] [--ft-epochs E] [--parallel N] [--negatives-file FILE]" \
    "[--stop-after negatives|models] [--from-runs] [--dry-run]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=(--dry-run); shift; continue ;;
    --from-runs) FROM_RUNS=1; shift; continue ;;
    --preset|--output|--init|--rows|--seeds|--steps|--batch-size|--max-length|--lr|--warmup|--head-steps|\
    --head-lr|--generator-steps|--precision|--ft-epochs|--parallel|--negatives-file|--stop-after) need_value "$@" ;;
    *) usage ;;
  esac
  case "$1" in
    --preset) preset "$2" ;;
    --output) OUT=$2 ;;
    --init) INIT=$2 ;;
    --rows) ROWS=$2 ;;
    --seeds) SEEDS=$2 ;;
    --steps) STEPS=$2 ;;
    --batch-size) BATCH=$2 ;;
    --max-length) MAX_LENGTH=$2 ;;
    --lr) LR=$2 ;;
    --warmup) WARMUP=$2 ;;
    --head-steps) HEAD_STEPS=$2 ;;
    --head-lr) HEAD_LR=$2 ;;
    --generator-steps) GEN_STEPS=$2 ;;
    --precision) TRAIN_PRECISION=$2 ;;
    --ft-epochs) FT_EPOCHS=$2 ;;
    --parallel) PARALLEL=$2 ;;
    --negatives-file) NEGATIVES_FILE=$2 ;;
    --stop-after) STOP_AFTER=$2 ;;
  esac
  shift 2
done
check_output --output "$OUT"
[ -n "$INIT" ] || die "--init: expected a model"
[ -n "${ROWS// /}" ] || die "--rows '$ROWS': expected row names"
for row in $ROWS; do check_choice --rows "$row" $ROW_CHOICES; done
case " $ROWS " in *" none "*) ;; *) die "--rows '$ROWS': must include none (the baseline every row is compared with)" ;; esac
[ "$(tr ' ' '\n' <<< "$ROWS" | grep -c .)" = "$(tr ' ' '\n' <<< "$ROWS" | grep . | sort -u | wc -l)" ] ||
  die "--rows '$ROWS': a row is repeated"
check_seeds --seeds "$SEEDS"
check_int --steps "$STEPS" 1
check_int --batch-size "$BATCH" 1
check_int --max-length "$MAX_LENGTH" 8
check_positive --lr "$LR"
check_fraction --warmup "$WARMUP"
check_int --head-steps "$HEAD_STEPS" 1
check_positive --head-lr "$HEAD_LR"
check_int --generator-steps "$GEN_STEPS" 0
check_choice --precision "$TRAIN_PRECISION" auto fp32 bf16 fp16
check_int --ft-epochs "$FT_EPOCHS" 1
check_int --parallel "$PARALLEL" 1
check_choice --stop-after "$STOP_AFTER" negatives models report
if [ -n "$NEGATIVES_FILE" ]; then
  [ -f "$NEGATIVES_FILE" ] || die "--negatives-file $NEGATIVES_FILE: not found"
  [ "$STOP_AFTER" != negatives ] || die "--stop-after negatives: the negatives are --negatives-file already"
fi
if [ "$FROM_RUNS" = 1 ] && [ "$STOP_AFTER" != report ]; then die "--from-runs: only evaluates; not with --stop-after"; fi
recipe_env offline
scifact_data
METRICS=(--metric ndcg@10 --metric mrr@10 --metric recall@100 --metric recall@1000)
R=$OUT/runs
mkdir -p "$OUT"/{idx,runs,models,train,dev,compare}
if [ "$FROM_RUNS" = 0 ]; then : > "$OUT/commands.log"; fi  # --from-runs: appended to the build's
began=$(date +%s)
WARMUP_STEPS=$(awk -v s="$STEPS" -v f="$WARMUP" 'BEGIN { printf "%d", s * f + 0.5 }')
pt_flags=(--corpus "$C" --batch-size "$BATCH" --max-length "$MAX_LENGTH" --precision "$TRAIN_PRECISION" --log-steps 5)
budget=(--max-steps "$STEPS" --lr "$LR" --warmup-steps "$WARMUP_STEPS")
ft_flags=(--pooling cls --passage-format $FT_FORMAT "${FT_LENGTHS[@]}" --negatives $FT_NEG --temperature $FT_TEMP
          --lr $FT_LR --batch-size $FT_BATCH --epochs "$FT_EPOCHS" --precision "$TRAIN_PRECISION")
encode_flags=(--pooling cls --passage-format $FT_FORMAT "${FT_LENGTHS[@]}")  # zero-shot: the fine-tuning's vectors
HEAD=$OUT/models/head
GENERATOR=$HEAD
if [ "$GEN_STEPS" -gt 0 ]; then GENERATOR=$OUT/models/generator; fi
first_seed=${SEEDS%% *}

stage_start "dev split: a quarter of the train queries held out (no model trains on them)"
dev_split "$DEV_FRACTION"
stage_end dev_split
if [ "$FROM_RUNS" = 1 ]; then  # the settings the models were built with, recorded by that run
  [ -f "$OUT/settings.json" ] || die "--from-runs: $OUT/settings.json not found (not the output of a recipe run)"
else
python - "$OUT/settings.json" "$INIT" "$ROWS" "$SEEDS" "$STEPS" "$BATCH" "$MAX_LENGTH" "$LR" "$WARMUP_STEPS" \
  "$HEAD_STEPS" "$HEAD_LR" "$GEN_STEPS" "$TRAIN_PRECISION" "${DRY[*]+${DRY[*]}}" "${ft_flags[@]}" <<'EOF'
import json, sys
(path, init, rows, seeds, steps, batch, length, lr, warmup, head_steps, head_lr, gen_steps, precision, dry,
 *fine_tuning) = sys.argv[1:]
settings = {"init": init, "rows": rows.split(), "seeds": seeds.split(), "dry_run": bool(dry),
            "pretraining": {"steps": int(steps), "batch_size": int(batch), "max_length": int(length), "lr": lr,
                            "warmup_steps": int(warmup), "precision": precision},
            "head_fit": {"steps": int(head_steps), "lr": head_lr}, "generator_steps": int(gen_steps),
            "fine_tuning": " ".join(fine_tuning)}
with open(path + ".tmp", "w") as f:
    f.write(json.dumps(settings, indent=2) + "\n")
import os; os.replace(path + ".tmp", path)
EOF
fi

if [ "$FROM_RUNS" = 1 ]; then
  TRAIN_FILE=
elif [ -n "$NEGATIVES_FILE" ]; then
  TRAIN_FILE=$NEGATIVES_FILE
  python - "$TRAIN_FILE" "$FIT_QRELS" <<'EOF' || exit 2
import json, sys
path, fit = sys.argv[1:]
fit_ids = {ln.split()[0] for ln in open(fit, encoding="utf-8-sig").read().splitlines()[1:] if ln.strip()}
for number, line in enumerate(open(path, encoding="utf-8"), 1):
    if line.strip() and (qid := str(json.loads(line).get("qid"))) not in fit_ids:
        sys.exit(f"{path}:{number}: qid {qid!r} is not a fit query of {fit}: not this split's negatives")
EOF
else
  stage_start "BM25 hard negatives of the fit queries (Pyserini, k1=0.9 b=0.4)"
  simlm index --bm25 --corpus "$C" --output "$OUT/idx/bm25"
  search_splits bm25 fit
  TRAIN_FILE=$OUT/train/bm25.jsonl
  mine "$R/bm25.fit.trec" "$TRAIN_FILE"
  stage_end bm25
fi
if [ "$STOP_AFTER" = negatives ]; then echo "negatives: $TRAIN_FILE" >&2; exit 0; fi

if [ "$FROM_RUNS" = 0 ]; then
stage_start "stage 0: an MLM head fitted on the frozen $INIT ($HEAD_STEPS steps, lr $HEAD_LR)"
simlm pretrain --objective mlm --train-only head --model "$INIT" --output "$HEAD" --overwrite "${pt_flags[@]}" \
  --max-steps "$HEAD_STEPS" --lr "$HEAD_LR" --seed "$first_seed" $(dry)
stage_end head
if [ "$GEN_STEPS" -gt 0 ]; then
  stage_start "stage 0b: rlm/rtd's frozen generator: the head-fitted model MLM-trained for $GEN_STEPS steps"
  simlm pretrain --objective mlm --model "$HEAD" --output "$GENERATOR" --overwrite "${pt_flags[@]}" \
    --max-steps "$GEN_STEPS" --lr "$LR" --warmup-steps "$(awk -v s="$GEN_STEPS" -v f="$WARMUP" 'BEGIN { printf "%d", s * f + 0.5 }')" \
    --seed "$first_seed" $(dry)
  stage_end generator
fi
fi

report_dev() {  # report_dev NAME RUN: a dev figure shown in the table (nothing is chosen on it)
  PURPOSE=report simlm evaluate --qrels "$DEV_QRELS" --run "$2" "${METRICS[@]}" --json > "$OUT/dev/$1.json"
}
zero_shot_runs() {  # zero_shot_runs NAME MODEL: MODEL's [CLS] vectors before fine-tuning, searched on test and dev
  dense_index "zeroshot-$1" "$2" "${encode_flags[@]}"
  dense_search "zeroshot-$1" "test dev"
}
evaluations() {  # evaluations NAME: test and dev figures of runs/NAME.trec and runs/NAME.dev.trec
  evaluate "$1" "$R/$1.trec"
  report_dev "$1" "$R/$1.dev.trec"
}
build_row() {  # build_row ROW SEED: pretrain (except none) from the head-fitted checkpoint, fine-tune; with
  # --stop-after report also search (zero-shot, then fine-tuned) on test and dev
  local row=$1 seed=$2 name=$1-$2 start=$HEAD objective_flags=()
  if [ "$row" != none ]; then
    case $row in rlm|rtd) objective_flags=(--generator "$GENERATOR") ;; esac
    start=$OUT/models/pretrain-$name
    simlm pretrain --objective "$row" --model "$HEAD" --output "$start" --overwrite "${pt_flags[@]}" "${budget[@]}" \
      ${objective_flags[@]+"${objective_flags[@]}"} --seed "$seed" $(dry)
    if [ "$STOP_AFTER" = report ]; then zero_shot_runs "$name" "$start"; fi
  fi
  simlm train --model "$start" --train-file "$TRAIN_FILE" --corpus "$C" --output "$OUT/models/ft-$name" --overwrite \
    "${ft_flags[@]}" --seed "$seed" $(dry)
  if [ "$STOP_AFTER" = report ]; then
    dense_index "$name" "$OUT/models/ft-$name"
    dense_search "$name" "test dev"
  fi
}
run_row() {  # run_row ROW SEED: build it (unless --from-runs), then its evaluations (unless --stop-after)
  stage_start "$1 (seed $2)"
  if [ "$FROM_RUNS" = 0 ]; then build_row "$1" "$2"; fi
  if [ "$STOP_AFTER" = report ]; then
    if [ "$1" != none ]; then evaluations "zeroshot-$1-$2"; fi
    evaluations "$1-$2"
  fi
  if [ "$FROM_RUNS" = 0 ]; then stage_end "$1-$2"; fi  # --from-runs: the time is the build's, kept
}

if [ "$STOP_AFTER" = report ]; then
  stage_start "none: the head-fitted checkpoint (= $INIT's encoder) zero-shot, [CLS]"
  if [ "$FROM_RUNS" = 0 ]; then zero_shot_runs none "$HEAD"; fi
  evaluations zeroshot-none
  stage_end zeroshot-none
fi
failed=0
for seed in $SEEDS; do
  for row in $ROWS; do
    if [ "$PARALLEL" -le 1 ]; then run_row "$row" "$seed"; continue; fi
    while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do wait -n || failed=1; done
    run_row "$row" "$seed" &
  done
done
for pid in $(jobs -rp); do wait "$pid" || failed=1; done
[ "$failed" = 0 ] || { echo "$(basename "$0"): a row failed (see above)" >&2; exit 1; }
if [ "$STOP_AFTER" = models ]; then echo "models: $OUT/models" >&2; exit 0; fi

compare_to() {  # compare_to BASE SEED: every row of SEED against BASE of SEED on the test queries (paired)
  local runs=() row
  for row in $ROWS; do runs+=(--run "$R/$row-$2.trec"); done
  PURPOSE=report simlm evaluate --qrels "$TEST_QRELS" "${runs[@]}" --baseline "$R/$1-$2.trec" --metric ndcg@10 \
    --json > "$OUT/compare/vs-$1-$2.json"
}
stage_start "paired comparisons on the test queries, per seed, against none and mlm"
for seed in $SEEDS; do
  for base in none mlm; do
    case " $ROWS " in *" $base "*) if [ "$(wc -w <<< "$ROWS")" -gt 1 ]; then compare_to $base "$seed"; fi ;; esac
  done
done
stage_end compare
python recipes/ablation_report.py --output "$OUT" --rows "$ROWS" --seeds "$SEEDS" \
  --title "SciFact test: Retriever1 ([CLS]) after each pretraining objective ($STEPS steps x $BATCH passages from $(basename "$INIT"))"
logs=()
for log in "$HEAD" "$OUT"/models/generator "$OUT"/models/pretrain-*; do
  if [ -f "$log/train_log.jsonl" ]; then logs+=("$log/train_log.jsonl"); fi
done
python recipes/plot_losses.py --output "$OUT/losses.png" "${logs[@]}"
echo "recipe: $(( ($(date +%s) - began) / 60 )) min; results: $OUT/results.md $OUT/results.json $OUT/losses.png" >&2
