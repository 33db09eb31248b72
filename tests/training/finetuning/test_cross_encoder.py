"""`simlm rerank`: the listwise loss, the group sampling, and train -> run -> score through the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from simlm_cli.errors import InputError, SimlmError
from simlm_cli.io.corpus import iter_corpus
from simlm_cli.io.train_file import Candidate, TrainExample
from simlm_cli.models.cross_encoder import CrossEncoder, tokenize_pairs
from simlm_cli.training.finetuning.cross_encoder import RerankData, RerankLoss, usable_examples

DOCS = [f"d{i}" for i in range(1, 13)]
POSITIVES = {"q1": ["d1", "d2"], "q2": ["d4"], "q3": ["d9"], "q4": ["d11", "d12"]}


def _example(qid: str, query: str, positives: list[str], negatives: list[str], line: int = 1) -> TrainExample:
    return TrainExample(
        qid, query, [Candidate(d, 1.0) for d in positives], [Candidate(d, 0.5) for d in negatives], line
    )


def _train_records(tiny_data: SimpleNamespace) -> list[dict]:
    """q1, q2, q4 with every other document as a negative (q1's list also holds its positive d2, to be ignored);
    q3 with no negative (skipped)."""
    records = []
    for qid, text in tiny_data.query_texts.items():
        positives = POSITIVES[qid]
        negatives = [] if qid == "q3" else [d for d in DOCS if d not in positives] + (["d2"] if qid == "q1" else [])
        records.append({
            "qid": qid, "query": text,
            "positives": [{"docid": d, "score": 10.0} for d in positives],
            "negatives": [{"docid": d, "score": None} for d in negatives],
        })  # fmt: skip
    return records


@pytest.fixture(scope="module")
def tokenizer(tiny_bert_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_bert_dir)


@pytest.fixture(scope="module")
def passages(tiny_data: SimpleNamespace) -> dict:
    return {p.id: p for p in iter_corpus(tiny_data.corpus)}


def _data(tiny_data, passages, tokenizer, group_size: int = 4, seed: int = 7) -> RerankData:
    examples = [
        _example("q1", "how do proteins fold", ["d1", "d2"], ["d2", *DOCS[2:]]),
        _example("q2", "what is a gene", ["d4"], ["d5"]),  # one negative: repeated to fill the group
    ]
    return RerankData(examples, passages, tokenizer, group_size, 64, seed)


# -- in-process ---------------------------------------------------------------------------------------------------
def test_listwise_loss_matches_hand_computation(tiny_bert_dir, tiny_data, passages, tokenizer):
    messages: list[str] = []
    model = CrossEncoder.for_training(
        str(tiny_bert_dir), tokenizer, group_size=4, max_length=64, log=messages.append, loss=RerankLoss(4)
    )
    assert any("classifier" in m for m in messages), messages  # a plain BERT gets a new head, and says so
    model.eval()  # no dropout: the two forward passes below agree
    batch = _data(tiny_data, passages, tokenizer).batch(np.array([0, 1]), epoch=0)
    assert batch["input_ids"].shape[0] == 8
    with torch.no_grad():
        loss = float(model(batch, None).loss)
        logits = model.model(**batch).logits[:, 0].tolist()
    by_hand = []
    for group in (logits[:4], logits[4:]):
        by_hand.append(math.log(sum(math.exp(s) for s in group)) - group[0])
    assert loss == pytest.approx(sum(by_hand) / 2, abs=1e-5)
    assert loss > 0


def _grad_calls(model: CrossEncoder) -> list[tuple[int, bool, bool]]:
    """Each forward of the HF model: (pairs, gradients on, training mode), recorded by a hook."""
    calls: list[tuple[int, bool, bool]] = []
    model.model.register_forward_hook(
        lambda module, args, kwargs, out: calls.append(
            (kwargs["input_ids"].shape[0], torch.is_grad_enabled(), module.training)
        ),
        with_kwargs=True,
    )
    return calls


def test_backprop_top_runs_only_the_top_pairs_with_gradients(tiny_bert_dir, tiny_data, passages, tokenizer):
    """--group-size 8 --backprop-top 3: all 16 pairs of 2 queries scored without gradients and dropout, then only
    each query's positive + its 2 best-scored negatives run again with both; the loss is over those 3."""
    model = CrossEncoder.for_training(
        str(tiny_bert_dir), tokenizer, 8, 64, lambda _m: None, RerankLoss(8, backprop_top=3)
    )
    calls = _grad_calls(model)
    batch = _data(tiny_data, passages, tokenizer, group_size=8).batch(np.array([0, 1]), epoch=0)
    model.train()
    out = model(batch, None)
    assert calls == [(16, False, False), (6, True, True)]
    assert model.model.training  # the training mode is back after the selection pass
    out.loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.model.parameters())

    # By hand, in eval mode (no dropout, so both passes are deterministic): every logit, the top 3 per query.
    model.eval()
    with torch.no_grad():
        loss = float(model(batch, None).loss)
        logits = model.model(**batch).logits[:, 0].tolist()
    by_hand = []
    for group in (logits[:8], logits[8:]):
        negatives = sorted(group[1:], reverse=True)[:2]
        chosen = [group[0], *negatives]
        by_hand.append(math.log(sum(math.exp(s) for s in chosen)) - group[0])
    assert loss == pytest.approx(sum(by_hand) / 2, abs=1e-5)
    model.loss.backprop_top = None  # the whole group: more negatives in the denominator, a larger loss
    with torch.no_grad():
        assert float(model(batch, None).loss) > loss


