# The SimLM paper's fine-tuning chain (Figure 2) with the paper's hyperparameters, shared by recipes/msmarco.sh and
# recipes/nq.sh (sourced, not run): [RLM pretraining] -> BM25 -> Retriever1 -> Retriever2 -> re-ranker ->
# Retriever_distill. The caller sets, before sourcing:
#   the hyperparameters (RET_*, RR_*, KD_*, BM25_*, Q_LEN, P_LEN, MINE_DEPTH; RET_LENGTH and RR_LENGTH: the
#   training length flags as arrays, e.g. (--epochs 3) or (--max-steps 20000)), OUT (default output), SAMPLE_DATA
#   (--data under --dry-run), metrics (array of --metric flags), CARD_DATASET and EVAL_SPLIT (model cards), TITLE,
#   CORPUS_NAME, METRICS_NOTE, EXTRA_USAGE (its own flags for the usage line), and the functions
#   data_files (sets C, QT, QD, RT, RD from DATA) and parse_extra "$@" (takes one of its own flags with its value,
#   returns 1 for an unknown flag).
. recipes/lib.sh  # flag checks and stage functions (definitions only)
# -- Pretraining: RLM, the same for both collections (the authors' scripts/train_rlm.sh; only MS MARCO's is
# released, and the paper pretrains on the DPR passages the same way) ------------------------------------------
PT_ENC_MASK=0.3        # --rlm_encoder_mask_prob 0.3: share of encoder tokens replaced
PT_DEC_MASK=0.5        # --rlm_decoder_mask_prob 0.5: share of decoder tokens replaced
PT_DEC_LAYERS=2        # paper Sec. 3: a 2-layer shallow decoder
PT_LR=3e-4             # --learning_rate 3e-4
PT_BATCH_TOTAL=2048    # 64 per GPU x 4 accumulation x 8 GPUs = 2048 passages per step
PT_BATCH=64            # --per_device_train_batch_size 64
PT_STEPS=80000         # --max_steps 80000
PT_WARMUP=4000         # --warmup_steps 4000
PT_WEIGHT_DECAY=0.0    # --weight_decay 0.0
PT_MAX_LEN=144         # --rlm_max_length 144
DATA=
MODEL=bert-base-uncased
GENERATOR=google/electra-base-generator
RERANKER_MODEL=google/electra-base-discriminator
BM25_RUN=
GPUS=1
PRETRAIN=0
DRY=()
usage() {
  echo "usage: $0 --data DIR [--output DIR]${EXTRA_USAGE:-} [--model M] [--pretrain] [--generator G]" \
    "[--reranker-model M] [--bm25-run FILE] [--gpus N] [--dry-run]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --data) need_value "$@"; DATA=$2; shift 2 ;;
    --output) need_value "$@"; OUT=$2; shift 2 ;;
    --model) need_value "$@"; MODEL=$2; shift 2 ;;
    --pretrain) PRETRAIN=1; shift ;;
    --generator) need_value "$@"; GENERATOR=$2; shift 2 ;;
    --reranker-model) need_value "$@"; RERANKER_MODEL=$2; shift 2 ;;
    --bm25-run) need_value "$@"; BM25_RUN=$2; shift 2 ;;
    --gpus) need_value "$@"; GPUS=$2; shift 2 ;;
    --dry-run) DRY=(--dry-run); shift ;;
    *) parse_extra "$1" "${2-}" || usage; need_value "$@"; shift 2 ;;  # the caller's own flags (each takes a value)
  esac
