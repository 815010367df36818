"""Self-checks for Chapter 1, "What compression removes"."""

from __future__ import annotations

import torch

from .. import jpeg
from ._common import _as_tensor, _call, _verdict

__all__ = ["check_quantize_block", "check_zigzag", "check_band_zero_fraction"]


def check_quantize_block(fn, trials: int = 20, seed: int = 0) -> bool:
    """Exercise 1.1: ``fn(block, table)`` quantizes one 8x8 pixel block.

    ``block`` is an ``(8, 8)`` float tensor of pixel values 0..255, ``table`` an
    ``(8, 8)`` quantization table. ``fn`` must return the ``(8, 8)`` integer
    levels ``round(DCT(block - 128) / table)`` (orthonormal DCT, halves
    rounded away from zero, as libjpeg does).
    """
    g = torch.Generator().manual_seed(seed)
    for t in range(trials):
        block = torch.randint(0, 256, (8, 8), generator=g).double()
        table = jpeg.quant_table(int(torch.randint(1, 101, (1,), generator=g)), "luma")
        want = jpeg.quantize_blocks(jpeg.block_dct(block - 128), table)
        got, err = _call(fn, block.clone(), table.clone())
        if err:
            return _verdict(False, err)
        got, err = _as_tensor(got, "the levels")
        if err:
            return _verdict(False, err)
        if got.shape != (8, 8):
            return _verdict(False, f"expected shape (8, 8), got {tuple(got.shape)}")
        bad = (got != want).nonzero()
        if len(bad):
            u, v = bad[0].tolist()
            hint = " Did you subtract 128 first?" if (got - want).abs().max() > 2 else ""
            return _verdict(
                False,
                f"trial {t}: coefficient ({u}, {v}) should be {want[u, v]:.0f}, you gave {got[u, v]:.0f}; "
                f"{len(bad)} of 64 differ.{hint}",
            )
    return _verdict(True, f"all {trials} random blocks match the reference quantizer.")


def check_zigzag(fn) -> bool:
    """Exercise 1.2: ``fn()`` returns the 64 row-major indices in zig-zag order."""
    got, err = _call(fn)
    if err:
        return _verdict(False, err)
    got, err = _as_tensor(got, "the order")
    if err:
        return _verdict(False, err)
    got = [int(i) for i in got.flatten()]
    want = jpeg.zigzag().tolist()
    if sorted(got) != list(range(64)):
        return _verdict(False, "the order must contain each of 0..63 exactly once.")
    for k, (a, b) in enumerate(zip(got, want, strict=True)):
        if a != b:
            return _verdict(
                False,
                f"position {k} should be index {b} (u={b // 8}, v={b % 8}), you gave {a} (u={a // 8}, v={a % 8}).",
            )
    return _verdict(True, "your scan visits the 64 coefficients in JPEG's order.")


def check_band_zero_fraction(fn, qualities=(10, 50, 90)) -> bool:
    """Exercise 1.3: ``fn(x, quality)`` returns the fraction of high-band luma
    coefficients of image batch ``x`` ``(B, 3, H, W)`` that quantize to zero."""
    from ..samples import face_tensor

    x = face_tensor(size=128)
    for q in qualities:
        want = jpeg.coefficient_stats(x, q)["high"]
        got, err = _call(fn, x.clone(), q)
        if not err:
            got, err = _as_tensor(got, "the fraction")
        if err:
            return _verdict(False, err)
        if got.numel() != 1:
            return _verdict(False, f"return one number (a fraction), not shape {tuple(got.shape)}")
        if abs(got.item() - want) > 1e-6:
            return _verdict(
                False, f"at quality {q} the high-band zero fraction is {want:.4f}, you gave {got.item():.4f}."
            )
    return _verdict(True, f"your fractions match at qualities {list(qualities)}.")
