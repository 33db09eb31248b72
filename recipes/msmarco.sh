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
#   --nproc-per-node N`; batch sizes are the paper's global ones (queries per step over all GPUs, split over
#   the N processes: --global-batch-size), so any N trains as the paper did. 1 (default): plain `simlm`.
# --dry-run: every command that has one gets --dry-run (a few steps / queries / passages), and --data defaults
#   to the tiny sample in tests/data/msmarco_sample: a smoke test of the whole recipe on a CPU.
#
# Writes DIR/results.{json,md,png} (stage x metrics, with each stage's time) and keeps every model, run and
# training file under DIR. Sources of the hyperparameters: the paper's appendix (Table 11, arXiv 2207.02578) and
# the authors' scripts in github.com/microsoft/unilm/tree/master/simlm/scripts (named per value below).
# Not exposed by simlm, so not reproduced: R-Drop in the re-ranker (rerank_use_rdrop), fp16 DeepSpeed training.
set -euo pipefail
cd "$(dirname "$0")/.."

# -- Pretraining: RLM, as scripts/train_rlm.sh: recipes/paper_chain.sh (PT_*) ----------------------------------
# -- Retrievers 1 and 2 (scripts/train_biencoder_marco.sh) ----------------------------------------------------
RET_LR=2e-5            # --learning_rate 2e-5
RET_BATCH=64           # global: --per_device_train_batch_size 16 x 4 GPUs (simlm/README.md: 4 V100)
RET_NEG=15             # --train_n_passages 16: 1 positive + 15 hard negatives
RET_TEMP=0.02          # --t 0.02
RET_LENGTH=(--epochs 3) # --num_train_epochs 3
RET_WARMUP=1000        # --warmup_steps 1000
Q_LEN=32               # --q_max_len 32
P_LEN=144              # --p_max_len 144
MINE_DEPTH=200         # hard negatives come from the top 200 of the previous retriever
# -- Re-ranker (scripts/train_reranker_marco.sh, scripts/rerank_marco.sh) ----------------------------------------
RR_GROUP=64            # --train_n_passages 64: 1 positive + 63 negatives from Retriever2's top 200
RR_LR=3e-5             # --learning_rate 3e-5
RR_BATCH=64            # global: --per_device_train_batch_size 8 x 8 GPUs (simlm/README.md: 8 V100)
RR_TOP=16              # --rerank_forward_factor 4: gradients through the top 64/4 of each group
RR_LENGTH=(--epochs 3)  # --num_train_epochs 3
RR_WARMUP=1000         # --warmup_steps 1000
RR_MAX_LEN=192         # --rerank_max_length 192
RR_DEPTH=200           # --rerank_depth 200: re-rank Retriever2's top 200
# -- Retriever_distill (scripts/train_kd_biencoder.sh); the student starts from the pretrained encoder ----------
KD_NEG=23              # --train_n_passages 24: 1 positive + 23 of the teacher-scored negatives, drawn anew
                       # each epoch (every mined negative is scored: --kd_gen_score_n_neg 1000)
KD_ALPHA=0.2           # --kd_cont_loss_weight 0.2: weight of the contrastive loss beside the KL term
KD_LR=3e-5             # --learning_rate 3e-5
KD_BATCH=64            # global: --per_device_train_batch_size 16 x 4 GPUs (simlm/README.md: 4 V100)
KD_EPOCHS=6            # --num_train_epochs 6
# -- BM25 (Pyserini): Anserini's defaults; its MS MARCO-tuned values are k1=0.82 b=0.68 ----------------------
BM25_K1=0.9
BM25_B=0.4


OUT=out/msmarco
SAMPLE_DATA=tests/data/msmarco_sample
metrics=(--metric mrr@10 --metric recall@50 --metric recall@1000 --metric ndcg@10 --metric recall@100)
CARD_DATASET=microsoft/ms_marco
EVAL_SPLIT=dev.small
TITLE="MS MARCO dev.small"
CORPUS_NAME="the collection"
METRICS_NOTE="with R@50"
EXTRA_USAGE=
data_files() {
  C=$DATA/collection.tsv
  QT=$DATA/queries.train.tsv
  QD=$DATA/queries.dev.small.tsv
  RT=$DATA/qrels.train.tsv
  RD=$DATA/qrels.dev.small.tsv
}
parse_extra() { return 1; }
. recipes/paper_chain.sh
