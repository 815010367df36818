"""The Chapter 8 self-check accepts right answers and rejects plausible wrong ones."""

import warnings

import numpy as np
from conftest import rejects_naming_each_mistake, survives_broken_answers

from antiforge_lib import exercises as ex
from antiforge_lib import metrics


def _verdicts(capsys):
    return capsys.readouterr().out


def _by_hand(s, y, far):
    """An independent TAR at FAR: allow k = floor(far * n_real) false accepts; fakes strictly above the
    (k+1)-th highest real are accepted (a fake tied with it moves with it, so it is not)."""
    k = int(np.floor(far * (~y).sum() + 1e-9))
    reals = np.sort(s[~y])[::-1]
    return float((s[y] > reals[k]).mean()) if k < len(reals) else 1.0


def _library(s, y, far):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", metrics.FewNegativesWarning)
        return metrics.tar_at_far(s, y, far)


def test_tar_at_far_check_accepts_the_library_and_a_hand_written_one(capsys):
    assert ex.check_tar_at_far(_library)
    assert ex.check_tar_at_far(_by_hand)
    assert _verdicts(capsys).count("Correct") == 2


def test_tar_at_far_check_names_the_mistake(capsys):
    def strict(s, y, far):  # FPR < far instead of <= far
        return max((s[y] >= t).mean() for t in np.r_[np.inf, s] if (s[~y] >= t).mean() < far)

    def split_ties(s, y, far):  # fakes tied with the cut real counted as accepted
        k = int(np.floor(far * (~y).sum() + 1e-9))
        return float((s[y] >= np.sort(s[~y])[::-1][k]).mean())

    wrong = {
        "swapped": lambda s, y, far: _library(s, ~y, far),
        "FPR <= far": strict,
        "tied": split_ties,
        "percentage": lambda s, y, far: 100 * _library(s, y, far),
        "the FAR reached": lambda s, y, far: np.floor(far * (~y).sum() + 1e-9) / (~y).sum(),
        "quantile": lambda s, y, far: float((s[y] > np.quantile(s[~y], 1 - far)).mean()),
    }
    rejects_naming_each_mistake(ex.check_tar_at_far, wrong, capsys, unnamed=("quantile",))


def test_tar_at_far_check_survives_unfinished_and_broken_answers(capsys):
    survives_broken_answers([ex.check_tar_at_far], capsys)
