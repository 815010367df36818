"""Self-checks for Chapter 5, "Attention and its transfer"."""

from __future__ import annotations

import torch

from ._common import _as_tensor, _call, _verdict

__all__ = ["check_attention_loss", "check_attention_transfer"]


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