def test_backprop_top_outside_the_group_is_refused(tiny_bert_dir, tokenizer):
    with pytest.raises(SimlmError, match="--backprop-top must be between 2 and --group-size \\(4\\)"):
        RerankLoss(4, backprop_top=5)


def test_groups_positive_first_deterministic_and_resampled(tiny_data, passages, tokenizer):
    data = _data(tiny_data, passages, tokenizer, group_size=4)
    assert data.unit == "queries" and len(data) == 2
    for epoch in range(5):
        query, docids = data.group(0, epoch)
        assert query == "how do proteins fold"
        assert docids[0] in ("d1", "d2") and len(docids) == 4
        assert not {"d1", "d2"} & set(docids[1:])  # the positive d2 listed as a negative is never drawn
        assert len(set(docids[1:])) == 3  # enough negatives: drawn without replacement
    assert data.group(0, 1) == _data(tiny_data, passages, tokenizer).group(0, 1)  # same seed, epoch, row
    assert any(data.group(0, e) != data.group(0, 0) for e in range(1, 5))  # another epoch, another sample
    first, again = data.batch(np.array([0, 1]), 3), data.batch(np.array([0, 1]), 3)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["input_ids"], data.batch(np.array([0, 1]), 4)["input_ids"])
    # Too few negatives: the group keeps its size with repeats.
    assert data.group(1, 0) == ("what is a gene", ["d4", "d5", "d5", "d5"])


def test_usable_examples_skips_queries_without_negatives(tmp_path):
    examples = [_example("a", "x", ["d1"], ["d1"]), _example("b", "y", ["d1"], ["d2"])]
    log: list[str] = []
    assert [e.qid for e in usable_examples(examples, "train.jsonl", log.append)] == ["b"]
    assert "skipped 1 queries" in log[0]
    with pytest.raises(InputError, match="no query has both"):
        usable_examples(examples[:1], "train.jsonl", log.append)


def test_tokenize_pairs_cuts_the_passage_and_survives_long_queries(tokenizer):
    long_text = "proteins fold " * 40
    tokens = tokenize_pairs(tokenizer, ["what is a gene", long_text], [long_text, "gene"], 16)
    assert [len(x) for x in tokens["input_ids"]] == [16, 16]
    query_part = tokenizer("what is a gene")["input_ids"]
    assert tokens["input_ids"][0][: len(query_part)] == query_part  # the query is whole


