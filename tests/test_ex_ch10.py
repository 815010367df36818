"""The Chapter 10 self-check accepts right answers and rejects plausible wrong ones."""

import numpy as np
from conftest import rejects_naming_each_mistake, survives_broken_answers

from antiforge_lib import exercises as ex
from antiforge_lib import viz


def _verdicts(capsys):
    return capsys.readouterr().out


def test_pair_distance_check_accepts_the_library_and_a_hand_written_one(capsys):
    assert ex.check_pair_distance(lambda h, l: viz.pair_distance({"c_hq": h, "c_lq": l}))
    assert ex.check_pair_distance(lambda h, l: np.sqrt(((l - h) ** 2).sum(axis=1)))
    assert _verdicts(capsys).count("Correct") == 2


def test_pair_distance_check_names_the_mistake(capsys):
    wrong = {
        "squared distance": lambda h, l: ((l - h) ** 2).sum(1),
        "difference of the two norms": lambda h, l: np.abs(np.linalg.norm(l, axis=1) - np.linalg.norm(h, axis=1)),
        "L1": lambda h, l: np.abs(l - h).sum(1),
        "cosine": lambda h, l: 1 - (h * l).sum(1) / (np.linalg.norm(h, axis=1) * np.linalg.norm(l, axis=1)),
        "axis 0": lambda h, l: np.linalg.norm(l - h, axis=0),
        "one number": lambda h, l: np.linalg.norm(l - h, axis=1).mean(),
        "difference vectors": lambda h, l: l - h,
    }
    rejects_naming_each_mistake(ex.check_pair_distance, wrong, capsys)


def test_pair_distance_check_survives_unfinished_and_broken_answers(capsys):
    survives_broken_answers([ex.check_pair_distance], capsys)
