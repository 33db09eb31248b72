# Stage functions the recipes share (sourced, not run). The caller sets:
#   OUT (output directory), C (corpus), Q (queries), TEST_QRELS, TRAIN_QRELS, DRY (array: (--dry-run) or ()),
#   METRICS (array of --metric flags); optionally PRECISION (array: (--precision P) or ()), handed to every
#   inference command (encode, dense search, mine --index, rerank run/score), never to training.
#   `dev_split` sets FIT_QRELS (what every model trains on) and DEV_QRELS (what every choice is made on).
# Every stage writes OUT/NAME.json (`simlm evaluate --json` on the test qrels) and OUT/NAME.json.time (seconds);
# a stage judged on dev also writes OUT/dev/NAME.json. Every simlm command goes to OUT/commands.log with its
# PURPOSE (run; select>FILE: a dev figure a choice compares, written to FILE; tune: weights tuned on dev; report:
# test figures only), so that a test can check which qrels each choice read.

dry() { echo ${DRY[@]+"${DRY[@]}"}; }
SELECT_METRIC=ndcg@10  # what every dev choice maximises (BEIR's headline metric)

simlm() {  # every simlm command, logged (PURPOSE<TAB>command) once OUT exists; then run
  if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then
    printf '%s\t%s\n' "${PURPOSE:-run}" "$(printf '%q ' simlm "$@")" >> "$OUT/commands.log"
  fi
  command simlm "$@"
}

