"""Self-checks for Chapter 6, "Aligning the branches adversarially"."""

from __future__ import annotations

import torch
from torch import nn

from ._common import _as_tensor, _call, _verdict

__all__ = ["check_critic_inputs", "check_wgan_losses", "check_gradient_penalty"]


# -- Chapter 6 ---------------------------------------------------------------------
def _pair(out, what: str):
    """Unpack a returned ``(first, second)`` pair into two float64 tensors, or explain why not."""
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        return None, f"return a pair {what}, got {type(out).__name__}"
    first, err = _as_tensor(out[0], f"the first item of {what}")
    if not err:
        second, err = _as_tensor(out[1], f"the second item of {what}")
    if err:
        return None, err
    return (first, second), None


def check_critic_inputs(fn, seed: int = 0) -> bool:
    """Exercise 6.1: ``fn(v_hq, v_lq)`` builds the critic's two inputs.

    ``v_hq`` and ``v_lq`` are ``(B, C, h, w)`` feature maps of the same pairs; the answer is the pair
    ``(a, b) = (concat(V_H, V_L), concat(V_L, V_H))``, concatenated along the channel axis (dim 1), each
    ``(B, 2C, h, w)``.
    """
    from ..losses import critic_inputs

    g = torch.Generator().manual_seed(seed)
    B, C, h, w = 3, 5, 2, 4  # all different, so a wrong axis shows in the shape
    v_hq, v_lq = torch.randn(B, C, h, w, generator=g), torch.randn(B, C, h, w, generator=g)
    want_a, want_b = (t.double() for t in critic_inputs(v_hq, v_lq))
    out, err = _call(fn, v_hq.clone(), v_lq.clone())
    if not err:
        out, err = _pair(out, "(a, b)")
    if err:
        return _verdict(False, err)
    a, b = out
    shape, given = tuple(want_a.shape), (tuple(a.shape), tuple(b.shape))
    if given != (shape, shape):
        if given[0] == (2 * B, C, h, w):
            hint = " You concatenated along the batch axis (dim 0); the channels are dim 1."
        elif given[0] == (B, C, h, 2 * w):
            hint = (
                " You concatenated along the last axis. The paper writes H x W x 2C (channels last), "
                "but PyTorch keeps channels in dim 1: (B, C, h, w)."
            )
        elif len(given[0]) == 5:
            hint = " torch.stack adds a new axis; torch.cat joins along an existing one."
        else:
            hint = ""
        return _verdict(
            False,
            f"a and b must both have shape {shape} for inputs of shape {(B, C, h, w)}; "
            f"got {given[0]} and {given[1]}.{hint}",
        )
    if torch.equal(a, want_b) and torch.equal(b, want_a):
        return _verdict(False, "a and b are swapped: a is concat(V_H, V_L) (HQ channels first), b is concat(V_L, V_H).")
    if torch.equal(a, b):
        return _verdict(
            False, "a and b are the same tensor; the two orders must differ (V_H first in a, V_L first in b)."
        )
    for name, got, want in (("a", a, want_a), ("b", b, want_b)):
        if not torch.equal(got, want):
            first = "V_H" if name == "a" else "V_L"
            return _verdict(
                False,
                f"{name} has the right shape but the wrong values: its first {C} channels must be {first} and its "
                f"last {C} the other map, each kept whole (not interleaved channel by channel).",
            )
    return _verdict(True, "both orders are built along the channel axis, V_H first in a and V_L first in b.")


