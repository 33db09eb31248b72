"""The bi-encoder that `simlm train` / `simlm distill` fine-tune: its data, its outputs, its errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from simlm_cli.errors import InputError
from simlm_cli.models.biencoder import BiEncoder
from simlm_cli.models.settings import EncoderSettings
from simlm_cli.training.finetuning.biencoder import GroupData, load_groups
from simlm_cli.training.losses import ContrastiveLoss, DistillationLoss

TRAIN = [
    {"qid": "q1", "query": "how do proteins fold", "positives": [{"docid": "d1", "score": 3.0}, "d2"],
     "negatives": [{"docid": d, "score": float(i)} for i, d in enumerate(["d3", "d4", "d5", "d6", "d7"])]},
    {"qid": "q2", "query": "what is a gene", "positives": ["d4"], "negatives": ["d5", "d6", "d1"]},
    {"qid": "q3", "query": "why do stars shine", "positives": [], "negatives": ["d1"]},
    {"qid": "q4", "query": "where does rain come from", "positives": ["d11"], "negatives": ["d10", "d12", "d9"]},
]  # fmt: skip


def write_train(path: Path, records=TRAIN) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def scored(records=TRAIN) -> list[dict]:
    """The same file as `simlm rerank score` writes it: a score on every passage."""
    out = []
    for r in records:
        fill = [({"docid": c} if isinstance(c, str) else dict(c)) for c in r["positives"]]
        negs = [({"docid": c} if isinstance(c, str) else dict(c)) for c in r["negatives"]]
        for i, c in enumerate(fill + negs):
            c["score"] = 5.0 - i
        out.append({**r, "positives": fill, "negatives": negs})
    return out


@pytest.fixture
def groups(tiny_data, tiny_st_dir, tmp_path):
    from transformers import AutoTokenizer

    examples, passages = load_groups(write_train(tmp_path / "train.jsonl"), tiny_data.corpus, log=lambda m: None)
    tokenizer = AutoTokenizer.from_pretrained(tiny_st_dir)
    settings = EncoderSettings(model=str(tiny_st_dir), passage_format="pair")
    return examples, passages, tokenizer, settings


def test_load_groups_skips_queries_without_positive_and_keeps_only_named_passages(groups):
    examples, passages, _, _ = groups
    assert [e.qid for e in examples] == ["q1", "q2", "q4"]
    assert set(passages) == {"d1", "d2", "d3", "d4", "d5", "d6", "d7", "d9", "d10", "d11", "d12"}


def test_group_positive_first_negatives_from_the_list_and_resampled_per_epoch(groups):
    examples, passages, tokenizer, settings = groups
    data = GroupData(examples, passages, tokenizer, settings, negatives=3, seed=7)
    seen = set()
    for epoch in range(6):
        query, ids, _ = data.group(0, epoch)
        assert query == "how do proteins fold"
        assert ids[0] in {"d1", "d2"}
        assert len(ids) == 4 and set(ids[1:]) <= {"d3", "d4", "d5", "d6", "d7"} and len(set(ids[1:])) == 3
        assert data.group(0, epoch) == (query, ids, data.group(0, epoch)[2])  # a pure function of (row, epoch)
        seen.add(tuple(ids))
    assert len(seen) > 1, "negatives must be re-sampled each epoch"
    # fewer negatives than asked: they repeat rather than shrink the group
    _, ids, _ = GroupData(examples, passages, tokenizer, settings, negatives=5, seed=7).group(1, 0)
    assert len(ids) == 6 and set(ids[1:]) <= {"d5", "d6", "d1"}


def test_batch_tensors_and_teacher_scores(groups, tmp_path, tiny_data):
    examples, passages, tokenizer, settings = groups
    data = GroupData(examples, passages, tokenizer, settings, negatives=2, seed=1)
    batch = data.batch(np.array([0, 2]), 0)
    assert batch["q_input_ids"].shape[0] == 2 and batch["p_input_ids"].shape[0] == 6
    assert batch["q_input_ids"].shape[1] <= settings.query_max_length
    assert "teacher_scores" not in batch
    teacher_examples, _ = load_groups(
        write_train(tmp_path / "scored.jsonl", scored()), tiny_data.corpus, need_scores=True, log=lambda m: None
    )
    teacher = GroupData(teacher_examples, passages, tokenizer, settings, negatives=2, seed=1, teacher_scores=True)
    scores = teacher.batch(np.array([0]), 0)["teacher_scores"]
    assert scores.shape == (1, 3) and scores[0, 0] in (5.0, 4.0)


def test_distillation_draws_from_every_scored_negative_anew_each_epoch(groups, tmp_path, tiny_data):
    """`simlm rerank score` scores every mined negative; distill draws its n of them per epoch, seeded, and each
    drawn passage brings its own teacher score (issue 23: simlm used to score, and so use, only the first n)."""
    _, passages, tokenizer, settings = groups
    records = scored()
    examples, _ = load_groups(write_train(tmp_path / "s.jsonl", records), tiny_data.corpus, need_scores=True,
                              log=lambda m: None)  # fmt: skip
    teacher = {c["docid"]: c["score"] for c in records[0]["positives"] + records[0]["negatives"]}

    def draws(seed: int) -> list[tuple[list[str], list[float]]]:
        data = GroupData(examples, passages, tokenizer, settings, negatives=2, seed=seed, teacher_scores=True)
        return [data.group(0, epoch)[1:] for epoch in range(6)]

    seen = set()
    for ids, scores in draws(7):
        assert scores == [teacher[d] for d in ids]  # each passage with its own teacher score
        assert len(set(ids[1:])) == 2
        seen.update(ids[1:])
    assert len({tuple(ids) for ids, _ in draws(7)}) > 1  # another epoch, other negatives
    assert seen - {"d3", "d4"}, "only the first 2 negatives were ever drawn"
    assert draws(7) == draws(7) and draws(7) != draws(8)  # reproducible by seed


@pytest.mark.parametrize(
    "records, needs, message",
    [
        ([{"qid": "q1", "query": "x", "positives": ["d1"], "negatives": ["nope"]}], {}, "'nope' is not in the corpus"),
        ([{"qid": "q1", "query": "x", "positives": ["d1"], "negatives": ["d2"]}], {"need_scores": True}, "no score"),
        ([{"qid": "q1", "positives": ["d1"]}], {}, "field 'query'"),
    ],
)
def test_bad_training_files_name_file_and_line(tmp_path, tiny_data, records, needs, message):
    path = write_train(tmp_path / "bad.jsonl", [scored()[1], *records])
    with pytest.raises(InputError) as err:
        load_groups(path, tiny_data.corpus, log=lambda m: None, **needs)
    assert f"{path}:2" in str(err.value) and message in str(err.value)


def test_loss_falls_on_a_toy_task(groups):
    examples, passages, tokenizer, settings = groups
    torch.manual_seed(0)
    model = BiEncoder.for_training(settings.model, tokenizer, settings, ContrastiveLoss(0.05))
    data = GroupData(examples, passages, tokenizer, settings, negatives=2, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = data.batch(np.arange(len(examples)), 0)
    losses = []
    for _ in range(15):
        out = model(batch)
        losses.append(float(out.loss.detach()))
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert losses[-1] < 0.5 * losses[0]


def test_distillation_adds_alpha_times_contrastive(groups, tmp_path, tiny_data):
    from simlm_cli.training.losses.distillation import teacher_kl

    _, passages, tokenizer, settings = groups
    examples, _ = load_groups(
        write_train(tmp_path / "scored.jsonl", scored()), tiny_data.corpus, need_scores=True, log=lambda m: None
    )
    data = GroupData(examples, passages, tokenizer, settings, negatives=2, seed=0, teacher_scores=True)
    batch = data.batch(np.arange(3), 0)
    loss = DistillationLoss(ContrastiveLoss(0.05), alpha=0.2)
    model = BiEncoder.for_training(settings.model, tokenizer, settings, loss).eval()
    with torch.no_grad():
        out = model(batch)
        q, p = model.embed("q_", batch), model.embed("p_", batch)
        student = (q.unsqueeze(1) * p.view(3, 3, -1)).sum(-1) / 0.05
        expected = teacher_kl(student, batch["teacher_scores"]) + 0.2 * ContrastiveLoss(0.05)(q, p).loss
    assert torch.allclose(out.loss, expected, atol=1e-5)
    assert set(out.parts) == {"kl", "contrastive"}
    assert model.card_kind.what == "bi-encoder retriever (distilled)"  # the loss, not a name, says so in the card


def test_queries_without_enough_negatives_are_skipped_and_counted(tmp_path, tiny_data):
    """`simlm mine` writes judged queries the run missed with no negatives: training skips them, says how many and
    where the first is, and a negative that is also a positive of its query is never used."""
    records = [
        scored()[1],
        {"qid": "q8", "query": "x", "positives": ["d1"], "negatives": []},
        {"qid": "q9", "query": "y", "positives": ["d1"], "negatives": ["d1"]},  # its only negative is its positive
    ]
    path = write_train(tmp_path / "few.jsonl", records)
    said = []
    examples, _ = load_groups(path, tiny_data.corpus, min_negatives=1, log=said.append)
    assert [e.qid for e in examples] == [scored()[1]["qid"]]
    assert said == [f"{path}: skipped 2 queries (2 with fewer than 1 negative(s), the first on line 2)"]
    only_bad = write_train(tmp_path / "none.jsonl", records[1:])
    with pytest.raises(InputError, match="no usable training query .*fewer than 1 negative"):
        load_groups(only_bad, tiny_data.corpus, min_negatives=1, log=said.append)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999", "1" + "0" * 400])
def test_a_non_finite_teacher_score_is_an_error_naming_file_and_line(tmp_path, tiny_data, token):
    """Python's JSON reader takes the bare token NaN: `distill` then trained an all-NaN model (issue 10, item 3)."""
    good = json.dumps(scored()[0])
    bad = json.dumps(scored()[1]).replace('"score": 5.0', f'"score": {token}', 1)
    path = tmp_path / "scored.jsonl"
    path.write_text(good + "\n" + bad + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=f"{path}:2: .*{token[:20]}.* is not a finite number"):
        load_groups(path, tiny_data.corpus, need_scores=True, log=lambda m: None)