done
if [ -z "$DATA" ] && [ ${#DRY[@]} -gt 0 ]; then DATA=$SAMPLE_DATA; fi
[ -n "$DATA" ] || usage
[[ "$GPUS" =~ ^[1-9][0-9]*$ ]] || { echo "$0: --gpus: expected a positive integer, got '$GPUS'" >&2; exit 2; }
check_output --output "$OUT"
[ -z "$BM25_RUN" ] || [ -f "$BM25_RUN" ] || die "--bm25-run $BM25_RUN: no such file"
data_files  # the caller's: sets C (corpus), QT/QD (train/evaluated queries), RT/RD (their qrels) from DATA
for f in "$C" "$QT" "$QD" "$RT" "$RD"; do
  [ -f "$f" ] || { echo "$0: $f: no such file" >&2; exit 2; }
done
recipe_env
THREADS=$(nproc)
mkdir -p "$OUT"/{idx,runs,models,train,emb}
# Every trainer below takes --overwrite: run again into the same OUT, the recipe replaces its own earlier models
# (only the files simlm wrote; a directory simlm did not create is still refused).
# A quarter of the train queries held out once as dev (OUT/qrels/{fit,dev}.tsv): every model trains on fit only.
# The paper's settings are fixed here, so nothing is chosen on dev; it stays clean for a user's own choices.
TRAIN_QRELS=$RT
dev_split 0.25
RT=$FIT_QRELS
dry=${DRY[@]+"${DRY[@]}"}
began=$(date +%s)

launch() {  # launch SUBCOMMAND ARGS...: one process per GPU for the commands that shard their work
  if [ "$GPUS" -gt 1 ]; then
    python -m torch.distributed.run --standalone --nproc-per-node "$GPUS" -m simlm_cli "$@"
  else
    simlm "$@"
  fi
}
evaluate_split() {  # evaluate_split NAME RUN; a model this recipe trained (models/NAME) gets the figures in its card
  simlm evaluate --qrels "$RD" --run "$2" "${metrics[@]}" --json > "$OUT/$1.json"
  if [ -f "$OUT/models/$1/README.md" ]; then
    python -m simlm_cli.model_card "$OUT/models/$1" "$OUT/$1.json" --name "$1" --dataset "$CARD_DATASET" --split "$EVAL_SPLIT"
  fi
}
dense_index() {  # dense_index NAME MODEL: encode the corpus (sharded over the GPUs) into a flat index
  if [ "$GPUS" -gt 1 ]; then
    rm -rf "$OUT/emb/$1" && mkdir -p "$OUT/emb/$1"
    launch encode --model "$2" --corpus "$C" --output "$OUT/emb/$1/" $dry
    simlm index "$OUT/emb/$1" --output "$OUT/idx/$1"
  else
    simlm encode --model "$2" --corpus "$C" $dry | simlm index --output "$OUT/idx/$1"
  fi
}
dense_split_runs() {  # dense_split_runs NAME MODEL [train]: index, search the evaluated split (and train)
  dense_index "$1" "$2"
  simlm search --index "$OUT/idx/$1" --queries "$QD" --qrels "$RD" --output "$OUT/runs/$1.trec" $dry
  if [ "${3:-}" = train ]; then
    simlm search --index "$OUT/idx/$1" --queries "$QT" --qrels "$RT" --k $MINE_DEPTH \
      --output "$OUT/runs/$1.train.trec" $dry
  fi
  evaluate_split "$1" "$OUT/runs/$1.trec"
}
mine_train() {  # mine_train RUN OUTPUT: positives from the train qrels, hard negatives from the run's top MINE_DEPTH
  simlm mine --run "$1" --queries "$QT" --qrels "$RT" --depth $MINE_DEPTH --output "$2" $dry
}
train_retriever() {  # train_retriever NAME TRAIN_FILE
  launch train --model "$INIT" --train-file "$2" --corpus "$C" --output "$OUT/models/$1" --overwrite --pooling cls \
    --negatives $RET_NEG --temperature $RET_TEMP --lr $RET_LR --global-batch-size $RET_BATCH "${RET_LENGTH[@]}" \
    --warmup-steps $RET_WARMUP --query-max-length $Q_LEN --passage-max-length $P_LEN $dry
}

rows=()
INIT=$MODEL
pretrained=
if [ "$PRETRAIN" = 1 ]; then
  stage_start "RLM pretraining of $MODEL on $CORPUS_NAME"
  accum=$(( PT_BATCH_TOTAL / (PT_BATCH * GPUS) )); accum=$(( accum > 0 ? accum : 1 ))
  if [ -n "$dry" ]; then accum=1; fi  # --dry-run caps the batch, not the accumulation
  launch pretrain --objective rlm --model "$MODEL" --generator "$GENERATOR" --corpus "$C" \
    --output "$OUT/models/pretrain" --overwrite --encoder-mask-rate $PT_ENC_MASK --decoder-mask-rate $PT_DEC_MASK \
    --decoder-layers $PT_DEC_LAYERS --max-steps $PT_STEPS --batch-size $PT_BATCH --grad-accum $accum \
    --lr $PT_LR --warmup-steps $PT_WARMUP --weight-decay $PT_WEIGHT_DECAY --max-length $PT_MAX_LEN $dry
  echo '{}' > "$OUT/pretrain.json"  # no retrieval metrics: the row carries the stage's time
  stage_end pretrain
  INIT=$OUT/models/pretrain
  pretrained=" + RLM pretraining"
  rows+=("RLM pretraining=$OUT/pretrain.json")
fi

stage_start "BM25 (Pyserini, k1=$BM25_K1 b=$BM25_B)"
simlm index --bm25 --corpus "$C" --output "$OUT/idx/bm25" --threads "$THREADS"
simlm search --index "$OUT/idx/bm25" --queries "$QD" --qrels "$RD" --k1 $BM25_K1 --b $BM25_B --threads "$THREADS" \
  --output "$OUT/runs/bm25.trec" $dry
if [ -z "$BM25_RUN" ]; then
  BM25_RUN=$OUT/runs/bm25.train.trec
  simlm search --index "$OUT/idx/bm25" --queries "$QT" --qrels "$RT" --k $MINE_DEPTH --k1 $BM25_K1 --b $BM25_B \
    --threads "$THREADS" --output "$BM25_RUN" $dry
fi
evaluate_split bm25 "$OUT/runs/bm25.trec"
stage_end bm25

stage_start "Retriever1: BM25 hard negatives"
mine_train "$BM25_RUN" "$OUT/train/bm25.jsonl"
train_retriever retriever1 "$OUT/train/bm25.jsonl"
dense_split_runs retriever1 "$OUT/models/retriever1" train
stage_end retriever1

stage_start "Retriever2: negatives mined with Retriever1"
mine_train "$OUT/runs/retriever1.train.trec" "$OUT/train/retriever1.jsonl"
train_retriever retriever2 "$OUT/train/retriever1.jsonl"
dense_split_runs retriever2 "$OUT/models/retriever2" train
stage_end retriever2

stage_start "re-ranker: $RERANKER_MODEL, listwise loss over Retriever2's top $MINE_DEPTH"
mine_train "$OUT/runs/retriever2.train.trec" "$OUT/train/retriever2.jsonl"
launch rerank train --model "$RERANKER_MODEL" --train-file "$OUT/train/retriever2.jsonl" --corpus "$C" \
  --output "$OUT/models/reranker" --overwrite --group-size $RR_GROUP --backprop-top $RR_TOP --max-length $RR_MAX_LEN \
  --lr $RR_LR --global-batch-size $RR_BATCH "${RR_LENGTH[@]}" --warmup-steps $RR_WARMUP $dry
simlm rerank run --model "$OUT/models/reranker" --run "$OUT/runs/retriever2.trec" --queries "$QD" --corpus "$C" \
  --depth $RR_DEPTH --output "$OUT/runs/reranker.trec" $dry
evaluate_split reranker "$OUT/runs/reranker.trec"
stage_end reranker

stage_start "Retriever_distill: KL from the re-ranker's scores + $KD_ALPHA x contrastive"
# Every mined negative gets a teacher score (the authors' --kd_gen_score_n_neg 1000): distill draws its $KD_NEG
# from all of them, anew each epoch. Under --dry-run the mined file already holds only a few queries.
simlm rerank score --model "$OUT/models/reranker" --train-file "$OUT/train/retriever2.jsonl" --corpus "$C" \
  --output "$OUT/train/teacher.jsonl"
launch distill --model "$INIT" --train-file "$OUT/train/teacher.jsonl" --corpus "$C" --output "$OUT/models/distill" \
  --overwrite --pooling cls --negatives $KD_NEG --alpha $KD_ALPHA --temperature $RET_TEMP --lr $KD_LR \
  --global-batch-size $KD_BATCH --epochs $KD_EPOCHS --warmup-steps $RET_WARMUP --query-max-length $Q_LEN \
  --passage-max-length $P_LEN $dry
dense_split_runs distill "$OUT/models/distill"
stage_end distill

rows+=("BM25=$OUT/bm25.json" "Retriever1=$OUT/retriever1.json" "Retriever2=$OUT/retriever2.json"
  "Re-ranker (top $RR_DEPTH of Retriever2)=$OUT/reranker.json" "Retriever_distill=$OUT/distill.json")
title="$TITLE: the SimLM pipeline from $(basename "$MODEL")$pretrained"
python recipes/report.py --output "$OUT" --title "$title" "${rows[@]}"
echo "recipe: $(( ($(date +%s) - began) / 60 )) min; results: $OUT/results.md $OUT/results.json $OUT/results.png;" \
  "per-stage metrics ($METRICS_NOTE): $OUT/{bm25,retriever1,retriever2,reranker,distill}.json;" \
  "models: $OUT/models; runs: $OUT/runs" >&2