def check_wgan_losses(fn, seed: int = 0) -> bool:
    """Exercise 6.2: ``fn(d_a, d_b)`` returns ``(loss_critic, loss_heads)``, both to be minimised.

    ``d_a, d_b`` are critic scores of shape ``(B,)`` or ``(B, 1)`` for order a = concat(V_H, V_L) and order
    b = concat(V_L, V_H). The critic wants order a scored high, so ``loss_critic = mean(d_b) - mean(d_a)``; the
    heads want the opposite, ``loss_heads = mean(d_a) - mean(d_b)`` (the library's ``critic_loss`` and
    ``adversarial_loss``).
    """
    g = torch.Generator().manual_seed(seed)
    for t, shape in enumerate([(8,), (8, 1), (5,)]):
        d_a = torch.randn(shape, generator=g) + 1.5  # order a scored higher: the critic is winning
        d_b = torch.randn(shape, generator=g) - 0.5
        want_c, want_h = (d_b.mean() - d_a.mean()).item(), (d_a.mean() - d_b.mean()).item()
        out, err = _call(fn, d_a.clone(), d_b.clone())
        if not err:
            out, err = _pair(out, "(loss_critic, loss_heads)")
        if err:
            return _verdict(False, err)
        if any(o.numel() != 1 for o in out):
            return _verdict(False, "each loss must be one number (a 0-d tensor): take the mean over the batch.")
        got_c, got_h = (o.item() for o in out)
        close = lambda x, y: abs(x - y) <= 1e-5 * max(1.0, abs(y))  # noqa: E731
        if close(got_c, want_c) and close(got_h, want_h):
            continue
        n = d_a.numel()
        if close(got_c, want_h) and close(got_h, want_c):
            hint = (
                "the two losses are swapped. The critic scores order a high, so while it is winning "
                "its loss (mean(d_b) - mean(d_a)) is negative."
            )
        elif close(got_c, got_h):
            hint = "both losses are the same; the heads minimise the negative of the critic's loss."
        elif close(got_c, n * want_c) or close(got_h, n * want_h):
            hint = "you summed the scores; take means so the loss does not grow with the batch size."
        else:
            hint = (
                "loss_critic is mean(d_b) - mean(d_a) and loss_heads its negative, plain means of the raw "
                "scores: a Wasserstein critic's scores get no sigmoid or log."
            )
        return _verdict(
            False,
            f"trial {t}: with mean(d_a) = {d_a.mean():.3f} and mean(d_b) = {d_b.mean():.3f} expected "
            f"loss_critic = {want_c:.3f}, loss_heads = {want_h:.3f}; you gave {got_c:.3f}, {got_h:.3f}: {hint}",
        )
    return _verdict(True, "your signs match the library's critic_loss and adversarial_loss.")


class _LinearCritic(nn.Module):
    """D(x) = <w, x> + 1 per sample: its input gradient is w everywhere."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w.clone())

    def forward(self, x):
        return (x.flatten(1) * self.w.flatten()).sum(1, keepdim=True) + 1.0


class _SmoothCritic(nn.Module):
    """A small non-linear critic without normalisation layers, so the gradient depends on where it is taken."""

    def __init__(self, channels: int, generator: torch.Generator):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels, 8, 1), nn.Tanh(), nn.Flatten(), nn.LazyLinear(1))
        self.net.double()
        self.net(torch.zeros(1, channels, 3, 3, dtype=torch.float64))  # materialise the lazy layer
        with torch.no_grad():
            for p in self.net.parameters():
                p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype))

    def forward(self, x):
        return self.net(x)


def _penalty_at(critic, x: torch.Tensor, weight: float, per_sample: bool = True) -> float:
    """Penalty with the gradient taken at the points ``x`` (used to name a student's mistake)."""
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x)
    norm = torch.linalg.vector_norm(grad.flatten(1), dim=1) if per_sample else torch.linalg.vector_norm(grad)
    return (weight * ((norm - 1) ** 2).mean()).item()


