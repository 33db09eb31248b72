"""Distillation (`simlm distill`): KL(teacher || student) over each query's group, plus alpha x a contrastive loss."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from simlm_cli.training.losses.contrastive import BiEncoderLoss, ContrastiveLoss
from simlm_cli.training.step import StepOutput


def teacher_kl(student: Tensor, teacher: Tensor, teacher_temperature: float = 1.0) -> Tensor:
    """KL(softmax(teacher / teacher_temperature) || softmax(student)), summed over a row and averaged over rows.

    Both are [B, G] over one query's group (column 0 the positive, as everywhere); `student` holds logits already
    divided by the bi-encoder's temperature (s/t), `teacher` the re-ranker's raw scores.
    """
    if student.shape != teacher.shape or student.ndim != 2:
        raise ValueError(f"expected student and teacher of one shape [B, G], got {tuple(student.shape)} and "
                         f"{tuple(teacher.shape)}")  # fmt: skip
    target = F.log_softmax(teacher / teacher_temperature, dim=-1)
    return F.kl_div(F.log_softmax(student, dim=-1), target, reduction="batchmean", log_target=True)


class DistillationLoss(BiEncoderLoss):
    """KL(teacher || student) + alpha x `contrastive`. The student's logits over a query's group are its cosines
    divided by the contrastive loss's temperature; the teacher's are `batch["teacher_scores"]` [B, G] (the
    re-ranker's raw scores) divided by `teacher_temperature`."""

    card_note = " (distilled)"

    def __init__(self, contrastive: ContrastiveLoss, alpha: float = 0.2, teacher_temperature: float = 1.0):
        super().__init__()
        if teacher_temperature <= 0:
            raise ValueError(f"teacher_temperature must be positive, got {teacher_temperature}")
        self.contrastive = contrastive
        self.alpha = alpha
        self.teacher_temperature = teacher_temperature

    def forward(self, q: Tensor, p: Tensor, batch: Mapping[str, Tensor] | None = None) -> StepOutput:
        if batch is None or "teacher_scores" not in batch:
            raise ValueError("distillation needs the batch's teacher_scores [B, G]")
        contrastive = self.contrastive(q, p, batch).loss
        group = p.shape[0] // q.shape[0]
        student = torch.einsum("bd,bgd->bg", q, p.view(q.shape[0], group, -1)) / self.contrastive.temperature
        kl = teacher_kl(student, batch["teacher_scores"].float(), self.teacher_temperature)
        loss = kl + self.alpha * contrastive
        return StepOutput(loss, {"kl": kl.detach(), "contrastive": contrastive.detach()})

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, teacher_temperature={self.teacher_temperature}"
