"""The Chapter 4 exercise self-checks accept right answers and reject plausible wrong ones."""

import torch
import torch.nn.functional as F
from conftest import survives_broken_answers

from antiforge_lib import losses
from antiforge_lib.exercises import check_decision_rule, check_metric_loss, check_pair_loss


def _hinges(c, is_fake, r_minus, r_plus, norm=None):
    norm = c.norm(dim=1) if norm is None else norm
    return torch.where(is_fake == 1, (r_plus - norm).clamp(min=0), (norm - r_minus).clamp(min=0))


def test_metric_loss_check_accepts_the_library_and_a_hand_written_answer(capsys):
    assert check_metric_loss(losses.metric_loss)
    assert check_metric_loss(lambda c, y, rm, rp: _hinges(c, y, rm, rp).mean())
    assert capsys.readouterr().out.count("Correct") == 2


def test_metric_loss_check_rejects_sum_squared_norm_and_missing_hinge(capsys):
    assert not check_metric_loss(lambda c, y, rm, rp: _hinges(c, y, rm, rp).sum())
    assert "summed" in capsys.readouterr().out
    assert not check_metric_loss(lambda c, y, rm, rp: _hinges(c, y, rm, rp, norm=c.pow(2).sum(1)).mean())
    assert "squared norm" in capsys.readouterr().out
    no_clamp = lambda c, y, rm, rp: torch.where(y == 1, rp - c.norm(dim=1), c.norm(dim=1) - rm).mean()  # noqa: E731
    assert not check_metric_loss(no_clamp)
    assert "max(0, .)" in capsys.readouterr().out


def test_metric_loss_check_rejects_swapped_labels_and_radii(capsys):
    assert not check_metric_loss(lambda c, y, rm, rp: _hinges(c, 1 - y, rm, rp).mean())
    assert "swapped" in capsys.readouterr().out
    assert not check_metric_loss(lambda c, y, rm, rp: _hinges(c, y, rp, rm).mean())
    assert "radii are swapped" in capsys.readouterr().out
    assert not check_metric_loss(lambda c, y, rm, rp: _hinges(c, y, rm, rp))  # no mean: B numbers
    assert "forget the mean" in capsys.readouterr().out


def test_decision_rule_check(capsys):
    assert check_decision_rule(lambda c, rm, rp: c.norm(dim=1) > (rm + rp) / 2)
    assert "Correct" in capsys.readouterr().out
    assert not check_decision_rule(lambda c, rm, rp: c.norm(dim=1) > rp)
    assert "r_plus as the threshold" in capsys.readouterr().out
    assert not check_decision_rule(lambda c, rm, rp: c.norm(dim=1) >= (rm + rp) / 2)
    assert "exactly on the threshold" in capsys.readouterr().out
    assert not check_decision_rule(lambda c, rm, rp: c.norm(dim=1) <= (rm + rp) / 2)
    assert "inverted" in capsys.readouterr().out
    assert not check_decision_rule(lambda c, rm, rp: c.pow(2).sum(1) > (rm + rp) / 2)
    assert "squared norm" in capsys.readouterr().out
    assert not check_decision_rule(lambda c, rm, rp: c.norm(dim=1))  # scores, not decisions
    assert "not scores" in capsys.readouterr().out


def test_pair_loss_check(capsys):
    assert check_pair_loss(losses.pair_loss)
    assert check_pair_loss(lambda a, b: (a - b).norm(dim=1).mean())
    assert capsys.readouterr().out.count("Correct") == 2
    assert not check_pair_loss(lambda a, b: (a - b).pow(2).sum(1).mean())
    assert "squared distance" in capsys.readouterr().out
    assert not check_pair_loss(lambda a, b: (a - b).norm(dim=1).sum())
    assert "summed" in capsys.readouterr().out
    assert not check_pair_loss(F.mse_loss)
    assert "mse_loss" in capsys.readouterr().out
    assert not check_pair_loss(lambda a, b: (a - b).norm())
    assert "whole (B, d)" in capsys.readouterr().out


def test_chapter4_checks_give_a_verdict_on_stubs_and_crashes(capsys):
    survives_broken_answers((check_metric_loss, check_decision_rule, check_pair_loss), capsys)
    assert not check_metric_loss(lambda c, y, rm, rp: None)
    assert not check_decision_rule(lambda c, rm, rp: None)
    assert not check_pair_loss(lambda a, b: None)
    assert not check_metric_loss(lambda c, y, rm, rp: 1 / 0)
    assert not check_decision_rule(lambda c, rm, rp: "fake")
    assert not check_pair_loss(lambda a, b: torch.zeros(3, 3))
    out = capsys.readouterr().out
    assert out.count("Not yet") == 6 and "Traceback" not in out
