"""benchmarks/encode_speed.py (CPU flags, the int8 config it picks, its rows without the bench venv) and the
CPU-side half of benchmarks/gpu_check.py (its command lines run here on the CPU, and are refused on CUDA)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import run_cli

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def encode_speed() -> ModuleType:
    return _load("encode_speed")


@pytest.fixture(scope="module")
def gpu_check() -> ModuleType:
    return _load("gpu_check")


CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx2 avx512f avx512_vnni avx512_bf16 amx_tile amx_bf16 amx_int8
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx2
"""


def test_cpuinfo_is_read_from_the_first_processor(encode_speed: ModuleType) -> None:
    cpu = encode_speed.parse_cpuinfo(CPUINFO)
    assert cpu.model == "Intel(R) Xeon(R) Platinum 8480+"
    assert {"avx512_vnni", "amx_bf16", "amx_int8"} <= cpu.flags and "fpu" in cpu.flags
    line = cpu.describe()
    assert line.startswith("CPU: Intel(R) Xeon(R) Platinum 8480+; flags: avx2 avx512f avx512_vnni")
    assert "(absent: avx_vnni)" in line and "fpu" not in line  # only the flags that matter here


def test_the_int8_config_follows_the_cpu_flags(encode_speed: ModuleType) -> None:
    parse, choose = encode_speed.parse_cpuinfo, encode_speed.quantization_config
    assert choose(parse(CPUINFO), "x86_64") == "avx512_vnni"
    assert choose(parse("model name : AMD EPYC 7B12\nflags : sse2 avx2 avx512f\n"), "x86_64") == "avx2"
    assert choose(parse("model name : old\nflags : sse2 avx2\n"), "x86_64") == "avx2"
    assert choose(parse("Features : fp asimd asimddp\n"), "aarch64") == "arm64"


def test_the_auto_and_int8_ratios_skip_st_backends_that_change_the_vectors(encode_speed: ModuleType) -> None:
    def row(name: str, rate: float, cosine: float) -> dict:
        return {"row": name, "passages_per_s": rate, "passages_per_cpu_s": rate / 2, "mean_cosine": cosine}

    table = [row("st-torch-fp32", 10, 1.0), row("st-onnx-int8", 40, 0.985), row("st-openvino", 20, 0.99998),
             row("simlm-torch-fp32", 12, 1.0), row("simlm-auto", 25, 0.99997), row("simlm-int8", 30, 0.995)]  # fmt: skip
    found = encode_speed.ratios(table)
    assert found["fastest_st"] == "st-openvino"  # st-onnx-int8 is faster but below cosine 0.99
    assert found["simlm_torch_fp32_over_st_torch_fp32"] == pytest.approx(1.2)
    assert found["simlm_auto_over_fastest_st"] == pytest.approx(1.25)
    assert found["simlm_int8_over_fastest_st"] == pytest.approx(1.5)
    assert encode_speed.ratios(table, "passages_per_cpu_s")["simlm_int8_over_fastest_st"] == pytest.approx(1.5)
    assert "simlm_int8_over_fastest_st" not in encode_speed.ratios([r for r in table if r["row"] != "simlm-int8"])


def test_encode_speed_without_the_bench_venv(tiny_st_dir: Path, tiny_data, tmp_path: Path) -> None:
    """The simlm rows and ST's PyTorch row run from simlm's own venv; the missing bench venv is named, with the
    way to make it."""
    from simlm_cli.device import cpu_has_fast_bf16

    missing = tmp_path / "no-venv" / "bin" / "python"
    out = tmp_path / "speed.json"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "encode_speed.py"), "--model", str(tiny_st_dir), "--corpus",
         str(tiny_data.corpus), "--passages", "8", "--repeats", "1", "--threads", "1", "--st-python", str(missing),
         "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("CPU: ") and "flags: " in lines[0]
    assert f"no bench venv at {missing}" in done.stdout and "bash benchmarks/setup_bench_venv.sh" in done.stdout
    report = json.loads(out.read_text())
    # the suite's SIMLM_BACKEND=torch and SIMLM_PRECISION=fp32 make simlm-auto torch fp32, so OpenVINO fp32 has a row
    expected = {"st-torch-fp32", "simlm-auto", "simlm-torch-fp32", "simlm-openvino-fp32", "simlm-int8"}
    expected |= {"simlm-torch-bf16"} if cpu_has_fast_bf16() else set()
    assert {r["row"] for r in report["rows"]} == expected
    for name in expected:
        assert any(line.startswith(f"| {name} |") for line in lines), name
    assert "note: simlm-auto is torch fp32 on this CPU" in done.stdout
    rows = {r["row"]: r for r in report["rows"]}
    for name in ("simlm-torch-fp32", "simlm-openvino-fp32"):  # the same model, pooled the same way
        assert rows[name]["mean_cosine"] > 0.9999 and rows[name]["passages_per_s"] > 0
    for clock in ("wall", "cpu"):
        assert f"ratio ({clock}) simlm-torch-fp32 / st-torch-fp32: " in done.stdout
        assert f"ratio ({clock}) simlm-auto / st-torch-fp32 (fastest ST row" in done.stdout
    assert report["ratios"]["wall"]["fastest_st"] == "st-torch-fp32"