def check_gradient_penalty(fn, seed: int = 0) -> bool:
    """Exercise 6.3: ``fn(critic, a, b, eps)`` returns WGAN-GP's gradient penalty with weight 10.

    ``a, b`` are ``(B, 2C, h, w)``; ``eps`` is ``(B, 1, 1, 1)`` in [0, 1]. The answer is the 0-d tensor
    ``10 * mean_i (||grad_x D(x_i)||_2 - 1)**2`` at ``x = eps * a + (1 - eps) * b``, differentiable in the
    critic's weights (``create_graph=True``) and passing no gradient to ``a`` or ``b``; it must equal
    ``antiforge_lib.losses.gradient_penalty(critic, a, b, weight=10, eps=eps)``.
    """
    from ..losses import gradient_penalty

    weight = 10.0
    g = torch.Generator().manual_seed(seed)
    B, C2, h, w = 4, 6, 3, 3
    a = torch.randn(B, C2, h, w, generator=g, dtype=torch.float64)
    b = torch.randn(B, C2, h, w, generator=g, dtype=torch.float64) + 1.0
    eps = torch.rand(B, 1, 1, 1, generator=g, dtype=torch.float64)
    close = lambda x, y: abs(x - y) <= 1e-6 * max(1.0, abs(y))  # noqa: E731

    def run(critic):
        """The student's penalty as a float, or a verdict message."""
        out, err = _call(fn, critic, a.clone(), b.clone(), eps.clone())
        if err:
            return None, err
        if not isinstance(out, torch.Tensor):
            return None, f"return a tensor (not .item() or a {type(out).__name__}) so it can be back-propagated."
        if out.numel() != 1:
            return None, f"return one number, the mean over the batch; got shape {tuple(out.shape)}."
        return out, None

    # 1. A linear critic: the gradient is w at every x, so the penalty is weight * (||w|| - 1)**2.
    wvec = torch.randn(C2, h, w, generator=g, dtype=torch.float64) * 0.5
    norm_w = torch.linalg.vector_norm(wvec).item()
    want = weight * (norm_w - 1) ** 2
    out, err = run(_LinearCritic(wvec))
    if err:
        return _verdict(False, err)
    got = out.item()
    if not close(got, want):
        hint = ""
        if close(got, want / weight):
            hint = " Did you multiply by the weight, 10?"
        elif close(got, weight * norm_w**2):
            hint = " Penalise (||grad|| - 1)**2, the distance of the norm from 1, not ||grad||**2."
        elif close(got, weight * (norm_w**2 - 1) ** 2):
            hint = " Use the norm ||grad||_2, not its square."
        elif close(got, weight * (B**0.5 * norm_w - 1) ** 2):
            hint = (
                " You took one norm over the whole batch; take one norm per sample (flatten(1), dim=1), "
                "then the mean of (norm - 1)**2."
            )
        return _verdict(
            False,
            f"for a linear critic D(x) = w.x + 1 the gradient is w everywhere, so the penalty is "
            f"10 * (||w|| - 1)**2 = {want:.4f} (||w|| = {norm_w:.3f}); you gave {got:.4f}.{hint}",
        )

    # 2. A non-linear critic: the gradient depends on the interpolation points and on the per-sample norm.
    critic = _SmoothCritic(C2, g)
    want = gradient_penalty(critic, a, b, weight=weight, eps=eps).item()
    a_req, b_req = a.clone().requires_grad_(True), b.clone().requires_grad_(True)
    out, err = _call(fn, critic, a_req, b_req, eps.clone())
    if not err and not isinstance(out, torch.Tensor):
        err = "return a tensor so it can be back-propagated."
    if err:
        return _verdict(False, err)
    got = out.item() if out.numel() == 1 else float("nan")
    if not close(got, want):
        mistakes = {
            "You took the gradient at a, not at the interpolates eps * a + (1 - eps) * b.": a,
            "You took the gradient at b, not at the interpolates eps * a + (1 - eps) * b.": b,
            "You interpolated as (1 - eps) * a + eps * b. In training either is fine (eps is uniform), but this "
            "check passes eps for eps * a + (1 - eps) * b.": (1 - eps) * a + eps * b,
        }
        hint = next((m for m, x in mistakes.items() if close(got, _penalty_at(critic, x, weight))), "")
        if not hint and close(got, _penalty_at(critic, eps * a + (1 - eps) * b, weight, per_sample=False)):
            hint = (
                "You took one norm over the whole batch. Take one norm per sample (flatten(1), dim=1), "
                "then the mean of (norm - 1)**2."
            )
        return _verdict(
            False,
            f"for a non-linear critic the penalty is {want:.4f}, you gave {got:.4f}. {hint or 'Check each step.'}",
        )

    # 3. The penalty must train the critic, and only the critic.
    if not out.requires_grad:
        return _verdict(
            False,
            "the value is right, but it cannot be back-propagated into the critic's weights: pass "
            "create_graph=True to torch.autograd.grad.",
        )
    critic.zero_grad()
    out.backward()
    grads = lambda: [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in critic.parameters()]  # noqa: E731
    got_grads = grads()
    if a_req.grad is not None or b_req.grad is not None:
        return _verdict(False, "the penalty sends gradient into a and b (and so into the heads); detach them first.")
    critic.zero_grad()
    gradient_penalty(critic, a, b, weight=weight, eps=eps).backward()
    if not all(torch.allclose(x, y, rtol=1e-6, atol=1e-9) for x, y in zip(got_grads, grads(), strict=True)):
        return _verdict(
            False, "the value is right but its gradient in the critic's weights is not; did you detach something?"
        )
    return _verdict(True, "your penalty matches WGAN-GP's, value and gradient, and leaves a and b alone.")
