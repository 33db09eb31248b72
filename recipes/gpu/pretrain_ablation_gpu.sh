#!/usr/bin/env bash
# recipes/pretrain_ablation.sh --preset gpu in ONE call of the GPU machine (one H200, torch 2.11 + CUDA 13,
# transformers, sentence-transformers, typer, rich, matplotlib; no faiss, pyserini, Java, pytrec_eval, MiniLM
# package, or registry). Not yet run: no GPU was lent when it was written (issue 24, item 3).
#
# What cannot travel or run there, and where it goes instead:
#   - the BM25 negatives (Java): computed on the CPU first and carried (.carry/bm25.jsonl, checked to be fit queries);
#   - faiss (19 MB wheel): the project (9.7 MB) + the fp16 MiniLM (45 MB) leave no room under 64 MiB, so the runs
#     are searched there with simlm's torch search in one Python process (recipes/gpu/dense_runs.py, top 100);
#   - pytrec_eval: the runs come back (gzipped, under 16 MiB a file) and are evaluated, compared and tabulated on
#     the CPU (`pretrain_ablation.sh --from-runs`).
#
# 1. On the CPU, in the repository root of the checkout the device tool sends (once):
#      bash recipes/pretrain_ablation.sh --preset gpu --output out/abl-prep --stop-after negatives
#      echo /.carry/ >> .git/info/exclude && mkdir -p .carry && cp out/abl-prep/train/bm25.jsonl .carry/
#      bash recipes/gpu/pretrain_ablation_gpu.sh fp16 .carry/minilm-fp16   # the embedded MiniLM saved in fp16
#      du -sh .carry  # MiniLM fp16 46.2 MB (measured) + negatives ~5.4 MB (607 fit queries x 200, estimated from 8):
#                     # with the project's 9.7 MB, ~61 MB of the 67.1 MB (64 MiB) a call carries
# 2. The device call (timeout_s 600; carry [".carry"]):
#      bash recipes/gpu/pretrain_ablation_gpu.sh run
#    It installs the project (pip -e, no deps), runs a 20-step timing probe (enc-dec-mlm at the preset's batch and
#    length: a 30-step run less a 10-step one, so the ~18 s start-up cancels), projects the whole run from it and stops there, printing the projection, when it would not end
#    within BUDGET_S (default 420 s, leaving a rerun's time in the session's 15 minutes); else it runs the
#    ablation's models (--stop-after models, --parallel 4 rows on the GPU), then dense_runs.py over every model,
#    and leaves in $OUT: runs-test.tar.gz, runs-dev.tar.gz (top 100 per query), logs.tar.gz (settings, commands,
#    stage times, every train_log.jsonl, the probe), probe.txt.
# 3. Back on the CPU, with the files the call returned in DIR:
#      mkdir -p out/abl && for f in DIR/*.tar.gz; do tar -xzf "$f" -C out/abl; done
#      bash recipes/pretrain_ablation.sh --preset gpu --output out/abl --from-runs
#    which evaluates every run (test and dev), compares each row with none and mlm per seed, and writes
#    out/abl/results.{md,json} and losses.png.
# Overrides for a rerun after the probe: ABLATION_FLAGS="--steps 200" (appended to --preset gpu), BUDGET_S.
set -euo pipefail
cd "$(dirname "$0")/../.."
CARRY=.carry
ABL=out/abl
BUDGET_S=${BUDGET_S:-420}
ABLATION_FLAGS=${ABLATION_FLAGS:-}

make_fp16() {  # make_fp16 DIR: the embedded all-MiniLM-L6-v2 with its weights stored in fp16 (45 MB; simlm loads
  # any checkpoint as float32 and trains with fp32 master weights, so only the transfer shrinks)
  python - "$1" <<'EOF'
import shutil, sys
from pathlib import Path
from transformers import AutoModel
from simlm_cli.models.settings import embedded_model_dir
src, dst = embedded_model_dir(), Path(sys.argv[1])
shutil.copytree(src, dst, dirs_exist_ok=True)
AutoModel.from_pretrained(src).half().save_pretrained(dst)
print(f"{dst}: {sum(p.stat().st_size for p in dst.rglob('*') if p.is_file()) / 1e6:.1f} MB", file=sys.stderr)
EOF
}

