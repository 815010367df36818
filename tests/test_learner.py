"""Tests of antiforge_lib.learner and antiforge_lib.callbacks on tiny synthetic pairs (32 px, resnet18/layer3)."""

import copy
import warnings

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

from antiforge_lib.callbacks import (
    AdversarialAlignment,
    CheckpointEveryEpoch,
    EarlyStopping,
    LossBreakdown,
    SaveBestModel,
    ScoreEachEpoch,
    TrainingDiverged,
    epoch_skipped,
    load_checkpoint,
    plot_loss_breakdown,
    resume,
    save_checkpoint,
)
from antiforge_lib.data import PairedFaces, SelfBlendedPairs
from antiforge_lib.learner import TrainConfig, anticompression_learner, fit, make_dataloaders, single_branch_learner
from antiforge_lib.metrics import FewNegativesWarning, evaluate

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=FutureWarning)
    from fastai.callback.core import Callback
    from fastai.data.core import DataLoaders

pytestmark = pytest.mark.filterwarnings(f"ignore::{FewNegativesWarning.__module__}.FewNegativesWarning")

SIZE = 32


def tiny_dls(n=16, bs=8, seed=0):
    """Balanced random pairs (B, 3, 32, 32) with a square mask on every fake; plain torch loaders."""
    g = torch.Generator().manual_seed(seed)
    hq = torch.randn(n, 3, SIZE, SIZE, generator=g)
    lq = hq + 0.3 * torch.randn(n, 3, SIZE, SIZE, generator=g)
    label = torch.arange(n) % 2
    mask = torch.zeros(n, 1, SIZE, SIZE)
    mask[label == 1, :, 8:24, 8:24] = 1
    ds = torch.utils.data.TensorDataset(hq, lq, mask, label)
    train = torch.utils.data.DataLoader(ds, batch_size=bs, shuffle=True, generator=torch.Generator().manual_seed(0))
    return DataLoaders(train, torch.utils.data.DataLoader(ds, batch_size=bs), device="cpu")


def demo(**overrides):
    """A small two-branch config with the paper's method switches (critic on, constant Adam) for fast tests."""
    small = dict(backbone="resnet18", cut="layer3", size=SIZE, batch_size=8, lr=1e-3, epochs=2, patience=None)
    return TrainConfig(**{**small, **overrides})


def quiet(learn):
    learn.remove_cbs([cb for cb in learn.cbs if type(cb).__name__ == "ProgressCallback"])
    return learn


def critic_of(learn) -> AdversarialAlignment:
    return next(cb for cb in learn.cbs if isinstance(cb, AdversarialAlignment))


def params(module, prefix=""):
    return {k: v.detach().clone() for k, v in module.named_parameters() if k.startswith(prefix)}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def fitted():
    learn = quiet(anticompression_learner(tiny_dls(), demo()))
    critic_before = params(critic_of(learn).critic)
    learn.fit(1)
    return learn, critic_before


# ---------------------------------------------------------------------------------------------------------------
# TrainConfig


def test_config_defaults_are_the_papers_and_the_paper_preset_adds_imagenet():
    c = TrainConfig()
    assert (c.backbone, c.cut, c.size, c.batch_size, c.lr) == ("legacy_xception", "block8", 299, 32, 1e-4)
    assert (c.model, c.train_on) == ("two-branch", "lq")
    assert (c.lambda_gan, c.lambda_at, c.lambda_pair) == (0.001, 1.0, 0.1)
    assert (c.r_minus, c.r_plus) == (0.1, 18.0)
    assert c.threshold == pytest.approx(9.05)
    assert c.attention and c.transfer and c.gan and c.metric and c.reduction == "mean"
    assert not c.pretrained  # as timm: building a config never needs the network
    # Sec. 4.2: both branches start from ImageNet; the preset is the defaults plus that, nothing else.
    paper = TrainConfig.preset("paper")
    assert paper.pretrained and paper == c.replace(pretrained=True)
    # A local state dict replaces the download (offline), unless the caller insists on both.
    local = TrainConfig.preset("paper", weights="xception.pth")
    assert local.weights == "xception.pth" and not local.pretrained
    with pytest.raises(ValueError, match="not both"):
        TrainConfig.preset("paper", weights="xception.pth", pretrained=True)
    with pytest.raises(ValueError, match="reduction"):
        TrainConfig(reduction="max")


