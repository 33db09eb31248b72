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
#   --nproc-per-node N`; batch sizes are the paper's global ones (queries per step over all GPUs, split over
#   the N processes: --global-batch-size), so any N trains as the paper did. 1 (default): plain `simlm`.
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
# DPR passages the same way: recipes/paper_chain.sh (PT_*) -------------------------------------------------------
# -- Retrievers 1 and 2 (scripts/dpr/train_nq_biencoder.sh) ---------------------------------------------------
RET_LR=1e-5            # --learning_rate 1e-5
RET_BATCH=32           # global: --per_device_train_batch_size 8 x 4 GPUs (the authors name no GPU count for
                       # NQ; 4 as for their MS MARCO retrievers)
RET_NEG=15             # --train_n_passages 16: 1 positive + 15 hard negatives
RET_TEMP=0.02          # --t 0.02
RET_LENGTH=(--max-steps 20000)  # --max_steps 20000
RET_WARMUP=1000        # --warmup_steps 1000
Q_LEN=32               # --q_max_len 32
P_LEN=192              # --p_max_len 192 (title + 100 words)
MINE_DEPTH=100         # misc/dpr/mine_hard_negatives.py --depth 100: negatives from the top 100
# -- Re-ranker (scripts/dpr/train_nq_reranker.sh, scripts/dpr/rerank_nq.sh) -------------------------------------
RR_GROUP=32            # --train_n_passages 32: 1 positive + 31 negatives from Retriever2's top 100
RR_LR=3e-5             # --learning_rate 3e-5
RR_BATCH=32            # global: --per_device_train_batch_size 4 x 8 GPUs (8 as for their MS MARCO re-ranker)
RR_TOP=16              # --rerank_forward_factor 2: gradients through the top 32/2 of each group
RR_LENGTH=(--max-steps 20000)   # --max_steps 20000
RR_WARMUP=1000         # --warmup_steps 1000
RR_MAX_LEN=224         # --rerank_max_length 224
RR_DEPTH=100           # --rerank_depth 100: re-rank Retriever2's top 100
# -- Retriever_distill (scripts/dpr/train_nq_kd.sh); the student starts from the pretrained encoder -------------
KD_NEG=15              # --train_n_passages 16: 1 positive + 15 of the teacher-scored negatives, drawn anew
                       # each epoch (every mined negative is scored: --kd_gen_score_n_neg 1000)
KD_ALPHA=1.0           # --kd_cont_loss_weight 1 (MS MARCO: 0.2)
KD_LR=3e-5             # --learning_rate 3e-5
KD_BATCH=32            # global: --per_device_train_batch_size 8 x 4 GPUs (4 as for their MS MARCO distillation)
KD_EPOCHS=15           # --num_train_epochs 15
# -- BM25 (Pyserini): Anserini's defaults ---------------------------------------------------------------------
BM25_K1=0.9
BM25_B=0.4

OUT=out/nq
SPLIT=test
SAMPLE_DATA=tests/data/nq_sample
metrics=(--metric recall@20 --metric recall@100 --metric mrr@10 --metric success@20 --metric success@100
  --metric ndcg@10 --metric recall@1000)
CARD_DATASET="nq (DPR)"
CORPUS_NAME="the DPR passages"
METRICS_NOTE="with R@20, success@k"
EXTRA_USAGE=" [--split NAME]"
data_files() {
  C=$DATA/psgs_w100.tsv
  QT=$DATA/queries.train.tsv
  QD=$DATA/queries.$SPLIT.tsv
  RT=$DATA/qrels.train.tsv
  RD=$DATA/qrels.$SPLIT.tsv
  EVAL_SPLIT=$SPLIT
  TITLE="NQ $SPLIT"
}
parse_extra() {
  case "$1" in
    --split) SPLIT=$2 ;;
    *) return 1 ;;
  esac
}
. recipes/paper_chain.sh
