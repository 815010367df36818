"""The Chapter 11 self-checks accept right answers and reject plausible wrong ones."""

import numpy as np
from conftest import rejects_naming_each_mistake, survives_broken_answers
from scipy import stats

from antiforge_lib import exercises as ex


def test_predict_bpp_accepts_a_regression_in_any_base(capsys):
    def scipy_line(crfs, bpps, crf):  # an independent least-squares fit, in base 2
        fit = stats.linregress(crfs, np.log2(bpps))
        return 2 ** (fit.intercept + fit.slope * crf)

    assert ex.check_predict_bpp(scipy_line)
    assert ex.check_predict_bpp(lambda c, b, x: np.exp(np.polyval(np.polyfit(c, np.log(b), 1), x)))
    assert capsys.readouterr().out.count("Correct") == 2


def test_predict_bpp_names_the_mistake(capsys):
    wrong = {
        "logarithm of the answer": lambda c, b, x: np.polyval(np.polyfit(c, np.log(b), 1), x),
        "fit log(bpp) instead": lambda c, b, x: np.polyval(np.polyfit(c, b, 1), x),
        "nearest measured point": lambda c, b, x: b[np.abs(np.asarray(c) - x).argmin()],
    }
    rejects_naming_each_mistake(ex.check_predict_bpp, wrong, capsys)


def first_below(strengths, aucs, level):
    for s, a in zip(strengths, aucs, strict=True):
        if a < level:
            return s
    return None


def test_first_strength_below_accepts_a_loop_and_numpy(capsys):
    def with_numpy(strengths, aucs, level):
        hits = np.flatnonzero(np.asarray(aucs) < level)
        return strengths[hits[0]] if len(hits) else None

    assert ex.check_first_strength_below(first_below)
    assert ex.check_first_strength_below(with_numpy)
    assert capsys.readouterr().out.count("Correct") == 2


def test_first_strength_below_names_the_mistake(capsys):
    def pick(strengths, aucs, level, cond, last=False):
        hits = [s for s, a in zip(strengths, aucs, strict=True) if cond(a, level)]
        return (hits[-1] if last else hits[0]) if hits else None

    wrong = {
        "a position in the list": lambda s, a, lv: next((i for i, x in enumerate(a) if x < lv), None),
        "strict '<'": lambda s, a, lv: pick(s, a, lv, lambda x, y: x <= y),
        "strongest such point": lambda s, a, lv: pick(s, a, lv, lambda x, y: x < y, last=True),
        "the AUC at that point": lambda s, a, lv: next((x for x in a if x < lv), None),
    }
    rejects_naming_each_mistake(ex.check_first_strength_below, wrong, capsys)


def test_the_checks_survive_unfinished_and_broken_answers(capsys):
    survives_broken_answers([ex.check_predict_bpp, ex.check_first_strength_below], capsys)
