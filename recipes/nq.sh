#!/usr/bin/env bash
# The SimLM paper's Natural Questions pipeline (Figure 2) on DPR's Wikipedia passages, with the paper's
# hyperparameters, for users with the data and GPUs:
#   [RLM pretraining] -> BM25 -> Retriever1 (BM25 negatives) -> Retriever2 (Retriever1 negatives)
#   -> re-ranker (cross-encoder on Retriever2's top 100) -> Retriever_distill (KL from the re-ranker)
# each evaluated on the test split: R@20, R@100, MRR@10, and success@20/@100 (a judged passage in the top k:
# DPR's "top-k accuracy" when the qrels hold every answer-bearing passage); nDCG@10 and R@1k for the report.
#
#   bash recipes/nq.sh --data DIR [--output DIR] [--split NAME] [--model M] [--pretrain] [--generator G]
#                      [--reranker-model M] [--bm25-run FILE] [--gpus N] [--dry-run]
#
# --data DIR holds: psgs_w100.tsv (DPR's id<TAB>text<TAB>title with its header line; simlm reads it as is),
#   queries.train.tsv and queries.SPLIT.tsv (qid<TAB>question), qrels.train.tsv and qrels.SPLIT.tsv (qid 0 pid rel;
#   pids are psgs_w100.tsv's ids). --split: the evaluated split (default test).
#   From DPR's downloads (facebookresearch/DPR, dpr/data/download_data.py: data.wikipedia_split.psgs_w100,
#   data.retriever.nq-train, data.retriever.nq-dev), the gold passages of biencoder-nq-{train,dev}.json become
#   queries and qrels with:
#     python - <<'PY'
#     import json
#     for split in ("train", "dev"):
#         examples = json.load(open(f"biencoder-nq-{split}.json", encoding="utf-8"))
#         with open(f"queries.{split}.tsv", "w") as q, open(f"qrels.{split}.tsv", "w") as r:
#             for i, ex in enumerate(examples):
#                 q.write(f"{split}-{i}\t{' '.join(ex['question'].split())}\n")
#                 r.writelines(f"{split}-{i}\t0\t{ctx['passage_id']}\t1\n" for ctx in ex["positive_ctxs"])
#     PY
#   DPR's nq-test.csv has questions and answers but no passage ids: the paper's test metrics count a retrieved
#   passage as a hit when it contains an answer. Either evaluate on dev (--split dev with the files above), or
#   score this recipe's TREC runs by answer matching with Pyserini (installed): python -m
#   pyserini.eval.convert_trec_run_to_dpr_retrieval_run --topics dpr-nq-test --index wikipedia-dpr --input RUN
#   --output RUN.json, then python -m pyserini.eval.evaluate_dpr_retrieval --retrieval RUN.json --topk 20 100
#   (both fetch Pyserini's prebuilt topics and index).
# --model: the encoder the retrievers start from: bert-base-uncased (default) or a SimLM pretrain output
#   (e.g. a `simlm pretrain` directory, or intfloat/simlm-base-wiki100w as the paper's scripts use).
# --pretrain: first pretrain --model with RLM on psgs_w100.tsv and fine-tune from that.
# --generator: RLM's frozen generator (default google/electra-base-generator, as the paper).
# --reranker-model: the cross-encoder's initialisation (default google/electra-base-discriminator, as the paper).
# --bm25-run FILE: a BM25 run of the train queries (TREC or MS MARCO format) to mine Retriever1's negatives
#   from, instead of searching them here.
# --gpus N: the training commands and corpus encoding run under `python -m torch.distributed.run
#   --nproc-per-node N`; batch sizes are per GPU as in the paper's scripts. 1 (default): plain `simlm`.
# --dry-run: every command that has one gets --dry-run (a few steps / queries / passages), and --data defaults
#   to the tiny sample in tests/data/nq_sample: a smoke test of the whole recipe on a CPU.
#
# Writes DIR/results.{json,md,png} (stage x metrics, with each stage's time) and keeps every model, run and
# training file under DIR. Sources of the hyperparameters: the paper's appendix (Table 13, arXiv 2207.02578) and
# the authors' scripts in github.com/microsoft/unilm/tree/master/simlm/scripts/dpr (named per value below).
# Not exposed by simlm, so not reproduced: the temperature warmup (t_warmup), always training on the first
# (gold) positive (use_first_positive), R-Drop in the re-ranker, training on DPR's BM25 negatives and the mined
# ones together, fp16 DeepSpeed training.
set -euo pipefail
cd "$(dirname "$0")/.."