# -- through the CLI ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli(tmp_path_factory, tiny_bert_dir, tiny_data, cli_jobs) -> SimpleNamespace:
    """One dry-run training, then re-rank, score and a failing re-rank side by side (4 processes in all)."""
    root = tmp_path_factory.mktemp("rerank")
    train_file = root / "train.jsonl"
    train_file.write_text("".join(json.dumps(r) + "\n" for r in _train_records(tiny_data)))
    model = root / "model"
    trained = cli_jobs.run([
        "rerank", "train", "--train-file", train_file, "--corpus", tiny_data.corpus, "--output", model,
        "--model", tiny_bert_dir, "--dry-run", "--max-steps", "3", "--group-size", "4", "--backprop-top", "3",
        "--global-batch-size", "2", "--max-length", "64", "--device", "cpu", "--precision", "fp32",
    ]).result()  # fmt: skip
    assert trained.returncode == 0, trained.stderr

    # Each query's 12 documents in a fixed shuffled order with descending scores; rerank the top 5.
    rng = np.random.default_rng(0)
    run_in = root / "run.trec"
    lines = []
    for qid in tiny_data.query_texts:
        lines += [f"{qid} Q0 {d} {r} {20 - r}.5 bm25\n" for r, d in enumerate(rng.permutation(DOCS), 1)]
    run_in.write_text("".join(lines))
    bad_run = root / "bad.trec"
    bad_run.write_text("".join(lines[:2]) + "q1 Q0 d99 3 1.0 bm25\n")
    common = ["--model", model, "--queries", tiny_data.queries, "--corpus", tiny_data.corpus, "--device", "cpu",
              "--precision", "fp32"]  # fmt: skip
    six = root / "six.jsonl"  # 6 queries, of which --dry-run scores the first 4
    twice = [{**r, "qid": f"{r['qid']}-{i}"} for i in range(2) for r in _train_records(tiny_data)]
    six.write_text("".join(json.dumps(r) + "\n" for r in twice[:6]))
    jobs = {
        "score_dry": cli_jobs.run(["rerank", "score", "--model", model, "--train-file", six, "--corpus",
                                   tiny_data.corpus, "--output", root / "scored-dry.jsonl", "--dry-run",
                                   "--device", "cpu", "--precision", "fp32"]),
        "run": cli_jobs.run(["rerank", "run", "--run", run_in, "--output", root / "out.trec", "--depth", "5",
                             "--batch-size", "3", *common]),
        "run_drop": cli_jobs.run(["rerank", "run", "--run", run_in, "--output", root / "out_drop.trec", "--depth",
                                  "5", "--drop-tail", *common]),
        "bad": cli_jobs.run(["rerank", "run", "--run", bad_run, "--output", root / "bad_out.trec", *common]),
        "bad_top": cli_jobs.run(["rerank", "train", "--train-file", train_file, "--corpus", tiny_data.corpus,
                                 "--output", root / "bad_top", "--model", tiny_bert_dir, "--group-size", "4",
                                 "--backprop-top", "5", "--dry-run"]),
        "score": cli_jobs.run(["rerank", "score", "--model", model, "--train-file", train_file, "--corpus",
                               tiny_data.corpus, "--output", root / "scored.jsonl", "--max-negatives", "3",
                               "--device", "cpu", "--precision", "fp32"]),
    }  # fmt: skip
    return SimpleNamespace(root=root, model=model, trained=trained, run_in=run_in, bad_run=bad_run,
                           **{k: v.result() for k, v in jobs.items()})  # fmt: skip


def _cross_encoder_scores(model: Path, pairs: list[list[str]]) -> np.ndarray:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sentence_transformers import CrossEncoder as STCrossEncoder

        return np.asarray(STCrossEncoder(str(model), device="cpu").predict(pairs, batch_size=8))


