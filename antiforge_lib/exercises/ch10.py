"""Self-checks for Chapter 10, "Inside the embedding space"."""

from __future__ import annotations

import numpy as np

from ._common import _call, _verdict

__all__ = ["check_pair_distance"]


# -- Chapter 10 --------------------------------------------------------------------
def check_pair_distance(fn, seed: int = 0) -> bool:
    """Exercise 10.1: ``fn(c_hq, c_lq)`` returns the distance within each pair, ``||C_l - C_h||_2``.

    ``c_hq`` and ``c_lq`` are ``(N, d)`` float arrays, row ``i`` of each the two embeddings of pair ``i`` (as in
    :func:`antiforge_lib.viz.collect_embeddings`). The answer is an ``(N,)`` array, the Euclidean distance of
    each pair, equal to :func:`antiforge_lib.viz.pair_distance`.
    """
    from ..viz import pair_distance

    rng = np.random.default_rng(seed)
    n, d = 7, 5  # different, so a norm over the wrong axis shows in the shape
    # Pairs pointing in different directions at similar norms: the distance is large where the norms agree.
    c_hq = rng.normal(size=(n, d)) * rng.uniform(0.1, 18.0, size=(n, 1))
    c_lq = rng.normal(size=(n, d)) * rng.uniform(0.1, 18.0, size=(n, 1))
    want = pair_distance({"c_hq": c_hq, "c_lq": c_lq})
    got, err = _call(fn, c_hq.copy(), c_lq.copy())
    if err:
        return _verdict(False, err)
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        return _verdict(False, f"return an array of numbers, got {type(got).__name__}.")
    if got.shape != want.shape:
        hint = ""
        if got.shape == (d,):
            hint = " You took the norm over the pairs (axis 0); take it over the embedding dimensions (axis 1)."
        elif got.ndim == 0:
            hint = " You returned one number; return one distance per pair (no mean or sum over pairs)."
        elif got.shape == (n, d):
            hint = " You returned the difference vectors; take their norm along axis 1."
        return _verdict(False, f"expected shape {want.shape} (one distance per pair), got {got.shape}.{hint}")
    if np.allclose(got, want, rtol=1e-6, atol=1e-9):
        return _verdict(True, "your pair distances match viz.pair_distance.")
    norm_hq, norm_lq = np.linalg.norm(c_hq, axis=1), np.linalg.norm(c_lq, axis=1)
    suspects = {
        "that is the squared distance; the pair term of eq. 6 uses the norm itself.": want**2,
        "that is the difference of the two norms, | ||C_l|| - ||C_h|| |: two embeddings at the same radius but "
        "in different directions are far apart, so subtract the vectors first.": np.abs(norm_lq - norm_hq),
        "that is the L1 (sum of absolute differences); use the Euclidean norm.": np.abs(c_lq - c_hq).sum(1),
        "that is the cosine distance; the pair term measures the Euclidean distance of the vectors.": 1
        - (c_hq * c_lq).sum(1) / (norm_hq * norm_lq),
    }
    hint = next((h for h, v in suspects.items() if np.allclose(got, v, rtol=1e-6, atol=1e-9)), "")
    i = int(np.argmax(np.abs(got - want)))
    return _verdict(
        False,
        f"pair {i}: expected {want[i]:.4f}, you gave {got[i]:.4f}. "
        + (hint or "Subtract the two embeddings of each pair and take the Euclidean norm over axis 1."),
    )
