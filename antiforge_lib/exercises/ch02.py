"""Self-checks for Chapter 2, "Building paired data"."""

from __future__ import annotations

import numpy as np

from ._common import _as_tensor, _call, _verdict

__all__ = ["check_face_crop_box", "check_binarize_mask", "check_frame_indices"]


def check_face_crop_box(fn, trials: int = 200, seed: int = 0) -> bool:
    """Exercise 2.1: ``fn(box, height, width)`` turns a detector box into the crop box.

    ``box`` is ``(x0, y0, x1, y1)``; the answer is the integer square of side
    1.3 x the box's longer side, on the box's centre, shifted back inside the
    ``height`` x ``width`` image (shrunk only if larger than the image).
    """
    from ..data.faces import clamp_box, square_box

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
    if len(bad) and np.array_equal(got.astype(bool), grey / 255 > 0.2):
        return _verdict(False, "that is the threshold 0.2 of the authors' public code; Sec. 4.2 of the paper says 0.1.")
    if len(bad):
        i, j = bad[0]
        return _verdict(False, f"pixel ({i}, {j}) with grey value {grey[i, j]} should be {bool(want[i, j])}.")
    return _verdict(True, "your mask matches grey / 255 > 0.1 everywhere, edge cases included.")


def check_frame_indices(fn) -> bool:
    """Exercise 2.3: ``fn(n_frames, k)`` returns ``k`` evenly spaced frame numbers
    from the first to the last frame (all frames when ``k >= n_frames``)."""
    from ..data.pairs import frame_indices

    for n, k in [(10, 4), (270, 270), (300, 270), (5, 9), (1000, 3), (2, 2)]:
        got, err = _call(fn, n, k)
        if err:
            return _verdict(False, err)
        try:
            got = [int(v) for v in np.asarray(got).ravel()]
        except (TypeError, ValueError):
            return _verdict(False, f"return a list of frame numbers (integers), got {got!r}.")
        want = frame_indices(n, k).tolist()
        if got != want:
            return _verdict(False, f"for {n} frames and k={k} expected {want[:8]}..., you gave {got[:8]}...")
    return _verdict(True, "your frame choice matches prepare_pairs' for every case.")
