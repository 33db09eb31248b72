"""The fine-tuning losses: the bi-encoder's contrastive loss, the re-ranker's listwise loss, and distillation.

Pure functions of float tensors (torch only). Convention everywhere: a query's passages come as a group whose
first member (column 0, or row i*G of the passage matrix) is the positive and the rest are its hard negatives.

Distributed training: `contrastive_loss` gathers queries and passages from every rank *with* gradients, so each
rank's loss sees the whole global batch as in-batch negatives, and the backward pass of the gather sends every
rank's share of the gradient back to the rank that owns the row (a sum over ranks). Each rank returns the mean
loss of its own queries; DDP then averages parameter gradients over the W ranks, which is exactly the gradient of
the mean loss over all W x B queries:

    d/dθ (1/W) Σ_k L_k  =  (1/W) Σ_r Σ_k ∂L_k/∂x_r · ∂x_r/∂θ,

where L_k is rank k's local mean loss and x_r the rows encoded on rank r. (The reference implementation gathers
without gradients, so only the local rows get gradient there; it compensates by scaling the loss by W.)
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor

CONTRASTIVE_VARIANTS = ("paper", "full")


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


def contrastive_loss(
    q: Tensor,
    p: Tensor,
    temperature: float = 0.02,
    variant: str = "paper",
    gather: bool = True,
    doc_ids: Tensor | None = None,
) -> Tensor:
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

    `doc_ids` [B*G] (integers naming each passage's document; optional): a document can appear more than once in
    a batch (one abstract cited by several queries, or a query's positive among another's hard negatives). Every
    copy of d_i+ other than column i*G is then left out of row i's sums, as if that passage were absent.

    With `gather` and an initialised process group of W > 1 ranks, q and p are gathered from every rank (with
    gradients); this rank's queries are global rows rank*B .. rank*B+B-1 and the loss is their mean against the
    whole gathered batch (see the module docstring for why DDP's averaging then gives the exact gradient).
    """
    if variant not in CONTRASTIVE_VARIANTS:
        raise ValueError(
            f"unknown contrastive loss variant {variant!r}: expected one of {', '.join(CONTRASTIVE_VARIANTS)}"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if q.ndim != 2 or p.ndim != 2 or q.shape[0] == 0 or p.shape[0] % q.shape[0] or p.shape[0] == 0:
        raise ValueError(f"expected q [B, D] and p [B*G, D] with G >= 1, got {tuple(q.shape)} and {tuple(p.shape)}")
    batch, group = q.shape[0], p.shape[0] // q.shape[0]
    rank, world = _rank_and_world() if gather else (0, 1)
    all_q, all_p = (gather_with_grad(q), gather_with_grad(p)) if world > 1 else (q, p)
    all_docs = _gather_ids(doc_ids, world) if doc_ids is not None and world > 1 else doc_ids
    rows = torch.arange(rank * batch, (rank + 1) * batch, device=q.device)
    logits = _contrastive_logits(all_q, all_p, rows, group, variant, all_docs) / temperature
    return F.cross_entropy(logits, rows * group)


def listwise_loss(scores: Tensor) -> Tensor:
    """Cross-entropy over each row of scores [B, n] (1 positive in column 0 + n-1 negatives), batch mean."""
    if scores.ndim != 2 or scores.shape[1] == 0:
        raise ValueError(f"expected scores [B, n], got {tuple(scores.shape)}")
    targets = torch.zeros(scores.shape[0], dtype=torch.long, device=scores.device)
    return F.cross_entropy(scores, targets)


def listwise_top(scores: Tensor, keep: int) -> Tensor:
    """[B, keep] column indices into scores [B, n]: column 0 (the positive) first, then the `keep`-1 columns of
    the highest scores among the others (the hardest negatives), highest first.

    The selection of the SimLM authors' re-ranker (microsoft/unilm simlm/src/models/cross_encoder_model.py,
    `rerank_forward_factor`): they set the positive's score to +inf and take the top `keep` of the row, which keeps
    the positive whatever the model thinks of it and gives the same columns in the same order.
    """
    if scores.ndim != 2 or not 1 <= keep <= scores.shape[1]:
        raise ValueError(f"expected scores [B, n] with 1 <= keep <= n, got {tuple(scores.shape)} and keep {keep}")
    negatives = scores[:, 1:].topk(keep - 1, dim=1).indices + 1
    positive = torch.zeros(scores.shape[0], 1, dtype=negatives.dtype, device=scores.device)
    return torch.cat([positive, negatives], dim=1)


def distill_loss(student: Tensor, teacher: Tensor, teacher_temperature: float = 1.0) -> Tensor:
    """KL(softmax(teacher / teacher_temperature) || softmax(student)), summed over a row and averaged over rows.

    Both are [B, G] over one query's group (column 0 the positive, as everywhere); `student` holds logits already
    divided by the bi-encoder's temperature (s/t), `teacher` the re-ranker's raw scores.
    """
    if student.shape != teacher.shape or student.ndim != 2:
        raise ValueError(f"expected student and teacher of one shape [B, G], got {tuple(student.shape)} and "
                         f"{tuple(teacher.shape)}")  # fmt: skip
    if teacher_temperature <= 0:
        raise ValueError(f"teacher_temperature must be positive, got {teacher_temperature}")
    target = F.log_softmax(teacher / teacher_temperature, dim=-1)
    return F.kl_div(F.log_softmax(student, dim=-1), target, reduction="batchmean", log_target=True)