@pytest.mark.slow
def test_encode_speed_with_the_bench_venv(tiny_st_legacy_dir: Path, tiny_data, tmp_path: Path) -> None:
    """Every ST backend row from the bench venv (skipped where it has not been made). The model is in the layout
    the hub's models carry: the bench venv's sentence-transformers is 5.x (optimum pins transformers < 5) and
    cannot read what 6.x saves (`sentence_transformers.base.modules...`)."""
    python = BENCHMARKS.parent / ".venv-bench" / "bin" / "python"
    if not python.exists():
        pytest.skip("no .venv-bench (bash benchmarks/setup_bench_venv.sh)")
    out = tmp_path / "speed.json"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "encode_speed.py"), "--model", str(tiny_st_legacy_dir), "--corpus",
         str(tiny_data.corpus), "--passages", "12", "--repeats", "1", "--threads", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {r["row"]: r for r in json.loads(out.read_text())["rows"]}
    assert {"st-onnx-fp32", "st-openvino", "st-onnx-int8"} <= set(rows), done.stdout
    assert rows["st-onnx-fp32"]["mean_cosine"] > 0.9999 and rows["st-openvino"]["mean_cosine"] > 0.999


# ----------------------------------------------------------------------------------------------------------------
# gpu_check: what can be checked without a GPU
# ----------------------------------------------------------------------------------------------------------------
def test_gpu_check_never_tries_int8_on_cuda(gpu_check: ModuleType) -> None:
    assert "int8" not in gpu_check.ENCODE_PRECISIONS and "int8" not in gpu_check.TRAIN_PRECISIONS
    assert set(gpu_check.TRAIN_PRECISIONS) == {"bf16", "fp16"}  # fp16: the loss-scaled path
    assert {"bf16", "fp16"} <= set(gpu_check.ENCODE_PRECISIONS)


def test_gpu_check_command_lines_run_on_the_cpu_and_are_refused_on_cuda(
    gpu_check: ModuleType, tiny_bert_dir: Path, tiny_data, tmp_path: Path
) -> None:
    """The very argument lists the GPU check runs: one step each on the CPU (so a renamed flag or a training
    file `train` no longer reads is caught here), and `--device cuda` refused on one line without a GPU."""
    import torch

    train_file = tmp_path / "train.jsonl"
    gpu_check.training_file(train_file, tiny_data.dir, "test")
    corpus, model = str(tiny_data.corpus), str(tiny_bert_dir)
    on_cpu = [
        gpu_check.train_args(model, train_file, corpus, tmp_path / "t", "bf16", 1, device="cpu", batch_size=2),
        gpu_check.pretrain_args(model, corpus, tmp_path / "p", "bf16", 1, device="cpu", batch_size=4),
    ]
    for args in on_cpu:
        done = run_cli(args)
        assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "t" / "train_log.jsonl").is_file() and (tmp_path / "p" / "train_log.jsonl").is_file()
    assert gpu_check.loss_span(tmp_path / "t").startswith("loss ")
    if torch.cuda.is_available():
        return
    on_cuda = [
        gpu_check.train_args(model, train_file, corpus, tmp_path / "tc", "fp16", 1, batch_size=2),
        gpu_check.pretrain_args(model, corpus, tmp_path / "pc", "fp16", 1, batch_size=4),
    ]
    for args in on_cuda:
        done = run_cli(args)
        assert done.returncode != 0
        assert done.stderr.strip().splitlines()[-1].endswith("--device cuda:0: no CUDA device is visible to PyTorch")
        assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_gpu_check_quick_runs_every_part_on_the_cpu(tiny_st_dir: Path, tmp_path: Path) -> None:
    """`--quick --device cpu`: every row of the GPU check (the ceiling, simlm's encoder, sentence-transformers,
    the CLI, torch vs faiss search, train/pretrain) runs end to end, so the H200 call does not fail on a typo."""
    out = tmp_path / "rows.json"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu_check.py"), "--quick", "--device", "cpu", "--model", str(tiny_st_dir),
         "--output", str(out)],
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = json.loads(out.read_text())
    names = [r["what"] for r in rows]
    assert not [r for r in rows if r["what"] == "error"], rows
    for start in ("forward-only ceiling fp32, batch 8", "forward-only ceiling fp32, batch 32",
                  "encode simlm fp32, default batches (16 texts), prefetch 1",
                  "encode simlm fp32, default batches (16 texts), prefetch 0", "encode simlm fp32, batch 32",
                  "encode sentence-transformers fp32", "CLI simlm encode --help", "CLI simlm encode 10 passages",
                  "CLI simlm encode whole corpus", "search torch cpu, 2,048 x 32", "search faiss-cpu",
                  "train fp32", "pretrain rlm fp32"):  # fmt: skip
        assert any(name.startswith(start) for name in names), (start, names)
    by_name = {r["what"]: r for r in rows}
    encodes = [r for name, r in by_name.items() if name.startswith("encode simlm")]
    assert all(r["cosine"] > 0.9999 and r["passages_per_s"] > 0 for r in encodes)  # prefetch/batching: same vectors
    faiss_row = next(r for name, r in by_name.items() if name.startswith("search faiss-cpu"))
    assert "the same ids for 1109/1109 queries" in faiss_row["note"]
    assert any("tokens/s" in r.get("note", "") for name, r in by_name.items() if name.startswith("train"))
    assert "| forward-only ceiling fp32, batch 8" in done.stdout


