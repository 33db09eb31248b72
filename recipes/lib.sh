# Stage functions the recipes share (sourced, not run). The caller sets:
#   OUT (output directory), C (corpus), Q (queries), TEST_QRELS, TRAIN_QRELS, DRY (array: (--dry-run) or ()),
#   METRICS (array of --metric flags); optionally PRECISION (array: (--precision P) or ()), handed to every
#   inference command (encode, dense search, mine --index, rerank run/score), never to training.
# Every stage writes OUT/NAME.json (`simlm evaluate --json` on the test qrels) and OUT/NAME.json.time (seconds).

dry() { echo ${DRY[@]+"${DRY[@]}"}; }
precision() { echo ${PRECISION[@]+"${PRECISION[@]}"}; }

recipe_env() {  # recipe_env [offline]: install or update .venv (scripts/setup.sh) and enter it; offline: the
  # recipe reads only embedded or local models, so the hub is never asked (the paper recipes take hub names)
  bash scripts/setup.sh
  . .venv/bin/activate
  if [ "${1:-}" = offline ]; then export HF_HUB_OFFLINE=1; fi
}

scifact_data() {  # scifact_data: the shipped SciFact files (D, C, Q, TEST_QRELS, TRAIN_QRELS)
  D=simlm_cli/data/scifact
  C=$D/corpus.jsonl
  Q=$D/queries.jsonl
  TEST_QRELS=$D/qrels/test.tsv
  TRAIN_QRELS=$D/qrels/train.tsv
}

stage_start() { t0=$(date +%s); echo "== $1" >&2; }
stage_end() { echo $(( $(date +%s) - t0 )) > "$OUT/$1.json.time"; }

evaluate() {  # evaluate NAME RUN: the test-split figures of one stage
  simlm evaluate --qrels "$TEST_QRELS" --run "$2" "${METRICS[@]}" --json > "$OUT/$1.json"
}

bm25_runs() {  # bm25_runs: index; test run (depth 1000) and train run (depth 200, for mining and tuning)
  simlm index --bm25 --corpus "$C" --output "$OUT/idx/bm25"
  simlm search --index "$OUT/idx/bm25" --queries "$Q" --qrels "$TEST_QRELS" --output "$OUT/runs/bm25.trec" $(dry)
  simlm search --index "$OUT/idx/bm25" --queries "$Q" --qrels "$TRAIN_QRELS" --k 200 \
    --output "$OUT/runs/bm25.train.trec" $(dry)
}

dense_runs() {  # dense_runs NAME MODEL [ENCODE FLAGS...]: index the corpus, search test and train (depth 200)
  local name=$1 model=$2
  shift 2
  simlm encode --model "$model" --corpus "$C" "$@" $(precision) $(dry) | simlm index --output "$OUT/idx/$name"
  simlm search --index "$OUT/idx/$name" --queries "$Q" --qrels "$TEST_QRELS" --output "$OUT/runs/$name.trec" "$@" \
    $(precision) $(dry)
  simlm search --index "$OUT/idx/$name" --queries "$Q" --qrels "$TRAIN_QRELS" --k 200 \
    --output "$OUT/runs/$name.train.trec" "$@" $(precision) $(dry)
}

fuse_tuned() {  # fuse_tuned NAME RUN_A RUN_B [QRELS]: min-max interpolation of RUN_A.trec and RUN_B.trec, the
  # weights tuned on their training-query runs (RUN.train.trec) against QRELS (default: the train qrels), never on
  # the test split; NAME.train.trec (the same weights over the training runs) feeds mining and teachers.
  local name=$1 a=$2 b=$3 qrels=${4:-$TRAIN_QRELS}
  simlm fuse "$a.trec" "$b.trec" --method interpolate --norm minmax --tune-on "$qrels" \
    --tune-run "$a.train.trec" --tune-run "$b.train.trec" -o "$OUT/runs/$name.trec" --tune-report "$OUT/$name.fuse.json"
  if [ -f "$a.train.trec" ] && [ -f "$b.train.trec" ]; then
    simlm fuse "$a.train.trec" "$b.train.trec" --method interpolate --norm minmax --tune-on "$qrels" -k 200 \
      -o "$OUT/runs/$name.train.trec" --tune-report "$OUT/$name.train.fuse.json"
  fi
}

mine() {  # mine RUN OUTPUT [QRELS] [FLAGS...]: positives from the qrels, hard negatives from the run's top 200
  local run=$1 output=$2 qrels=${3:-$TRAIN_QRELS}
  shift 3 2>/dev/null || shift $#
  simlm mine --run "$run" --queries "$Q" --qrels "$qrels" --output "$output" "$@" $(dry)
}

subset_run() {  # subset_run RUN QRELS OUTPUT: the run's lines for the queries the qrels judge
  awk 'NR == FNR { judged[$1] = 1; next } ($1 in judged)' "$2" "$1" > "$3"
}