probe() {  # probe: seconds per optimizer step of the preset's batch, from 20 steps' wall time less a 10-step run's
  local t0 t1 t2
  t0=$(date +%s.%N)
  simlm pretrain --objective enc-dec-mlm --model "$CARRY/minilm-fp16" --corpus simlm_cli/data/scifact/corpus.jsonl \
    --output /tmp/probe10 --overwrite --max-steps 10 --batch-size 256 --max-length 144 --precision bf16 --log-steps 5 >&2
  t1=$(date +%s.%N)
  simlm pretrain --objective enc-dec-mlm --model "$CARRY/minilm-fp16" --corpus simlm_cli/data/scifact/corpus.jsonl \
    --output /tmp/probe20 --overwrite --max-steps 30 --batch-size 256 --max-length 144 --precision bf16 --log-steps 5 >&2
  t2=$(date +%s.%N)
  # the difference of two runs cancels the start-up (~18 s: imports, CUDA init, model load)
  awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "%.4f %.1f\n", ((c - b) - (b - a)) / 20, (b - a) }'
}

run() {
  python3 -m pip install -q --no-deps --no-build-isolation -e . >&2
  export SIMLM_NO_SETUP=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
  local began per_step startup steps projected
  began=$(date +%s)
  read -r per_step startup < <(probe)
  # 7 rows x 2 seeds: 6 objectives x 2 x 400 steps (rlm/rtd also run a frozen generator: x1.5), head 200 steps (the
  # encoder frozen: x0.5), generator 400; 4 rows at a time share the GPU (taken as a 2x speed-up, not 4x);
  # fine-tuning (3 epochs of 607 queries x 4 passages at batch 16: ~115 steps), 14 of them, and one
  # dense_runs.py process: start-ups dominate
  steps=$(( (4 * 2 * 400 + 2 * 2 * 600) / 2 + 100 + 400 ))
  projected=$(awk -v s="$steps" -v p="$per_step" -v u="$startup" 'BEGIN { printf "%d", s * p + 14 * 2 * u / 4 + 120 }')
  echo "probe: $per_step s/step at 256 x 144 tokens, start-up ${startup} s; projected $projected s for $steps" \
    "step-equivalents (budget $BUDGET_S s)" | tee "$OUT/probe.txt" >&2
  if [ "$projected" -gt "$BUDGET_S" ]; then
    echo "projected over budget: rerun with ABLATION_FLAGS=\"--steps N\" (or fewer --rows)" >&2
    return 3
  fi
  # shellcheck disable=SC2086
  bash recipes/pretrain_ablation.sh --preset gpu --init "$CARRY/minilm-fp16" --negatives-file "$CARRY/bm25.jsonl" \
    --output "$ABL" --stop-after models $ABLATION_FLAGS
  local pairs=("zeroshot-none=$ABL/models/head") dir name
  for dir in "$ABL"/models/pretrain-*; do pairs+=("zeroshot-${dir##*/pretrain-}=$dir"); done
  for dir in "$ABL"/models/ft-*; do name=${dir##*/ft-}; pairs+=("$name=$dir"); done
  python recipes/gpu/dense_runs.py --corpus simlm_cli/data/scifact/corpus.jsonl \
    --queries simlm_cli/data/scifact/queries.jsonl --split test=simlm_cli/data/scifact/qrels/test.tsv \
    --split "dev=$ABL/qrels/dev.tsv" --output "$ABL/runs" --k 100 "${pairs[@]}"
  tar -czf "$OUT/runs-test.tar.gz" -C "$ABL" $(cd "$ABL" && ls runs/*.trec | grep -v '\.dev\.trec$')
  tar -czf "$OUT/runs-dev.tar.gz" -C "$ABL" $(cd "$ABL" && ls runs/*.dev.trec)
  tar -czf "$OUT/logs.tar.gz" -C "$ABL" settings.json commands.log qrels $(cd "$ABL" && ls ./*.time) \
    $(cd "$ABL" && ls models/*/train_log.jsonl)
  cp "$OUT/probe.txt" "$ABL/" 2>/dev/null || true
  ls -l "$OUT" >&2
  echo "device run: $(( $(date +%s) - began )) s" >&2
}

case "${1:-}" in
  fp16) make_fp16 "${2:?usage: $0 fp16 DIR}" ;;
  run) : "${OUT:?run: OUT (the folder the device tool returns) is unset}"; run ;;
  *) echo "usage: $0 fp16 DIR | run" >&2; exit 2 ;;
esac
