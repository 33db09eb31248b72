#!/usr/bin/env bash
# The SimLM paper's MS MARCO passage ranking pipeline (Figure 2), with the paper's hyperparameters, for users
# with the data and GPUs:
#   [RLM pretraining] -> BM25 -> Retriever1 (BM25 negatives) -> Retriever2 (Retriever1 negatives)
#   -> re-ranker (cross-encoder on Retriever2's top 200) -> Retriever_distill (KL from the re-ranker)
# each evaluated on dev.small with MS MARCO's metrics (MRR@10, R@50, R@1k; nDCG@10 and R@100 for the report).
#
#   bash recipes/msmarco.sh --data DIR [--output DIR] [--model M] [--pretrain] [--generator G]
#                           [--reranker-model M] [--bm25-run FILE] [--gpus N] [--dry-run]
#
# --data DIR holds the MS MARCO files under their usual names: collection.tsv (pid<TAB>text; pid<TAB>title<TAB>text
#   for the RocketQA titles the paper used), queries.train.tsv, queries.dev.small.tsv (qid<TAB>text),
#   qrels.train.tsv, qrels.dev.small.tsv (qid 0 pid rel).
# --model: the encoder the retrievers start from: bert-base-uncased (default: fine-tuning without SimLM
#   pretraining) or a SimLM pretrain output (e.g. a `simlm pretrain` directory or intfloat/simlm-base-msmarco).
# --pretrain: first pretrain --model with RLM on collection.tsv (Table 11 settings) and fine-tune from that.
# --generator: RLM's frozen generator (default google/electra-base-generator, as the paper).
# --reranker-model: the cross-encoder's initialisation (default google/electra-base-discriminator, as the paper).
# --bm25-run FILE: a BM25 run of the train queries (TREC or MS MARCO format) to mine Retriever1's negatives
#   from, instead of searching the 500k train queries here.
# --gpus N: the training commands and corpus encoding run under `python -m torch.distributed.run
#   --nproc-per-node N`; batch sizes are per GPU as in the paper's scripts. 1 (default): plain `simlm`.
# --dry-run: every command that has one gets --dry-run (a few steps / queries / passages), and --data defaults
#   to the tiny sample in tests/data/msmarco_sample: a smoke test of the whole recipe on a CPU.
#
# Writes DIR/results.{json,md,png} (stage x metrics, with each stage's time) and keeps every model, run and
# training file under DIR. Sources of the hyperparameters: the paper's appendix (Table 11, arXiv 2207.02578) and
# the authors' scripts in github.com/microsoft/unilm/tree/master/simlm/scripts (named per value below).
# Not exposed by simlm, so not reproduced: R-Drop in the re-ranker (rerank_use_rdrop), fp16 DeepSpeed training.
set -euo pipefail
cd "$(dirname "$0")/.."

# -- Pretraining: RLM (scripts/train_rlm.sh) --------------------------------------------------------------------
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
# -- Retrievers 1 and 2 (scripts/train_biencoder_marco.sh) ----------------------------------------------------
RET_LR=2e-5            # --learning_rate 2e-5
RET_BATCH=16           # --per_device_train_batch_size 16 (4 GPUs: 64 queries per step)
RET_NEG=15             # --train_n_passages 16: 1 positive + 15 hard negatives
RET_TEMP=0.02          # --t 0.02
RET_EPOCHS=3           # --num_train_epochs 3
RET_WARMUP=1000        # --warmup_steps 1000
Q_LEN=32               # --q_max_len 32
P_LEN=144              # --p_max_len 144
MINE_DEPTH=200         # hard negatives come from the top 200 of the previous retriever
# -- Re-ranker (scripts/train_reranker_marco.sh, scripts/rerank_marco.sh) ----------------------------------------
RR_GROUP=64            # --train_n_passages 64: 1 positive + 63 negatives from Retriever2's top 200
RR_LR=3e-5             # --learning_rate 3e-5
RR_BATCH=8             # --per_device_train_batch_size 8 (8 GPUs)
RR_EPOCHS=3            # --num_train_epochs 3
RR_WARMUP=1000         # --warmup_steps 1000
RR_MAX_LEN=192         # --rerank_max_length 192
RR_DEPTH=200           # --rerank_depth 200: re-rank Retriever2's top 200
# -- Retriever_distill (scripts/train_kd_biencoder.sh); the student starts from the pretrained encoder ----------
KD_NEG=23              # --train_n_passages 24: 1 positive + 23 negatives with teacher scores
KD_ALPHA=0.2           # --kd_cont_loss_weight 0.2: weight of the contrastive loss beside the KL term
KD_LR=3e-5             # --learning_rate 3e-5
KD_BATCH=16            # --per_device_train_batch_size 16
KD_EPOCHS=6            # --num_train_epochs 6
# -- BM25 (Pyserini): Anserini's defaults; its MS MARCO-tuned values are k1=0.82 b=0.68 ----------------------
BM25_K1=0.9
BM25_B=0.4