# -- flag checks, all before the first stage: one line, exit 2 ----------------------------------------------------
die() { echo "$(basename "$0"): error: $*" >&2; exit 2; }
need_value() {  # need_value "$@" inside the flag loop: the flag ($1) has a value ($2)
  if [ $# -lt 2 ] || [[ "$2" == --* ]]; then die "$1: expected a value"; fi
}
check_int() {  # check_int FLAG VALUE MIN: an integer >= MIN
  [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -ge "$3" ] || die "$1 '$2': expected an integer >= $3"
}
check_positive() {  # check_positive FLAG VALUE: a number > 0 (1e-4, 0.5, 3)
  [[ "$2" =~ ^([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$ ]] && awk -v x="$2" 'BEGIN { exit !(x + 0 > 0) }' ||
    die "$1 '$2': expected a positive number"
}
check_fraction() {  # check_fraction FLAG VALUE: a number strictly between 0 and 1
  check_positive "$1" "$2"
  awk -v x="$2" 'BEGIN { exit !(x + 0 < 1) }' || die "$1 '$2': expected a number between 0 and 1"
}
check_choice() {  # check_choice FLAG VALUE CHOICE...
  local flag=$1 value=$2
  shift 2
  case " $* " in *" $value "*) ;; *) die "$flag '$value': expected one of: $*" ;; esac
}
check_list() {  # check_list FLAG "V1 V2 ..." CHECK: one or more distinct values, each passing CHECK FLAG VALUE
  local flag=$1 values=$2 check=$3 value
  [ -n "${values// /}" ] || die "$flag '$values': expected one or more values"
  for value in $values; do "$check" "$flag" "$value"; done
  check_distinct "$flag" "$values" value
}
check_distinct() {  # check_distinct FLAG "V1 V2 ..." NOUN: no value given twice
  [ "$(tr ' ' '\n' <<< "$2" | grep -c .)" = "$(tr ' ' '\n' <<< "$2" | grep . | sort -u | wc -l)" ] ||
    die "$1 '$2': a $3 is repeated"
}
check_rank_range() {  # check_rank_range FLAG START:END: 1 <= START <= END, as simlm mine --rank-range takes it
  [[ "$2" =~ ^([0-9]+):([0-9]*)$ ]] && [ "${BASH_REMATCH[1]}" -ge 1 ] &&
    { [ -z "${BASH_REMATCH[2]}" ] || [ "${BASH_REMATCH[2]}" -ge "${BASH_REMATCH[1]}" ]; } ||
    die "$1 '$2': expected START:END with 1 <= START <= END (e.g. 11:200)"
}
check_seeds() {  # check_seeds FLAG "S1 S2 ...": one or more distinct integers
  local seed
  [ -n "${2// /}" ] || die "$1 '$2': expected one or more integer seeds"
  for seed in $2; do [[ "$seed" =~ ^[0-9]+$ ]] || die "$1 '$2': '$seed' is not an integer seed"; done
  check_distinct "$1" "$2" seed
}
check_output() {  # check_output FLAG PATH: a directory to write into, not an existing file
  [ -n "$2" ] || die "$1: expected a directory"
  [ ! -e "$2" ] || [ -d "$2" ] || die "$1 $2: exists and is not a directory"
}
PRECISIONS="auto fp32 bf16 fp16 int8"  # simlm_cli.device.Precision

# -- the dev split -------------------------------------------------------------------------------------------------
dev_split() {  # dev_split FRACTION: FIT_QRELS + DEV_QRELS from the collection's own dev qrels (DATA_DEV_QRELS, when
  # set and present), else TRAIN_QRELS split once by query (recipes/split_qrels.py: a hash of the query id, the same
  # on every machine and run) into OUT/qrels/fit.tsv and OUT/qrels/dev.tsv. No model ever trains on dev.
  mkdir -p "$OUT/qrels"
  if [ -n "${DATA_DEV_QRELS:-}" ] && [ -f "$DATA_DEV_QRELS" ]; then
    FIT_QRELS=$TRAIN_QRELS
    DEV_QRELS=$DATA_DEV_QRELS
    python -c 'import sys
ids = [{ln.split()[0] for ln in open(p, encoding="utf-8-sig").read().splitlines()[1:] if ln.strip()} for p in sys.argv[1:]]
both = ids[0] & ids[1]
sys.exit(f"{sys.argv[2]}: {len(both)} of its queries are train queries too (e.g. {min(both)}): not a held-out dev split" if both else 0)' \
      "$TRAIN_QRELS" "$DEV_QRELS" || exit 2
    echo "dev split: the collection's own $DEV_QRELS; every model trains on all of $FIT_QRELS" >&2
  else
    FIT_QRELS=$OUT/qrels/fit.tsv
    DEV_QRELS=$OUT/qrels/dev.tsv
    python recipes/split_qrels.py "$TRAIN_QRELS" --dev-fraction "$1" --fit "$FIT_QRELS" --dev "$DEV_QRELS"
  fi
}

dev_evaluate() {  # dev_evaluate NAME RUN: the dev figure every choice compares (OUT/dev/NAME.json)
  mkdir -p "$(dirname "$OUT/dev/$1")"
  PURPOSE="select>$OUT/dev/$1.json" simlm evaluate --qrels "$DEV_QRELS" --run "$2" --metric "$SELECT_METRIC" --json \
    > "$OUT/dev/$1.json"
}
precision() { echo ${PRECISION[@]+"${PRECISION[@]}"}; }

recipe_env() {  # recipe_env [offline]: install or update .venv (scripts/setup.sh) and enter it; offline: the
  # recipe reads only embedded or local models, so the hub is never asked (the paper recipes take hub names).
  # SIMLM_NO_SETUP=1: use the simlm already on PATH as it is (a shared or CI environment set up beforehand).
  if [ "${SIMLM_NO_SETUP:-}" != 1 ]; then
    bash scripts/setup.sh
    . .venv/bin/activate
  fi
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

evaluate() {  # evaluate NAME RUN: the test-split figures of one stage (reported, never compared to choose)
  mkdir -p "$(dirname "$OUT/$1")"
  PURPOSE=report simlm evaluate --qrels "$TEST_QRELS" --run "$2" "${METRICS[@]}" --json > "$OUT/$1.json"
}

split_qrels() {  # split_qrels SPLIT: the qrels of test, fit or dev
  case "$1" in test) echo "$TEST_QRELS" ;; fit) echo "$FIT_QRELS" ;; dev) echo "$DEV_QRELS" ;; esac
}
split_run() {  # split_run NAME SPLIT: runs/NAME.trec (test), runs/NAME.fit.trec, runs/NAME.dev.trec
  if [ "$2" = test ]; then echo "$OUT/runs/$1.trec"; else echo "$OUT/runs/$1.$2.trec"; fi
}

