"""The fine-tuning losses, one `nn.Module` per file, chosen by building the one that is wanted (no loss is picked
by a string or by whether an option is None inside a model):

- `ContrastiveLoss`: the bi-encoder's InfoNCE over hard and in-batch negatives, at a temperature (`simlm train`);
- `DistillationLoss`: KL(teacher || student) over each query's group + alpha x a contrastive loss (`simlm distill`);
- `ListwiseLoss`: the re-ranker's cross-entropy over each query's group (`simlm rerank train`).

Convention everywhere: a query's passages come as a group whose first member (column 0, or row i*G of the passage
matrix) is the positive and the rest are its hard negatives. Each loss returns a `StepOutput` (the loss and the
parts the training log shows); the bi-encoder's losses take (q, p, batch), so `BiEncoder.forward` calls whichever
it was given the same way.
"""

from simlm_cli.training.losses.contrastive import BiEncoderLoss, ContrastiveLoss
from simlm_cli.training.losses.distillation import DistillationLoss
from simlm_cli.training.losses.listwise import ListwiseLoss

__all__ = ["BiEncoderLoss", "ContrastiveLoss", "DistillationLoss", "ListwiseLoss"]
