"""The distillation loss: its KL term against values worked out by hand, and the module against the same sum
written with torch.nn.functional."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from simlm_cli.training.losses import ContrastiveLoss, DistillationLoss
from simlm_cli.training.losses.distillation import teacher_kl


def test_distill_zero_when_student_equals_teacher():
    scores = torch.tensor([[3.0, 1.0, 0.5], [-1.0, 2.0, 0.0]])
    assert teacher_kl(scores, scores.clone()).item() == pytest.approx(0.0, abs=1e-7)
    # with a teacher temperature the target is softmax(teacher / T): equal to the student scaled the same way
    assert teacher_kl(scores / 2, scores, teacher_temperature=2.0).item() == pytest.approx(0.0, abs=1e-7)


def softmax(row: list[float]) -> list[float]:
    z = sum(math.exp(x) for x in row)
    return [math.exp(x) / z for x in row]


def test_distill_matches_hand_kl():
    student = [[2.0, 0.0, -1.0], [0.0, 1.0, 1.0]]
    teacher = [[4.0, 2.0, 0.0], [1.0, 3.0, -2.0]]
    tt = 2.0
    kl = 0.0
    for s_row, t_row in zip(student, teacher, strict=True):
        target = softmax([x / tt for x in t_row])
        predicted = softmax(s_row)
        kl += sum(t * math.log(t / p) for t, p in zip(target, predicted, strict=True))
    expected = kl / 2  # batchmean: summed over a row, averaged over the 2 rows
    loss = teacher_kl(torch.tensor(student, dtype=torch.float64), torch.tensor(teacher, dtype=torch.float64), tt)
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="one shape"):
        teacher_kl(torch.zeros(2, 3), torch.zeros(2, 4))


def test_distillation_is_kl_plus_alpha_times_contrastive():
    """B=3 queries, G=4 passages each: KL(softmax(teacher/2) || softmax(q.p/t)) + 0.3 x the contrastive loss."""
    rng = torch.Generator().manual_seed(7)
    q = F.normalize(torch.randn(3, 8, generator=rng, dtype=torch.float64), dim=-1)
    p = F.normalize(torch.randn(12, 8, generator=rng, dtype=torch.float64), dim=-1)
    teacher = torch.randn(3, 4, generator=rng)  # float32, as GroupData gives them
    contrastive = ContrastiveLoss(0.05)
    out = DistillationLoss(contrastive, alpha=0.3, teacher_temperature=2.0)(q, p, {"teacher_scores": teacher})
    student = torch.stack([torch.stack([q[i] @ p[i * 4 + j] for j in range(4)]) for i in range(3)]) / 0.05
    target = torch.softmax(teacher.double() / 2.0, dim=-1)
    kl = (target * (target.log() - torch.log_softmax(student, dim=-1))).sum() / 3
    expected = kl + 0.3 * contrastive(q, p).loss
    # the loss takes the teacher's softmax in float32 (it casts the scores), this one in float64
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert out.parts["kl"].item() == pytest.approx(kl.item(), rel=1e-6)
    assert out.parts["contrastive"].item() == pytest.approx(contrastive(q, p).loss.item(), rel=1e-12)


def test_distillation_needs_teacher_scores():
    q, p = torch.eye(2), torch.eye(2)
    with pytest.raises(ValueError, match="teacher_scores"):
        DistillationLoss(ContrastiveLoss())(q, p, {})
    with pytest.raises(ValueError, match="teacher_temperature"):
        DistillationLoss(ContrastiveLoss(), teacher_temperature=0.0)
