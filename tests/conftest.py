"""Shared fixtures for the fast suite: a tiny BERT, a sentence-transformers wrapper of it, a tiny BEIR dataset,
and helpers that run `python -m simlm_cli` as a user would (a real process, so pipes are real pipes).

Nothing here touches the network: the models are built from a hand-written vocabulary and random weights.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest

# Set before anything imports transformers or huggingface_hub (a test module, a fixture or a child process).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# `auto` precision is bf16 on CPUs with AMX/AVX512-BF16 and fp32 elsewhere: the suite compares vectors and weights
# exactly, so it runs fp32 on every machine (tests/test_device.py checks auto itself with this unset).
os.environ["SIMLM_PRECISION"] = "fp32"
# `auto` backend is OpenVINO on the CPU: the suite compares vectors with PyTorch's exactly, so it runs torch unless a
# test asks for openvino (tests/test_device.py checks auto itself with this unset; tests/test_scifact.py's `minilm`
# fixture encodes SciFact with the real default).
os.environ["SIMLM_BACKEND"] = "torch"


@pytest.fixture(scope="session", autouse=True)
def int8_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OpenVINO's converted models (`--backend openvino`, `--precision int8`) go to a directory of this session (CLI children inherit it), never
    to the user's ~/.cache/simlm."""
    directory = tmp_path_factory.mktemp("simlm-cache")
    os.environ["SIMLM_CACHE_DIR"] = str(directory)
    return directory


SIMLM = [sys.executable, "-m", "simlm_cli"]

# --------------------------------------------------------------------------------------------------------------
# The tiny dataset: 12 passages on 3 topics, 4 queries, graded BEIR qrels.
# --------------------------------------------------------------------------------------------------------------
PASSAGES = [
    ("d1", "Protein folding", "Proteins fold into a stable shape that decides their function in the cell."),
    ("d2", "Chaperone proteins", "Chaperones help new proteins fold and stop them from forming clumps."),
    ("d3", "Misfolded proteins", "Misfolded proteins can gather in the brain and are linked to disease."),
    ("d4", "", "A gene is a piece of DNA that holds the code for one protein."),
    ("d5", "Gene expression", "Cells turn genes on and off so each tissue makes the proteins it needs."),
    ("d6", "Mutations", "A mutation changes the DNA code and may break the protein it encodes."),
    ("d7", "Planets", "The planets move around the sun on nearly round paths called orbits."),
    ("d8", "Moons", "Many planets have moons, and some moons have oceans under their ice."),
    ("d9", "Stars", "A star shines because hydrogen in its core fuses into helium."),
    ("d10", "Rivers", "Rivers carry water and sand from the mountains down to the sea."),
    ("d11", "Rain", "Rain forms when water vapour in clouds cools and falls as drops."),
    ("d12", "", "Warm ocean water feeds storms that bring heavy rain to the coast."),
]
QUERIES = [
    ("q1", "how do proteins fold"),
    ("q2", "what is a gene"),
    ("q3", "why do stars shine"),
    ("q4", "where does rain come from"),
]
# (query, document, grade)
QRELS = [
    ("q1", "d1", 2),
    ("q1", "d2", 1),
    ("q2", "d4", 2),
    ("q2", "d5", 1),
    ("q3", "d9", 2),
    ("q4", "d11", 2),
    ("q4", "d12", 1),
]
# Padding words so the vocabulary has ~200 entries, as the brief asks; none of them is needed by the data.
_EXTRA_TEXT = (
    "acid air animal answer area atom bacteria base blood body bone brain carbon change chemical climate cloud "
    "cold colour community control core cycle data density desert earth energy enzyme experiment field fish "
    "flow food force forest fossil gas glass gravity ground growth heat history human ice island iron lake "
    "land layer leaf life light liquid machine magnet mass matter metal method mineral model motion muscle "
    "nerve nitrogen north oil organ oxygen particle pattern plant plate pressure process rate rock root salt "
    "sample season seed signal skin soil solid sound south space species speed stone structure sugar surface "
    "system temperature theory time tree unit virus volume wave weather weight wind wood world"
)
_EXTRA_WORDS = _EXTRA_TEXT.split()


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def vocabulary() -> list[str]:
    words: dict[str, None] = {}
    for _, title, text in PASSAGES:
        words.update(dict.fromkeys(_words(f"{title} {text}")))
    for _, text in QUERIES:
        words.update(dict.fromkeys(_words(text)))
    words.update(dict.fromkeys(_EXTRA_WORDS))
    punctuation = [".", ",", "'", "-", "?"]
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *punctuation, *sorted(words)]


