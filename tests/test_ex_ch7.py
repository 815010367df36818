"""The Chapter 7 self-checks accept right answers and reject plausible wrong ones."""

import warnings

import pytest
import torch
from conftest import rejects_naming_each_mistake, survives_broken_answers
from fastai.callback.core import Callback
from torch import nn

from antiforge_lib import exercises as ex
from antiforge_lib.exercises.ch07 import _loss_parts, early_stopping_reference


def _verdicts(capsys):
    return capsys.readouterr().out


# -- Exercise 7.1 --------------------------------------------------------------------------------------------------
def _eq1(p, gan, at, pair):
    """eq. 1 typed from the paper (eq. 5 and 6 inside), independent of the library."""
    l_dis = p["metric_hq"] + p["metric_lq"] + pair * p["pair"]
    l_at = p["attention_hq"] + p["attention_lq"] + p.get("transfer", 0.0)
    return l_dis + gan * p.get("adversarial", 0.0) + at * l_at


@pytest.mark.parametrize("with_critic,transfer", [(True, True), (False, True), (True, False)])
def test_the_checks_reference_is_eq1(with_critic, transfer):
    w = dict(lambda_gan=0.5, lambda_at=2.0, lambda_pair=0.3)
    total, parts = _loss_parts(0, w, with_critic, transfer)
    assert ("adversarial" in parts) == with_critic and ("transfer" in parts) == transfer
    assert total == pytest.approx(_eq1(parts, 0.5, 2.0, 0.3), rel=1e-6)  # parts are float32


def test_eq1_total_check_accepts_right_answers(capsys):
    assert ex.check_eq1_total(_eq1)
    assert ex.check_eq1_total(lambda p, gan, at, pair: torch.tensor(_eq1(p, gan, at, pair)))  # a 0-d tensor
    assert _verdicts(capsys).count("Correct") == 2


def test_eq1_total_check_names_the_mistake(capsys):
    wrong = {
        "Weight the terms": lambda p, gan, at, pair: sum(p.values()),
        "the transfer term included": lambda p, gan, at, pair: (
            _eq1(p, gan, at, pair) + (1 - at) * p.get("transfer", 0.0)
        ),
        "the two metric terms have weight 1": lambda p, gan, at, pair: (
            _eq1(p, gan, at, pair) + (pair - 1) * (p["metric_hq"] + p["metric_lq"])
        ),
        "swapped": lambda p, gan, at, pair: _eq1(p, gan, pair, at),
        "Each branch": lambda p, gan, at, pair: _eq1(p, gan, at, pair) - p["metric_hq"] - at * p["attention_hq"],
        "no 'adversarial'": lambda p, gan, at, pair: _eq1(p, gan, at, pair) + 0 * p["adversarial"],
        "Check each weight": lambda p, gan, at, pair: _eq1(p, gan, at, pair) + 0.01,
    }
    rejects_naming_each_mistake(ex.check_eq1_total, wrong, capsys)


# -- Exercise 7.2 --------------------------------------------------------------------------------------------------
class _MarkEpoch(Callback):
    """Write the epoch number into the model's bias after each training phase."""

    def after_train(self):
        with torch.no_grad():
            self.learn.model.bias.fill_(float(self.epoch))


def _library_rule(losses, patience, tmp_path):
    """(best_epoch, last_epoch) of the library's EarlyStopping + SaveBestModel on a scripted validation loss.

    A one-parameter model whose bias is set to the epoch number after each training phase: the weights that
    SaveBestModel reloads at the end name the epoch it kept.
    """
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner

    from antiforge_lib.callbacks import EarlyStopping, SaveBestModel

    ds = [(torch.zeros(1), torch.zeros(1))] * 4
    dls = DataLoaders.from_dsets(ds, ds, bs=4, device="cpu")
    model = nn.Linear(1, 1)
    learn = None

    def loss_func(pred, y):  # differentiable, and the scripted value in validation
        return (pred * 0).sum() + (0.0 if learn.training else losses[learn.epoch])

    learn = Learner(dls, model, loss_func=loss_func, path=tmp_path)
    learn.add_cbs([EarlyStopping(patience=patience), SaveBestModel(), _MarkEpoch()])
    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        learn.fit(len(losses), lr=0.0)
    return int(round(model.bias.item())), len(learn.recorder.values) - 1


TRIALS = [
    ([1.0, 0.8, 0.7, 0.75, 0.72, 0.65, 0.69, 0.9], 3),
    ([1.0, 0.9, 0.95, 0.96, 0.97, 0.98, 0.99], 3),
    ([1.0, 0.8, 0.7, 0.75, 0.72, 0.71, 0.60, 0.5], 2),
    ([0.9, 0.9, 0.9, 0.9, 0.9], 3),
    ([2.0, 1.5, 1.2, 1.1], 1),
]


@pytest.mark.parametrize("losses,patience", TRIALS)
def test_the_checks_reference_is_the_librarys_callbacks(losses, patience, tmp_path):
    assert early_stopping_reference(losses, patience) == _library_rule(losses, patience, tmp_path)


def test_early_stopping_check_accepts_the_reference(capsys):
    assert ex.check_early_stopping(early_stopping_reference)
    assert "Correct" in _verdicts(capsys)


def _rule(losses, patience, *, strict=True, late=0, one_based=False, global_best=False, vs_previous=False):
    """A configurable stopping rule: the right one by default, each keyword a known mistake."""
    best, best_epoch, wait, last = float("inf"), -1, 0, len(losses) - 1
    for e, v in enumerate(losses):
        ref = losses[e - 1] if vs_previous and e > 0 else best
        if (v < ref) if strict else (v <= ref):
            wait = 0
            if v < best or not strict:
                best, best_epoch = v, e
        else:
            wait += 1
            if wait >= patience + late:
                last = e
                break
    if global_best:
        best_epoch = min(range(len(losses)), key=lambda e: (losses[e], e))
    if one_based:
        return best_epoch + 1, last + 1
    return best_epoch, last


def test_early_stopping_check_names_the_mistake(capsys):
    wrong = {
        "an equal loss is no improvement": lambda l, p: _rule(l, p, strict=False),
        "one epoch late": lambda l, p: _rule(l, p, late=1),
        "numbered from 0": lambda l, p: _rule(l, p, one_based=True),
        "never ran that epoch": lambda l, p: _rule(l, p, global_best=True),
        "than the best so far": lambda l, p: _rule(l, p, vs_previous=True),
        "pair of epochs": lambda l, p: 3,
    }
    rejects_naming_each_mistake(ex.check_early_stopping, wrong, capsys)


def test_checks_survive_unfinished_and_broken_answers(capsys):
    survives_broken_answers((ex.check_eq1_total, ex.check_early_stopping), capsys)
