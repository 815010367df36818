"""Self-checks for Chapter 3, "Two branches, one tail"."""

from __future__ import annotations

import torch

from ._common import _call, _verdict

__all__ = ["check_branch_forward"]


def check_branch_forward(fn, seed: int = 0) -> bool:
    """Exercise 3.1: ``fn(head, attention, tail, x)`` runs one branch (eqs. 3-4).

    Returns ``(c, m, v)``: ``v = head(x)``, ``m = attention(v)``, ``c = tail(v * m)``.
    Checked on a small resnet18 two-branch net against :meth:`TwoBranchNet.forward`.
    """
    from ..models import TwoBranchNet

    torch.manual_seed(seed)
    net = TwoBranchNet("resnet18", split="layer4").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want = net(x, x)
        got, err = _call(fn, net.head_lq, net.attention_lq, net.tail, x)
    if err:
        return _verdict(False, err)
    if not isinstance(got, (tuple, list)) or len(got) != 3:
        return _verdict(False, "return the three tensors (c, m, v)")
    c, m, v = got
    for name, a, b in (("v", v, want.v_lq), ("m", m, want.m_lq), ("c", c, want.c_lq)):
        if not isinstance(a, torch.Tensor) or a.shape != b.shape:
            shape = tuple(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__
            return _verdict(False, f"{name} should have shape {tuple(b.shape)}, got {shape}")
        if not torch.allclose(a, b, atol=1e-5):
            hint = " Did you mask V with M before the tail?" if name == "c" else ""
            return _verdict(False, f"{name} has the right shape but different values.{hint}")
    return _verdict(True, "your branch computes V, M and C exactly as the model does.")
