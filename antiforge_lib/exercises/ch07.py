"""Self-checks for Chapter 7, "Training with fastai"."""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch

from ._common import NOT_WRITTEN, _call, _verdict

__all__ = ["check_eq1_total", "check_early_stopping"]


# -- Exercise 7.1: the weighted total of eq. 1 ---------------------------------------------------------------------
def _loss_parts(seed: int, lambdas: dict, with_critic: bool, transfer: bool = True):
    """Random model outputs through :class:`~antiforge_lib.losses.AntiCompressionLoss`: (total, parts).

    ``parts`` holds the unweighted terms that are on, as :class:`~antiforge_lib.callbacks.LossBreakdown` records
    them; a term that is off (no critic in validation, an ablation switch) has no entry.
    """
    from ..losses import AntiCompressionLoss

    g = torch.Generator().manual_seed(seed)
    B, d, h = 6, 16, 4
    is_fake = torch.tensor([0, 1, 0, 1, 1, 0])
    out = SimpleNamespace(
        c_hq=torch.randn(B, d, generator=g, dtype=torch.float64) * 3,
        c_lq=torch.randn(B, d, generator=g, dtype=torch.float64) * 3,
        m_hq=torch.rand(B, 1, h, h, generator=g, dtype=torch.float64) * 0.9 + 0.05,
        m_lq=torch.rand(B, 1, h, h, generator=g, dtype=torch.float64) * 0.9 + 0.05,
    )
    mask = (torch.rand(B, 1, h, h, generator=g) > 0.5).double() * is_fake.view(B, 1, 1, 1)
    d_a, d_b = (torch.randn(B, generator=g, dtype=torch.float64) + 2, torch.randn(B, generator=g, dtype=torch.float64))
    loss = AntiCompressionLoss(**lambdas, use_transfer=transfer)
    total, parts = loss(out, is_fake, mask, *((d_a, d_b) if with_critic else ()))
    off = {"total"} | ({"adversarial"} if not with_critic else set()) | ({"transfer"} if not transfer else set())
    return total.item(), {k: v.item() for k, v in parts.items() if k not in off}


_WRONG_TOTALS = {
    # name of the mistake -> how the total comes out with it (parts p, weights gan, at, pair)
    "Weight the terms: the pair term by lambda_pair (lambda_3), the attention and transfer terms by lambda_at "
    "(lambda_2), the adversarial term by lambda_gan (lambda_1).": lambda p, gan, at, pair: sum(p.values()),
    "lambda_at (lambda_2) scales the whole of L_AT in eq. 1, the transfer term included, not only the two "
    "attention cross-entropies.": lambda p, gan, at, pair: (
        p["metric_hq"]
        + p["metric_lq"]
        + pair * p["pair"]
        + at * (p["attention_hq"] + p["attention_lq"])
        + p.get("transfer", 0)
        + gan * p.get("adversarial", 0)
    ),
    "lambda_pair (lambda_3) weighs only the pair term inside L_Dis (eq. 6); the two metric terms have weight 1.": (
        lambda p, gan, at, pair: (
            pair * (p["metric_hq"] + p["metric_lq"] + p["pair"])
            + at * (p["attention_hq"] + p["attention_lq"] + p.get("transfer", 0))
            + gan * p.get("adversarial", 0)
        )
    ),
    "lambda_at and lambda_pair are swapped: lambda_pair (lambda_3) weighs the pair term, lambda_at (lambda_2) the "
    "attention terms.": lambda p, gan, at, pair: (
        p["metric_hq"]
        + p["metric_lq"]
        + at * p["pair"]
        + pair * (p["attention_hq"] + p["attention_lq"] + p.get("transfer", 0))
        + gan * p.get("adversarial", 0)
    ),
    "Each branch has its own metric and attention term: add metric_hq and metric_lq, attention_hq and "
    "attention_lq.": lambda p, gan, at, pair: (
        p["metric_lq"]
        + pair * p["pair"]
        + at * (p["attention_lq"] + p.get("transfer", 0))
        + gan * p.get("adversarial", 0)
    ),
}


def check_eq1_total(fn) -> bool:
    """Exercise 7.1: ``fn(parts, lambda_gan, lambda_at, lambda_pair)`` returns the weighted total of eq. 1.

    ``parts`` maps the names of :data:`antiforge_lib.losses.PART_NAMES` (without ``total``) to the unweighted
    terms (floats) that are on; a term that is off has no key: ``adversarial`` is missing in validation, where no
    critic runs, and ``transfer`` in an ablation without transfer. The answer must equal the total of
    :class:`~antiforge_lib.losses.AntiCompressionLoss` with the same weights::

        metric_hq + metric_lq + lambda_pair * pair
        + lambda_at * (attention_hq + attention_lq + transfer) + lambda_gan * adversarial
    """
    trials = [
        ("a training batch with the critic on, the paper's weights", dict(), True, True),
        ("a training batch, other weights", dict(lambda_gan=0.5, lambda_at=2.0, lambda_pair=0.3), True, True),
        ("a validation batch (no critic runs, so no 'adversarial' part)", dict(lambda_gan=0.5), False, True),
        ("an ablation without transfer (no 'transfer' part)", dict(lambda_at=1.5, lambda_pair=0.2), True, False),
    ]
    defaults = dict(lambda_gan=0.001, lambda_at=1.0, lambda_pair=0.1)
    for t, (what, lambdas, with_critic, transfer) in enumerate(trials):
        w = {**defaults, **lambdas}
        want, parts = _loss_parts(t, w, with_critic, transfer)
        out, err = _call(fn, dict(parts), w["lambda_gan"], w["lambda_at"], w["lambda_pair"])
        if isinstance(err, str) and "KeyError" in err:
            err += (
                ". A term that is off has no entry in parts (in validation no critic runs, so there is no "
                "'adversarial'); use parts.get(name, 0)."
            )
        if err:
            return _verdict(False, err if err == NOT_WRITTEN else f"{what}: {err}")  # a stub fails every case alike
        try:
            got = float(out)
        except (TypeError, ValueError, RuntimeError):
            return _verdict(False, f"return one number (a float or a 0-d tensor), got {type(out).__name__}.")
        if math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9):
            continue
        gan, at, pair = w["lambda_gan"], w["lambda_at"], w["lambda_pair"]
        hint = next(
            (h for h, f in _WRONG_TOTALS.items() if math.isclose(got, f(parts, gan, at, pair), rel_tol=1e-6)),
            "Check each weight against eq. 1, 5 and 6.",
        )
        return _verdict(
            False,
            f"{what} (lambda_gan={gan}, lambda_at={at}, lambda_pair={pair}): the total is {want:.6f}, "
            f"you gave {got:.6f}. {hint}",
        )
    return _verdict(True, "your total matches AntiCompressionLoss, with and without the adversarial term.")