DATA=
OUT=out/msmarco
MODEL=bert-base-uncased
GENERATOR=google/electra-base-generator
RERANKER_MODEL=google/electra-base-discriminator
BM25_RUN=
GPUS=1
PRETRAIN=0
DRY=()
usage() {
  echo "usage: $0 --data DIR [--output DIR] [--model M] [--pretrain] [--generator G] [--reranker-model M]" \
    "[--bm25-run FILE] [--gpus N] [--dry-run]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --data) DATA=$2; shift 2 ;;
    --output) OUT=$2; shift 2 ;;
    --model) MODEL=$2; shift 2 ;;
    --pretrain) PRETRAIN=1; shift ;;
    --generator) GENERATOR=$2; shift 2 ;;
    --reranker-model) RERANKER_MODEL=$2; shift 2 ;;
    --bm25-run) BM25_RUN=$2; shift 2 ;;
    --gpus) GPUS=$2; shift 2 ;;
    --dry-run) DRY=(--dry-run); shift ;;
    *) usage ;;
  esac
done
if [ -z "$DATA" ] && [ ${#DRY[@]} -gt 0 ]; then DATA=tests/data/msmarco_sample; fi
[ -n "$DATA" ] || usage
[[ "$GPUS" =~ ^[1-9][0-9]*$ ]] || { echo "$0: --gpus: expected a positive integer, got '$GPUS'" >&2; exit 2; }
for f in collection.tsv queries.train.tsv queries.dev.small.tsv qrels.train.tsv qrels.dev.small.tsv; do
  [ -f "$DATA/$f" ] || { echo "$0: $DATA/$f: no such file" >&2; exit 2; }
done
bash scripts/setup.sh
. .venv/bin/activate
C=$DATA/collection.tsv
QT=$DATA/queries.train.tsv
QD=$DATA/queries.dev.small.tsv
RT=$DATA/qrels.train.tsv
RD=$DATA/qrels.dev.small.tsv
THREADS=$(nproc)
mkdir -p "$OUT"/{idx,runs,models,train,emb}
metrics=(--metric mrr@10 --metric recall@50 --metric recall@1000 --metric ndcg@10 --metric recall@100)
dry=${DRY[@]+"${DRY[@]}"}
began=$(date +%s)

stage_start() { t0=$(date +%s); echo "== $1" >&2; }
stage_end() { echo $(( $(date +%s) - t0 )) > "$OUT/$1.json.time"; }
launch() {  # launch SUBCOMMAND ARGS...: one process per GPU for the commands that shard their work
  if [ "$GPUS" -gt 1 ]; then
    python -m torch.distributed.run --standalone --nproc-per-node "$GPUS" -m simlm_cli "$@"
  else
    simlm "$@"
  fi
}
evaluate() {  # evaluate NAME RUN; a model this recipe trained (models/NAME) gets the figures in its card
  simlm evaluate --qrels "$RD" --run "$2" "${metrics[@]}" --json > "$OUT/$1.json"
  if [ -f "$OUT/models/$1/README.md" ]; then
    python -m simlm_cli.model_card "$OUT/models/$1" "$OUT/$1.json" --name "$1" --dataset "microsoft/ms_marco" --split "dev.small"
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
dense_runs() {  # dense_runs NAME MODEL [train]: index, search dev (evaluated) and, if asked, train (for mining)
  dense_index "$1" "$2"
  simlm search --index "$OUT/idx/$1" --queries "$QD" --qrels "$RD" --output "$OUT/runs/$1.trec" $dry
  if [ "${3:-}" = train ]; then
    simlm search --index "$OUT/idx/$1" --queries "$QT" --qrels "$RT" --k $MINE_DEPTH \
      --output "$OUT/runs/$1.train.trec" $dry
  fi
  evaluate "$1" "$OUT/runs/$1.trec"
}
mine() {  # mine RUN OUTPUT: positives from the train qrels, hard negatives from the run's top MINE_DEPTH
  simlm mine --run "$1" --queries "$QT" --qrels "$RT" --depth $MINE_DEPTH --output "$2" $dry
}
train_retriever() {  # train_retriever NAME TRAIN_FILE
  launch train --model "$INIT" --train-file "$2" --corpus "$C" --output "$OUT/models/$1" --pooling cls \
    --negatives $RET_NEG --temperature $RET_TEMP --lr $RET_LR --batch-size $RET_BATCH --epochs $RET_EPOCHS \
    --warmup-steps $RET_WARMUP --query-max-length $Q_LEN --passage-max-length $P_LEN $dry
}

rows=()
INIT=$MODEL
pretrained=
if [ "$PRETRAIN" = 1 ]; then
  stage_start "RLM pretraining of $MODEL on the collection"
  accum=$(( PT_BATCH_TOTAL / (PT_BATCH * GPUS) )); accum=$(( accum > 0 ? accum : 1 ))
  if [ -n "$dry" ]; then accum=1; fi  # --dry-run caps the batch, not the accumulation
  launch pretrain --objective rlm --model "$MODEL" --generator "$GENERATOR" --corpus "$C" \
    --output "$OUT/models/pretrain" --encoder-mask-rate $PT_ENC_MASK --decoder-mask-rate $PT_DEC_MASK \
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
evaluate bm25 "$OUT/runs/bm25.trec"
stage_end bm25

stage_start "Retriever1: BM25 hard negatives"
mine "$BM25_RUN" "$OUT/train/bm25.jsonl"
train_retriever retriever1 "$OUT/train/bm25.jsonl"
dense_runs retriever1 "$OUT/models/retriever1" train
stage_end retriever1

stage_start "Retriever2: negatives mined with Retriever1"
mine "$OUT/runs/retriever1.train.trec" "$OUT/train/retriever1.jsonl"
train_retriever retriever2 "$OUT/train/retriever1.jsonl"
dense_runs retriever2 "$OUT/models/retriever2" train
stage_end retriever2

stage_start "re-ranker: $RERANKER_MODEL, listwise loss over Retriever2's top $MINE_DEPTH"
mine "$OUT/runs/retriever2.train.trec" "$OUT/train/retriever2.jsonl"
launch rerank train --model "$RERANKER_MODEL" --train-file "$OUT/train/retriever2.jsonl" --corpus "$C" \
  --output "$OUT/models/reranker" --group-size $RR_GROUP --max-length $RR_MAX_LEN --lr $RR_LR \
  --batch-size $RR_BATCH --epochs $RR_EPOCHS --warmup-steps $RR_WARMUP $dry
simlm rerank run --model "$OUT/models/reranker" --run "$OUT/runs/retriever2.trec" --queries "$QD" --corpus "$C" \
  --depth $RR_DEPTH --output "$OUT/runs/reranker.trec" $dry
evaluate reranker "$OUT/runs/reranker.trec"
stage_end reranker

stage_start "Retriever_distill: KL from the re-ranker's scores + $KD_ALPHA x contrastive"
# `rerank score` has no --dry-run; under --dry-run the mined file it reads already holds only a few queries.
simlm rerank score --model "$OUT/models/reranker" --train-file "$OUT/train/retriever2.jsonl" --corpus "$C" \
  --max-negatives $KD_NEG --output "$OUT/train/teacher.jsonl"
launch distill --model "$INIT" --train-file "$OUT/train/teacher.jsonl" --corpus "$C" --output "$OUT/models/distill" \
  --pooling cls --negatives $KD_NEG --alpha $KD_ALPHA --temperature $RET_TEMP --lr $KD_LR --batch-size $KD_BATCH \
  --epochs $KD_EPOCHS --warmup-steps $RET_WARMUP --query-max-length $Q_LEN --passage-max-length $P_LEN $dry
dense_runs distill "$OUT/models/distill"
stage_end distill

rows+=("BM25=$OUT/bm25.json" "Retriever1=$OUT/retriever1.json" "Retriever2=$OUT/retriever2.json"
  "Re-ranker (top $RR_DEPTH of Retriever2)=$OUT/reranker.json" "Retriever_distill=$OUT/distill.json")
title="MS MARCO dev.small: the SimLM pipeline from $(basename "$MODEL")$pretrained"
python recipes/report.py --output "$OUT" --title "$title" "${rows[@]}"
echo "recipe: $(( ($(date +%s) - began) / 60 )) min; results: $OUT/results.md $OUT/results.json $OUT/results.png;" \
  "per-stage metrics (with R@50): $OUT/{bm25,retriever1,retriever2,reranker,distill}.json;" \
  "models: $OUT/models; runs: $OUT/runs" >&2
