"""Temporary: the loss modules against the functions they replace, bit for bit, on fixed batches."""

from __future__ import annotations

import pytest
import torch

from simlm_cli.training.finetuning import losses as old
from simlm_cli.training.losses import ContrastiveLoss, DistillationLoss, ListwiseLoss
from simlm_cli.training.losses.listwise import listwise_top


def batch(dtype):
    rng = torch.Generator().manual_seed(3)
    q = torch.nn.functional.normalize(torch.randn(4, 16, generator=rng, dtype=dtype), dim=-1)
    p = torch.nn.functional.normalize(torch.randn(12, 16, generator=rng, dtype=dtype), dim=-1)
    teacher = torch.randn(4, 3, generator=rng, dtype=dtype) * 5
    doc_ids = torch.tensor([0, 1, 2, 3, 4, 0, 6, 7, 8, 3, 10, 11])
    return q, p, teacher, doc_ids


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("variant", ["paper", "full"])
@pytest.mark.parametrize("with_ids", [False, True])
def test_bit_identical(dtype, variant, with_ids):
    q, p, teacher, doc_ids = batch(dtype)
    ids = doc_ids if with_ids else None
    for t in (0.02, 0.05):
        qa, pa = q.clone().requires_grad_(), p.clone().requires_grad_()
        qb, pb = q.clone().requires_grad_(), p.clone().requires_grad_()
        before = old.contrastive_loss(qa, pa, t, variant, doc_ids=ids)
        after = ContrastiveLoss(t, variant)(qb, pb, {"doc_ids": ids} if with_ids else None).loss
        assert torch.equal(before, after)
        before.backward()
        after.backward()
        assert torch.equal(qa.grad, qb.grad) and torch.equal(pa.grad, pb.grad)
        # distillation exactly as BiEncoderObjective.forward computed it
        contrastive = old.contrastive_loss(q, p, t, variant, doc_ids=ids)
        student = torch.einsum("bd,bgd->bg", q, p.view(4, 3, -1)) / t
        kl = old.distill_loss(student, teacher.float(), 2.0)
        expected = kl + 0.2 * contrastive
        b = {"teacher_scores": teacher, **({"doc_ids": ids} if with_ids else {})}
        out = DistillationLoss(ContrastiveLoss(t, variant), 0.2, 2.0)(q, p, b)
        assert torch.equal(out.loss, expected) and torch.equal(out.parts["kl"], kl)
        assert torch.equal(out.parts["contrastive"], contrastive)


def test_listwise_bit_identical():
    scores = torch.randn(5, 8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(old.listwise_loss(scores), ListwiseLoss()(scores).loss)
    assert torch.equal(old.listwise_top(scores, 4), listwise_top(scores, 4))
