"""Self-checks for Chapter 5, "Attention and its transfer"."""

from __future__ import annotations

import torch

from ._common import _as_tensor, _call, _verdict

__all__ = ["check_attention_loss", "check_attention_transfer", "check_transfer_direction"]


def check_attention_loss(fn, seed: int = 0) -> bool:
    """Exercise 5.1: ``fn(m, mask)`` is the per-pixel binary cross-entropy of eq. 5.

    ``m`` is ``(B, 1, h, w)`` in (0, 1); ``mask`` is already at the map's size, in {0, 1}.
    The answer is the mean over pixels and batch.
    """
    g = torch.Generator().manual_seed(seed)
    m = torch.rand(3, 1, 6, 6, generator=g) * 0.98 + 0.01
    mask = (torch.rand(3, 1, 6, 6, generator=g) > 0.6).float()
    want = torch.nn.functional.binary_cross_entropy(m, mask)
    got, err = _call(fn, m.clone(), mask.clone())
    if not err:
        got, err = _as_tensor(got, "the loss")
    if err:
        return _verdict(False, err)
    if got.numel() != 1:
        return _verdict(False, f"return one number (the mean), not shape {tuple(got.shape)}")
    if abs(got.item() - want.item()) > 1e-5:
        hint = " (negative? BCE is -[y log m + (1-y) log(1-m)])" if got.item() < 0 else ""
        if abs(got.item() - want.item() * m.numel()) < 1e-3:
            hint = " (that is the sum: take the mean)"
        return _verdict(False, f"expected {want.item():.5f}, got {got.item():.5f}{hint}")
    return _verdict(True, "your attention loss matches binary cross-entropy.")


def check_attention_transfer(fn, seed: int = 0) -> bool:
    """Exercise 5.2: ``fn(m_hq, m_lq)`` is the transfer term of eq. 5, averaged over the batch:
    per sample, ``|| m_hq/||m_hq|| - m_lq/||m_lq|| ||_2`` over the flattened map."""
    from ..losses import attention_transfer_loss

    g = torch.Generator().manual_seed(seed)
    m_hq, m_lq = torch.rand(4, 1, 5, 5, generator=g), torch.rand(4, 1, 5, 5, generator=g)
    cases = [(m_hq, m_lq, "random maps"), (m_hq, 3 * m_hq, "proportional maps (should give 0)")]
    for a, b, what in cases:
        want = attention_transfer_loss(a, b)
        got, err = _call(fn, a.clone(), b.clone())
        if not err:
            got, err = _as_tensor(got, "the loss")
        if err:
            return _verdict(False, err)
        if got.numel() != 1 or abs(got.item() - want.item()) > 1e-4:
            value = got.item() if got.numel() == 1 else f"shape {tuple(got.shape)}"
            return _verdict(False, f"on {what} expected {want.item():.5f}, got {value}. Normalise each map first.")
    zero = torch.zeros(2, 1, 5, 5)
    got, err = _call(fn, zero, zero)
    if err or not torch.isfinite(torch.as_tensor(got)).all():
        return _verdict(False, "all-zero maps must give a finite value: add a small eps to the norms")
    return _verdict(True, "your transfer loss matches, and survives all-zero maps.")


def _grad(t: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(t) if t.grad is None else t.grad


def check_transfer_direction(fn, seed: int = 0) -> bool:
    """Exercise 5.3: ``fn(m_hq, m_lq, detach_hq)`` is the transfer term of eq. 5 under either reading of its direction.

    The value is the same for both readings; the gradient is not. ``detach_hq=True`` (the library's default, a
    one-way transfer from HQ to LQ): no gradient may reach ``m_hq``. ``detach_hq=False``: both maps receive the
    gradient of the distance. Compared with :func:`antiforge_lib.losses.attention_transfer_loss`, value and gradients.
    """
    from ..losses import attention_transfer_loss

    g = torch.Generator().manual_seed(seed)
    base_hq, base_lq = torch.rand(3, 1, 5, 5, generator=g), torch.rand(3, 1, 5, 5, generator=g)
    for detach in (True, False):
        ref_hq, ref_lq = base_hq.clone().requires_grad_(), base_lq.clone().requires_grad_()
        want = attention_transfer_loss(ref_hq, ref_lq, detach_hq=detach)
        want.backward()
        m_hq, m_lq = base_hq.clone().requires_grad_(), base_lq.clone().requires_grad_()
        got, err = _call(fn, m_hq, m_lq, detach)
        if err:
            return _verdict(False, err)
        if not isinstance(got, torch.Tensor) or got.numel() != 1:
            return _verdict(False, "return the loss as one number, a 0-d tensor (the mean over the batch)")
        if abs(got.item() - want.item()) > 1e-5:
            return _verdict(
                False,
                f"with detach_hq={detach} the loss is {want.item():.5f}, you gave {got.item():.5f}. The reading "
                "changes the gradient, not the value: normalise each map, then average the distances.",
            )
        if not got.requires_grad:
            return _verdict(False, "your loss carries no gradient: keep m_lq in the graph (no .item(), no no_grad).")
        got.reshape(()).backward()
        hq_grad, lq_grad = _grad(m_hq), _grad(m_lq)
        if lq_grad.abs().sum() == 0:
            hint = "did you detach m_lq instead of m_hq? " if hq_grad.abs().sum() > 0 else ""
            return _verdict(False, f"with detach_hq={detach} no gradient reaches m_lq; {hint}The LQ map must learn.")
        if detach and hq_grad.abs().sum() > 0:
            return _verdict(
                False, "with detach_hq=True no gradient may reach m_hq: use m_hq.detach() before normalising it."
            )
        if not detach and hq_grad.abs().sum() == 0:
            return _verdict(
                False, "with detach_hq=False the gradient must reach m_hq too: detach only when detach_hq is True."
            )
        if not detach and not torch.allclose(hq_grad, ref_hq.grad, atol=1e-6):
            return _verdict(False, "with detach_hq=False the gradient reaching m_hq differs from the reference's.")
        if not torch.allclose(lq_grad, ref_lq.grad, atol=1e-6):
            return _verdict(False, f"with detach_hq={detach} the gradient reaching m_lq differs from the reference's.")
    return _verdict(True, "same value for both readings, and the gradient reaches m_hq only when detach_hq is False.")
