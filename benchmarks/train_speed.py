"""`simlm train` against sentence-transformers' trainer, on the same SciFact triples, in one process and one run.

Both sides train the same checkpoint (default: the embedded all-MiniLM-L6-v2, mean pooling, normalised) on the same
(query, positive, hard negative) triples in the same batches and order, at the same batch, lr, warmup, weight decay,
gradient clipping, steps, passage length (144) and precision (simlm's default on this CPU: bf16 autocast where the
CPU has AVX512-BF16/AMX, else fp32; sentence-transformers is given the same with `bf16=True`):

- simlm: `train_retriever` (what `simlm train` runs), `--negatives 1`, temperature 0.05 (MNRL's scale 20);
- sentence-transformers: `SentenceTransformerTrainer` + `MultipleNegativesRankingLoss` on (query, positive, negative)
  columns, `max_seq_length` 144, its batches taken in simlm's order (a sequential sampler over rows laid out so).

Queries are cut to 32 tokens before either side sees them (sentence-transformers has one length for every column),
so both tokenize exactly the same tokens. The training file is SciFact's train qrels with random negatives (no
BM25/Java needed), built by `gpu_check.training_file`.

Timed window, the same for both: from the end of step 1 (the warm-up step, left out) to the end of the last step,
taken from simlm's per-step log lines and from a sentence-transformers `TrainerCallback`. Process start, imports,
model loading, data loading and the final save are outside it; everything a step does (tokenization, collation,
forward, backward, optimizer, logging every 10 steps) is inside. Runs alternate (simlm, ST, ST, simlm, ...) so load
drift hits both; the best run of each is kept and all are printed.

`--rerank` adds `simlm rerank train` (groups of 1 positive + 7 negatives, batch 4, pairs of <= 192 tokens: its CPU
defaults) against `CrossEncoderTrainer` with `ListNetLoss` over the same groups (a softmax cross-entropy over each group's
logits, as simlm's listwise loss; all pairs of a batch in one forward pass), timed the same way. `--pretrain` adds `simlm pretrain --objective
mlm` (the objective's step, `benchmarks/pretrain.py`'s measure, fp32, batches tokenized up front) against that
script's plain Hugging Face MLM loop.

python benchmarks/train_speed.py [--steps 20] [--rounds 2] [--batch-size 16] [--threads 2] [--model DIR]
                                 [--rerank] [--pretrain] [--quick] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS))  # the sibling benchmarks' helpers, run as a script or loaded by a test

from encode_speed import read_cpu  # noqa: E402
from gpu_check import DATA, training_file  # noqa: E402 (SciFact, shipped)

QUERY_MAX_LENGTH = 32
TEMPERATURE = 0.05  # sentence-transformers' MNRL scale 20
LOG_STEPS = 10
GROUP_SIZE = 8  # `rerank train`'s default: 1 positive + 7 negatives per query


@dataclass
class Setup:
    model: str
    train_file: Path
    corpus: str
    steps: int
    batch_size: int
    lr: float
    warmup: int
    precision: str  # "bf16" or "fp32": what `simlm train` picks here by default
    work: Path
    passage_max_length: int = 144
    rerank_batch_size: int = 4  # `rerank train`'s CPU default: queries, each a group of GROUP_SIZE pairs
    rerank_max_length: int = 192  # its default pair length (the paper's)


# -- the data both sides see -----------------------------------------------------------------------------------
def cut_queries(train_file: Path, out: Path, tokenizer: Any, max_tokens: int) -> None:
    """The training file with each query cut, at a token boundary, to `max_tokens` tokens with [CLS]/[SEP], so
    that one length (sentence-transformers') and two (simlm's 32/144) tokenize the very same tokens."""
    rows = [json.loads(line) for line in train_file.read_text(encoding="utf-8").splitlines()]
    encoded = tokenizer([r["query"] for r in rows], add_special_tokens=False, return_offsets_mapping=True)
    for row, offsets in zip(rows, encoded["offset_mapping"]):
        if len(offsets) > max_tokens - 2:
            row["query"] = row["query"][: offsets[max_tokens - 3][1]]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def simlm_data(s: Setup, tokenizer: Any):
    """simlm's GroupData for the setup (what `train_retriever` builds) and the settings it encodes with."""
    from simlm_cli.io.corpus import CorpusFormat
    from simlm_cli.models.settings import resolve_settings
    from simlm_cli.training.finetuning.biencoder import GroupData, load_groups

    settings = resolve_settings(s.model, query_max_length=QUERY_MAX_LENGTH, passage_max_length=s.passage_max_length)
    examples, passages = load_groups(s.train_file, s.corpus, CorpusFormat.auto, min_negatives=1, log=lambda _m: None)
    return GroupData(examples, passages, tokenizer, settings, 1, seed=42), settings


