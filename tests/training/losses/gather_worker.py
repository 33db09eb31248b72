"""Run under `torch.distributed.run --nproc-per-node 2`: each rank takes its half of a fixed batch, computes the
contrastive loss (both variants, gathered and not), backpropagates, and saves its loss and its rows' gradients."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from simlm_cli.training.losses import ContrastiveLoss

QUERIES, GROUP, DIM, TEMPERATURE = 6, 3, 8, 0.05
# Passage 10 (rank 1's, a hard negative of query 3) is the same document as passage 0 (rank 0's query 0 positive),
# and passage 12 (query 4's positive) the same as passage 4 (a hard negative of query 1): ids cross the ranks.
DUP_DOC_IDS = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 11, 4, 13, 14, 15, 16, 17])


def fixed_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """The same normalised batch in every process (and in the test that checks the ranks against it)."""
    rng = torch.Generator().manual_seed(1234)
    q = torch.nn.functional.normalize(torch.randn(QUERIES, DIM, generator=rng, dtype=torch.float64), dim=-1)
    p = torch.nn.functional.normalize(torch.randn(QUERIES * GROUP, DIM, generator=rng, dtype=torch.float64), dim=-1)
    p[10], p[12] = p[0], p[4]  # the duplicated documents of DUP_DOC_IDS have the same vectors
    return q, p


def main() -> None:
    out = Path(sys.argv[1])
    dist.init_process_group(backend="gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    q, p = fixed_batch()
    local = QUERIES // world
    results = {}
    for variant in ("paper", "full"):
        for gather in (True, False):
            q_local = q[rank * local : (rank + 1) * local].clone().requires_grad_()
            p_local = p[rank * local * GROUP : (rank + 1) * local * GROUP].clone().requires_grad_()
            loss = ContrastiveLoss(TEMPERATURE, variant, gather=gather)(q_local, p_local).loss
            loss.backward()
            results[f"{variant}/{gather}"] = {"loss": loss.detach(), "q_grad": q_local.grad, "p_grad": p_local.grad}
        q_local = q[rank * local : (rank + 1) * local].clone().requires_grad_()
        p_local = p[rank * local * GROUP : (rank + 1) * local * GROUP].clone().requires_grad_()
        ids = DUP_DOC_IDS[rank * local * GROUP : (rank + 1) * local * GROUP]
        loss = ContrastiveLoss(TEMPERATURE, variant)(q_local, p_local, {"doc_ids": ids}).loss
        loss.backward()
        results[f"{variant}/dup"] = {"loss": loss.detach(), "q_grad": q_local.grad, "p_grad": p_local.grad}
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"rank": rank, "world": world, "results": results}, out / f"rank{rank}.pt")
    dist.barrier()  # both results are on disk before either rank leaves
    # Leave without tearing gloo down: on this torch, destroy_process_group/interpreter exit after collectives
    # now and then aborts ("terminate called without an active exception"), which would fail the test at random.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