# -- Pretraining: RLM. Only MS MARCO's script is released (scripts/train_rlm.sh); the paper pretrains on the
# DPR passages the same way ----------------------------------------------------------------------------------
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
# -- Retrievers 1 and 2 (scripts/dpr/train_nq_biencoder.sh) ---------------------------------------------------
RET_LR=1e-5            # --learning_rate 1e-5
RET_BATCH=8            # --per_device_train_batch_size 8
RET_NEG=15             # --train_n_passages 16: 1 positive + 15 hard negatives
RET_TEMP=0.02          # --t 0.02
RET_STEPS=20000        # --max_steps 20000
RET_WARMUP=1000        # --warmup_steps 1000
Q_LEN=32               # --q_max_len 32
P_LEN=192              # --p_max_len 192 (title + 100 words)
MINE_DEPTH=100         # misc/dpr/mine_hard_negatives.py --depth 100: negatives from the top 100
# -- Re-ranker (scripts/dpr/train_nq_reranker.sh, scripts/dpr/rerank_nq.sh) -------------------------------------
RR_GROUP=32            # --train_n_passages 32: 1 positive + 31 negatives from Retriever2's top 100
RR_LR=3e-5             # --learning_rate 3e-5
RR_BATCH=4             # --per_device_train_batch_size 4
RR_STEPS=20000         # --max_steps 20000
RR_WARMUP=1000         # --warmup_steps 1000
RR_MAX_LEN=224         # --rerank_max_length 224
RR_DEPTH=100           # --rerank_depth 100: re-rank Retriever2's top 100
# -- Retriever_distill (scripts/dpr/train_nq_kd.sh); the student starts from the pretrained encoder -------------
KD_NEG=15              # --train_n_passages 16: 1 positive + 15 negatives with teacher scores
KD_ALPHA=1.0           # --kd_cont_loss_weight 1 (MS MARCO: 0.2)
KD_LR=3e-5             # --learning_rate 3e-5
KD_BATCH=8             # --per_device_train_batch_size 8
KD_EPOCHS=15           # --num_train_epochs 15
# -- BM25 (Pyserini): Anserini's defaults ---------------------------------------------------------------------
BM25_K1=0.9
BM25_B=0.4

DATA=
OUT=out/nq
SPLIT=test
MODEL=bert-base-uncased
GENERATOR=google/electra-base-generator
RERANKER_MODEL=google/electra-base-discriminator
BM25_RUN=
GPUS=1
PRETRAIN=0
DRY=()
usage() {
  echo "usage: $0 --data DIR [--output DIR] [--split NAME] [--model M] [--pretrain] [--generator G]" \
    "[--reranker-model M] [--bm25-run FILE] [--gpus N] [--dry-run]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --data) DATA=$2; shift 2 ;;
    --output) OUT=$2; shift 2 ;;
    --split) SPLIT=$2; shift 2 ;;
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
if [ -z "$DATA" ] && [ ${#DRY[@]} -gt 0 ]; then DATA=tests/data/nq_sample; fi
[ -n "$DATA" ] || usage
[[ "$GPUS" =~ ^[1-9][0-9]*$ ]] || { echo "$0: --gpus: expected a positive integer, got '$GPUS'" >&2; exit 2; }
for f in psgs_w100.tsv queries.train.tsv "queries.$SPLIT.tsv" qrels.train.tsv "qrels.$SPLIT.tsv"; do
  [ -f "$DATA/$f" ] || { echo "$0: $DATA/$f: no such file" >&2; exit 2; }
done
bash scripts/setup.sh
. .venv/bin/activate
C=$DATA/psgs_w100.tsv
QT=$DATA/queries.train.tsv
QD=$DATA/queries.$SPLIT.tsv
RT=$DATA/qrels.train.tsv
RD=$DATA/qrels.$SPLIT.tsv
THREADS=$(nproc)
mkdir -p "$OUT"/{idx,runs,models,train,emb}
metrics=(--metric recall@20 --metric recall@100 --metric mrr@10 --metric success@20 --metric success@100
  --metric ndcg@10 --metric recall@1000)
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
    python -m simlm_cli.model_card "$OUT/models/$1" "$OUT/$1.json" --name "$1" --dataset "nq (DPR)" --split "$SPLIT"
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
dense_runs() {  # dense_runs NAME MODEL [train]: index, search SPLIT (evaluated) and, if asked, train (mining)
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
    --negatives $RET_NEG --temperature $RET_TEMP --lr $RET_LR --batch-size $RET_BATCH --max-steps $RET_STEPS \
    --warmup-steps $RET_WARMUP --query-max-length $Q_LEN --passage-max-length $P_LEN $dry
}

rows=()
INIT=$MODEL
pretrained=
if [ "$PRETRAIN" = 1 ]; then
  stage_start "RLM pretraining of $MODEL on the DPR passages"
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
  --batch-size $RR_BATCH --max-steps $RR_STEPS --warmup-steps $RR_WARMUP $dry
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
title="NQ $SPLIT: the SimLM pipeline from $(basename "$MODEL")$pretrained"
python recipes/report.py --output "$OUT" --title "$title" "${rows[@]}"
echo "recipe: $(( ($(date +%s) - began) / 60 )) min; results: $OUT/results.md $OUT/results.json $OUT/results.png;" \
  "per-stage metrics (with R@20, success@k): $OUT/{bm25,retriever1,retriever2,reranker,distill}.json;" \
  "models: $OUT/models; runs: $OUT/runs" >&2