bm25_runs() {  # bm25_runs: index; test run (depth 1000), fit and dev runs (depth 200: mining, teachers, choices)
  simlm index --bm25 --corpus "$C" --output "$OUT/idx/bm25"
  search_splits bm25 "test fit dev"
}

dense_index() {  # dense_index NAME MODEL [ENCODE FLAGS...]: encode the corpus into idx/NAME
  local name=$1 model=$2
  shift 2
  mkdir -p "$(dirname "$OUT/idx/$name")"
  simlm encode --model "$model" --corpus "$C" "$@" $(precision) $(dry) | simlm index --output "$OUT/idx/$name"
}

dense_search() {  # dense_search NAME SPLITS [SEARCH FLAGS...]: search_splits at the inference precision
  search_splits "$@" $(precision)
}

search_splits() {  # search_splits NAME SPLITS [SEARCH FLAGS...]: search idx/NAME with each split's queries ("test
  # fit dev"; fit and dev at depth 200, enough for mining, teachers and dev figures)
  local name=$1 splits=$2 split depth
  shift 2
  mkdir -p "$(dirname "$OUT/runs/$name")"
  for split in $splits; do
    depth=()
    if [ "$split" != test ]; then depth=(--k 200); fi
    simlm search --index "$OUT/idx/$name" --queries "$Q" --qrels "$(split_qrels "$split")" ${depth[@]+"${depth[@]}"} \
      --output "$(split_run "$name" "$split")" "$@" $(dry)
  done
}

dense_runs() {  # dense_runs NAME MODEL [ENCODE FLAGS...]: index the corpus, search test, fit and dev
  dense_index "$@"
  local name=$1
  shift 2
  dense_search "$name" "test fit dev" "$@"
}

fuse_dev() {  # fuse_dev NAME A B [SPLITS]: min-max interpolation of runs A and B (names under runs/), the weights
  # tuned on their dev runs against the dev qrels (never on queries a model trained on, never on test), then the
  # same weights over their runs of SPLITS (default "test fit"; fit: the teachers' and miners' input).
  # OUT/NAME.fuse.json: the weights.
  local name=$1 a=$2 b=$3 splits=${4:-test fit} split depth weights
  PURPOSE=tune simlm fuse "$(split_run "$a" dev)" "$(split_run "$b" dev)" --method interpolate --norm minmax \
    --tune-on "$DEV_QRELS" -k 200 -o "$(split_run "$name" dev)" --tune-report "$OUT/$name.fuse.json"
  weights=$(python -c 'import json, sys; print(" ".join(f"--weight {w}" for w in json.load(open(sys.argv[1]))["weights"]))' \
    "$OUT/$name.fuse.json")
  for split in $splits; do
    depth=()
    if [ "$split" = fit ]; then depth=(-k 200); fi
    simlm fuse "$(split_run "$a" $split)" "$(split_run "$b" $split)" --method interpolate --norm minmax $weights \
      ${depth[@]+"${depth[@]}"} -o "$(split_run "$name" $split)"
  done
}

mine() {  # mine RUN OUTPUT [QRELS] [FLAGS...]: positives from the qrels (default: the fit split), hard negatives
  # from the run's top 200
  local run=$1 output=$2 qrels=${3:-$FIT_QRELS}
  mkdir -p "$(dirname "$output")"
  shift 3 2>/dev/null || shift $#
  simlm mine --run "$run" --queries "$Q" --qrels "$qrels" --output "$output" "$@" $(dry)
}

choose() {  # choose best|keep ...: recipes/dev_choice.py (the dev figures compared; the choice recorded)
  python recipes/dev_choice.py "$@" --metric "$SELECT_METRIC"
}
