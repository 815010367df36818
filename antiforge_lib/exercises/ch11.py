"""Self-checks for Chapter 11, "Beyond c40"."""

from __future__ import annotations

import math

import numpy as np

from ._common import _call, _verdict

__all__ = ["check_predict_bpp", "check_first_strength_below"]


# -- Exercise 11.1 ------------------------------------------------------------------
def _bpp_cases(rng: np.random.Generator):
    """(crfs, bpps, crf) triples: bits halve about every 6 CRF steps (x264's rule of thumb), with noise."""
    for lo, hi, n, target in ((18, 46, 5, 36), (23, 51, 4, 44), (20, 40, 6, 29)):
        crfs = np.linspace(lo, hi, n).round().astype(int)
        bpps = 0.2 * 2.0 ** (-crfs / 6) * np.exp(rng.normal(0, 0.08, n))
        yield crfs, bpps, target
    yield np.array([40, 23, 32]), np.array([0.0076, 0.051, 0.021]), 28  # unsorted, as a table may be


def _predict(crfs, bpps, crf) -> float:
    """The reference: a least-squares line of log(bpp) against CRF, read at ``crf``."""
    slope, icept = np.polyfit(np.asarray(crfs, float), np.log(np.asarray(bpps, float)), 1)
    return float(np.exp(icept + slope * crf))


def check_predict_bpp(fn, seed: int = 0) -> bool:
    """Exercise 11.1: ``fn(crfs, bpps, crf)`` predicts the bits per pixel at ``crf``.

    ``crfs`` and ``bpps`` are arrays of measured points of one codec; the answer is the least-squares straight line
    through ``(crf, log(bpp))`` (``np.polyfit(crfs, np.log(bpps), 1)``), read at ``crf`` and turned back into bits
    per pixel with ``exp``. Any base of the logarithm gives the same answer.
    """
    rng = np.random.default_rng(seed)
    for crfs, bpps, crf in _bpp_cases(rng):
        want = _predict(crfs, bpps, crf)
        got, err = _call(fn, crfs.copy(), bpps.copy(), crf)
        if err:
            return _verdict(False, err)
        try:
            got = float(got)
        except (TypeError, ValueError):
            return _verdict(False, f"return one number (the bits per pixel), got {type(got).__name__}.")
        if math.isfinite(got) and abs(got - want) <= 1e-6 * want:
            continue
        slope, icept = np.polyfit(crfs.astype(float), bpps, 1)
        suspects = {
            "that is the logarithm of the answer: turn it back with np.exp.": math.log(want),
            "a straight line through bpp itself does not follow the halving per CRF step; fit log(bpp) instead.": (
                icept + slope * crf
            ),
            "that is the nearest measured point, not the line's prediction.": float(bpps[np.abs(crfs - crf).argmin()]),
        }
        hint = next((h for h, v in suspects.items() if math.isfinite(v) and abs(got - v) <= 1e-6 * abs(v)), "")
        return _verdict(
            False,
            f"with CRFs {crfs.tolist()} the line predicts {want:.5f} bpp at CRF {crf}; you gave {got:.5f}. "
            + (hint or "Fit np.polyfit(crfs, np.log(bpps), 1) and read it at crf."),
        )
    return _verdict(True, "your predictions follow the line through log(bpp): bits fall by a fixed factor per step.")


# -- Exercise 11.2 ------------------------------------------------------------------
# (strengths from mild to strong, AUCs, level, the answer)
_SWEEPS = [
    ([23, 32, 40, 46], [0.97, 0.93, 0.84, 0.71], 0.9, 40),
    ([90, 50, 20, 5], [0.95, 0.94, 0.90, 0.82], 0.9, 5),  # JPEG quality falls as compression grows; 0.90 is not below
    ([31, 45, 55, 63], [0.88, 0.86, 0.92, 0.70], 0.9, 31),  # below already at the mildest point
    ([30, 45, 55, 63], [0.96, 0.95, 0.93, 0.91], 0.9, None),  # never below
    ([23, 32, 40, 46], [0.92, 0.85, 0.91, 0.80], 0.9, 32),  # not monotone: the first drop counts
]


def check_first_strength_below(fn) -> bool:
    """Exercise 11.2: ``fn(strengths, aucs, level)`` returns the mildest strength whose AUC is below ``level``.

    ``strengths`` run from mild to strong compression (as ``CODECS[name].strengths``: CRF rising, or JPEG quality
    falling), ``aucs`` are the matching AUCs. The answer is the first strength, in that order, with
    ``auc < level`` (strictly), or None when no AUC is below it.
    """
    for strengths, aucs, level, want in _SWEEPS:
        got, err = _call(fn, list(strengths), list(aucs), level)
        if err and not (want is None and "returned None" in err):
            return _verdict(False, err)
        if err:
            continue
        if want is not None and got == want:
            continue
        below = [s for s, a in zip(strengths, aucs, strict=True) if a < level]
        suspects = {
            "that is a position in the list; return the strength itself.": [i for i, a in enumerate(aucs) if a < level][
                :1
            ],
            "use a strict '<': an AUC equal to the level is not below it.": [
                s for s, a in zip(strengths, aucs, strict=True) if a <= level
            ][:1],
            "that is the strongest such point; the question asks for the first one, walking from mild to strong.": (
                below[-1:]
            ),
            "that is the AUC at that point; return the strength itself.": [a for a in aucs if a < level][:1],
        }
        hint = next((h for h, v in suspects.items() if v and got == v[0]), "")
        shown = "None" if want is None else want
        return _verdict(
            False,
            f"strengths {strengths} with AUCs {aucs} and level {level}: the answer is {shown}; you gave {got!r}. "
            + (hint or "Walk the lists in order and return the first strength whose AUC is below the level."),
        )
    return _verdict(True, "you find where the AUC first falls below the level, and None when it never does.")
