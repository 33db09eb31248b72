"""The bi-encoder's contrastive loss (InfoNCE at a temperature, hard and in-batch negatives), and the base class
of the bi-encoder's losses.

Distributed training: the loss gathers queries and passages from every rank *with* gradients, so each rank's loss
sees the whole global batch as in-batch negatives, and the backward pass of the gather sends every rank's share of
the gradient back to the rank that owns the row (a sum over ranks). Each rank returns the mean loss of its own
queries; DDP then averages parameter gradients over the W ranks, which is exactly the gradient of the mean loss
over all W x B queries:

    d/dθ (1/W) Σ_k L_k  =  (1/W) Σ_r Σ_k ∂L_k/∂x_r · ∂x_r/∂θ,

where L_k is rank k's local mean loss and x_r the rows encoded on rank r. (The reference implementation gathers
without gradients, so only the local rows get gradient there; it compensates by scaling the loss by W.)
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from simlm_cli.errors import SimlmError
from simlm_cli.training.step import StepOutput

CONTRASTIVE_VARIANTS = ("paper", "full")


class BiEncoderLoss(nn.Module):
    """A bi-encoder loss: `forward(q, p, batch)` -> StepOutput, q [B, D] and p [B*G, D] L2-normalised embeddings,
    `batch` the training batch (doc_ids, teacher_scores). Subclasses declare how a model card names what they
    trained."""

    card_note: ClassVar[str] = ""  # added to "bi-encoder retriever" in the model card

    def forward(self, q: Tensor, p: Tensor, batch: Mapping[str, Tensor] | None = None) -> StepOutput:
        raise NotImplementedError  # pragma: no cover


def _rank_and_world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_with_grad(t: Tensor) -> Tensor:
    """`t` from every rank concatenated along dim 0 in rank order, differentiable; `t` itself outside DDP.

    Every rank must pass a tensor of the same shape. Backward sums, over ranks, the gradient each rank's loss
    puts on a row, and returns it to the row's own rank.
    """
    _, world = _rank_and_world()
    if world <= 1:
        return t
    from torch.distributed.nn.functional import all_gather

    with warnings.catch_warnings():
        # deprecated in favour of a private module (torch.distributed._functional_collectives); still correct,
        # and a warning on every step of every rank would bury the training log
        warnings.filterwarnings("ignore", message=".*all_gather is deprecated", category=FutureWarning)
        gathered = all_gather(t.contiguous())
    return torch.cat(gathered, dim=0)


def _gather_ids(t: Tensor, world: int) -> Tensor:
    """Integer ids from every rank, concatenated in rank order (no gradient to carry)."""
    import torch.distributed as dist

    parts = [torch.empty_like(t) for _ in range(world)]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts, dim=0)


def _mask_columns(scores: Tensor, columns: Tensor) -> Tensor:
    """Row r's column `columns[r]` set to -inf: that pair is not a negative (it contributes e^-inf = 0)."""
    mask = torch.zeros_like(scores, dtype=torch.bool)
    mask[torch.arange(scores.shape[0], device=scores.device), columns] = True
    return scores.masked_fill(mask, float("-inf"))


def _copies_of_positive(all_docs: Tensor | None, rows: Tensor, group: int, passages: int) -> Tensor | None:
    """[B, passages]: True where a passage of the batch is the same document as row r's positive (itself
    included). Such a copy is not a negative: in the denominator it would add e^{1/t} (d+ against itself) or a
    false negative with the positive's own score. None when the batch has no document ids."""
    if all_docs is None:
        return None
    if all_docs.shape != (passages,):
        raise ValueError(f"expected one document id per passage ({passages}), got {tuple(all_docs.shape)}")
    return all_docs.unsqueeze(0) == all_docs[rows * group].unsqueeze(1)


