"""Self-checks for Chapter 8, "Measuring a detector"."""

from __future__ import annotations

import warnings

import numpy as np

from ._common import _call, _verdict

__all__ = ["check_tar_at_far"]


# -- Chapter 8 ---------------------------------------------------------------------
def _cases(rng: np.random.Generator):
    """(scores, is_fake, far) triples that separate the usual slips: FAR hit exactly, a tie at the cut, FAR = 0."""
    # 10 reals, FAR 0.1: exactly one false accept is allowed (a strict "<" allows none).
    reals = np.arange(10, dtype=float)  # 0 .. 9
    fakes = np.array([3.5, 5.5, 7.5, 8.5, 9.5, 10.5, 11.5, 12.5])
    yield np.concatenate([reals, fakes]), np.r_[np.zeros(10, bool), np.ones(8, bool)], 0.1
    # A fake tied with the second-highest real: tied scores move together, so with one false accept allowed
    # the threshold cannot sit at 8.0 (that would accept two reals), and the tied fake is not accepted.
    reals = np.array([0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
    fakes = np.array([8.0, 8.0, 9.5, 10.0, 2.5, 6.5])
    yield np.concatenate([reals, fakes]), np.r_[np.zeros(10, bool), np.ones(6, bool)], 0.1
    # FAR 0.01 with 40 reals: no false accept possible, TAR at FAR = 0 (the chapter's situation). One fake sits
    # just below the highest real, above any interpolated quantile of the reals.
    reals, fakes = rng.normal(0.0, 1.0, 40), rng.normal(1.5, 1.0, 24)
    top2 = np.sort(reals)[-2:]
    fakes = np.r_[fakes, top2[0] + 0.9 * (top2[1] - top2[0])]
    yield np.concatenate([reals, fakes]), np.r_[np.zeros(40, bool), np.ones(25, bool)], 0.01
    # Shuffled, 200 reals, FAR 0.05: ten false accepts allowed.
    reals, fakes = rng.normal(0.0, 1.0, 200), rng.normal(1.0, 1.0, 60)
    s, y = np.concatenate([reals, fakes]), np.r_[np.zeros(200, bool), np.ones(60, bool)]
    perm = rng.permutation(len(s))
    yield s[perm], y[perm], 0.05


def _tar(s, y, far, strict=False, split_ties=False):
    """The reference TAR (default) and two known slips, used to name a wrong answer."""
    if split_ties:  # threshold at the (k+1)-th highest real, but fakes tied with it counted as accepted
        k = int(np.floor(far * (~y).sum() + 1e-9))
        t = np.sort(s[~y])[::-1][k]
        return float((s[y] >= t).mean())
    best = 0.0
    for t in np.r_[np.inf, np.unique(s)]:
        fpr, tpr = (s[~y] >= t).mean(), (s[y] >= t).mean()
        if (fpr < far if strict else fpr <= far + 1e-12) and tpr > best:
            best = float(tpr)
    return best


def check_tar_at_far(fn, seed: int = 0) -> bool:
    """Exercise 8.1: ``fn(scores, is_fake, far)`` returns TAR at FAR, a fraction in [0, 1].

    ``scores`` is a float array (higher = more likely fake), ``is_fake`` a bool array (True = fake, the positive
    class). The answer is the largest true-accept rate (fakes called fake) over all thresholds whose false-accept
    rate (reals called fake) is at most ``far``, with tied scores never split by the threshold: the value of
    ``antiforge_lib.metrics.tar_at_far``.
    """
    from ..metrics import FewNegativesWarning, tar_at_far

    rng = np.random.default_rng(seed)
    for t, (s, y, far) in enumerate(_cases(rng)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FewNegativesWarning)
            want = tar_at_far(s, y, far)
        got, err = _call(fn, s.copy(), y.copy(), far)
        if err:
            return _verdict(False, err)
        try:
            got = float(np.asarray(got, dtype=float).reshape(()))
        except (TypeError, ValueError):
            return _verdict(False, f"return one number, the TAR as a fraction; got {type(got).__name__}.")
        if abs(got - want) <= 1e-9:
            continue
        n_real, n_fake = int((~y).sum()), int(y.sum())
        suspects = {
            "you returned a percentage; return TAR as a fraction in [0, 1].": 100 * want,
            "reals and fakes are swapped: the fakes are the positives (TAR counts fakes called fake, FAR reals "
            "called fake).": _tar(s, ~y, far),
            "FAR may be *equal* to far: use FPR <= far, not FPR < far.": _tar(s, y, far, strict=True),
            "a fake tied with the real at the cut moves with it: if accepting that real would break the FAR "
            "limit, the tied fake is not accepted either.": _tar(s, y, far, split_ties=True),
            "you returned the FAR reached, not the TAR.": float(np.floor(far * n_real + 1e-9) / n_real),
        }
        hint = next((h for h, v in suspects.items() if abs(got - v) <= 1e-9), "")
        return _verdict(
            False,
            f"case {t} ({n_real} reals, {n_fake} fakes, far = {far:g}): expected TAR = {want:.4f}, you gave "
            f"{got:.4f}. " + (hint or "Sweep the threshold over the scores; keep the largest TPR with FPR <= far."),
        )
    return _verdict(True, "your TAR at FAR matches metrics.tar_at_far, ties and the FAR = 0 case included.")
