"""Self-checks for the chapters' exercises.

Each ``check_*`` function takes the student's function, runs it on random
inputs beside the library's reference, prints a verdict a student can act on,
and returns ``True`` only when the answer is right.
"""

from __future__ import annotations

import numpy as np
import torch

from . import jpeg

__all__ = [
    "check_quantize_block",
    "check_zigzag",
    "check_band_zero_fraction",
    "check_face_crop_box",
    "check_binarize_mask",
    "check_frame_indices",
]


def _verdict(ok: bool, message: str) -> bool:
    print(("Correct: " if ok else "Not yet: ") + message)
    return ok


def _call(fn, *args):
    """Run the student's function; a bug in it becomes a verdict, not a crash."""
    try:
        out = fn(*args)
    except Exception as e:
        return None, f"your function raised {type(e).__name__}: {e}"
    if out is None:
        return None, "your function returned None -- fill in the exercise and return the result."
    return out, None


def _as_tensor(value, what: str):
    try:
        return torch.as_tensor(value, dtype=torch.float64), None
    except (TypeError, ValueError, RuntimeError):
        return None, f"{what} must be numbers (a tensor, array or list), got {type(value).__name__}"


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
    from .samples import face_tensor

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


# -- Chapter 2 ---------------------------------------------------------------------
def check_face_crop_box(fn, trials: int = 200, seed: int = 0) -> bool:
    """Exercise 2.1: ``fn(box, height, width)`` turns a detector box into the crop box.

    ``box`` is ``(x0, y0, x1, y1)``; the answer is the integer square of side
    1.3 x the box's longer side, on the box's centre, shifted back inside the
    ``height`` x ``width`` image (shrunk only if larger than the image).
    """
    from .faces import clamp_box, square_box

    rng = np.random.default_rng(seed)
    for t in range(trials):
        h, w = (int(v) for v in rng.integers(64, 400, size=2))
        x0, y0 = rng.uniform(-20, w - 10), rng.uniform(-20, h - 10)
        box = (x0, y0, x0 + rng.uniform(8, w / 1.5), y0 + rng.uniform(8, h / 1.5))
        want = clamp_box(square_box(box, 1.3), h, w)
        got, err = _call(fn, box, h, w)
        if err:
            return _verdict(False, err)
        got, err = _as_tensor(got, "the box")
        if err:
            return _verdict(False, err)
        got = tuple(int(round(v)) for v in got.flatten().tolist())
        if got != want:
            side = want[2] - want[0]
            return _verdict(
                False,
                f"trial {t}: for box {tuple(round(v, 1) for v in box)} in a {h}x{w} image the crop is {want} "
                f"(side {side}), you gave {got}. Is it square, 1.3x the longer side, and inside the image?",
            )
    return _verdict(True, f"all {trials} random boxes give the right crop.")


def check_binarize_mask(fn, seed: int = 0) -> bool:
    """Exercise 2.2: ``fn(grey)`` binarises a uint8 greyscale mask crop as the paper does.

    ``grey`` is an ``(H, W)`` uint8 array; the answer is a boolean (or 0/1)
    array, true where ``grey / 255 > 0.1``.
    """
    rng = np.random.default_rng(seed)
    grey = rng.integers(0, 256, size=(32, 32)).astype(np.uint8)
    grey[0, :4] = [25, 26, 0, 255]  # 25/255 < 0.1 < 26/255: the edge case
    got, err = _call(fn, grey.copy())
    if err:
        return _verdict(False, err)
    got = np.asarray(got)
    want = grey / 255 > 0.1
    if got.shape != want.shape:
        return _verdict(False, f"expected shape {want.shape}, got {got.shape}")
    bad = np.argwhere(got.astype(bool) != want)
    if len(bad):
        i, j = bad[0]
        return _verdict(False, f"pixel ({i}, {j}) with grey value {grey[i, j]} should be {bool(want[i, j])}.")
    return _verdict(True, "your mask matches grey / 255 > 0.1 everywhere, edge cases included.")


def check_frame_indices(fn) -> bool:
    """Exercise 2.3: ``fn(n_frames, k)`` returns ``k`` evenly spaced frame numbers
    from the first to the last frame (all frames when ``k >= n_frames``)."""
    from .pairs import frame_indices

    for n, k in [(10, 4), (270, 270), (300, 270), (5, 9), (1000, 3), (2, 2)]:
        got, err = _call(fn, n, k)
        if err:
            return _verdict(False, err)
        got = [int(v) for v in np.asarray(got).ravel()]
        want = frame_indices(n, k).tolist()
        if got != want:
            return _verdict(False, f"for {n} frames and k={k} expected {want[:8]}..., you gave {got[:8]}...")
    return _verdict(True, "your frame choice matches prepare_pairs' for every case.")
