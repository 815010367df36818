"""Self-checks for Chapter 4, "The metric loss"."""

from __future__ import annotations

import torch

from .. import losses
from ._common import _as_tensor, _call, _verdict

__all__ = [
    "check_metric_loss",
    "check_decision_rule",
    "check_pair_loss",
]


# -- Chapter 4 ---------------------------------------------------------------------
def _four_cases(g: torch.Generator, b: int, d: int, r_minus: float, r_plus: float):
    """Embeddings and 0/1 labels covering every hinge case: real inside/outside r-, fake inside/outside r+."""
    is_fake = torch.arange(b) % 2  # 0, 1, 0, 1, ...
    lo = torch.tensor(
        [0.2 * r_minus, 0.5 * (r_minus + r_plus)], dtype=torch.float64
    )  # real: inside r-, between the radii
    hi = torch.tensor(
        [0.5 * (r_minus + r_plus), 1.5 * r_plus], dtype=torch.float64
    )  # fake: between the radii, beyond r+
    pick = (torch.arange(b) // 2) % 2
    norm = torch.where(is_fake == 1, hi[pick], lo[pick]) * (1 + 0.2 * torch.rand(b, generator=g, dtype=torch.float64))
    direction = torch.nn.functional.normalize(torch.randn(b, d, generator=g, dtype=torch.float64), dim=1)
    perm = torch.randperm(b, generator=g)
    return (direction * norm[:, None])[perm], is_fake[perm]


def _one_number(got, what: str):
    got, err = _as_tensor(got, what)
    if err:
        return None, err
    if got.numel() != 1:
        return (
            None,
            f"{what} must be one number (a 0-d tensor), got shape {tuple(got.shape)} -- did you forget the mean?",
        )
    return got.reshape(()).item(), None


def check_metric_loss(fn, trials: int = 10, seed: int = 0) -> bool:
    """Exercise 4.1: ``fn(c, is_fake, r_minus, r_plus)`` computes one branch's metric loss (eq. 6).

    ``c`` is a ``(B, d)`` float tensor, ``is_fake`` a ``(B,)`` long tensor of 0/1 labels (1 = fake). The answer is
    the mean over the batch of ``max(0, ||c|| - r_minus)`` for reals and ``max(0, r_plus - ||c||)`` for fakes.
    """
    g = torch.Generator().manual_seed(seed)
    for t in range(trials):
        b, d = int(torch.randint(8, 33, (1,), generator=g)), int(torch.randint(2, 65, (1,), generator=g))
        r_minus = float(torch.rand(1, generator=g)) * 0.5
        r_plus = r_minus + 1 + 20 * float(torch.rand(1, generator=g))
        c, is_fake = _four_cases(g, b, d, r_minus, r_plus)
        want = losses.metric_loss(c, is_fake, r_minus, r_plus).item()
        got, err = _call(fn, c.clone(), is_fake.clone(), r_minus, r_plus)
        if not err:
            got, err = _one_number(got, "the loss")
        if err:
            return _verdict(False, err)
        if abs(got - want) <= 1e-6 * max(1.0, abs(want)):
            continue
        norm, fake = c.norm(dim=1), is_fake == 1
        hinge = torch.where(fake, (r_plus - norm).clamp(min=0), (norm - r_minus).clamp(min=0))
        sq = c.pow(2).sum(1)
        suspects = {
            "you summed the hinges; take their mean over the batch, so the loss does not grow with B.": hinge.sum(),
            "you averaged reals and fakes separately; take one mean over all B samples.": (
                hinge[~fake].mean() + hinge[fake].mean()
            ),
            "did you use the squared norm? The radii compare with ||c||_2 itself.": torch.where(
                fake, (r_plus - sq).clamp(min=0), (sq - r_minus).clamp(min=0)
            ).mean(),
            "did you forget max(0, .)? A real inside r- or a fake beyond r+ must cost nothing.": torch.where(
                fake, r_plus - norm, norm - r_minus
            ).mean(),
            "reals and fakes are swapped: label 1 means fake, and fakes are pushed *out* beyond r+.": torch.where(
                ~fake, (r_plus - norm).clamp(min=0), (norm - r_minus).clamp(min=0)
            ).mean(),
            "the radii are swapped: reals use r_minus (the small ball), fakes use r_plus.": torch.where(
                fake, (r_minus - norm).clamp(min=0), (norm - r_plus).clamp(min=0)
            ).mean(),
        }
        hint = next((h for h, v in suspects.items() if abs(got - v.item()) <= 1e-6 * max(1.0, abs(v.item()))), None)
        return _verdict(
            False,
            f"trial {t} (B={b}, r_minus={r_minus:.3f}, r_plus={r_plus:.3f}): the loss is {want:.5f}, you gave "
            f"{got:.5f}. " + (hint or "Check each of the four cases: real inside/outside r-, fake inside/outside r+."),
        )
    return _verdict(True, f"all {trials} random batches match the reference, all four hinge cases included.")


def check_decision_rule(fn, trials: int = 10, seed: int = 0) -> bool:
    """Exercise 4.2: ``fn(c, r_minus, r_plus)`` returns a ``(B,)`` bool tensor, True where the face is called fake.

    The rule of Sec. 4.2: fake exactly when ``||c||_2 > (r_minus + r_plus) / 2`` (a face on the threshold is real).
    """
    g = torch.Generator().manual_seed(seed)
    for t in range(trials):
        b, d = 40, int(torch.randint(2, 65, (1,), generator=g))
        if t == 0:  # radii whose midpoint (2.0) an embedding can hit exactly
            r_minus, r_plus = 1.0, 3.0
        else:
            r_minus = float(torch.rand(1, generator=g)) * 0.5
            r_plus = r_minus + 1 + 20 * float(torch.rand(1, generator=g))
        mid = (r_minus + r_plus) / 2
        # norms spread over [0, 1.5 r_plus], so some fall between r-, mid, r+ and beyond
        norm = torch.rand(b, generator=g, dtype=torch.float64) * 1.5 * r_plus
        c = torch.nn.functional.normalize(torch.randn(b, d, generator=g, dtype=torch.float64), dim=1) * norm[:, None]
        if t == 0:
            c[0] = 0
            c[0, 0] = mid  # exactly on the threshold: real
        norm = c.norm(dim=1)
        want = norm > mid
        got, err = _call(fn, c.clone(), r_minus, r_plus)
        if not err:
            got, err = _as_tensor(got, "the decisions")
        if err:
            return _verdict(False, err)
        if got.shape != want.shape:
            return _verdict(False, f"return one decision per face, shape {tuple(want.shape)}; got {tuple(got.shape)}")
        if not ((got == 0) | (got == 1)).all():
            return _verdict(
                False, "return True/False (or 1/0) per face, not scores; compare the norm with a threshold."
            )
        got = got.bool()
        bad = (got != want).nonzero().flatten()
        if not len(bad):
            continue
        i = int(bad[0])
        if (got == ~want).all():
            hint = "your answers are inverted: True should mean fake (far from the origin)."
        elif t == 0 and i == 0 and len(bad) == 1:
            hint = "a face exactly on the threshold is real: fake only when the norm is *larger* than the midpoint."
        elif torch.equal(got, norm > r_plus) or torch.equal(got, norm >= r_plus):
            hint = "you used r_plus as the threshold; the paper uses the midpoint (r_minus + r_plus) / 2."
        elif torch.equal(got, norm > r_minus) or torch.equal(got, norm >= r_minus):
            hint = "you used r_minus as the threshold; the paper uses the midpoint (r_minus + r_plus) / 2."
        elif torch.equal(got, norm.pow(2) > mid):
            hint = "did you compare the squared norm with the threshold? Use ||c||_2 itself."
        else:
            hint = "fake exactly when ||c||_2 > (r_minus + r_plus) / 2."
        return _verdict(
            False,
            f"trial {t} (r_minus={r_minus:.3f}, r_plus={r_plus:.3f}): face {i} with ||c|| = {norm[i]:.3f} should be "
            f"{'fake' if want[i] else 'real'}; {len(bad)} of {b} decisions differ. {hint}",
        )
    return _verdict(True, f"your rule agrees with ||c|| > (r- + r+) / 2 on all {trials} batches, edge case included.")


def check_pair_loss(fn, trials: int = 10, seed: int = 0) -> bool:
    """Exercise 4.3: ``fn(c_hq, c_lq)`` returns the pair term of eq. 6, the mean L2 distance of paired rows."""
    g = torch.Generator().manual_seed(seed)
    for t in range(trials):
        b, d = int(torch.randint(4, 33, (1,), generator=g)), int(torch.randint(2, 65, (1,), generator=g))
        c_hq = 5 * torch.randn(b, d, generator=g, dtype=torch.float64)
        c_lq = c_hq + torch.randn(b, d, generator=g, dtype=torch.float64) * torch.rand(b, 1, generator=g) * 3
        want = losses.pair_loss(c_hq, c_lq).item()
        got, err = _call(fn, c_hq.clone(), c_lq.clone())
        if not err:
            got, err = _one_number(got, "the loss")
        if err:
            return _verdict(False, err)
        if abs(got - want) <= 1e-6 * max(1.0, abs(want)):
            continue
        diff = c_hq - c_lq
        dist = diff.norm(dim=1)
        suspects = {
            "did you use the squared distance? The pair term uses the plain L2 distance ||C_h - C_l||_2.": (
                dist.pow(2).mean()
            ),
            "you summed over the pairs; take the mean over the batch.": dist.sum(),
            "that is F.mse_loss (mean of squared entries); the pair term is the L2 norm of each row, averaged.": (
                diff.pow(2).mean()
            ),
            "you took one norm of the whole (B, d) difference; take one norm per row (dim=1), then the mean.": (
                diff.norm()
            ),
            "that is the L1 distance; use the L2 norm of each row.": diff.abs().sum(1).mean(),
            "you averaged over the entries, not over the pairs; take the norm of each row, then the mean.": (
                diff.abs().mean()
            ),
        }
        hint = next((h for h, v in suspects.items() if abs(got - v.item()) <= 1e-6 * max(1.0, abs(v.item()))), None)
        return _verdict(
            False,
            f"trial {t} (B={b}, d={d}): the pair loss is {want:.5f}, you gave {got:.5f}. "
            + (hint or "Take ||C_h - C_l||_2 of each pair (row), then the mean over the batch."),
        )
    return _verdict(True, f"all {trials} random batches match the reference pair loss.")
