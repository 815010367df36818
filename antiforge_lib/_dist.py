"""Data-parallel plumbing (fastai's ``distrib_ctx``, one process per GPU) for what DDP does not cover."""

from __future__ import annotations

import torch


def _world_size() -> int:
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _average_grads(module: torch.nn.Module) -> None:
    """All-reduce (mean) the gradients of ``module`` over the ranks of a distributed run; no-op otherwise."""
    n = _world_size()
    if n == 1:
        return
    for p in module.parameters():
        if p.grad is not None:
            torch.distributed.all_reduce(p.grad)
            p.grad.div_(n)


def replicate(module: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
    """Keep ``module``, trained by its own optimizer ``opt`` outside the DDP-wrapped model (the critic), the same on
    every rank of a distributed run: rank 0's weights now, and before each ``opt.step()`` the gradients averaged
    over the ranks. Call it when the fit starts, after moving ``module`` to its device; a no-op in one process."""
    if _world_size() == 1:
        return
    for t in module.state_dict().values():
        torch.distributed.broadcast(t, src=0)
    if not getattr(opt, "_averages_grads", False):  # once per optimizer: a second fit must not average twice
        opt.register_step_pre_hook(lambda _opt, _args, _kwargs: _average_grads(module))
        opt._averages_grads = True
