"""fastai callbacks for training the anti-compression detector of Cao et al. 2021 (Sec. 3.3, 4.2).

Each callback adds one behaviour to a plain fastai ``Learner`` (batches ``xb = (hq, lq)``, ``yb = (mask, label)``):

- :class:`AdversarialAlignment` -- owns the WGAN-GP critic ``D`` and its optimizer; trains it on detached
  mid-level features and adds ``lambda_gan * L_Gan`` (eq. 1/2) to the detector's loss. Training batches only.
- :class:`LossBreakdown` -- records every term of eq. 1 per batch and per epoch; :func:`plot_loss_breakdown`.
- :class:`ScoreEachEpoch` -- the paper's metrics on extra loaders (e.g. validation and test) before training and after
  every epoch: a learning curve to look at, never read by training.
- :class:`SetEpoch` -- tells the training sampler which epoch begins (streams of made-up pairs, distributed samplers).
- :class:`SelectInput` -- feeds one image of the pair (``lq`` or ``hq``) to a single-branch model.
- :class:`MixedPrecision` -- fastai's mixed precision, letting the model's ``None`` outputs through.

Resuming a killed run -- :func:`save_checkpoint`, :func:`load_checkpoint`, :func:`resume`,
:class:`CheckpointEveryEpoch`, the checkpointed trackers :class:`EarlyStopping` and :class:`SaveBestModel`,
:class:`StopOnDivergence`, :class:`EpochHistory`, :func:`epoch_skipped` -- lives in :mod:`antiforge_lib.checkpoint`;
those names are re-exported here, where they used to be.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from ._dist import replicate
from ._fastai import quiet_import
from .checkpoint import (
    CheckpointEveryEpoch,
    EarlyStopping,
    EpochHistory,
    SaveBestModel,
    StopOnDivergence,
    TrainingDiverged,
    epoch_skipped,
    load_checkpoint,
    resume,
    save_checkpoint,
)
from .losses import adversarial_loss, critic_inputs, critic_loss, gradient_penalty
from .models import Discriminator

with quiet_import():
    from fastai.callback.core import Callback
    from fastai.callback.fp16 import MixedPrecision as _FastaiMixedPrecision
    from fastai.torch_core import apply

__all__ = [
    "AdversarialAlignment",
    "LossBreakdown",
    "AugmentOnDevice",
    "SelectInput",
    "SetEpoch",
    "ScoreEachEpoch",
    "MixedPrecision",
    "CheckpointEveryEpoch",
    "EpochHistory",
    "StopOnDivergence",
    "TrainingDiverged",
    "EarlyStopping",
    "SaveBestModel",
    "plot_loss_breakdown",
    "save_checkpoint",
    "load_checkpoint",
    "resume",
    "epoch_skipped",
]


# ---------------------------------------------------------------------------------------------------------------
# The adversarial term (eq. 2, WGAN-GP)


class AdversarialAlignment(Callback):
    """Align ``V_H`` and ``V_L`` adversarially (Sec. 3.3): a WGAN-GP critic that the two heads learn to fool.

    The critic ``D`` (:class:`~antiforge_lib.models.Discriminator`) sees ``a = concat(V_H, V_L)`` and
    ``b = concat(V_L, V_H)``. It is owned by this callback, NOT part of ``learn.model``, so ``learn.opt`` never
    steps it and validation never runs it. Per training batch:

    1. ``after_pred``: ``n_critic`` Adam steps of the critic on DETACHED ``learn.pred.v_hq/v_lq``
       (:func:`critic_loss` + :func:`gradient_penalty`), then the heads' term ``adversarial_loss(D(a), D(b))`` on
       the live features, with the critic's parameters frozen so the gradient reaches only the heads.
    2. ``after_loss``: ``learn.loss_grad += lambda_gan * adv`` (and ``learn.loss``).

    Parameters
    ----------
    in_channels : int
        ``2C``, channels of ``concat(V_H, V_L)`` (1456 for Xception at block8).
    n_critic : int, default=1
        Critic steps per detector step. The paper does not give it; WGAN-GP's usual 5 would make the critic the
        dominant cost, and with ``lambda_gan = 0.001`` the term is a mild regulariser, so 1 is the default.
    lr : float, default=1e-4
        Critic learning rate (Adam, betas (0.5, 0.9) as in WGAN-GP).
    gp_weight : float, default=10.0
        Gradient-penalty weight.
    lambda_gan : float, default=0.001
        ``lambda_1`` of eq. 1.

    Attributes
    ----------
    critic : Discriminator
    critic_opt : torch.optim.Adam
    parts : dict of str -> 0-d Tensor
        Last batch's ``adversarial`` (unweighted), ``critic`` (without penalty) and ``gp`` values, detached.
    """

    order = 20  # after MixedPrecision (10), which casts learn.pred to float in after_pred and leaves autocast

    def __init__(
        self, in_channels: int, n_critic: int = 1, lr: float = 1e-4, gp_weight: float = 10.0, lambda_gan: float = 1e-3
    ):
        if n_critic < 0:
            raise ValueError(f"n_critic must be >= 0, got {n_critic}")
        self.n_critic, self.gp_weight, self.lambda_gan = n_critic, gp_weight, lambda_gan
        self.critic = Discriminator(in_channels)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=lr, betas=(0.5, 0.9))
        self.parts: dict[str, Tensor] = {}
        self._adv: Tensor | None = None

    def before_fit(self):
        self.critic.to(next(self.learn.model.parameters()).device)  # in-place: the optimizer keeps its params
        replicate(self.critic, self.critic_opt)  # on several GPUs: one critic for all

    def after_pred(self):
        self._adv = None
        if not self.training:
            return
        v_hq, v_lq = self.learn.pred.v_hq, self.learn.pred.v_lq
        # The critic and the GP's double backward run in float32, outside any autocast region.
        with torch.autocast(device_type=v_hq.device.type, enabled=False):
            a, b = critic_inputs(v_hq.detach().float(), v_lq.detach().float())
            self.critic.train()
            zero = a.new_zeros(())
            loss_d, gp = zero, zero
            for _ in range(self.n_critic):
                loss_d = critic_loss(*self._scores(a, b))
                gp = gradient_penalty(self.critic, a, b, weight=self.gp_weight)
                self.critic_opt.zero_grad(set_to_none=True)
                (loss_d + gp).backward()
                self.critic_opt.step()
            self.critic_opt.zero_grad(set_to_none=True)  # frees memory; and no grad can leak in from the heads' term
            a, b = critic_inputs(v_hq.float(), v_lq.float())
            self.critic.requires_grad_(False)  # the heads' term must not leave gradients on the critic
            try:
                self._adv = adversarial_loss(*self._scores(a, b))
            finally:
                self.critic.requires_grad_(True)
        self.parts = {"adversarial": self._adv.detach(), "critic": loss_d.detach(), "gp": gp.detach()}

    def _scores(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        # One critic call on both orders: fewer, larger kernels. Exact, since the critic has no batch-coupled
        # layers (no batch norm: see Discriminator).
        return self.critic(torch.cat([a, b])).chunk(2)

    def after_loss(self):
        if self._adv is None:
            return
        term = self.lambda_gan * self._adv
        self.learn.loss_grad = self.learn.loss_grad + term
        self.learn.loss = self.learn.loss + term.detach()
        self._adv = None  # free the graph reference

    def checkpoint_state(self) -> dict:
        """Critic and critic-optimizer state, for :func:`save_checkpoint`."""
        return {"critic": self.critic.state_dict(), "critic_opt": self.critic_opt.state_dict()}

    def load_checkpoint_state(self, state: dict) -> None:
        self.critic.load_state_dict(state["critic"])
        self.critic_opt.load_state_dict(state["critic_opt"])


# ---------------------------------------------------------------------------------------------------------------
# Loss breakdown


class LossBreakdown(Callback):
    """Record every term of the loss, per batch and per epoch (train and valid separately).

    Reads ``learn.loss_func.parts`` (dict of 0-d tensors set by the learner's loss functions) and the ``parts`` of
    :class:`AdversarialAlignment`; ``total`` is ``learn.loss`` (including ``lambda_gan * adversarial``). Values
    stay on the device until the end of the epoch, so recording costs no synchronisation per batch.

    Attributes
    ----------
    names : tuple of str
        Components always recorded (missing ones are 0).
    batches : list of dict
        One row per batch: ``epoch``, ``phase`` ("train"/"valid"), ``bs``, then one float per component.
    epochs : list of dict
        One row per epoch and phase: batch-size weighted means of the components.
    """

    order = 30  # after AdversarialAlignment's after_loss
    NAMES = (
        "metric_hq",
        "metric_lq",
        "pair",
        "attention_hq",
        "attention_lq",
        "transfer",
        "adversarial",
        "critic",
        "gp",
        "total",
    )

    def __init__(self, names: tuple[str, ...] = NAMES):
        self.names = tuple(names)
        self.batches: list[dict] = []
        self.epochs: list[dict] = []

    def before_fit(self):
        # fastai's validate() also runs before_fit/after_epoch; record only inside fit (before_train marks it).
        self._pending: list[tuple[str, int, Tensor]] = []
        self._fresh, self._fitting = True, False

    def before_train(self):
        if self._fresh:
            self._fresh, self._fitting = False, True
            if self.epoch == 0:  # a new run; a resumed one (start_epoch > 0) keeps appending
                self.batches, self.epochs = [], []

    def after_fit(self):
        self._fitting = False

    def after_loss(self):
        if not self._fitting:
            return
        parts = dict(getattr(self.learn.loss_func, "parts", {}))
        if self.training:
            for cb in self.learn.cbs:
                if isinstance(cb, AdversarialAlignment):
                    parts.update(cb.parts)
        parts["total"] = self.learn.loss.detach()
        zero = self.learn.loss.new_zeros(())
        row = torch.stack([parts.get(n, zero).detach().float().reshape(()) for n in self.names])
        self._pending.append(("train" if self.training else "valid", self.learn.yb[-1].shape[0], row))

    def after_epoch(self):
        if not (self._fitting and self._pending):
            return
        values = torch.stack([r for *_, r in self._pending]).cpu().tolist()  # one sync per epoch
        sums: dict[str, list] = {}
        for (phase, bs, _), vals in zip(self._pending, values, strict=True):
            self.batches.append(
                {"epoch": self.epoch, "phase": phase, "bs": bs, **dict(zip(self.names, vals, strict=True))}
            )
            total = sums.setdefault(phase, [0, [0.0] * len(self.names)])
            total[0] += bs
            total[1] = [t + bs * v for t, v in zip(total[1], vals, strict=True)]
        for phase, (n, s) in sums.items():
            self.epochs.append(
                {"epoch": self.epoch, "phase": phase, **{k: v / n for k, v in zip(self.names, s, strict=True)}}
            )
        self._pending = []

    def frame(self, per: str = "epoch"):
        """The records as a pandas DataFrame (``per="epoch"`` or ``"batch"``)."""
        import pandas as pd

        return pd.DataFrame(self.epochs if per == "epoch" else self.batches)


def plot_loss_breakdown(source, per: str = "epoch", components: tuple[str, ...] | None = None):
    """Plot the loss components recorded by :class:`LossBreakdown` with Plotly.

    Parameters
    ----------
    source : Learner or LossBreakdown
    per : {"epoch", "batch"}
        Epoch means (train solid, valid dashed) or every training batch.
    components : tuple of str, optional
        Which components to draw; default all that are non-zero somewhere.

    Returns
    -------
    plotly.graph_objects.Figure
    """
    import plotly.graph_objects as go

    cb = source if isinstance(source, LossBreakdown) else source.loss_breakdown
    if per not in ("epoch", "batch"):
        raise ValueError(f"per must be 'epoch' or 'batch', got {per!r}")
    rows = cb.epochs if per == "epoch" else [r for r in cb.batches if r["phase"] == "train"]
    if components is None:
        components = tuple(n for n in cb.names if any(r[n] != 0 for r in rows))
    fig = go.Figure()
    phases = ("train", "valid") if per == "epoch" else ("train",)
    for phase in phases:
        sel = [r for r in rows if r["phase"] == phase]
        x = [r["epoch"] for r in sel] if per == "epoch" else list(range(len(sel)))
        for name in components:
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=[r[name] for r in sel],
                    mode="lines+markers" if per == "epoch" else "lines",
                    name=f"{name} ({phase})",
                    line={"dash": "dash" if phase == "valid" else "solid"},
                )
            )
    fig.update_layout(
        title="Loss components (unweighted; total is the weighted sum)",
        xaxis_title="epoch" if per == "epoch" else "training batch",
        yaxis_title="loss",
    )
    return fig


# ---------------------------------------------------------------------------------------------------------------
# Inputs and GPU efficiency


class AugmentOnDevice(Callback):
    """The training augmentation as a batch transform, on whatever device the batch is on.

    With ``pair_dataloaders(..., augment_on="device")`` the loader's workers only read the training pairs (uint8);
    in ``before_batch`` (after fastai moved the batch to the model's device) this applies ``transform`` (the split's
    :func:`~antiforge_lib.data.pair_transform`) to each pair with :func:`~antiforge_lib.data.augment_pair_batch`:
    one random resized crop and flip per pair, shared by its HQ, LQ and mask (nearest neighbour for the mask), then
    the float conversion and normalisation. Batches that are not uint8 (validation, test) pass untouched.
    """

    order = -10  # before SelectInput and MixedPrecision: they see the finished float batch

    def __init__(self, transform):
        self.transform = transform

    def before_batch(self):
        if not self.training or len(self.learn.xb) != 2 or self.learn.xb[0].dtype != torch.uint8:
            return
        from .data.loaders import augment_pair_batch

        (hq, lq), (mask, *rest) = self.learn.xb, self.learn.yb
        hq, lq, mask = augment_pair_batch(self.transform, hq, lq, mask)
        self.learn.xb, self.learn.yb = (hq, lq), (mask, *rest)


class SelectInput(Callback):
    """Feed ONE image of each pair to the model: ``xb = (lq,)`` (default) or ``(hq,)``, for single-branch nets."""

    order = -5  # before anything that looks at xb (MixedPrecision)

    def __init__(self, use: str = "lq"):
        if use not in ("hq", "lq"):
            raise ValueError(f"use must be 'hq' or 'lq', got {use!r}")
        self.index = 0 if use == "hq" else 1

    def before_batch(self):
        if len(self.learn.xb) == 2:
            self.learn.xb = (self.learn.xb[self.index],)


class ScoreEachEpoch(Callback):
    """Evaluate the model on named loaders before the first epoch and after each one: a learning curve.

    Each loader is scored with :func:`antiforge_lib.metrics.evaluate` (LQ branch, as at test time). The rows are
    for looking at: nothing in training reads them, so a test loader here selects nothing (early stopping and the
    best-epoch choice look at the validation loss only).

    Parameters
    ----------
    loaders : dict of str -> loader
        E.g. ``{"val": dls.valid, "test": dls.test}``; batches ``(hq, lq, mask, label)``.
    metrics : tuple of str, default ("AUC", "ACC")
        Columns of :func:`~antiforge_lib.metrics.evaluate` to keep.

    Attributes
    ----------
    rows : list of dict
        ``{"epoch": -1 (before training) or e, "<name>_<metric>": value, ...}``, one per scoring.
    """

    order = 70  # after the trackers and checkpoints: the epoch is complete

    def __init__(self, loaders: dict, metrics: tuple[str, ...] = ("AUC", "ACC")):
        self.loaders, self.metrics, self.rows = dict(loaders), tuple(metrics), []

    def _score(self, epoch: int) -> None:
        from .metrics import FewNegativesWarning, evaluate  # metrics builds on fastai's Metric; import when used

        row = {"epoch": int(epoch)}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FewNegativesWarning)
            for name, dl in self.loaders.items():
                table = evaluate(self.learn.model, dl)
                row.update({f"{name}_{m}": float(table[m].iloc[0]) for m in self.metrics})
        self.rows.append(row)

    # fastai's validate() also fires before_fit and after_epoch; only a fit reaches before_train.
    def before_fit(self):
        self._fitting = False

    def before_train(self):
        if not self._fitting:
            self._fitting = True
            if self.epoch == 0:  # a new run starts: score the untrained model (a resumed one already has)
                self.rows = []
                self._score(-1)

    def after_epoch(self):
        if self._fitting and not epoch_skipped(self.learn):
            self._score(self.epoch)

    def after_fit(self):
        self._fitting = False


class SetEpoch(Callback):
    """Call ``set_epoch(epoch)`` on the training loader's sampler when it has one, before each training epoch.

    torch's ``DistributedSampler`` and :class:`~antiforge_lib.data.StreamSampler` draw a different order (or
    different items) per epoch from it; calling it from the learner's epoch counter makes a resumed run see the
    same data as an unbroken one.
    """

    def before_train(self):
        sampler = getattr(self.dl, "sampler", None)
        if callable(getattr(sampler, "set_epoch", None)):
            sampler.set_epoch(self.epoch)


def _to_float(x):
    return x.float() if isinstance(x, Tensor) and x.is_floating_point() else x


class MixedPrecision(_FastaiMixedPrecision):
    """fastai's automatic mixed precision (``amp_mode`` "bf16" or "fp16"), letting ``None`` outputs through.

    fastai's ``after_pred`` casts every element of the prediction to float32 with ``torch.is_floating_point``,
    which raises on ``None``; our outputs hold ``None`` where a part is switched off (no attention map, no CE
    logits), so the single-branch model and the no-attention ablations crashed in bf16 on a GPU.
    """

    def after_pred(self):
        self.learn.pred = apply(_to_float, self.pred)
