"""Model cards in trained model directories (issue 15, item 3)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from simlm_cli.model_card import (
    PRETRAINED_CARD,
    RERANKER_CARD,
    RETRIEVER_CARD,
    add_metrics,
    command_line,
    dataset_of,
    split_card,
    training_card,
)
from simlm_cli.training.trainer import TrainConfig
from tests.conftest import cli_env, run_cli
from tests.training.finetuning.test_biencoder import write_train


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_data, tiny_st_dir):
    """A 3-step dry run of `simlm train` on a corpus that lies in a BEIR dataset's directory."""
    root = tmp_path_factory.mktemp("card")
    corpus = root / "scifact" / "corpus.jsonl"
    corpus.parent.mkdir()
    shutil.copy(tiny_data.corpus, corpus)
    train_file = write_train(root / "train.jsonl")
    out = root / "retriever"
    done = run_cli(
        ["train", "--train-file", train_file, "--corpus", corpus, "--model", tiny_st_dir, "--output", out,
         "--negatives", "2", "--dry-run", "--device", "cpu", "--precision", "fp32"]
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out


def test_train_writes_a_card_the_hub_can_read(trained, tiny_st_dir):
    from huggingface_hub import ModelCard
    from sentence_transformers import SentenceTransformer

    text = (trained / "README.md").read_text()
    meta, body = split_card(text)
    assert meta["library_name"] == "sentence-transformers" and meta["pipeline_tag"] == "sentence-similarity"
    assert "sentence-transformers" in meta["tags"] and "simlm" in meta["tags"]
    assert meta["datasets"] == ["BeIR/scifact"]
    assert "base_model" not in meta  # a local directory is no Hub id
    assert "model-index" not in meta  # nothing evaluated it yet
    card = ModelCard.load(trained / "README.md")  # the Hub's own parser
    assert card.data.pipeline_tag == "sentence-similarity"
    assert f"simlm train --train-file {trained.parent / 'train.jsonl'}" in body
    assert re.search(r"- Steps: \d+ optimizer steps of 2 x 1 ", body) and "(a --dry-run smoke test)" in body
    assert f"training file: `{trained.parent / 'train.jsonl'}`" in body
    assert "the curve is `loss.png`, every logged step `train_log.jsonl`" in body
    assert f'SentenceTransformer("{trained}")' in body and f"simlm encode --model {trained}" in body
    SentenceTransformer(str(trained), device="cpu")  # the card does not get in the way of loading


def test_a_recipe_adds_its_evaluations_to_the_card(trained, tmp_path):
    from huggingface_hub import ModelCard

    metrics = tmp_path / "retriever1.json"
    metrics.write_text(json.dumps({"ndcg@10": 0.65921, "mrr@10": 0.6198, "recall@100": 0.926}))
    fused = tmp_path / "fused.json"
    fused.write_text(json.dumps({"ndcg@10": 0.7, "recall@1000": 0.99}))
    for name, path in (("Retriever1", metrics), ("Retriever1 + BM25", fused), ("Retriever1", metrics)):
        done = subprocess.run(
            [sys.executable, "-m", "simlm_cli.model_card", str(trained), str(path), "--name", name],
            capture_output=True, text=True, env=cli_env(), timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    meta, body = split_card((trained / "README.md").read_text())
    results = meta["model-index"][0]["results"]
    assert len(results) == 2  # the second Retriever1 replaced the first
    assert results[0]["dataset"] == {"name": "scifact", "type": "BeIR/scifact", "split": "test"}
    assert results[0]["metrics"][0] == {"type": "ndcg_at_10", "value": 0.6592, "name": "Retriever1: nDCG@10"}
    assert results[1]["metrics"][1] == {
        "type": "recall_at_1000",
        "value": 0.99,
        "name": "Retriever1 + BM25: Recall@1000",
    }
    assert "| Retriever1 | BeIR/scifact | test | 0.6592 | 0.6198 | 0.9260 |  |" in body, body
    assert "| Retriever1 + BM25 | BeIR/scifact | test | 0.7000 |  |  | 0.9900 |" in body, body
    assert body.index("## Usage") < body.index("## Evaluation")
    card = ModelCard.load(trained / "README.md")
    assert {r.metric_type for r in card.data.eval_results} >= {"ndcg_at_10", "mrr_at_10", "recall_at_1000"}


def test_a_bad_metrics_file_is_one_line(tmp_path):
    (tmp_path / "m.json").write_text("{")
    done = subprocess.run(
        [sys.executable, "-m", "simlm_cli.model_card", str(tmp_path), str(tmp_path / "m.json"), "--name", "x"],
        capture_output=True, text=True, env=cli_env(), timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "m.json" not in done.stdout
    assert done.stderr.strip().splitlines()[-1].startswith("python -m simlm_cli.model_card: error:")


@pytest.mark.parametrize(
    "objective, kind, library, tag, usage",
    [
        ("rerank", RERANKER_CARD, "sentence-transformers", "text-ranking", 'CrossEncoder("out/reranker")'),
        ("distill", RETRIEVER_CARD.noted(" (distilled)"), "sentence-transformers", "sentence-similarity",
         'SentenceTransformer("out/reranker")'),
        ("rlm", PRETRAINED_CARD, "transformers", "feature-extraction", 'AutoModel.from_pretrained("out/reranker")'),
    ],
)  # fmt: skip
def test_each_trainer_kind_gets_its_own_card(objective, kind, library, tag, usage):
    config = TrainConfig(
        objective=objective, corpus="data/nfcorpus/corpus.jsonl", output="out/reranker", model="bert-base-uncased",
        max_steps=20, batch_size=4, warmup_steps=2, objective_options={"train_file": "t.jsonl", "group_size": 8},
    )  # fmt: skip
    records = [{"step": 1, "loss": 2.5}, {"step": 20, "loss": 1.25}]
    meta, body = split_card(training_card(config, kind, records, "out/reranker", ["simlm", "rerank", "train"]))
    assert meta["base_model"] == "bert-base-uncased" and meta["library_name"] == library
    assert meta["pipeline_tag"] == tag and meta["datasets"] == ["BeIR/nfcorpus"]
    assert usage in body and "loss 2.5000 at step 1 -> 1.2500 at step 20" in body
    assert "training file: `t.jsonl`" in body and "group_size=8" in body


def test_helpers():
    assert dataset_of("/x/y/corpus.jsonl") is None and dataset_of("/d/FiQA/corpus.jsonl") == "BeIR/fiqa"
    assert command_line(["/venv/bin/simlm", "train", "--output", "a b"]) == "simlm train --output 'a b'"
    assert command_line(["/repo/simlm_cli/__main__.py", "distill"]) == "simlm distill"
    with pytest.raises(ValueError):
        add_metrics("/nonexistent-dir-for-sure", {"note": "text"}, "x")