@pytest.mark.parametrize(
    "bad",
    [
        dict(size=8),
        dict(batch_size=0),
        dict(epochs=0),
        dict(epochs=2.5),
        dict(n_critic=-1),
        dict(patience=0),
        dict(lr=-1),
        dict(lr=float("inf")),
        dict(lr=float("nan")),
        dict(critic_lr=0),
        dict(wd=-0.1),
        dict(lambda_gan=-1),
        dict(lambda_at=float("nan")),
        dict(lambda_pair=-0.1),
        dict(gp_weight=float("inf")),
        dict(r_minus=5.0, r_plus=1.0),
        dict(backbone="nonet"),
        dict(mixed_precision="fp8"),
        dict(items_per_epoch=0),
        dict(model="two_branch"),
        dict(train_on="c40"),
        dict(train_on="both", model="single-ce"),
    ],
    ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()),
)
def test_config_rejects_bad_values_by_name(bad):
    name = "r_minus" if "r_plus" in bad else next(iter(bad))
    with pytest.raises(ValueError, match=name):
        TrainConfig(**bad)
    with pytest.raises(ValueError, match=name):  # replace() goes through the same checks
        TrainConfig().replace(**bad)


def test_config_from_an_old_record_reads_split_as_cut_and_defaults_what_it_lacks():
    old = {k: v for k, v in TrainConfig.preset("demo").to_dict().items() if k not in ("cut", "model", "train_on")}
    old.update(split="s3", pairs="data/pairs/x")  # the name before `cut`, and a key that is not a setting
    assert TrainConfig.from_dict(old) == TrainConfig.preset("demo")
    with pytest.warns(FutureWarning, match="pass cut='layer3'"):
        assert TrainConfig(split="layer3").cut == "layer3"
    with pytest.warns(FutureWarning, match="cut"):
        assert TrainConfig(cut="layer2").split == "layer2"
    with pytest.raises(ValueError, match="train_on applies to the single-branch"):
        TrainConfig(train_on="hq")


