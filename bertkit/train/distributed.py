"""torch.distributed for recipes: the same script runs alone or under `torchrun --nproc_per_node N`.

    from bertkit.train import distributed as dist_utils
    ctx = dist_utils.setup()                 # reads torchrun's env (RANK, WORLD_SIZE, LOCAL_RANK)
    model = dist_utils.wrap_ddp(model.to(ctx.device), ctx)
    dist_utils.print0("only rank 0 prints this")
    ...
    dist_utils.cleanup()

Backend: NCCL when each rank has a GPU, gloo on CPU. Each rank picks its own part of the data with
`ctx.rank` / `ctx.world_size` (see `bertkit.data.pretraining.PretrainingSampler`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from bertkit.errors import UserError


@dataclass
class DistContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def env_world() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment; (0, 0, 1) when run alone."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    return rank, local_rank, world_size


def pick_device(requested: str | None = None, local_rank: int = 0) -> torch.device:
    """'cuda' (this rank's GPU) when available and not told otherwise, else CPU."""
    if requested in (None, "auto"):
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError("device 'cuda' was requested but no GPU is visible; pass --device cpu")
        if requested == "cuda":
            return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device(requested)


def setup(device: str | None = None, backend: str | None = None) -> DistContext:
    """Start the process group when launched by torchrun (WORLD_SIZE > 1); a no-op alone."""
    rank, local_rank, world_size = env_world()
    dev = pick_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world_size > 1 and not torch.distributed.is_initialized():
        backend = backend or ("nccl" if dev.type == "cuda" else "gloo")
        kwargs = {"device_id": dev} if backend == "nccl" else {}
        torch.distributed.init_process_group(backend=backend, rank=rank, world_size=world_size, **kwargs)
    return DistContext(rank=rank, local_rank=local_rank, world_size=world_size, device=dev)


def initialized() -> bool:
    """Whether a torch.distributed process group is running in this process."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def cleanup() -> None:
    if initialized():
        torch.distributed.destroy_process_group()


def rank() -> int:
    if initialized():
        return torch.distributed.get_rank()
    return env_world()[0]


def is_main_process() -> bool:
    return rank() == 0


def print0(*args, **kwargs) -> None:
    """print on rank 0 only."""
    if is_main_process():
        print(*args, **kwargs)


def wrap_ddp(model: nn.Module, ctx: DistContext, find_unused_parameters: bool = False) -> nn.Module:
    """DistributedDataParallel when running on several ranks, the model itself otherwise."""
    if not ctx.distributed:
        return model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=find_unused_parameters)


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (in place, returned); identity when alone."""
    if initialized():
        torch.distributed.all_reduce(values, op=torch.distributed.ReduceOp.SUM)
    return values
