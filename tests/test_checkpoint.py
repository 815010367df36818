"""checkpoint and _dist: where the resume machinery and the critic's data-parallel plumbing live now.

Checkpoints, resume and the trackers are exercised end to end in tests/test_learner.py, and the critic's sync across
two real processes in tests/test_distributed.py; here: the old import paths, the class Chapter 7 prints, and
:func:`antiforge_lib._dist.replicate` with the collectives replaced by fakes.
"""

import inspect

import torch

from antiforge_lib import _dist, callbacks, checkpoint
from antiforge_lib.callbacks import AdversarialAlignment


def test_callbacks_still_exports_the_resume_machinery():
    for name in checkpoint.__all__:
        assert getattr(callbacks, name) is getattr(checkpoint, name), name
        assert name in callbacks.__all__, name


def test_the_class_chapter_7_prints_has_no_distributed_plumbing():
    source = inspect.getsource(AdversarialAlignment)
    for word in ("distributed", "world_size", "broadcast", "all_reduce", "_average_grads"):
        assert word not in source, word


def test_replicate_is_a_no_op_in_one_process():
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    _dist.replicate(net, opt)
    assert not opt._optimizer_step_pre_hooks and not hasattr(opt, "_averages_grads")


def test_replicate_broadcasts_once_per_call_and_averages_each_step_once(monkeypatch):
    sent, reduced = [], []
    monkeypatch.setattr(_dist, "_world_size", lambda: 2)
    monkeypatch.setattr(torch.distributed, "broadcast", lambda t, src: sent.append((t.shape, src)))
    # The other rank's gradient is 3x ours: the sum over the two ranks is 4x, the mean 2x.
    monkeypatch.setattr(torch.distributed, "all_reduce", lambda t: (reduced.append(t.shape), t.mul_(4)))
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    _dist.replicate(net, opt)
    _dist.replicate(net, opt)  # a second fit: broadcast again, but average only once per step
    assert sent == 2 * [(torch.Size([2, 3]), 0), (torch.Size([2]), 0)]

    before = net.weight.detach().clone()
    net(torch.ones(1, 3)).sum().backward()
    grad = net.weight.grad.clone()  # d/dW of sum(W x + b) at x = 1: all ones
    opt.step()
    assert reduced == [torch.Size([2, 3]), torch.Size([2])]
    assert torch.equal(net.weight.detach(), before - 2 * grad)  # SGD with lr 1 stepped on the mean gradient
