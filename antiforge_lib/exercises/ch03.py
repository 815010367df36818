"""Self-checks for Chapter 3, "Two branches, one tail"."""

from __future__ import annotations

import torch

from ._common import _call, _verdict

__all__ = ["check_branch_forward", "check_gradient_reach"]


def check_branch_forward(fn, seed: int = 0) -> bool:
    """Exercise 3.1: ``fn(head, attention, tail, x)`` runs one branch (eqs. 3-4).

    Returns ``(c, m, v)``: ``v = head(x)``, ``m = attention(v)``, ``c = tail(v * m)``.
    Checked on a small resnet18 two-branch net against :meth:`TwoBranchNet.forward`.
    """
    from ..models import TwoBranchNet

    torch.manual_seed(seed)
    net = TwoBranchNet("resnet18", cut="layer4").eval()
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


_BRANCH_PARTS = ("head_hq", "head_lq", "attention_hq", "attention_lq", "tail")


def _parts_with_grad(net, output: str, x_hq, x_lq) -> set[str]:
    """The parts of ``net`` whose parameters get a non-zero gradient from a loss on ``output`` alone."""
    net.zero_grad(set_to_none=True)
    getattr(net(x_hq, x_lq), output).pow(2).sum().backward()
    reached = set()
    for part in _BRANCH_PARTS:
        grads = [p.grad for p in getattr(net, part).parameters()]
        if any(g is not None and bool(g.abs().sum() > 0) for g in grads):
            reached.add(part)
    return reached


def check_gradient_reach(fn, seed: int = 0) -> bool:
    """Exercise 3.2: ``fn(output)`` names the parts that a loss on ``output`` alone trains.

    ``output`` is ``"c_hq"`` or ``"c_lq"``; the answer is a set (or list) of names among ``head_hq``,
    ``head_lq``, ``attention_hq``, ``attention_lq`` and ``tail``. The check runs the experiment: it backpropagates
    ``output.pow(2).sum()`` through a small resnet18 two-branch net and lists the parts whose weights get a
    non-zero gradient.
    """
    from ..models import TwoBranchNet

    torch.manual_seed(seed)
    net = TwoBranchNet("resnet18", cut="layer4")
    x_hq, x_lq = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64)
    for output in ("c_hq", "c_lq"):
        got, err = _call(fn, output)
        if err:
            return _verdict(False, err)
        if isinstance(got, str) or not hasattr(got, "__iter__"):
            return _verdict(False, f"for {output!r} return a set of part names, e.g. {{'tail'}}, not {got!r}")
        got = set(got)
        unknown = sorted(str(n) for n in got - set(_BRANCH_PARTS))
        if unknown:
            return _verdict(False, f"{unknown} are not parts of the net; choose among {list(_BRANCH_PARTS)}")
        want = _parts_with_grad(net, output, x_hq, x_lq)
        if got == want:
            continue
        own, other = output[2:], "lq" if output == "c_hq" else "hq"
        extra, missing = got - want, want - got
        if extra:
            return _verdict(
                False,
                f"a loss on {output} does not reach {sorted(extra)}: {output} is computed from the {own.upper()} "
                f"crop alone, and nothing of the {other.upper()} branch lies on its path.",
            )
        if f"attention_{own}" in missing:
            hint = f"the map of attention_{own} multiplies V before the tail, so its convolution is on the path"
        elif "tail" in missing:
            hint = f"the tail computes {output} itself"
        else:
            hint = f"head_{own} computes the V that the tail reads"
        return _verdict(False, f"a loss on {output} also reaches {sorted(missing)}: {hint}.")
    return _verdict(
        True,
        "a loss on c_hq trains head_hq, attention_hq and the tail; one on c_lq trains head_lq, attention_lq and "
        "the same tail. The shared tail is the only part that both reach.",
    )
