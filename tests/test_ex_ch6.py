"""The Chapter 6 self-checks accept right answers and reject plausible wrong ones."""

import torch
import torch.nn.functional as F
from conftest import rejects_naming_each_mistake, survives_broken_answers

from antiforge_lib import exercises as ex
from antiforge_lib import losses


def _verdicts(capsys):
    return capsys.readouterr().out


def test_critic_inputs_check_accepts_the_library(capsys):
    assert ex.check_critic_inputs(losses.critic_inputs)
    assert "Correct" in _verdicts(capsys)


def test_critic_inputs_check_names_the_mistake(capsys):
    cases = {
        "batch axis": lambda h, l: (torch.cat([h, l], 0), torch.cat([l, h], 0)),
        "channels last": lambda h, l: (torch.cat([h, l], -1), torch.cat([l, h], -1)),
        "swapped": lambda h, l: (torch.cat([l, h], 1), torch.cat([h, l], 1)),
        "same tensor": lambda h, l: (torch.cat([h, l], 1), torch.cat([h, l], 1)),
        "interleaved": lambda h, l: (torch.stack([h, l], 2).flatten(1, 2), torch.stack([l, h], 2).flatten(1, 2)),
        "stack": lambda h, l: (torch.stack([h, l], 1), torch.stack([l, h], 1)),
    }
    hints = {
        "batch axis": "batch axis",
        "channels last": "channels last",
        "swapped": "swapped",
        "same tensor": "same tensor",
        "interleaved": "interleaved",
        "stack": "torch.stack",
    }
    for name, wrong in cases.items():
        assert not ex.check_critic_inputs(wrong), name
        out = _verdicts(capsys)
        assert "Not yet" in out and hints[name] in out, (name, out)


def test_wgan_losses_check(capsys):
    assert ex.check_wgan_losses(lambda a, b: (losses.critic_loss(a, b), losses.adversarial_loss(a, b)))
    assert "Correct" in _verdicts(capsys)
    wrong = {
        "swapped": lambda a, b: (losses.adversarial_loss(a, b), losses.critic_loss(a, b)),
        "same": lambda a, b: (losses.critic_loss(a, b), losses.critic_loss(a, b)),
        "summed": lambda a, b: (b.sum() - a.sum(), a.sum() - b.sum()),
        "no sigmoid": lambda a, b: (
            -(F.logsigmoid(a).mean() + F.logsigmoid(-b).mean()),
            F.logsigmoid(a).mean() + F.logsigmoid(-b).mean(),
        ),
        "one number": lambda a, b: (b - a, a - b),
    }
    for name, fn in wrong.items():
        assert not ex.check_wgan_losses(fn), name
        out = _verdicts(capsys)
        assert "Not yet" in out, name
        assert {
            "swapped": "swapped",
            "same": "the same",
            "summed": "summed",
            "no sigmoid": "no sigmoid",
            "one number": "one number",
        }[name] in out, (name, out)


def _gp(critic, a, b, eps, weight=10.0, create_graph=True, detach=True, at=None, batch_norm=False):
    """A configurable penalty: the right one by default, each keyword a known mistake."""
    if detach:
        a, b = a.detach(), b.detach()
    x = eps * a + (1 - eps) * b if at is None else at(a, b, eps)
    if not x.requires_grad:
        x = x.requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=create_graph)
    norm = grad.norm() if batch_norm else grad.flatten(1).norm(dim=1)
    return weight * ((norm - 1) ** 2).mean()


def test_gradient_penalty_check_accepts_the_library_and_a_hand_written_one(capsys):
    assert ex.check_gradient_penalty(lambda c, a, b, e: losses.gradient_penalty(c, a, b, weight=10.0, eps=e))
    assert ex.check_gradient_penalty(_gp)
    assert _verdicts(capsys).count("Correct") == 2


def test_gradient_penalty_check_names_the_mistake(capsys):
    wrong = {
        "multiply by the weight": lambda c, a, b, e: _gp(c, a, b, e, weight=1.0),
        "not ||grad||**2": lambda c, a, b, e: (
            10
            * (
                torch.autograd.grad(c(x := (e * a + (1 - e) * b).requires_grad_(True)).sum(), x, create_graph=True)[0]
                .flatten(1)
                .pow(2)
                .sum(1)
                .mean()
            )
        ),
        "at a, not": lambda c, a, b, e: _gp(c, a, b, e, at=lambda a, b, e: a),
        "(1 - eps) * a + eps * b": lambda c, a, b, e: _gp(c, a, b, e, at=lambda a, b, e: (1 - e) * a + e * b),
        "one norm over the whole batch": lambda c, a, b, e: _gp(c, a, b, e, batch_norm=True),
        "create_graph=True": lambda c, a, b, e: _gp(c, a, b, e, create_graph=False),
        "detach them": lambda c, a, b, e: _gp(c, a, b, e, detach=False),
        "not .item()": lambda c, a, b, e: _gp(c, a, b, e).item(),
    }
    rejects_naming_each_mistake(ex.check_gradient_penalty, wrong, capsys)


def test_checks_survive_unfinished_and_broken_answers(capsys):
    survives_broken_answers((ex.check_critic_inputs, ex.check_wgan_losses, ex.check_gradient_penalty), capsys)