def write_jsonl(path: Path, records: Sequence[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_beir(directory: Path) -> SimpleNamespace:
    """The tiny BEIR dataset under `directory`; returns its paths and its content."""
    corpus = write_jsonl(directory / "corpus.jsonl", [{"_id": i, "title": t, "text": x} for i, t, x in PASSAGES])
    queries = write_jsonl(directory / "queries.jsonl", [{"_id": q, "text": t} for q, t in QUERIES])
    qrels = directory / "qrels" / "test.tsv"
    qrels.parent.mkdir(parents=True, exist_ok=True)
    qrels.write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{g}\n" for q, d, g in QRELS))
    return SimpleNamespace(
        dir=directory,
        corpus=corpus,
        queries=queries,
        qrels=qrels,
        passages=PASSAGES,
        query_texts=dict(QUERIES),
        judgments=QRELS,
    )


# --------------------------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    return write_beir(tmp_path_factory.mktemp("beir"))


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT with random weights and a word-level vocabulary covering the tiny corpus."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel, BertTokenizer

    directory = tmp_path_factory.mktemp("tiny-bert")
    vocab = vocabulary()
    vocab_file = directory / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # transformers 5: BertTokenizer is backed by `tokenizers` and takes the vocabulary as `vocab=` (a path or a
    # dict); `vocab_file=` is silently ignored and leaves a 5-token vocabulary.
    BertTokenizer(vocab=str(vocab_file)).save_pretrained(directory)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        # BERT's default (0.02) leaves a random 2-layer model's [CLS] vectors almost identical (cosine ~0.99999,
        # so scores tie at 6 decimals); 0.3 spreads them (gaps ~1e-3) and rankings become stable.
        initializer_range=0.3,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(directory)

    tokenizer = AutoTokenizer.from_pretrained(directory)
    ids = tokenizer("proteins fold")["input_ids"]
    assert tokenizer.unk_token_id not in ids, f"tiny tokenizer does not know the corpus words: {ids}"
    assert ids[0] == tokenizer.cls_token_id and tokenizer.pad_token_id == 0
    return directory


def save_copy_in(dtype_name: str, source: Path, directory: Path) -> Path:
    """`source` saved again with its weights in `dtype_name` ("float16", "bfloat16"), as many hub checkpoints are:
    `model.half().save_pretrained(...)` (config.json then says that dtype), with the same tokenizer."""
    import torch
    import transformers
    from transformers import AutoTokenizer

    architecture = json.loads((source / "config.json").read_text())["architectures"][0]
    model = getattr(transformers, architecture).from_pretrained(source, dtype=torch.float32)
    model.to(getattr(torch, dtype_name)).save_pretrained(directory)
    AutoTokenizer.from_pretrained(source).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session", params=["float16", "bfloat16"])
def tiny_bert_half_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path):
    """The tiny BERT stored in fp16, then in bf16 (each test using it runs once per dtype)."""
    return save_copy_in(request.param, tiny_bert_dir, tmp_path_factory.mktemp(f"tiny-bert-{request.param}"))


def _sentence_transformer(bert_dir: Path) -> object:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sentence-transformers 6 deprecates the `models` import path
        from sentence_transformers import SentenceTransformer, models

        transformer = models.Transformer(str(bert_dir), max_seq_length=128)
        pooling = models.Pooling(32, "mean")
        return SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu")


@pytest.fixture(scope="session")
def tiny_reranker_dir(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> Path:
    """The tiny BERT with a (random, seeded) one-logit head, saved as a trained re-ranker would be."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    directory = tmp_path_factory.mktemp("tiny-reranker")
    torch.manual_seed(0)
    BertForSequenceClassification.from_pretrained(tiny_bert_dir, num_labels=1).save_pretrained(directory)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_st_dir(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> Path:
    """The tiny BERT as a sentence-transformers model (mean pooling + Normalize), saved by the installed
    sentence-transformers (6.x writes `1_Pooling/config.json` as {"pooling_mode": "mean", ...})."""
    directory = tmp_path_factory.mktemp("tiny-st")
    _sentence_transformer(tiny_bert_dir).save(str(directory))
    return directory


@pytest.fixture(scope="session")
def tiny_st_legacy_dir(tmp_path_factory: pytest.TempPathFactory, tiny_st_dir: Path) -> Path:
    """The same model in the layout sentence-transformers 2.x-4.x wrote (and the hub's models still carry, e.g.
    all-MiniLM-L6-v2): `pooling_mode_*_tokens` flags, `sentence_bert_config.json` with `max_seq_length`."""
    directory = tmp_path_factory.mktemp("tiny-st-legacy") / "model"
    shutil.copytree(tiny_st_dir, directory)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (directory / "modules.json").write_text(json.dumps(modules, indent=2))
    pooling = {
        "word_embedding_dimension": 32,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    (directory / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2))
    (directory / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 128, "do_lower_case": False}))
    return directory


# --------------------------------------------------------------------------------------------------------------
# Running the CLI
# --------------------------------------------------------------------------------------------------------------
def run_main(monkeypatch, capfd, *args: object) -> tuple[int, str]:
    """`simlm ARGS` through the real entry point, in this process: (exit code, stderr)."""
    from simlm_cli.cli import main

    monkeypatch.setattr(sys, "argv", ["simlm", *map(str, args)])
    capfd.readouterr()
    with pytest.raises(SystemExit) as caught:
        main()
        raise SystemExit(0)
    return caught.value.code, capfd.readouterr().err


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    for name in ("FORCE_COLOR", "CLICOLOR_FORCE", "PY_COLORS"):
        env.pop(name, None)
    return env


def run_cli(
    args: Sequence[str | os.PathLike], input: bytes | None = None, cwd: str | os.PathLike | None = None
) -> subprocess.CompletedProcess:
    """Run `python -m simlm_cli ARGS`; stdout comes back as bytes (streams are binary), stderr as text."""
    done = subprocess.run(
        [*SIMLM, *map(str, args)],
        input=input if input is not None else b"",
        capture_output=True,
        cwd=cwd,
        env=cli_env(),
        timeout=300,
    )
    done.stderr = done.stderr.decode("utf-8", errors="replace")
    return done


def run_pipe(
    first: Sequence[str | os.PathLike], second: Sequence[str | os.PathLike], cwd: str | os.PathLike | None = None
) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    """`simlm FIRST | simlm SECOND` through a real OS pipe; returns both processes' results."""
    env = cli_env()
    with tempfile.TemporaryFile() as err1, tempfile.TemporaryFile() as err2:
        producer = subprocess.Popen([*SIMLM, *map(str, first)], stdout=subprocess.PIPE, stderr=err1, cwd=cwd, env=env)
        consumer = subprocess.Popen(
            [*SIMLM, *map(str, second)],
            stdin=producer.stdout,
            stdout=subprocess.PIPE,
            stderr=err2,
            cwd=cwd,
            env=env,
        )
        producer.stdout.close()  # the consumer holds the only read end: the producer sees EPIPE if it exits
        out2, _ = consumer.communicate(timeout=300)
        producer.wait(timeout=300)
        results = []
        for proc, err, out in ((producer, err1, b""), (consumer, err2, out2)):
            err.seek(0)
            stderr = err.read().decode("utf-8", errors="replace")
            results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, stderr))
    return results[0], results[1]


_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=6, thread_name_prefix="simlm-cli")
    return _POOL


def start_cli(
    args: Sequence[str | os.PathLike], input: bytes | None = None, cwd: str | os.PathLike | None = None
) -> Future:
    """`run_cli` in the background: each CLI process spends ~5 s importing torch on one core, so independent
    commands run side by side to keep the suite fast. `.result()` gives the CompletedProcess."""
    return _pool().submit(run_cli, args, input, cwd)


def start_pipe(
    first: Sequence[str | os.PathLike], second: Sequence[str | os.PathLike], cwd: str | os.PathLike | None = None
) -> Future:
    """`run_pipe` in the background; `.result()` gives both CompletedProcesses."""
    return _pool().submit(run_pipe, first, second, cwd)


@pytest.fixture(name="run_cli")
def run_cli_fixture() -> Callable[..., subprocess.CompletedProcess]:
    return run_cli


@pytest.fixture(name="run_pipe")
def run_pipe_fixture() -> Callable[..., tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]]:
    return run_pipe


@pytest.fixture(scope="session")
def cli_jobs() -> SimpleNamespace:
    """Background versions of the helpers, for fixtures that prepare many independent commands at once."""
    return SimpleNamespace(run=start_cli, pipe=start_pipe)