def step_triples(s: Setup, tokenizer: Any) -> tuple[list[tuple[str, str, str]], list[int]]:
    """The (query, positive, negative) texts of each of simlm's `steps` batches, in its order, and each step's
    token count (non-padding tokens of queries and passages, as both sides tokenize them)."""
    from simlm_cli.models.biencoder import tokenize_passages, tokenize_texts
    from simlm_cli.training.data import DataOrder

    data, settings = simlm_data(s, tokenizer)
    order = DataOrder(len(data), s.batch_size, 42)
    triples, tokens = [], []
    for step in range(s.steps):
        epoch = order.position(step)[0]
        groups = [data.group(int(row), epoch) for row in order.indices(step)]
        queries = [query for query, _, _ in groups]
        passages = [data.passages[d] for _, ids, _ in groups for d in ids]
        triples += [(q, passages[2 * i].joined(), passages[2 * i + 1].joined()) for i, q in enumerate(queries)]
        q = tokenize_texts(tokenizer, queries, None, settings.query_max_length)["input_ids"]
        p = tokenize_passages(tokenizer, passages, settings.passage_format, settings.passage_max_length)["input_ids"]
        tokens.append(sum(map(len, q)) + sum(map(len, p)))
    return triples, tokens


# -- the two sides ---------------------------------------------------------------------------------------------
Stamps = dict[int, tuple[float, float]]  # step -> (wall clock, this process's CPU time) at its end


def now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def window(stamps: Stamps, steps: int) -> tuple[float, float]:
    """(wall, CPU) seconds from the end of step 1 to the end of step `steps`."""
    return stamps[steps][0] - stamps[1][0], stamps[steps][1] - stamps[1][1]


def log_stamper() -> tuple[Stamps, Any]:
    """simlm's `log` callable stamping its "step N/M ..." lines (every logged step, the first and the last)."""
    stamps: Stamps = {}

    def log(message: str) -> None:
        if message.startswith("step "):
            stamps[int(message.split()[1].split("/")[0])] = now()

    return stamps, log


def run_simlm(s: Setup, out: Path) -> tuple[float, float]:
    """`simlm train` in-process; (wall, CPU) seconds from the end of step 1 to the end of the last step."""
    from simlm_cli.pipeline.train import RetrieverSpec, train_retriever
    from simlm_cli.training.trainer import TrainConfig

    stamps, log = log_stamper()

    spec = RetrieverSpec(train_file=str(s.train_file), query_max_length=QUERY_MAX_LENGTH,
                         passage_max_length=s.passage_max_length, negatives=1, temperature=TEMPERATURE)  # fmt: skip
    config = TrainConfig(objective="contrastive", corpus=s.corpus, output=str(out), model=s.model, max_steps=s.steps,
                         batch_size=s.batch_size, lr=s.lr, warmup_steps=s.warmup, log_steps=LOG_STEPS,
                         save_steps=10**9, train_file=str(s.train_file), overwrite=True)  # fmt: skip
    train_retriever(spec, config, log=log)
    return window(stamps, s.steps)