def test_encode_pipeline_compares_prefetch_and_batching_on_the_same_vectors(
    tiny_st_dir: Path, tiny_data, tmp_path: Path
) -> None:
    out = tmp_path / "pipeline.json"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "encode_pipeline.py"), "--model", str(tiny_st_dir), "--corpus",
         str(tiny_data.corpus), "--passages", "10", "--chunk-size", "3", "--repeats", "1", "--threads", "1",
         "--json", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("CPU: ")
    report = json.loads(out.read_text())
    rows = {r["row"]: r for r in report["rows"]}
    assert set(rows) == {"prefetch 0, batch 16", "prefetch 1, batch 16", "prefetch 1, 4096 tokens"}
    assert rows["prefetch 0, batch 16"]["ratio"] == 1.0
    assert rows["prefetch 1, batch 16"]["max_abs_diff"] == 0.0  # the same batches on another thread: bit for bit
    assert rows["prefetch 1, 4096 tokens"]["max_abs_diff"] < 1e-5  # other batches: fp32 rounding only
    assert all(r["passages_per_s"] > 0 and r["passages_per_cpu_s"] > 0 for r in rows.values())


def test_train_speed_quick_times_both_trainers_on_the_same_tokens(tiny_st_dir: Path, tiny_data, tmp_path: Path) -> None:
    """`train_speed.py --quick`: simlm train and sentence-transformers' trainer each run their steps, the ratio
    and a JSON report come out, and the query cut makes one length (ST's) and two (simlm's) the same tokens."""
    out = tmp_path / "train.json"
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "train_speed.py"), "--quick", "--model", str(tiny_st_dir), "--data",
         str(tiny_data.dir), "--split", "test", "--passage-max-length", "64", "--threads", "1", "--rerank",
         "--pretrain", "--json", str(out)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert done.stdout.startswith("CPU: ") and "load average before: " in done.stdout
    report = json.loads(out.read_text())
    for part in ("train", "rerank"):
        table = report[part]
        assert table["simlm"]["tokens_per_s"] > 0 and table["st"]["tokens_per_cpu_s"] > 0, part
        ratio = table["simlm"]["tokens_per_s"] / table["st"]["tokens_per_s"]
        assert table["ratio_tokens_per_s"] == pytest.approx(ratio, rel=1e-2), part
    assert "ratio simlm train / SentenceTransformerTrainer tokens/s: " in done.stdout
    assert "ratio simlm rerank / CrossEncoderTrainer tokens/s: " in done.stdout
    assert "sentence-transformers ran mixed precision" in done.stdout  # what its trainer was given is said
    assert report["pretrain"]["simlm_mlm_tokens_per_s"] > 0 and report["pretrain"]["hf_mlm_tokens_per_s"] > 0


def test_train_speed_cuts_queries_to_whole_tokens(tiny_bert_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    train_speed = _load("train_speed")
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_dir)
    words = tokenizer.convert_ids_to_tokens(list(range(5, 45)))
    source, cut = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    rows = [{"qid": "1", "query": " ".join(words), "positives": ["a"], "negatives": ["b"]},
            {"qid": "2", "query": " ".join(words[:3]), "positives": ["a"], "negatives": ["b"]}]  # fmt: skip
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    train_speed.cut_queries(source, cut, tokenizer, 8)
    long, short = (json.loads(line)["query"] for line in cut.read_text().splitlines())
    assert long == " ".join(words[:6]) and short == rows[1]["query"]  # 6 tokens + [CLS] + [SEP] = 8
    assert len(tokenizer(long)["input_ids"]) == 8
