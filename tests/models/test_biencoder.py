"""Training and serving give the same vectors because they run the same code: `simlm encode` of a trained model
and the training bi-encoder's own embedding of a passage are equal, and both go through `pooling.pool`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from simlm_cli.device import Precision, resolve_runtime
from simlm_cli.io.corpus import Passage
from simlm_cli.io.embeddings import EmbeddingReader
from simlm_cli.models import pooling
from simlm_cli.models.biencoder import BiEncoder, tokenize_passages
from simlm_cli.models.loading import load_tokenizer
from simlm_cli.models.settings import resolve_settings
from tests.conftest import run_cli, write_jsonl

PASSAGE = Passage("p1", "Aspirin and the heart", "Low doses of aspirin reduce the risk of a first heart attack.", 1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data, tiny_bert_dir) -> Path:
    """A model fine-tuned for one step by `simlm train` (mean pooling, so pooling is more than taking a row)."""
    root = tmp_path_factory.mktemp("trained")
    queries = [json.loads(line) for line in Path(tiny_data.queries).read_text().splitlines()]
    ids = [json.loads(line)["_id"] for line in Path(tiny_data.corpus).read_text().splitlines()]
    train = write_jsonl(
        root / "train.jsonl",
        [{"qid": q["_id"], "query": q["text"], "positives": [ids[i]], "negatives": [ids[i + 1]]}
         for i, q in enumerate(queries[:3])],
    )  # fmt: skip
    out = root / "model"
    done = run_cli(
        ["train", "-t", train, "-c", tiny_data.corpus, "--model", tiny_bert_dir, "--output", out, "--pooling",
         "mean", "--negatives", "1", "--max-steps", "1", "--batch-size", "2", "--lr", "1e-3", "--precision", "fp32"]
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out


def _training_embedding(model_dir: Path) -> np.ndarray:
    """The passage's vector as the training code computes it (the batch layout of `GroupData`)."""
    settings = resolve_settings(str(model_dir))
    tokenizer = load_tokenizer(str(model_dir))
    model = BiEncoder.for_training(str(model_dir), tokenizer, settings).eval()
    tokens = tokenize_passages(tokenizer, [PASSAGE], settings.passage_format, settings.passage_max_length)
    batch = {f"p_{k}": v for k, v in tokenizer.pad(tokens, return_tensors="pt").items()}
    with torch.no_grad():
        return model.embed("p_", batch).numpy()


def test_simlm_encode_gives_the_training_embedding(trained, tmp_path):
    corpus = write_jsonl(tmp_path / "one.jsonl", [{"_id": PASSAGE.id, "title": PASSAGE.title, "text": PASSAGE.text}])
    done = run_cli(
        ["encode", "--model", trained, "--corpus", corpus, "--output", tmp_path / "emb", "--precision", "fp32"]
    )
    assert done.returncode == 0, done.stderr
    with open(tmp_path / "emb", "rb") as handle:
        (ids, served), *_ = list(EmbeddingReader(handle, str(tmp_path / "emb")))
    assert list(ids) == [PASSAGE.id]
    np.testing.assert_array_equal(served, _training_embedding(trained))


def test_training_and_serving_call_the_one_pooling_function(trained, monkeypatch):
    calls: list[str] = []
    original = pooling.pool

    def spy(hidden, attention_mask, how, normalize):
        calls.append(how)
        return original(hidden, attention_mask, how, normalize)

    monkeypatch.setattr(pooling, "pool", spy)
    trained_vector = _training_embedding(trained)
    assert calls == ["mean"]
    settings = resolve_settings(str(trained))
    served = BiEncoder.load(settings, resolve_runtime("cpu", Precision.fp32)).encode_passages([PASSAGE])
    assert calls == ["mean", "mean"]
    np.testing.assert_array_equal(served, trained_vector)
