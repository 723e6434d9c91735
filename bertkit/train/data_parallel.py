"""The Trainer on several processes: `torchrun --nproc-per-node N script.py` or `accelerate launch script.py` run
the same script data-parallel (DDP: gloo on CPU, NCCL on GPU), with nothing to change in it.

Every rank builds the same global batches (the same seeded order); rank r takes rows r, r + N, ... of each, runs
forward and backward on them, and DDP averages the gradients, so a step is the step one process would take on
the whole batch. Losses are weighed so that the average over ranks is the global batch's mean; the logged loss is
averaged over ranks. Only the main process writes logs, reports and checkpoints (checkpoints gather every rank's
RNG state). Each rank evaluates the whole evaluation set, so every rank sees the same metrics (and early-stops or
keeps the same best checkpoint); that repeats the evaluation N times, which costs time on large eval sets.
"""
from __future__ import annotations

import torch

from bertkit.train import distributed as dist_utils


def join(device: torch.device) -> dist_utils.DistContext:
    """The process group when a launcher started several processes (WORLD_SIZE > 1), each rank on its own device of
    `device`'s kind (its GPU under NCCL); else a one-process world on `device`."""
    if dist_utils.env_world()[2] > 1:
        return dist_utils.setup(device=device.type)
    return dist_utils.DistContext(device=device)


def rank_share(indices: list[int], world: dist_utils.DistContext) -> tuple[list[int], bool]:
    """This rank's rows of a global batch, and whether they count: a rank left without rows (a last batch smaller
    than the world) runs the first row with weight 0, so its backward still meets the others' all-reduce."""
    mine = indices[world.rank::world.world_size]
    return (mine, True) if mine else (indices[:1], False)


def mean_over_ranks(value: torch.Tensor, world: dist_utils.DistContext) -> torch.Tensor:
    """The mean of a per-rank scalar over the ranks (every rank must call it at the same point)."""
    if not world.distributed:
        return value
    total = value.detach().clone().float()
    dist_utils.all_reduce_sum(total)
    return total / world.world_size
