"""DistributedDataParallel helpers: each is a no-op in one process; chapter 9 (torchrun).

``python -m shufflelib.train`` under ``torchrun --nproc_per_node=K`` starts K processes; these
helpers tell a process its rank, sum a few numbers over all of them, keep their batch-norm
statistics equal and check that they end with the same weights.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["rank_and_world", "all_sum", "weights_digest", "wrap", "unwrap", "sync_buffers", "agree"]


def rank_and_world() -> tuple[int, int]:
    """(rank, world size); (0, 1) when torch.distributed is not initialised."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def all_sum(values: Sequence[float], device: torch.device) -> list[float]:
    """``values`` summed over the processes (as they are in one process)."""
    _, world = rank_and_world()
    if world == 1:
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return t.tolist()


def weights_digest(model: nn.Module) -> str:
    """A short sha256 of a model's state_dict: names and bytes."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel when there are several processes, else itself."""
    if rank_and_world()[1] == 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def sync_buffers(model: nn.Module) -> None:
    """Every process takes rank 0's buffers (batch-norm statistics) after an epoch."""
    if rank_and_world()[1] > 1:
        for b in model.buffers():
            torch.distributed.broadcast(b, 0)


def agree(model: nn.Module) -> str | None:
    """The weights' digest when every process holds the same weights (None in one process);
    a RuntimeError naming the digests otherwise."""
    world = rank_and_world()[1]
    if world == 1:
        return None
    digests: list[str | None] = [None] * world
    torch.distributed.all_gather_object(digests, weights_digest(unwrap(model)))
    if len(set(digests)) != 1:
        raise RuntimeError(f"the processes ended with different weights: {digests}")
    return digests[0]