def _st_pieces():
    """A callback stamping each step's end, and a batch sampler keeping the rows in the order they are laid out."""
    from sentence_transformers.base.sampler import DefaultBatchSampler
    from torch.utils.data import SequentialSampler
    from transformers import TrainerCallback

    stamps: Stamps = {}

    class Stamp(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps[state.global_step] = now()

    def in_order(dataset, batch_size, drop_last, valid_label_columns=None, generator=None, seed=0):
        # the rows are laid out in simlm's batch order already: no reshuffle
        return DefaultBatchSampler(SequentialSampler(dataset), batch_size=batch_size, drop_last=drop_last,
                                   valid_label_columns=valid_label_columns, generator=generator, seed=seed)  # fmt: skip

    return stamps, Stamp(), in_order


def _st_args(s: Setup, out: Path, in_order: Any, arguments: type) -> Any:
    return arguments(
        output_dir=str(out), max_steps=s.steps, per_device_train_batch_size=s.batch_size, learning_rate=s.lr,
        warmup_steps=s.warmup, weight_decay=0.01, max_grad_norm=1.0, lr_scheduler_type="linear",
        bf16=s.precision == "bf16", use_cpu=True, logging_steps=LOG_STEPS, save_strategy="no", report_to="none",
        seed=42, batch_sampler=in_order, dataloader_num_workers=0, disable_tqdm=True,
    )  # fmt: skip


def run_st(s: Setup, triples: list[tuple[str, ...]], out: Path) -> tuple[float, float]:
    """SentenceTransformerTrainer + MNRL on the same triples in the same batches; the same window."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, losses
    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments

    stamps, stamp, in_order = _st_pieces()
    model = SentenceTransformer(s.model, device="cpu")
    model.max_seq_length = s.passage_max_length
    columns = dict(zip(("query", "positive", "negative"), map(list, zip(*triples))))
    trainer = SentenceTransformerTrainer(
        model=model, args=_st_args(s, out, in_order, SentenceTransformerTrainingArguments),
        train_dataset=Dataset.from_dict(columns), loss=losses.MultipleNegativesRankingLoss(model, scale=1 / TEMPERATURE),
        callbacks=[stamp],
    )  # fmt: skip
    trainer.train()
    amp = trainer.accelerator
    print(f"  sentence-transformers ran mixed precision {amp.mixed_precision!r} (autocast: {amp.native_amp})")
    return window(stamps, s.steps)


# -- rerank train against CrossEncoderTrainer ------------------------------------------------------------------
def rerank_groups(s: Setup, tokenizer: Any) -> tuple[list[tuple[str, ...]], list[int]]:
    """(query, positive, negative_1.. negative_G-1) of each of `simlm rerank train`'s batches in its order, and
    each step's token count (the pairs as simlm tokenizes them)."""
    from simlm_cli.io.corpus import load_passages
    from simlm_cli.io.train_file import read_train_file
    from simlm_cli.models.cross_encoder import tokenize_pairs
    from simlm_cli.training.data import DataOrder
    from simlm_cli.training.finetuning.cross_encoder import RerankData, usable_examples

    passages = load_passages(s.corpus)
    examples = usable_examples(read_train_file(s.train_file, corpus_ids=passages).examples, s.train_file)
    data = RerankData(examples, passages, tokenizer, GROUP_SIZE, s.rerank_max_length, 42)
    order = DataOrder(len(data), s.rerank_batch_size, 42)
    rows, tokens = [], []
    for step in range(s.steps):
        epoch = order.position(step)[0]
        groups = [data.group(int(row), epoch) for row in order.indices(step)]
        rows += [(query, *(passages[d].joined() for d in ids)) for query, ids in groups]
        pairs = [(query, passages[d].joined()) for query, ids in groups for d in ids]
        ids = tokenize_pairs(tokenizer, *zip(*pairs), s.rerank_max_length)["input_ids"]
        tokens.append(sum(map(len, ids)))
    return rows, tokens


def run_simlm_rerank(s: Setup, out: Path) -> tuple[float, float]:
    from simlm_cli.pipeline.train import train_reranker
    from simlm_cli.training.trainer import TrainConfig

    stamps, log = log_stamper()

    config = TrainConfig(objective="rerank", corpus=s.corpus, output=str(out), model=s.model, max_steps=s.steps,
                         batch_size=s.rerank_batch_size, lr=s.lr, warmup_steps=s.warmup, log_steps=LOG_STEPS,
                         save_steps=10**9, max_length=s.rerank_max_length, train_file=str(s.train_file),
                         overwrite=True)  # fmt: skip
    train_reranker(s.train_file, config, group_size=GROUP_SIZE, log=log)
    return window(stamps, s.steps)


def run_st_rerank(s: Setup, rows: list[tuple[str, ...]], out: Path) -> tuple[float, float]:
    """CrossEncoderTrainer + ListNetLoss over the same groups: one logit per (query, passage) pair, a softmax
    cross-entropy over each query's group (simlm's listwise loss, up to ListNet's soft target), every pair of a
    batch in one forward pass as simlm does (ListNet's default would run `batch` pairs at a time)."""
    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, losses
    from sentence_transformers.cross_encoder.training_args import CrossEncoderTrainingArguments

    stamps, stamp, in_order = _st_pieces()
    model = CrossEncoder(s.model, num_labels=1, max_length=s.rerank_max_length, device="cpu")
    columns = {"query": [r[0] for r in rows], "docs": [list(r[1:]) for r in rows],
               "labels": [[1.0] + [0.0] * (len(r) - 2) for r in rows]}  # fmt: skip
    loss = losses.ListNetLoss(model, mini_batch_size=s.rerank_batch_size * GROUP_SIZE)
    args = _st_args(Setup(**{**s.__dict__, "batch_size": s.rerank_batch_size}), out, in_order,
                    CrossEncoderTrainingArguments)  # fmt: skip
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=Dataset.from_dict(columns), loss=loss,
                                  callbacks=[stamp])  # fmt: skip
    trainer.train()
    return window(stamps, s.steps)