def _contrastive_logits(
    all_q: Tensor, all_p: Tensor, rows: Tensor, group: int, variant: str, all_docs: Tensor | None = None
) -> Tensor:
    """Unscaled similarity logits of the queries `rows` (global indices); the positive of row r is column r*G."""
    q = all_q[rows]
    positive_index = rows * group
    positive = all_p[positive_index]
    copies = _copies_of_positive(all_docs, rows, group, all_p.shape[0])
    q_vs_p = q @ all_p.T  # q_i against every passage: the positive, hard and in-batch negatives
    if copies is not None:  # other copies of d_i+ are not negatives of q_i (its own column is the target)
        others = copies.clone()
        others[torch.arange(len(rows), device=q.device), positive_index] = False
        q_vs_p = q_vs_p.masked_fill(others, float("-inf"))
    parts = [q_vs_p]
    if variant == "paper":
        d_vs_p = _mask_columns(positive @ all_p.T, positive_index)  # d_i+ against every passage but itself
        parts.append(d_vs_p if copies is None else d_vs_p.masked_fill(copies, float("-inf")))
    else:
        all_positives = all_p[::group]
        parts.append(_mask_columns(positive @ all_q.T, rows))  # d_i+ against every other query
        parts.append(_mask_columns(q @ all_q.T, rows))  # q_i against every other query
        d_vs_d = _mask_columns(positive @ all_positives.T, rows)  # d_i+ against every other positive
        parts.append(d_vs_d if copies is None else d_vs_d.masked_fill(copies[:, ::group], float("-inf")))
    return torch.cat(parts, dim=1)


class ContrastiveLoss(BiEncoderLoss):
    """Mean contrastive loss of the local queries; q [B, D] and p [B*G, D] are L2-normalised (s = cosine).

    p[i*G] is query i's positive d_i+, p[i*G+1 : (i+1)*G] its hard negatives, and every other passage of the
    (gathered) batch an in-batch negative. With t the temperature, L_i = -log(e^{s(q_i,d_i+)/t} / Z_i) where

    - variant "paper" (SimLM paper, Eq. 3): with N_i = every passage in the batch except d_i+,
      Z_i = e^{s(q_i,d_i+)/t} + Σ_{n∈N_i} (e^{s(q_i,n)/t} + e^{s(d_i+,n)/t}).
    - variant "full" (the reference code, microsoft/unilm simlm `full_contrastive_scores_and_labels`):
      Z_i = Σ_{every passage n} e^{s(q_i,n)/t}        (positive, hard and in-batch negatives)
          + Σ_{j≠i} e^{s(d_i+,q_j)/t}                  (the positive against every other query)
          + Σ_{j≠i} e^{s(q_i,q_j)/t}                   (query-query)
          + Σ_{j≠i} e^{s(d_i+,d_j+)/t}                 (the positive against the other queries' positives only).

    `batch["doc_ids"]` [B*G] (integers naming each passage's document; optional): a document can appear more than
    once in a batch (one abstract cited by several queries, or a query's positive among another's hard negatives).
    Every copy of d_i+ other than column i*G is then left out of row i's sums, as if that passage were absent.

    With `gather` and an initialised process group of W > 1 ranks, q and p are gathered from every rank (with
    gradients); this rank's queries are global rows rank*B .. rank*B+B-1 and the loss is their mean against the
    whole gathered batch (see the module docstring for why DDP's averaging then gives the exact gradient).
    """

    def __init__(self, temperature: float = 0.02, variant: str = "paper", gather: bool = True):
        super().__init__()
        if variant not in CONTRASTIVE_VARIANTS:
            raise SimlmError(f"--loss {variant}: expected one of {', '.join(CONTRASTIVE_VARIANTS)}")
        if temperature <= 0:
            raise SimlmError("--temperature must be positive")
        self.temperature = temperature
        self.variant = variant
        self.gather = gather

    def forward(self, q: Tensor, p: Tensor, batch: Mapping[str, Tensor] | None = None) -> StepOutput:
        if q.ndim != 2 or p.ndim != 2 or q.shape[0] == 0 or p.shape[0] % q.shape[0] or p.shape[0] == 0:
            raise ValueError(f"expected q [B, D] and p [B*G, D] with G >= 1, got {tuple(q.shape)} and {tuple(p.shape)}")
        doc_ids = (batch or {}).get("doc_ids")
        batch_size, group = q.shape[0], p.shape[0] // q.shape[0]
        rank, world = _rank_and_world() if self.gather else (0, 1)
        all_q, all_p = (gather_with_grad(q), gather_with_grad(p)) if world > 1 else (q, p)
        all_docs = _gather_ids(doc_ids, world) if doc_ids is not None and world > 1 else doc_ids
        rows = torch.arange(rank * batch_size, (rank + 1) * batch_size, device=q.device)
        logits = _contrastive_logits(all_q, all_p, rows, group, self.variant, all_docs) / self.temperature
        loss = F.cross_entropy(logits, rows * group)
        return StepOutput(loss, {"contrastive": loss.detach()})

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, variant={self.variant!r}"