# -- Exercise 7.2: early stopping and the kept epoch -----------------------------------------------------------------
def early_stopping_reference(valid_losses, patience: int) -> tuple[int, int]:
    """``(best_epoch, last_epoch)`` of the library's rule (fastai's trackers, ``min_delta = 0``).

    An epoch improves when its validation loss is strictly below the best so far. Training stops after the epoch
    that makes ``patience`` epochs in a row without improvement (or after the last epoch given); the weights kept
    are those of the best epoch up to then (the first one, on ties).
    """
    best, best_epoch, wait = math.inf, -1, 0
    for epoch, loss in enumerate(valid_losses):
        if loss < best:
            best, best_epoch, wait = loss, epoch, 0
        else:
            wait += 1
            if wait >= patience:
                return best_epoch, epoch
    return best_epoch, len(valid_losses) - 1


def check_early_stopping(fn) -> bool:
    """Exercise 7.2: ``fn(valid_losses, patience)`` returns ``(best_epoch, last_epoch)``.

    ``valid_losses[e]`` is the validation loss after epoch ``e`` (0-based). ``last_epoch`` is the epoch after which
    early stopping ends training (:class:`~antiforge_lib.callbacks.EarlyStopping`: ``patience`` epochs in a row
    without a strictly lower validation loss), or the last epoch given; ``best_epoch`` is the epoch whose weights
    :class:`~antiforge_lib.callbacks.SaveBestModel` keeps: the lowest validation loss up to ``last_epoch``, the
    first on ties. See :func:`early_stopping_reference`.
    """
    trials = [
        ([1.0, 0.8, 0.7, 0.75, 0.72, 0.65, 0.69, 0.9], 3),  # never 3 epochs in a row without a new best
        ([1.0, 0.9, 0.95, 0.96, 0.97, 0.98, 0.99], 3),  # stops after epoch 4
        ([1.0, 0.8, 0.7, 0.75, 0.72, 0.71, 0.60, 0.5], 3),  # stops after epoch 5: the better epochs never run
        ([1.0, 0.8, 0.7, 0.75, 0.72, 0.71, 0.60, 0.5], 2),
        ([0.9, 0.9, 0.9, 0.9, 0.9], 3),  # an equal loss is no improvement
        ([0.5, 0.6, 0.4, 0.4, 0.45, 0.3], 2),
        ([2.0, 1.5, 1.2, 1.1], 1),  # every epoch improves: runs to the end
    ]
    for losses, patience in trials:
        want = early_stopping_reference(losses, patience)
        out, err = _call(fn, list(losses), patience)
        if err:
            return _verdict(False, err)
        try:
            got = tuple(int(x) for x in out)
        except (TypeError, ValueError):
            return _verdict(False, f"return a pair of epochs (best_epoch, last_epoch), got {out!r}.")
        if got == want:
            continue
        if len(got) != 2:
            return _verdict(False, f"return a pair of epochs (best_epoch, last_epoch), got {out!r}.")
        best, last = got
        hints = []
        if got == (want[0] + 1, want[1] + 1):
            hints.append("epochs are numbered from 0: valid_losses[0] is the loss after epoch 0.")
        else:
            ties = [e for e, v in enumerate(losses) if v == min(losses[: want[1] + 1])]
            if best != want[0]:
                if best > want[1] and losses[best] < min(losses[: want[1] + 1]):
                    hints.append(
                        "best_epoch lies after the stop: training never ran that epoch, so look only at the "
                        "epochs up to last_epoch."
                    )
                elif best in ties:
                    hints.append("on a tie keep the first epoch: an equal loss is no improvement.")
                else:
                    hints.append("best_epoch is the epoch with the lowest validation loss among those that ran.")
            if last != want[1]:
                if last == want[1] + 1:
                    hints.append(
                        f"you stop one epoch late: with patience {patience} training ends right after the "
                        f"{patience}-th epoch in a row without improvement."
                    )
                elif last == want[1] - 1:
                    hints.append(
                        f"you stop one epoch early: training ends after the {patience}-th epoch in a row without "
                        "improvement, not before it."
                    )
                elif last == len(losses) - 1:
                    hints.append(
                        "training should have stopped: count the epochs in a row without a strictly lower loss "
                        "than the best so far."
                    )
                else:
                    hints.append(
                        "count the epochs without improvement since the best one (a new best resets the count) "
                        "and stop when the count reaches patience."
                    )
        return _verdict(
            False,
            f"for valid_losses = {losses} and patience {patience} the answer is (best_epoch, last_epoch) = {want}; "
            f"you gave {got}. " + " ".join(hints),
        )
    return _verdict(True, "your rule stops where EarlyStopping stops and keeps the epoch SaveBestModel keeps.")