# -- the run ---------------------------------------------------------------------------------------------------
def default_precision() -> str:
    from simlm_cli.device import resolve_runtime

    return resolve_runtime("cpu", "auto", training=True).precision.value


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text(encoding="utf-8").split()[:3])
    except OSError:
        return "unknown"


def rates(runs: list[tuple[float, float]], tokens: int, passages: int) -> dict[str, Any]:
    """The best run's rates by the wall clock and per CPU second of this process (steadier on a shared machine)."""
    wall, cpu = min(w for w, _ in runs), min(c for _, c in runs)
    return {"runs_wall_s": [round(w, 3) for w, _ in runs], "runs_cpu_s": [round(c, 3) for _, c in runs],
            "tokens_per_s": round(tokens / wall, 1), "passages_per_s": round(passages / wall, 2),
            "tokens_per_cpu_s": round(tokens / cpu, 1), "passages_per_cpu_s": round(passages / cpu, 2)}  # fmt: skip


def compare(s: Setup, rounds: int, tokens: list[int], passages: int, sides: dict[str, Any]) -> dict[str, Any]:
    """Each side's `rounds` runs, alternating (the order reversed every other round); the best run of each, as
    tokens/s and passages/s over steps 2..N, and the ratios simlm / sentence-transformers."""
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
    for round_ in range(rounds):
        for name in list(sides) if round_ % 2 == 0 else list(sides)[::-1]:
            runs[name].append(sides[name](s.work / f"{name}-{round_}"))
            wall, cpu = runs[name][-1]
            print(f"  round {round_ + 1} {name}: {wall:.2f} s ({cpu:.2f} CPU s) for steps 2..{s.steps}", flush=True)
    table: dict[str, Any] = {name: rates(r, sum(tokens[1:]), passages * (s.steps - 1)) for name, r in runs.items()}
    for key in ("tokens_per_s", "tokens_per_cpu_s"):
        table[f"ratio_{key}"] = round(table["simlm"][key] / table["st"][key], 3)
    return table


def bench_train(s: Setup, rounds: int, tokenizer: Any) -> dict[str, Any]:
    """`simlm train` against SentenceTransformerTrainer; passages: positives and negatives (2 per query)."""
    triples, tokens = step_triples(s, tokenizer)
    sides = {"simlm": lambda out: run_simlm(s, out), "st": lambda out: run_st(s, triples, out)}
    return compare(s, rounds, tokens, 2 * s.batch_size, sides)


def bench_rerank(s: Setup, rounds: int, tokenizer: Any) -> dict[str, Any]:
    """`simlm rerank train` against CrossEncoderTrainer; passages: (query, passage) pairs scored."""
    rows, tokens = rerank_groups(s, tokenizer)
    sides = {"simlm": lambda out: run_simlm_rerank(s, out), "st": lambda out: run_st_rerank(s, rows, out)}
    return compare(s, rounds, tokens, GROUP_SIZE * s.rerank_batch_size, sides)


