"""fastai callbacks for training the anti-compression detector of Cao et al. 2021 (Sec. 3.3, 4.2).

Each callback adds one behaviour to a plain fastai ``Learner`` (batches ``xb = (hq, lq)``, ``yb = (mask, label)``):

- :class:`AdversarialAlignment` -- owns the WGAN-GP critic ``D`` and its optimizer; trains it on detached
  mid-level features and adds ``lambda_gan * L_Gan`` (eq. 1/2) to the detector's loss. Training batches only.
- :class:`LossBreakdown` -- records every term of eq. 1 per batch and per epoch; :func:`plot_loss_breakdown`.
- :class:`ScoreEachEpoch` -- the paper's metrics on extra loaders (e.g. validation and test) before training and after
  every epoch: a learning curve to look at, never read by training.
- :class:`SetEpoch` -- tells the training sampler which epoch begins (streams of made-up pairs, distributed samplers).
- :class:`SelectInput` -- feeds one image of the pair (``lq`` or ``hq``) to a single-branch model.
- :class:`CheckpointEveryEpoch` -- an atomic checkpoint after every epoch, for :func:`resume`.
- :class:`StopOnDivergence` -- a NaN or infinite loss (or weight) stops the fit before its epoch is saved.
- :class:`EarlyStopping`, :class:`SaveBestModel` -- fastai's trackers on the validation loss (the paper's stopping
  rule), with their state in the checkpoints so that a resumed run stops and keeps the best epoch as an unbroken one
  would; the best weights are written atomically and reloaded with ``weights_only=True``.

Checkpoints (:func:`save_checkpoint`, :func:`load_checkpoint`) hold model, optimizer, the state of every callback
that has one (the critic and its optimizer), the last completed epoch and the config; they are written to a temporary
file and moved into place with ``os.replace``, and read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .losses import adversarial_loss, critic_inputs, critic_loss, gradient_penalty
from .models import Discriminator
from .provenance import atomic_write, json_safe

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
    from fastai.callback.core import Callback, CancelFitException
    from fastai.callback.fp16 import MixedPrecision as _FastaiMixedPrecision
    from fastai.callback.tracker import EarlyStoppingCallback, SaveModelCallback
    from fastai.learner import SkipToEpoch
    from fastai.torch_core import apply
    from fastcore.foundation import L

__all__ = [
    "AdversarialAlignment",
    "LossBreakdown",
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
        if _world_size() > 1:  # distributed: every rank starts from rank 0's critic
            for t in self.critic.state_dict().values():
                torch.distributed.broadcast(t, src=0)

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
                _average_grads(self.critic)  # the critic is not inside DDP: keep the ranks' critics identical
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


def _world_size() -> int:
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _average_grads(module: torch.nn.Module) -> None:
    """All-reduce (mean) the gradients of ``module`` over the ranks of a distributed run; no-op otherwise."""
    n = _world_size()
    if n == 1:
        return
    for p in module.parameters():
        if p.grad is not None:
            torch.distributed.all_reduce(p.grad)
            p.grad.div_(n)


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


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints


def epoch_skipped(learn) -> bool:
    """True in the ``after_epoch`` of an epoch that ``fit(start_epoch=...)`` skips (fastai's ``SkipToEpoch``).

    fastai still fires ``after_epoch`` for those epochs, with no losses recorded; callbacks that save or compare
    per-epoch values must ignore them.
    """
    return any(isinstance(cb, SkipToEpoch) and learn.epoch < cb._skip_to for cb in learn.cbs)


def _stateful_callbacks(learn) -> dict:
    # Look at the class, not the instance: fastai callbacks forward unknown attributes to the learner.
    return {cb.name: cb for cb in learn.cbs if callable(getattr(type(cb), "checkpoint_state", None))}


def _plain_opt_state(opt) -> dict:
    # fastai keeps hypers in a fastcore L, and its schedulers (fit_one_cycle) set them to numpy scalars: both are
    # refused by weights_only=True. Store plain lists, dicts and Python numbers.
    sd = opt.state_dict()
    hypers = [{k: v.item() if isinstance(v, np.generic) else v for k, v in h.items()} for h in sd["hypers"]]
    return {"state": [dict(s) for s in sd["state"]], "hypers": hypers}


def save_checkpoint(learn, path, epoch: int | None = None, config: dict | None = None, stopped: bool = False) -> Path:
    """Write model, optimizer, callback states (critic), ``epoch`` and ``config`` to ``path``, atomically.

    The file is written through :func:`~antiforge_lib.provenance.atomic_write`, so a run killed while saving leaves
    the previous checkpoint intact. ``config`` defaults to ``learn.config.to_dict()`` if present.
    """
    if config is None and hasattr(learn, "train_config"):
        config = learn.train_config.to_dict()
    state = {
        "model": learn.model.state_dict(),
        "opt": _plain_opt_state(learn.opt) if learn.opt is not None else None,
        "callbacks": {name: cb.checkpoint_state() for name, cb in _stateful_callbacks(learn).items()},
        "epoch": -1 if epoch is None else int(epoch),
        "config": config or {},
        "stopped": bool(stopped),
    }
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(learn, path, with_opt: bool = True) -> dict:
    """Load a :func:`save_checkpoint` file into ``learn`` (``weights_only=True``); returns the raw checkpoint.

    Creates ``learn.opt`` first if needed, so the optimizer state has somewhere to go.
    """
    device = next(learn.model.parameters()).device
    state = torch.load(path, map_location=device, weights_only=True)
    learn.model.load_state_dict(state["model"])
    if with_opt and state["opt"] is not None:
        if learn.opt is None:
            learn.create_opt()
        learn.opt.load_state_dict({"state": state["opt"]["state"], "hypers": L(state["opt"]["hypers"])})
    cbs = _stateful_callbacks(learn)
    for name, cb_state in state["callbacks"].items():
        if name not in cbs:
            raise KeyError(f"checkpoint holds state for callback {name!r}, which this learner lacks")
        cbs[name].load_checkpoint_state(cb_state)
    return state


class CheckpointEveryEpoch(Callback):
    """Save a checkpoint (:func:`save_checkpoint`) after every completed epoch, for :func:`resume`.

    It runs after the trackers (order 65 > 60-63), so the checkpoint holds their state for the epoch just finished.
    When :class:`EarlyStopping` ends the fit, the final checkpoint is written from ``after_cancel_fit`` and marked
    ``stopped``, so :func:`resume` does not train on past the paper's stopping point.
    """

    order = 65

    def __init__(self, path):
        self.path = Path(path)

    def after_epoch(self):
        if not epoch_skipped(self.learn):
            save_checkpoint(self.learn, self.path, epoch=self.epoch)

    def after_cancel_fit(self):
        stoppers = [cb for cb in self.learn.cbs if isinstance(cb, EarlyStopping) and cb.stopped]
        if stoppers:  # the epoch completed; only the early stop skipped our after_epoch
            save_checkpoint(self.learn, self.path, epoch=self.epoch, stopped=True)


class EpochHistory(Callback):
    """Append one JSON line per completed epoch to ``path``: the epoch, the train and valid losses and the metrics.

    A resumed run appends to the same file; ``epochs_run`` lists the epochs this fit completed. With ``echo`` each
    line is also printed (the CLI's ``--quiet`` mode, which has no progress table).
    """

    order = 52  # after the Recorder (50) has stored the epoch, before the trackers (60+) that may end the fit

    def __init__(self, path, echo: bool = False):
        self.path, self.echo, self.epochs_run = Path(path), echo, []

    def after_epoch(self):
        values = self.recorder.values[-1] if self.recorder.values else []
        if len(values) < 2:  # an epoch that resume() skipped
            return
        row = json_safe({"epoch": int(self.epoch), **dict(zip(self.recorder.metric_names[1:], values, strict=False))})
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        self.epochs_run.append(int(self.epoch))
        if self.echo:
            print(", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)


class TrainingDiverged(RuntimeError):
    """The training loss or the weights became NaN or infinite; nothing of the epoch was saved."""


class StopOnDivergence(Callback):
    """Stop the fit with :class:`TrainingDiverged` when the loss or the weights stop being finite.

    Each training batch's loss is checked on its device, without waiting for it (no host sync per batch); the
    verdict is read once, at the end of the epoch's training phase. That is before validation and before
    ``after_epoch``, where :class:`CheckpointEveryEpoch` and :class:`SaveBestModel` write: a diverged epoch is never
    saved, nor kept as the best, so a rerun resumes from the last sound epoch. The message names the epoch, the
    first bad batch and the learning rate to lower.
    """

    def before_epoch(self):
        self.first_bad = None

    def after_batch(self):
        if not self.training:
            return
        bad = ~torch.isfinite(self.learn.loss.detach()).all()
        first = self.first_bad if self.first_bad is not None else torch.full((), -1, device=bad.device)
        self.first_bad = torch.where(bad & (first < 0), torch.full_like(first, self.iter), first)

    def after_train(self):
        batch = -1 if self.first_bad is None else int(self.first_bad)
        params = [p for p in self.learn.model.parameters() if p.is_floating_point()]
        weights_ok = bool(torch.stack([torch.isfinite(p).all() for p in params]).all()) if params else True
        if batch < 0 and weights_ok:
            return
        what = f"batch {batch} (its loss is not finite)" if batch >= 0 else "the end of training (weights not finite)"
        lr = self.learn.opt.hypers[-1]["lr"] if self.learn.opt is not None else self.learn.lr
        raise TrainingDiverged(
            f"training diverged at epoch {self.epoch}, {what}; nothing of this epoch was saved. "
            f"Lower the learning rate (now {lr:.3g})."
        )


class EarlyStopping(EarlyStoppingCallback):
    """Stop when the validation loss has not fallen for ``patience`` epochs (the paper's rule, Sec. 4.2).

    fastai's ``EarlyStoppingCallback`` whose ``best``, ``wait`` and ``stopped`` are saved in checkpoints: after
    :func:`resume` it counts on from where the killed run was instead of starting afresh.
    """

    def __init__(self, monitor: str = "valid_loss", patience: int = 3, min_delta: float = 0.0):
        super().__init__(monitor=monitor, patience=patience, min_delta=min_delta)
        self.stopped, self._restored = False, None

    def before_fit(self):
        super().before_fit()  # resets best and wait
        if self._restored is not None:
            self.best, self.wait, self.stopped = self._restored
            self._restored = None
        else:
            self.stopped = False

    def after_epoch(self):
        if epoch_skipped(self.learn):
            return
        try:
            super().after_epoch()  # fastai's rule; it ends the fit with CancelFitException
        except CancelFitException:
            self.stopped = True  # for CheckpointEveryEpoch, whose after_cancel_fit comes next
            raise

    def checkpoint_state(self) -> dict:
        return {"best": float(self.best), "wait": int(self.wait), "stopped": bool(self.stopped)}

    def load_checkpoint_state(self, state: dict) -> None:
        self._restored = (state["best"], state["wait"], state["stopped"])


class SaveBestModel(SaveModelCallback):
    """Keep the weights of the epoch with the lowest validation loss and load them when the fit ends.

    fastai's ``SaveModelCallback`` (file ``learn.path/models/{fname}.pth``), but the file is written atomically
    (temp file + ``os.replace``), reloaded with ``weights_only=True``, and the best value so far is saved in
    checkpoints, so a resumed run only replaces the file with a truly better epoch.
    """

    def __init__(self, monitor: str = "valid_loss", fname: str = "best"):
        super().__init__(monitor=monitor, fname=fname)
        self._restored = None

    def before_fit(self):
        super().before_fit()
        if self._restored is not None:
            self.best, self._restored = self._restored, None

    def after_epoch(self):
        if not epoch_skipped(self.learn):
            super().after_epoch()

    def _save(self, name):
        from fastai.learner import save_model

        final = Path(self.learn.path) / self.learn.model_dir / f"{name}.pth"
        self.last_saved_path = atomic_write(final, lambda tmp: save_model(tmp, self.learn.model, None, with_opt=False))

    @property
    def best_path(self) -> Path:
        return self.learn.path / self.learn.model_dir / f"{self.fname}.pth"

    def load_best(self) -> None:
        """Load the best epoch's weights (if any epoch has been saved)."""
        if self.best_path.exists():
            self.learn.load(self.fname, with_opt=False, weights_only=True)

    def after_fit(self, **kwargs):
        self.load_best()

    def checkpoint_state(self) -> dict:
        return {"best": float(self.best)}

    def load_checkpoint_state(self, state: dict) -> None:
        self._restored = state["best"]


def resume(learn, path, n_epoch: int, **fit_kwargs):
    """Continue a killed run from the last completed epoch in ``path``, up to ``n_epoch`` epochs in all.

    Loads the checkpoint (model, optimizer, critic, early-stopping and best-model state), then
    :func:`antiforge_lib.learner.fit` ``(learn, n_epoch, start_epoch=last + 1)``: fastai skips the done epochs, and
    sets a one-cycle schedule to where it was. A run that early stopping had ended is not trained further; its
    best weights are loaded. Without a checkpoint file it simply starts at epoch 0.
    """
    start, stopped = 0, False
    if Path(path).exists():
        state = load_checkpoint(learn, path)
        start, stopped = state["epoch"] + 1, state.get("stopped", False)
    if start < n_epoch and not stopped:
        from .learner import fit  # the learner module builds on this one

        fit(learn, n_epoch, start_epoch=start, **fit_kwargs)
    elif stopped:
        for cb in learn.cbs:
            if isinstance(cb, SaveBestModel):
                cb.load_best()
    return learn
