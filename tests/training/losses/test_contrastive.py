"""The contrastive loss against values worked out by hand, and the DDP gathering against one process."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from simlm_cli.errors import SimlmError
from simlm_cli.training.losses import ContrastiveLoss
from simlm_cli.training.losses.contrastive import gather_with_grad

T = 0.1  # a temperature that keeps the hand-computed exponentials moderate


def contrastive_loss(q, p, temperature=0.02, variant="paper", doc_ids=None) -> torch.Tensor:
    return ContrastiveLoss(temperature, variant)(q, p, None if doc_ids is None else {"doc_ids": doc_ids}).loss


def unit(angle: float) -> list[float]:
    return [math.cos(angle), math.sin(angle)]


# B=2 queries, G=2 passages each (positive, hard negative), D=2: unit vectors given by their angles, so the cosine
# of two of them is the cosine of the angle between them.
Q_ANGLES = [0.0, 1.5]
P_ANGLES = [0.3, 1.0, 1.2, 2.5]  # p0 = q0's positive, p1 its hard negative, p2 = q1's positive, p3 its hard negative


def s(a: float, b: float) -> float:
    return math.cos(a - b)


def e(a: float, b: float) -> float:
    return math.exp(s(a, b) / T)


def tensors(q_angles: list[float] = Q_ANGLES, p_angles: list[float] = P_ANGLES) -> tuple[torch.Tensor, torch.Tensor]:
    q = torch.tensor([unit(a) for a in q_angles], dtype=torch.float64)
    p = torch.tensor([unit(a) for a in p_angles], dtype=torch.float64)
    return q, p


def hand_paper() -> float:
    q0, q1 = Q_ANGLES
    p0, p1, p2, p3 = P_ANGLES
    # row 0: positive p0, N_0 = {p1, p2, p3}; each negative with q0 and with the positive p0
    num0 = e(q0, p0)
    den0 = num0 + (e(q0, p1) + e(p0, p1)) + (e(q0, p2) + e(p0, p2)) + (e(q0, p3) + e(p0, p3))
    # row 1: positive p2, N_1 = {p0, p1, p3}
    num1 = e(q1, p2)
    den1 = num1 + (e(q1, p0) + e(p2, p0)) + (e(q1, p1) + e(p2, p1)) + (e(q1, p3) + e(p2, p3))
    return -(math.log(num0 / den0) + math.log(num1 / den1)) / 2


def hand_full() -> float:
    q0, q1 = Q_ANGLES
    p0, p1, p2, p3 = P_ANGLES
    # row 0: q0 vs all 4 passages, + positive p0 vs the other query q1, + q0 vs q1, + p0 vs the other positive p2
    num0 = e(q0, p0)
    den0 = e(q0, p0) + e(q0, p1) + e(q0, p2) + e(q0, p3) + e(p0, q1) + e(q0, q1) + e(p0, p2)
    # row 1: q1 vs all 4 passages, + p2 vs q0, + q1 vs q0, + p2 vs p0
    num1 = e(q1, p2)
    den1 = e(q1, p0) + e(q1, p1) + e(q1, p2) + e(q1, p3) + e(p2, q0) + e(q1, q0) + e(p2, p0)
    return -(math.log(num0 / den0) + math.log(num1 / den1)) / 2


@pytest.mark.parametrize(("variant", "expected"), [("paper", hand_paper), ("full", hand_full)])
def test_contrastive_matches_hand_computation(variant, expected):
    q, p = tensors()
    loss = contrastive_loss(q, p, temperature=T, variant=variant)
    assert loss.shape == ()
    assert loss.item() == pytest.approx(expected(), rel=1e-12)


def test_variants_differ_and_default_is_paper():
    q, p = tensors()
    assert hand_paper() != pytest.approx(hand_full())
    assert contrastive_loss(q, p, temperature=T).item() == pytest.approx(hand_paper(), rel=1e-12)


@pytest.mark.parametrize("variant", ["paper", "full"])
def test_contrastive_gradients_finite_in_float32(variant):
    rng = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(4, 16, generator=rng), dim=-1).requires_grad_()
    p = torch.nn.functional.normalize(torch.randn(12, 16, generator=rng), dim=-1).requires_grad_()
    loss = contrastive_loss(q, p, variant=variant)  # the paper's temperature 0.02: logits up to 50
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(q.grad).all() and torch.isfinite(p.grad).all()
    assert q.grad.abs().sum() > 0 and p.grad.abs().sum() > 0


@pytest.mark.parametrize("variant", ["paper", "full"])
def test_contrastive_lower_when_positives_closer(variant):
    far = tensors(p_angles=[0.8, 1.0, 0.6, 2.5])
    near = tensors(p_angles=[0.05, 1.0, 1.45, 2.5])  # only the positives move, towards their queries
    assert contrastive_loss(*near, temperature=T, variant=variant) < contrastive_loss(
        *far, temperature=T, variant=variant
    )


def test_contrastive_rejects_bad_arguments():
    q, p = tensors()
    with pytest.raises(SimlmError, match="--loss nope: expected one of paper, full"):
        contrastive_loss(q, p, variant="nope")
    with pytest.raises(ValueError, match="B\\*G"):
        contrastive_loss(q, p[:3])
    with pytest.raises(SimlmError, match="temperature"):
        contrastive_loss(q, p, temperature=0.0)


def test_copies_of_a_positive_are_left_out_of_its_row_paper():
    """q1's hard negative p3 is the same document as q0's positive p0 (doc ids [0, 1, 2, 0]): for row 0 it is
    neither a negative of q0 nor of p0 (without the ids it would add e^{s(p0,p0)/t} = e^{1/t}); for row 1 it is an
    ordinary hard negative."""
    p_angles = [0.3, 1.0, 1.2, 0.3]
    q, p = tensors(p_angles=p_angles)
    q0, q1 = Q_ANGLES
    p0, p1, p2, p3 = p_angles
    num0 = e(q0, p0)
    den0 = num0 + (e(q0, p1) + e(p0, p1)) + (e(q0, p2) + e(p0, p2))
    num1 = e(q1, p2)
    den1 = num1 + (e(q1, p0) + e(p2, p0)) + (e(q1, p1) + e(p2, p1)) + (e(q1, p3) + e(p2, p3))
    expected = -(math.log(num0 / den0) + math.log(num1 / den1)) / 2
    loss = contrastive_loss(q, p, temperature=T, doc_ids=torch.tensor([0, 1, 2, 0]))
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    assert contrastive_loss(q, p, temperature=T).item() > loss.item()  # the copy was counted as a negative


def test_copies_of_a_positive_are_left_out_of_its_row_full():
    """Both queries have the same positive document (columns 0 and 2, doc ids [0, 1, 0, 3])."""
    p_angles = [0.3, 1.0, 0.3, 2.5]
    q, p = tensors(p_angles=p_angles)
    q0, q1 = Q_ANGLES
    p0, p1, p2, p3 = p_angles
    # row 0: q0 vs the passages but the copy p2; p0 vs q1; q0 vs q1; p0 vs the other positive p2: left out (a copy)
    num0 = e(q0, p0)
    den0 = e(q0, p0) + e(q0, p1) + e(q0, p3) + e(p0, q1) + e(q0, q1)
    # row 1: q1 vs the passages but the copy p0; p2 vs q0; q1 vs q0; p2 vs p0: left out
    num1 = e(q1, p2)
    den1 = e(q1, p1) + e(q1, p2) + e(q1, p3) + e(p2, q0) + e(q1, q0)
    expected = -(math.log(num0 / den0) + math.log(num1 / den1)) / 2
    loss = contrastive_loss(q, p, temperature=T, variant="full", doc_ids=torch.tensor([0, 1, 0, 3]))
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_distinct_doc_ids_change_nothing():
    q, p = tensors()
    for variant, expected in (("paper", hand_paper), ("full", hand_full)):
        loss = contrastive_loss(q, p, temperature=T, variant=variant, doc_ids=torch.arange(4))
        assert loss.item() == pytest.approx(expected(), rel=1e-12)
    with pytest.raises(ValueError, match="one document id per passage"):
        contrastive_loss(q, p, doc_ids=torch.arange(3))


def test_gather_without_process_group_is_identity():
    t = torch.randn(3, 2)
    assert gather_with_grad(t) is t


# -- DDP: two gloo processes against one process on the whole batch -------------------------------------------
def load_worker():
    path = Path(__file__).with_name("gather_worker.py")
    spec = importlib.util.spec_from_file_location("simlm_gather_worker", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ddp_gathered_loss_and_gradients_equal_whole_batch(tmp_path):
    worker = load_worker()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # --standalone picks a free rendezvous port itself, so concurrent runs on one machine do not collide
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           worker.__file__, str(tmp_path)]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    world = ranks[0]["world"]
    assert world == 2 and [r["rank"] for r in ranks] == [0, 1]
    q, p = worker.fixed_batch()
    local, group = worker.QUERIES // world, worker.GROUP
    for variant, key, doc_ids in (
        ("paper", "paper/True", None),
        ("full", "full/True", None),
        ("paper", "paper/dup", worker.DUP_DOC_IDS),  # a document id shared across the ranks
        ("full", "full/dup", worker.DUP_DOC_IDS),
    ):
        q_all, p_all = q.clone().requires_grad_(), p.clone().requires_grad_()
        whole = contrastive_loss(q_all, p_all, worker.TEMPERATURE, variant, doc_ids=doc_ids)
        whole.backward()
        gathered = [r["results"][key] for r in ranks]
        # the whole-batch mean loss is the mean of the ranks' local means (equal local batch sizes)
        assert torch.stack([g["loss"] for g in gathered]).mean().item() == pytest.approx(whole.item(), abs=1e-12)
        for rank, g in enumerate(gathered):
            # each rank's grad already sums every rank's loss gradient on its rows (the gather's backward);
            # DDP divides by the world size, which must give the whole-batch mean loss's gradient
            # (p always, and q under "full", get gradient from other ranks' losses: a gather without grad fails)
            q_rows, p_rows = (
                slice(rank * local, (rank + 1) * local),
                slice(rank * local * group, (rank + 1) * local * group),
            )
            torch.testing.assert_close(g["q_grad"] / world, q_all.grad[q_rows], rtol=0, atol=1e-6)
            torch.testing.assert_close(g["p_grad"] / world, p_all.grad[p_rows], rtol=0, atol=1e-6)
            assert g["q_grad"].abs().sum() > 0
        if doc_ids is not None:
            continue
        # gather=False: each rank sees only its own half, exactly as one process on that half
        for rank, r in enumerate(ranks):
            alone = contrastive_loss(q[rank * local : (rank + 1) * local], p[rank * local * group : (rank + 1) * local * group],
                                     worker.TEMPERATURE, variant)  # fmt: skip
            assert r["results"][f"{variant}/False"]["loss"].item() == pytest.approx(alone.item(), abs=1e-12)
            assert alone.item() != pytest.approx(r["results"][f"{variant}/True"]["loss"].item())


def test_paper_variant_against_logits_built_one_by_one():
    """Each row's logits listed pair by pair (q_i against every passage, d_i+ against every passage but itself),
    then torch.nn.functional.cross_entropy: the same loss as the module's masked matrices."""
    rng = torch.Generator().manual_seed(5)
    q = torch.nn.functional.normalize(torch.randn(3, 6, generator=rng, dtype=torch.float64), dim=-1)
    p = torch.nn.functional.normalize(torch.randn(9, 6, generator=rng, dtype=torch.float64), dim=-1)
    losses = []
    for i in range(3):
        positive = p[i * 3]
        logits = [q[i] @ p[n] for n in range(9)] + [positive @ p[n] for n in range(9) if n != i * 3]
        row = torch.stack(logits) / 0.05
        losses.append(torch.nn.functional.cross_entropy(row.unsqueeze(0), torch.tensor([i * 3])))
    expected = torch.stack(losses).mean()
    assert contrastive_loss(q, p, temperature=0.05).item() == pytest.approx(expected.item(), rel=1e-12)