def bench_pretrain(model: str, corpus: str, batch_size: int, max_length: int, steps: int) -> dict[str, Any]:
    """`benchmarks/pretrain.py`'s mlm objective step against its plain HF MLM loop (same batches, fp32)."""
    import pretrain

    from simlm_cli.models.loading import load_tokenizer

    tokenizer = load_tokenizer(model)
    batches = pretrain._batches(tokenizer, corpus, batch_size, max_length, steps + 1)
    mlm = pretrain.bench_objective("mlm", model, tokenizer, batches, 1)
    hf = pretrain.bench_hf_mlm(model, tokenizer, batches, 1)
    return {"simlm_mlm_tokens_per_s": round(mlm, 1), "hf_mlm_tokens_per_s": round(hf, 1),
            "ratio_tokens_per_s": round(mlm / hf, 3)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="Default: the embedded all-MiniLM-L6-v2.")
    parser.add_argument("--steps", type=int, default=20, help="Steps per run; step 1 is the untimed warm-up.")
    parser.add_argument("--rounds", type=int, default=2, help="Runs of each side, alternating.")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", default=str(DATA), help="A BEIR directory (corpus, queries, qrels/SPLIT.tsv).")
    parser.add_argument("--split", default="train", help="The qrels the training file is built from.")
    parser.add_argument("--passage-max-length", type=int, default=144)
    parser.add_argument("--rerank", action="store_true", help="Also `rerank train` against CrossEncoderTrainer.")
    parser.add_argument("--pretrain", action="store_true", help="Also mlm pretraining against a plain HF loop.")
    parser.add_argument("--quick", action="store_true", help="A smoke test: 3 steps, batch 4, one round each.")
    parser.add_argument("--json", default=None, help="Also write the results here.")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.batch_size, args.rounds = 3, 4, 1
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from simlm_cli.models.loading import load_tokenizer
    from simlm_cli.models.settings import resolve_model_path

    torch.set_num_threads(args.threads)
    model = resolve_model_path(args.model)
    tokenizer = load_tokenizer(model)
    print(read_cpu().describe())
    print(f"load average before: {load_average()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    report: dict[str, Any] = {"cpu": read_cpu().describe(), "load_before": load_average()}
    with tempfile.TemporaryDirectory(prefix="train_speed.") as tmp:
        work = Path(tmp)
        data = Path(args.data)
        training_file(work / "random.jsonl", data, args.split)
        cut_queries(work / "random.jsonl", work / "train.jsonl", tokenizer, QUERY_MAX_LENGTH)
        setup = Setup(model, work / "train.jsonl", str(data / "corpus.jsonl"), args.steps, args.batch_size, args.lr,
                      max(1, args.steps // 10), default_precision(), work, args.passage_max_length)  # fmt: skip
        print(f"train: {model}, batch {setup.batch_size} x (query, positive, negative), {setup.steps} steps, lr "
              f"{setup.lr}, query/passage {QUERY_MAX_LENGTH}/{setup.passage_max_length} tokens, {setup.precision} "
              f"(simlm's default here), {args.rounds} round(s) each", flush=True)  # fmt: skip
        report["train"] = bench_train(setup, args.rounds, tokenizer)
        report["train"]["precision"] = setup.precision
        if args.rerank:
            if args.quick:
                setup.rerank_max_length = min(setup.rerank_max_length, setup.passage_max_length)
            print(f"rerank train: batch {setup.rerank_batch_size} x {GROUP_SIZE} pairs of <= "
                  f"{setup.rerank_max_length} tokens, listwise", flush=True)  # fmt: skip
            report["rerank"] = bench_rerank(setup, args.rounds, tokenizer)
    for part, baseline in (("train", "SentenceTransformerTrainer"), ("rerank", "CrossEncoderTrainer")):
        if part not in report:
            continue
        for name in ("simlm", "st"):
            row = report[part][name]
            print(f"| {part} {name} | {row['tokens_per_s']:.0f} tokens/s | {row['passages_per_s']:.2f} passages/s | "
                  f"{row['tokens_per_cpu_s']:.0f} tokens/CPU s | runs {row['runs_wall_s']} s |")  # fmt: skip
        print(f"ratio simlm {part} / {baseline} tokens/s: {report[part]['ratio_tokens_per_s']:.2f}x wall, "
              f"{report[part]['ratio_tokens_per_cpu_s']:.2f}x per CPU second")  # fmt: skip
    if args.pretrain:
        corpus = str(Path(args.data) / "corpus.jsonl")
        report["pretrain"] = pre = bench_pretrain(model, corpus, 4 if args.quick else 8, args.passage_max_length,
                                                  args.steps)  # fmt: skip
        print(f"pretrain mlm {pre['simlm_mlm_tokens_per_s']:.0f} tokens/s, HF MLM loop "
              f"{pre['hf_mlm_tokens_per_s']:.0f}: {pre['ratio_tokens_per_s']:.2f}x")  # fmt: skip
    report["load_after"] = load_average()
    print(f"load average after: {report['load_after']} (a shared machine: ratios, not absolute rates)")
    print(json.dumps(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
