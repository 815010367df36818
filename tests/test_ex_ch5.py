"""The Chapter 5 self-check for the direction of the attention transfer accepts right answers, rejects wrong ones."""

import torch
import torch.nn.functional as F

from antiforge_lib import losses
from antiforge_lib.exercises import check_transfer_direction


def _distance(a, b):
    # independent of the library: per-sample distance of the unit-normalised flattened maps, batch mean
    return (F.normalize(a.flatten(1), dim=1, eps=1e-8) - F.normalize(b.flatten(1), dim=1, eps=1e-8)).norm(dim=1).mean()


def test_accepts_the_library_and_a_hand_written_answer(capsys):
    assert check_transfer_direction(lambda a, b, d: losses.attention_transfer_loss(a, b, detach_hq=d))
    assert check_transfer_direction(lambda a, b, d: _distance(a.detach() if d else a, b))
    assert capsys.readouterr().out.count("Correct") == 2


def test_rejects_a_fixed_reading_either_way(capsys):
    assert not check_transfer_direction(lambda a, b, d: _distance(a.detach(), b))  # always one-way
    assert "detach only when detach_hq is True" in capsys.readouterr().out
    assert not check_transfer_direction(lambda a, b, d: _distance(a, b))  # never detached
    assert "no gradient may reach m_hq" in capsys.readouterr().out


def test_rejects_the_wrong_map_detached_and_a_wrong_value(capsys):
    assert not check_transfer_direction(lambda a, b, d: _distance(a, b.detach()) if d else _distance(a, b))
    assert "detach m_lq instead of m_hq" in capsys.readouterr().out
    assert not check_transfer_direction(lambda a, b, d: _distance(a.detach() if d else a, b) ** 2)  # squared
    assert "changes the gradient, not the value" in capsys.readouterr().out
    assert not check_transfer_direction(lambda a, b, d: torch.tensor(float(_distance(a, b))))  # no graph
    assert "no gradient" in capsys.readouterr().out
