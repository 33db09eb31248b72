"""Tiny BERTs (hidden 32) and a toy corpus built on the fly: the pretraining tests never touch real weights."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

WORDS = [
    "the", "a", "cell", "protein", "gene", "cancer", "virus", "study", "patients", "effect", "of", "in", "and",
    "increase", "decrease", "risk", "trial", "dose", "blood", "brain", "heart", "lung", "mouse", "human", "growth",
]  # fmt: skip
PIECES = ["##s", "##ed", "##ing", "##ly", "##ation"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_tiny_model(directory: Path, layers: int = 4, with_head: bool = True) -> Path:
    import torch
    import transformers
    from transformers import BertConfig, BertForMaskedLM, BertModel, BertTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    vocab = SPECIALS + WORDS + PIECES
    if int(transformers.__version__.split(".")[0]) >= 5:
        # transformers 5's BertTokenizer takes the vocabulary as a dict (vocab_file= is ignored there).
        tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)})
    else:  # 4.x (the pretraining tests also run at the floor, tests/training/pretraining/test_transformers4.py)
        (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
        tokenizer = BertTokenizer(vocab_file=str(directory / "vocab.txt"))
    tokenizer.save_pretrained(directory)
    config = BertConfig(
        vocab_size=len(SPECIALS + WORDS + PIECES),
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    model = BertForMaskedLM(config) if with_head else BertModel(config)
    model.save_pretrained(directory)
    return directory


def toy_sentence(rng: random.Random) -> str:
    out = []
    for _ in range(rng.randint(6, 14)):
        word = rng.choice(WORDS)
        if rng.random() < 0.3:
            word += rng.choice(PIECES)[2:]
        out.append(word)
    return " ".join(out)


def write_corpus(path: Path, count: int = 48, seed: int = 0) -> Path:
    rng = random.Random(seed)
    # A repetitive corpus, so a few dozen steps visibly lower the loss.
    templates = [toy_sentence(rng) for _ in range(6)]
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(count):
            record = {"_id": f"d{i}", "title": rng.choice(WORDS), "text": templates[i % len(templates)]}
            handle.write(json.dumps(record) + "\n")
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "bert")


@pytest.fixture(scope="session")
def tiny_headless(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "bert-nohead", layers=2, with_head=False)


@pytest.fixture(scope="session")
def toy_corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "corpus.jsonl")


@pytest.fixture(scope="session")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def make_objective(name: str, model_dir: Path, tokenizer, log=None, **options):
    from simlm_cli.training.pretraining.registry import load_objective, resolve_options

    cls = load_objective(name)
    values = resolve_options(cls, [(k.replace("_", "-"), str(v)) for k, v in options.items()])
    return cls(str(model_dir), tokenizer, values, log or (lambda _m: None))


def batch_of(tokenizer, texts: list[str]):
    from simlm_cli.training.pretraining.data import tokenize

    return dict(tokenize(tokenizer, texts, 48))


@pytest.fixture(scope="module")
def app():
    """The `pretrain` command alone in a Typer app (what CliRunner invokes in these tests)."""
    import typer

    from simlm_cli.commands import pretrain

    application = typer.Typer(pretty_exceptions_enable=False)
    pretrain.register(application)

    @application.callback()
    def _root() -> None:
        pass

    return application