def test_train_dry_run_writes_a_loadable_reranker(cli, tiny_data, passages):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    assert "skipped 1 queries with no negative" in cli.trained.stderr
    assert "initialised" in cli.trained.stderr and "classifier" in cli.trained.stderr
    log = [json.loads(line) for line in (cli.model / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]
    assert json.loads((cli.model / "simlm_reranker.json").read_text())["max_length"] == 64
    # --backprop-top 3 of --group-size 4: said in the log and kept in the model card.
    assert "listwise loss over the positive + the 2 top-scored negatives" in cli.trained.stderr
    assert "backprop_top=3" in (cli.model / "README.md").read_text()
    assert "1 process(es) x batch 2 x accumulation 1 = 2 queries per step" in cli.trained.stderr

    pairs = [[tiny_data.query_texts["q1"], passages[d].joined()] for d in DOCS[:4]]
    st_scores = _cross_encoder_scores(cli.model, pairs)
    hf = AutoModelForSequenceClassification.from_pretrained(cli.model).eval()
    tok = AutoTokenizer.from_pretrained(cli.model)
    with torch.no_grad():
        hf_scores = hf(**tok([p[0] for p in pairs], [p[1] for p in pairs], padding=True, return_tensors="pt"))
    np.testing.assert_allclose(st_scores, hf_scores.logits[:, 0].numpy(), atol=1e-5)  # raw logits, no sigmoid


def _read_trec(path: Path) -> dict[str, list[tuple[str, int, float]]]:
    out: dict[str, list[tuple[str, int, float]]] = {}
    for line in path.read_text().splitlines():
        qid, _, docid, rank, score, _tag = line.split()
        out.setdefault(qid, []).append((docid, int(rank), float(score)))
    return out


@pytest.mark.parametrize("tail", ["keep", "drop"])
def test_rerank_run_sorts_the_head_and_matches_cross_encoder(cli, tiny_data, passages, tail):
    done = cli.run if tail == "keep" else cli.run_drop
    output = cli.root / ("out.trec" if tail == "keep" else "out_drop.trec")
    assert done.returncode == 0, done.stderr
    assert str(output) in done.stderr
    assert all(line.split()[5] == "simlm-rerank" for line in output.read_text().splitlines())
    inputs = {qid: [d for d, _, _ in ranking] for qid, ranking in _read_trec(cli.run_in).items()}
    out = _read_trec(output)
    assert set(out) == set(tiny_data.query_texts)
    for qid, ranking in out.items():
        head, rest = ranking[:5], ranking[5:]
        assert {d for d, _, _ in head} == set(inputs[qid][:5])  # the run's first 5, re-ordered
        # keep: the 7 below depth 5 follow in the run's order; drop: nothing below the head
        assert [d for d, _, _ in rest] == (inputs[qid][5:] if tail == "keep" else [])
        assert [r for _, r, _ in ranking] == list(range(1, len(ranking) + 1))
        scores = [s for _, _, s in ranking]
        assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores)
        expected = _cross_encoder_scores(cli.model, [[tiny_data.query_texts[qid], passages[d].joined()]
                                                     for d, _, _ in head])  # fmt: skip
        np.testing.assert_allclose(scores[:5], expected, atol=1e-4)


def test_backprop_top_larger_than_the_group_is_one_line_error(cli):
    assert cli.bad_top.returncode == 2
    assert cli.bad_top.stderr.strip().splitlines() == [
        "simlm: error: --backprop-top must be between 2 and --group-size (4), got 5"
    ], cli.bad_top.stderr
    assert not (cli.root / "bad_top").exists()


def test_rerank_run_missing_document_is_one_line_error(cli):
    assert cli.bad.returncode == 2
    lines = cli.bad.stderr.strip().splitlines()
    assert len(lines) == 1, cli.bad.stderr
    assert f"{cli.bad_run}:3" in lines[0] and "'d99'" in lines[0] and "Traceback" not in cli.bad.stderr
    assert not (cli.root / "bad_out.trec").exists()
    assert not list(cli.root.glob(".bad_out.trec.*"))  # no temporary left either


def test_rerank_score_fills_every_score(cli, tiny_data, passages):
    assert cli.score.returncode == 0, cli.score.stderr
    records = [json.loads(line) for line in (cli.root / "scored.jsonl").read_text().splitlines()]
    assert [r["qid"] for r in records] == list(tiny_data.query_texts)
    for record in records:
        assert [c["docid"] for c in record["positives"]] == POSITIVES[record["qid"]]
        assert len(record["negatives"]) == (0 if record["qid"] == "q3" else 3)
        candidates = record["positives"] + record["negatives"]
        assert all(isinstance(c["score"], float) for c in candidates)
        expected = _cross_encoder_scores(cli.model, [[record["query"], passages[c["docid"]].joined()]
                                                     for c in candidates])  # fmt: skip
        np.testing.assert_allclose([c["score"] for c in candidates], expected, atol=1e-4)