def test_config_overrides_and_demo_preset():
    d = TrainConfig.preset("demo")
    # The CPU recipe of Chapter 7: a small net with a high-pass stem, self-blended pairs, one-cycle, no critic.
    assert (d.backbone, d.size, d.stem, d.schedule) == ("regnetx_002", 128, "highpass", "one_cycle")
    assert d.self_blend and not d.gan and d.patience is None
    # ... and the paper's losses: weights and radii unchanged.
    assert (d.lambda_at, d.lambda_pair, d.r_minus, d.r_plus) == (1.0, 0.1, 0.1, 18.0)
    assert TrainConfig(lr=3e-4).lr == 3e-4
    assert d.replace(epochs=5).epochs == 5 and d.epochs != 5
    assert d.to_dict()["backbone"] == "regnetx_002"
    for bad in (dict(schedule="cosine"), dict(stem="sobel"), dict(lq_codec="webp"), dict(items_per_epoch=0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TrainConfig(**bad)
    with pytest.raises(TypeError):
        d.replace(no_such_field=1)
    with pytest.raises(ValueError):
        TrainConfig.preset("huge")
    with pytest.raises(ValueError):
        TrainConfig(mixed_precision="fp8")


def test_learner_takes_overrides():
    learn = anticompression_learner(tiny_dls(), demo(), lambda_pair=0.5, gan=False, attention=False)
    assert learn.train_config.lambda_pair == 0.5 and learn.loss_func.loss.lambda_pair == 0.5
    assert not any(isinstance(cb, AdversarialAlignment) for cb in learn.cbs)
    assert learn.model.attention_hq is None
    assert learn.dls.n_inp == 2
    # The model carries its config, so evaluate() and viz find the threshold it was trained for.
    assert learn.model.antiforge_config is learn.train_config
    # reduction reaches the losses of both learners.
    summed = anticompression_learner(tiny_dls(), demo(), reduction="sum")
    assert summed.loss_func.loss.reduction == "sum"
    assert single_branch_learner(tiny_dls(), demo(), reduction="sum").loss_func.reduction == "sum"


def test_compile_switch_compiles_in_place_and_keeps_state_dict_keys():
    plain = anticompression_learner(tiny_dls(), demo())
    compiled = anticompression_learner(tiny_dls(), demo(), compile=True)
    assert plain.model._compiled_call_impl is None  # off by default: compiling costs minutes
    assert compiled.model._compiled_call_impl is not None
    assert isinstance(compiled.model, type(plain.model))  # nn.Module.compile, not a wrapper
    assert list(compiled.model.state_dict()) == list(plain.model.state_dict())


# ---------------------------------------------------------------------------------------------------------------
# Two-branch learner: fit, breakdown, critic


def test_fit_records_finite_losses_and_breakdown(fitted):
    learn, _ = fitted
    train_loss, valid_loss, *metrics = learn.recorder.values[-1]
    assert torch.isfinite(torch.tensor([train_loss, valid_loss])).all()
    bd = learn.loss_breakdown
    assert set(LossBreakdown.NAMES) <= set(bd.batches[0]) and len(bd.batches) == 4  # 2 train + 2 valid batches
    assert [(r["epoch"], r["phase"]) for r in bd.epochs] == [(0, "train"), (0, "valid")]
    train, valid = bd.epochs
    assert all(torch.isfinite(torch.tensor(train[n])) for n in LossBreakdown.NAMES)
    for name in ("metric_hq", "metric_lq", "pair", "attention_hq", "attention_lq", "transfer", "gp"):
        assert train[name] > 0, name
    assert train["adversarial"] != 0 and valid["adversarial"] == valid["gp"] == 0  # no GAN while validating
    assert valid["total"] == pytest.approx(valid_loss, rel=1e-5)
    fig = plot_loss_breakdown(learn)
    assert isinstance(fig, go.Figure) and len(fig.data) > 0
    assert isinstance(plot_loss_breakdown(bd, per="batch"), go.Figure)


def test_critic_is_outside_model_and_optimizer_and_trains_only_in_training(fitted):
    learn, critic_before = fitted
    critic = critic_of(learn).critic
    critic_ids = {id(p) for p in critic.parameters()}
    assert not critic_ids & {id(p) for p in learn.model.parameters()}
    assert not critic_ids & {id(p) for p, *_ in learn.opt.all_params(with_grad=False)}
    assert not same(critic_before, params(critic))  # the epoch stepped the critic
    after_fit, records = params(critic), len(learn.loss_breakdown.batches)
    learn.validate()
    assert same(after_fit, params(critic))
    assert len(learn.loss_breakdown.batches) == records  # validate() outside fit adds no records


def test_adversarial_term_reaches_the_heads_only():
    # Every term but L_Gan off: the heads' gradient can only come through the critic's scores.
    cfg = demo(metric=False, lambda_pair=0.0, lambda_at=0.0, lambda_gan=10.0)
    learn = quiet(anticompression_learner(tiny_dls(n=8), cfg))
    heads, tail = params(learn.model, "head_"), params(learn.model, "tail")
    learn.fit(1)
    changed = params(learn.model, "head_")
    assert not same({k: v for k, v in heads.items() if "hq" in k}, {k: v for k, v in changed.items() if "hq" in k})
    assert not same({k: v for k, v in heads.items() if "lq" in k}, {k: v for k, v in changed.items() if "lq" in k})
    assert same(tail, params(learn.model, "tail"))  # the critic sees V, before the tail
    assert all(p.grad is None for p in critic_of(learn).critic.parameters())  # frozen for the heads' term


def test_gan_off_contributes_nothing():
    learn = quiet(anticompression_learner(tiny_dls(n=8), demo(gan=False)))
    learn.fit(1)
    assert all(r["adversarial"] == r["critic"] == r["gp"] == 0 for r in learn.loss_breakdown.batches)
    train = learn.loss_breakdown.epochs[0]
    weighted = (
        train["metric_hq"]
        + train["metric_lq"]
        + 0.1 * train["pair"]
        + train["attention_hq"]
        + train["attention_lq"]
        + train["transfer"]
    )
    assert train["total"] == pytest.approx(weighted, rel=1e-4)


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints


def _opt_state(learn):
    return [{k: v.clone() for k, v in s.items() if torch.is_tensor(v)} for s in learn.opt.state_dict()["state"]]


def test_checkpoint_round_trip(fitted, tmp_path):
    learn, _ = fitted
    adv = critic_of(learn)
    path = tmp_path / "ckpt.pth"
    save_checkpoint(learn, path, epoch=0)
    assert path.exists() and not list(tmp_path.glob("*.tmp"))
    model, critic = copy.deepcopy(learn.model.state_dict()), copy.deepcopy(adv.critic.state_dict())
    opt, critic_opt = _opt_state(learn), copy.deepcopy(adv.critic_opt.state_dict()["state"])
    assert any(opt)
    with torch.no_grad():  # spoil everything
        for p in list(learn.model.parameters()) + list(adv.critic.parameters()):
            p.add_(1.0)
    for s in learn.opt.state.values():
        for v in s.values():
            if torch.is_tensor(v):
                v.zero_()
    adv.critic_opt.state.clear()
    state = load_checkpoint(learn, path)
    assert state["epoch"] == 0 and state["config"]["backbone"] == "resnet18"
    assert same(model, learn.model.state_dict()) and same(critic, adv.critic.state_dict())
    got = _opt_state(learn)
    assert all(same(a, b) for a, b in zip(opt, got, strict=True)) and len(opt) == len(got)
    got_critic = adv.critic_opt.state_dict()["state"]
    assert all(same(critic_opt[k], got_critic[k]) for k in critic_opt)
    torch.load(path, weights_only=True)  # plain tensors and builtins only


def test_resume_continues_from_last_epoch(tmp_path):
    path = tmp_path / "run.pth"
    learn = quiet(anticompression_learner(tiny_dls(n=8), demo(), checkpoint=path))
    learn.fit(1)  # "killed" after epoch 0
    assert torch.load(path, weights_only=True)["epoch"] == 0
    fresh = quiet(anticompression_learner(tiny_dls(n=8), demo(), checkpoint=path))
    resume(fresh, path, n_epoch=2)
    assert [r["epoch"] for r in fresh.loss_breakdown.epochs] == [1, 1]  # only epoch 1 ran
    assert torch.load(path, weights_only=True)["epoch"] == 1
    assert any(isinstance(cb, CheckpointEveryEpoch) for cb in fresh.cbs)


def test_a_nan_stops_training_before_anything_of_its_epoch_is_saved(tmp_path):
    """Epoch 0 is sound; a weight turns NaN after the first step of epoch 1, so batch 1's loss is NaN."""

    class Poison(Callback):
        def after_step(self):
            if self.epoch == 1 and self.iter == 0:
                with torch.no_grad():
                    next(self.learn.model.parameters()).view(-1)[0] = float("nan")

    path = tmp_path / "run.pth"
    learn = quiet(anticompression_learner(tiny_dls(), demo(epochs=3), checkpoint=path, save_best=True, path=tmp_path))
    learn.add_cb(Poison())
    with pytest.raises(TrainingDiverged, match=r"epoch 1, batch 1 .*nothing of this epoch was saved.*0\.001"):
        learn.fit(3, lr=1e-3)
    assert torch.load(path, weights_only=True)["epoch"] == 0  # the last sound epoch, for a rerun to resume from
    best = torch.load(tmp_path / "models" / "best.pth", weights_only=True)
    assert all(torch.isfinite(v).all() for v in best.values() if v.is_floating_point())


# ---------------------------------------------------------------------------------------------------------------
# Early stopping and best-model saving (validation loss), and their resume

# Scripted validation losses: best at epoch 1, then three worse epochs. With patience 2 the rule stops after epoch 3.
SCRIPT = [1.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1]


class ScriptedValidLoss(Callback):
    """Overwrite the recorded valid loss with SCRIPT[epoch], between the Recorder (50) and the trackers (60+)."""

    order = 55

    def after_epoch(self):
        if epoch_skipped(self.learn):
            return
        self.recorder.values[-1][list(self.recorder.metric_names[1:]).index("valid_loss")] = SCRIPT[self.epoch]


class Snapshots(Callback):
    order = 70  # after the trackers: not reached in the epoch that early stopping cancels

    def __init__(self):
        self.weights, self.epochs = {}, []

    def after_epoch(self):
        if not epoch_skipped(self.learn):
            self.weights[self.epoch] = copy.deepcopy(self.learn.model.state_dict())

    def before_train(self):  # not reached in skipped epochs
        self.epochs.append(self.epoch)


def tracked(tmp_path, checkpoint=None):
    snaps = Snapshots()
    learn = anticompression_learner(
        tiny_dls(n=8),
        demo(patience=2),
        path=tmp_path,
        checkpoint=checkpoint,
        save_best=True,
        cbs=[ScriptedValidLoss(), snaps],
    )
    return quiet(learn), snaps


def test_early_stopping_and_best_model_on_valid_loss(tmp_path):
    learn, snaps = tracked(tmp_path)
    trackers = sorted((cb for cb in learn.cbs if isinstance(cb, (EarlyStopping, SaveBestModel))), key=lambda c: c.order)
    assert [type(cb) for cb in trackers] == [SaveBestModel, EarlyStopping]  # fastai runs them in this order
    learn.fit(len(SCRIPT))
    assert snaps.epochs == [0, 1, 2, 3]  # stopped after two epochs without improvement
    best = tmp_path / "models" / "best.pth"
    assert best.exists() and not list(best.parent.glob("*.tmp*"))
    assert same(snaps.weights[1], learn.model.state_dict())  # the best epoch's weights are back in the model
    assert same(snaps.weights[1], torch.load(best, weights_only=True))


def test_resume_keeps_early_stopping_state(tmp_path):
    ckpt = tmp_path / "run.pth"
    first, snaps1 = tracked(tmp_path, ckpt)
    first.fit(2)  # "killed" after epoch 1, the best so far
    state = torch.load(ckpt, weights_only=True)
    assert state["epoch"] == 1 and not state["stopped"]
    assert state["callbacks"]["early_stopping"] == {"best": 0.5, "wait": 0, "stopped": False}
    assert state["callbacks"]["save_best_model"] == {"best": 0.5}

    second, snaps2 = tracked(tmp_path, ckpt)
    resume(second, ckpt, n_epoch=len(SCRIPT))
    # An unbroken run stops after epoch 3; so must the resumed one (a fresh tracker would run to epoch 4).
    assert snaps2.epochs == [2, 3]
    assert same(snaps1.weights[1], second.model.state_dict())  # best epoch (1, first run) kept, not overwritten
    state = torch.load(ckpt, weights_only=True)
    assert state["epoch"] == 3 and state["stopped"] and state["callbacks"]["early_stopping"]["wait"] == 2

    third, snaps3 = tracked(tmp_path, ckpt)
    resume(third, ckpt, n_epoch=len(SCRIPT))  # already stopped: nothing to train, best weights loaded
    assert snaps3.epochs == [] and same(snaps1.weights[1], third.model.state_dict())


# ---------------------------------------------------------------------------------------------------------------
# Single-branch baselines


@pytest.mark.parametrize("head, attention", [("ce", False), ("metric", True)])
def test_single_branch_learner_fits(head, attention):
    learn = quiet(single_branch_learner(tiny_dls(n=8), demo(), head=head, attention=attention))
    learn.fit(1)
    train_loss, valid_loss, *_ = learn.recorder.values[-1]
    assert torch.isfinite(torch.tensor([train_loss, valid_loss])).all()
    assert (head in learn.loss_breakdown.epochs[0]) and (("attention" in learn.loss_breakdown.epochs[0]) == attention)
    assert learn.model.classifier is not None if head == "ce" else learn.model.classifier is None


def test_single_branch_sees_one_chosen_input():
    seen = []
    learn = quiet(single_branch_learner(tiny_dls(n=8), demo(), head="ce", train_on="hq"))
    learn.model.register_forward_pre_hook(lambda m, args: seen.append(args))
    hq = next(iter(learn.dls.valid))[0]
    learn.validate()
    assert len(seen[0]) == 1 and torch.equal(seen[0][0], hq)


@pytest.mark.parametrize("make", ["single", "two_without_attention"])
def test_mixed_precision_lets_none_outputs_through(make):
    # fastai's own AMP callback casts every prediction field with torch.is_floating_point and raises on None;
    # this crashed single-branch bf16 training on a GPU. On the CPU the autocast is off, the cast still runs.
    from fastai.callback.fp16 import MixedPrecision as FastaiMixedPrecision

    from antiforge_lib.callbacks import MixedPrecision

    def learner(cb):
        if make == "single":
            learn = single_branch_learner(tiny_dls(), demo(), head="metric", attention=False)
        else:
            learn = anticompression_learner(tiny_dls(), demo(), attention=False)
        learn.add_cb(cb)
        return quiet(learn)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CUDA is not available, disabling autocast"
        with pytest.raises(TypeError, match="NoneType"):
            learner(FastaiMixedPrecision(amp_mode="bf16")).fit(1)
        learn = learner(MixedPrecision(amp_mode="bf16"))
        learn.fit(1)
    assert np.isfinite(learn.recorder.values[-1][0])


def test_critic_scores_both_orders_in_one_call_as_two_separate_calls():
    cb = AdversarialAlignment(in_channels=8)
    a, b = torch.randn(3, 8, 4, 4), torch.randn(3, 8, 4, 4)
    d_a, d_b = cb._scores(a, b)
    torch.testing.assert_close(d_a, cb.critic(a), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(d_b, cb.critic(b), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# The demo recipe's pieces: one-cycle through fit(), the epoch a sampler sees, a learning curve


class LRLog(Callback):
    order = 99

    def before_fit(self):
        self.lrs = []

    def after_batch(self):
        if self.training:
            self.lrs.append(self.opt.hypers[-1]["lr"])


def test_fit_follows_the_schedule_of_the_config():
    constant = quiet(anticompression_learner(tiny_dls(), demo(gan=False), cbs=[LRLog()]))
    fit(constant, 2)
    assert set(constant.lr_log.lrs) == {1e-3}
    cycled = quiet(anticompression_learner(tiny_dls(n=32), demo(gan=False, schedule="one_cycle"), cbs=[LRLog()]))
    fit(cycled, 2)
    # One cycle (Smith 2018, as fastai does it): cosine from lr / 25 up to lr over the first 25 % of the steps,
    # then cosine down to lr / 1e5; step k of N sees position k / N.
    n, lr = len(cycled.lr_log.lrs), 1e-3

    def cos(a, b, t):
        return a + (b - a) * (1 - np.cos(np.pi * t)) / 2

    expected = [
        cos(lr / 25, lr, p / 0.25) if p < 0.25 else cos(lr, lr / 1e5, (p - 0.25) / 0.75) for p in np.arange(n) / n
    ]
    assert n == 8 and np.allclose(cycled.lr_log.lrs, expected, rtol=1e-6)


def test_resumed_one_cycle_run_equals_an_unbroken_one(tmp_path):
    cfg = demo(gan=False, schedule="one_cycle", epochs=2)
    unbroken = quiet(anticompression_learner(tiny_dls(), cfg, cbs=[LRLog()]))
    fit(unbroken)
    path = tmp_path / "ckpt.pth"
    first = quiet(anticompression_learner(tiny_dls(), cfg, checkpoint=path))
    fit(first, 2, cbs=[CancelAfterFirstEpoch()])  # "killed" after epoch 0
    second = quiet(anticompression_learner(tiny_dls(), cfg, checkpoint=path, cbs=[LRLog()]))
    resume(second, path, n_epoch=2)
    half = len(unbroken.lr_log.lrs) // 2
    assert np.allclose(second.lr_log.lrs, unbroken.lr_log.lrs[half:])  # the schedule picks up where it was


class CancelAfterFirstEpoch(Callback):
    order = 99

    def after_epoch(self):
        from fastai.callback.core import CancelFitException

        raise CancelFitException()


class KeyedSampler(torch.utils.data.Sampler):
    """Records the epochs it is told, like StreamSampler and DistributedSampler."""

    def __init__(self, n):
        self.n, self.told = n, []

    def set_epoch(self, epoch):
        self.told.append(epoch)

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self):
        return self.n


def test_set_epoch_reaches_the_training_sampler(tmp_path):
    base = tiny_dls()
    sampler = KeyedSampler(len(base.train.dataset))
    train = torch.utils.data.DataLoader(base.train.dataset, batch_size=8, sampler=sampler)
    learn = quiet(anticompression_learner(DataLoaders(train, base.valid, device="cpu"), demo(gan=False)))
    learn.fit(3)
    assert sampler.told == [0, 1, 2]
    path = tmp_path / "c.pth"
    learn = quiet(
        anticompression_learner(DataLoaders(train, base.valid, device="cpu"), demo(gan=False), checkpoint=path)
    )
    learn.fit(1)
    sampler.told = []
    again = quiet(
        anticompression_learner(DataLoaders(train, base.valid, device="cpu"), demo(gan=False), checkpoint=path)
    )
    resume(again, path, n_epoch=3)
    assert sampler.told == [1, 2]  # a resumed run asks for the epochs it runs, not from 0


def test_score_each_epoch_records_a_learning_curve_that_matches_evaluate():
    dls = tiny_dls()
    score = ScoreEachEpoch({"val": dls.valid})
    learn = quiet(anticompression_learner(dls, demo(gan=False), cbs=[score]))
    untrained = evaluate(learn.model, dls.valid)
    learn.fit(2)
    assert [r["epoch"] for r in score.rows] == [-1, 0, 1]
    assert score.rows[0]["val_AUC"] == pytest.approx(untrained.AUC.iloc[0])
    assert score.rows[-1]["val_AUC"] == pytest.approx(evaluate(learn.model, dls.valid).AUC.iloc[0])
    learn.validate()  # fastai's validate() fires before_fit/after_epoch too: nothing is recorded
    assert len(score.rows) == 3


def _real_index(tmp_path) -> pd.DataFrame:
    """Four random 32 px "real" crops: two train, one val, one test."""
    from PIL import Image

    paths = []
    for k in range(4):
        p = tmp_path / f"{k}.png"
        Image.fromarray(np.random.default_rng(k).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    zero = tmp_path / "z.png"
    Image.new("L", (32, 32)).save(zero)
    rows = [dict(split=s, method="original", video=str(k), frame=0, label=0, hq=p, lq=p, mask=str(zero))
            for k, (s, p) in enumerate(zip(["train", "train", "val", "test"], paths, strict=True))]  # fmt: skip
    return pd.DataFrame(rows)


def test_make_dataloaders_follows_self_blend(tmp_path):
    index = _real_index(tmp_path)
    stream = make_dataloaders(index, demo(self_blend=True, items_per_epoch=8), num_workers=0, device="cpu")
    assert isinstance(stream.train.dataset, SelfBlendedPairs) and len(stream.train.dataset) == 8
    cached = make_dataloaders(index, demo(), num_workers=0, device="cpu")
    assert isinstance(cached.train.dataset, PairedFaces)


# ---------------------------------------------------------------------------------------------------------------
# No host syncs from input validation in the training step (issue 17)


class InTrainingBatch(Callback):
    """Sets ``active`` from before_batch to after_batch of every training batch."""

    active = False

    def before_batch(self):
        InTrainingBatch.active = self.training

    def after_batch(self):
        InTrainingBatch.active = False


@pytest.mark.parametrize("make", ["two", "single"])
def test_training_steps_call_no_value_validator(make, monkeypatch):
    from antiforge_lib import learner as learner_module
    from antiforge_lib import losses

    calls = []
    for name in ("_check_label_values", "_check_binary_mask", "_check_probabilities"):
        real = getattr(losses, name)

        def counted(*args, _real=real, _name=name):
            if InTrainingBatch.active:
                calls.append(_name)
            return _real(*args)

        monkeypatch.setattr(losses, name, counted)
    if make == "two":
        learn = anticompression_learner(tiny_dls(), demo(), cbs=[InTrainingBatch()])
    else:
        learn = single_branch_learner(tiny_dls(), demo(), head="metric", attention=True, cbs=[InTrainingBatch()])
    quiet(learn).fit(1)
    assert calls == []
    # The counter does see validation when the loss asks for it.
    if make == "two":
        learn.loss_func.loss.validate = True
    else:
        monkeypatch.setattr(learner_module, "metric_loss", partial_validating(losses.metric_loss))
    learn.fit(1)
    assert "_check_label_values" in calls


def partial_validating(fn):
    """``fn`` with its ``validate`` keyword forced on."""

    def call(*args, **kwargs):
        kwargs["validate"] = True
        return fn(*args, **kwargs)

    return call


def test_augment_on_device_is_a_setting_of_the_run(tmp_path):
    from antiforge_lib.callbacks import AugmentOnDevice

    index = _real_index(tmp_path)
    with pytest.raises(ValueError, match="augment_on must be one of"):
        TrainConfig(augment_on="gpu")
    with pytest.raises(ValueError, match="augment_on='device' applies to cached pairs"):
        TrainConfig.preset("demo", augment_on="device")  # the demo preset trains on the self-blended stream
    old = TrainConfig().to_dict()
    del old["augment_on"]  # a record from before the setting existed trained in the workers
    assert TrainConfig.from_dict(old).augment_on == "workers"
    cfg = TrainConfig(size=24, batch_size=4, augment_on="device")
    dls = make_dataloaders(index, cfg, num_workers=0, device="cpu")
    assert [type(cb) for cb in dls.batch_callbacks] == [AugmentOnDevice]
    assert next(iter(dls.train))[0].dtype == torch.uint8  # the workers only read
    plain = make_dataloaders(index, cfg.replace(augment_on="workers"), num_workers=0, device="cpu")
    assert not getattr(plain, "batch_callbacks", []) and next(iter(plain.train))[0].dtype == torch.float32
