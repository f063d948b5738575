"""torchrun helpers shared by prompting and fine-tuning: join the process group, this process's share of the rows, and
merging the shares back (every process scores every world-th row; summing the zero-filled tables gives the whole)."""

from __future__ import annotations

import numpy as np


def is_main_process() -> bool:
    """True on rank 0 of a torchrun job, and always when not distributed (read before the process group is up)."""
    import os

    return int(os.environ.get("RANK", "0")) == 0


def world_size() -> int:
    """How many processes torchrun started for this job (1 when not distributed; read before the process group is up)."""
    import os

    return int(os.environ.get("WORLD_SIZE", "1"))


def join_process_group() -> int:
    """Start torch.distributed for a torchrun job (NCCL with one GPU per process, else gloo on CPU); this process's rank."""
    import os

    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank()


def shard() -> tuple[int, int]:
    """(rank, world size) of a torchrun job whose process group is up, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_sum(values: np.ndarray) -> np.ndarray:
    """values summed over every process of the torchrun job (gloo on CPU, NCCL on GPUs)."""
    import torch
    import torch.distributed as dist

    t = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64))
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu().numpy()