def test_rerank_score_has_the_dry_run_the_readme_lists(cli):
    """The README listed --dry-run for every rerank command; `rerank score` had none (issue 10, item 14)."""
    assert cli.score_dry.returncode == 0, cli.score_dry.stderr
    six = (cli.root / "six.jsonl").read_text().splitlines()
    assert len(six) == 6
    scored = (cli.root / "scored-dry.jsonl").read_text().splitlines()
    assert [json.loads(line)["qid"] for line in scored] == [json.loads(line)["qid"] for line in six[:4]]
    # No --max-negatives: every negative of a query gets its teacher score (what distill then draws from).
    for given, got in zip(map(json.loads, six), map(json.loads, scored)):
        positives = {c["docid"] for c in given["positives"]}  # a positive listed as a negative is dropped
        assert [c["docid"] for c in got["negatives"]] == [
            c["docid"] for c in given["negatives"] if c["docid"] not in positives
        ]
        assert all(isinstance(c["score"], float) for c in got["negatives"])


def test_rerank_train_keeps_the_length_a_reranker_was_trained_with(cli, tiny_data, tmp_path):
    """`rerank train --model RERANKER` without --max-length continues at RERANKER's length (simlm_reranker.json), not
    at the paper's 192; a flag still wins (issue 23, item 4)."""
    from simlm_cli.models.cross_encoder import resolve_reranker_max_length
    from simlm_cli.pipeline.train import train_reranker
    from simlm_cli.training.trainer import TrainConfig

    assert resolve_reranker_max_length(cli.model, None) == (64, "simlm_reranker.json")
    assert resolve_reranker_max_length(cli.model, 100) == (100, "flags")
    assert resolve_reranker_max_length(tmp_path, None) == (192, "paper defaults")
    train_file = tmp_path / "train.jsonl"
    train_file.write_text("".join(json.dumps(r) + "\n" for r in _train_records(tiny_data)))
    messages: list[str] = []
    config = TrainConfig(objective="rerank", corpus=str(tiny_data.corpus), output=str(tmp_path / "again"),
                         model=str(cli.model), max_steps=1, batch_size=2, max_length=None, device="cpu",
                         precision="fp32", train_file=str(train_file))  # fmt: skip
    train_reranker(train_file, config, group_size=3, log=messages.append)
    assert json.loads((tmp_path / "again" / "simlm_reranker.json").read_text())["max_length"] == 64
    assert any("pairs of <= 64 tokens (simlm_reranker.json)" in m for m in messages), messages


def test_rerank_train_resolves_the_runtime_once_and_takes_batch_4_on_cpu(cli, tiny_data, tmp_path, monkeypatch):
    """Issue 27, item 2: `train_reranker` resolved the runtime a second time to pick its CPU batch; the trainer's
    one runtime now picks it (4 queries on CPU, as before)."""
    import simlm_cli.training.trainer as trainer_module
    from simlm_cli.device import resolve_runtime
    from simlm_cli.pipeline.train import train_reranker
    from simlm_cli.training.trainer import TrainConfig

    calls = []

    def counted(*args, **kwargs):
        calls.append(args)
        return resolve_runtime(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "resolve_runtime", counted)
    monkeypatch.setattr("simlm_cli.pipeline.train.resolve_runtime", counted, raising=False)
    train_file = tmp_path / "train.jsonl"
    train_file.write_text("".join(json.dumps(r) + "\n" for r in _train_records(tiny_data)))
    messages: list[str] = []
    config = TrainConfig(objective="rerank", corpus=str(tiny_data.corpus), output=str(tmp_path / "out"),
                         model=str(cli.model), max_steps=1, max_length=None, device="cpu", precision="fp32",
                         train_file=str(train_file))  # fmt: skip
    train_reranker(train_file, config, group_size=3, log=messages.append)
    assert len(calls) == 1
    assert any("x batch 4 x accumulation" in m for m in messages), messages
    assert config.batch_size is None and config.max_length is None  # the caller's config is left as it was
