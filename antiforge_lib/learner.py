"""fastai Learners for the anti-compression detector of Cao et al. 2021 (Sec. 3, 4.2) and its baselines.

- :class:`TrainConfig` -- every training setting, with the paper's values as defaults; presets ``"paper"`` and
  ``"demo"`` (a CPU-sized run for the book).
- :func:`anticompression_learner` -- the two-branch model trained with eq. 1 (metric + pair + attention +
  transfer + adversarial terms).
- :func:`single_branch_learner` -- the single-XceptionNet rows of Table 3 (cross-entropy or metric head,
  optionally with attention), trained on one image of each pair.

Batches follow :mod:`antiforge_lib.metrics`: ``(hq, lq, mask, label)`` with ``dls.n_inp = 2``, so fastai calls
``model(hq, lq)`` and ``loss_func(pred, mask, label)``.

Example
-------
>>> learn = anticompression_learner(dls, TrainConfig.preset("demo"))
>>> learn.fit(2)
>>> plot_loss_breakdown(learn)
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._fastai import quiet_import
from .callbacks import AdversarialAlignment, LossBreakdown, MixedPrecision, SelectInput, SetEpoch, plot_loss_breakdown
from .checkpoint import CheckpointEveryEpoch, EarlyStopping, SaveBestModel, StopOnDivergence
from .config import TrainConfig
from .data.loaders import pair_dataloaders, self_blend_dataloaders
from .losses import AntiCompressionLoss, attention_loss, metric_loss
from .metrics import AccuracyAtThreshold, AUCMetric, PBCAMetric, TARatFAR, decision_threshold
from .models import SingleBranchNet, TwoBranchNet, splitter

with quiet_import():
    import fastai.callback.schedule  # noqa: F401  (adds Learner.fit_one_cycle)
    from fastai.callback.channelslast import ChannelsLast  # fastai's own: the model in channels-last format
    from fastai.learner import Learner
    from fastai.optimizer import Adam
    from fastai.torch_core import set_seed

__all__ = [
    "TrainConfig",
    "make_dataloaders",
    "fit",
    "TwoBranchLoss",
    "SingleBranchLoss",
    "anticompression_learner",
    "single_branch_learner",
    "plot_loss_breakdown",
]


# ---------------------------------------------------------------------------------------------------------------
# Loss functions in fastai's calling convention: loss_func(pred, *yb) = loss_func(pred, mask, label)


class TwoBranchLoss(nn.Module):
    """eq. 1 without its adversarial term, which :class:`~antiforge_lib.callbacks.AdversarialAlignment` adds.

    ``forward(pred, mask, label)`` returns the weighted total (0-d) and keeps the unweighted terms in ``parts``
    (detached) for :class:`~antiforge_lib.callbacks.LossBreakdown`.
    """

    def __init__(self, config: TrainConfig):
        super().__init__()
        self.loss = AntiCompressionLoss(
            lambda_gan=config.lambda_gan,
            lambda_at=config.lambda_at,
            lambda_pair=config.lambda_pair,
            r_minus=config.r_minus,
            r_plus=config.r_plus,
            use_metric=config.metric,
            use_attention=config.attention,
            use_transfer=config.transfer,
            reduction=config.reduction,
            use_gan=False,  # the critic lives in a callback; it adds lambda_gan * L_Gan in after_loss
            validate=False,  # no host sync per batch: the loaders make valid labels and masks (losses docstring)
        )
        self.parts: dict[str, Tensor] = {}

    def forward(self, pred, mask: Tensor, label: Tensor) -> Tensor:
        total, self.parts = self.loss(pred, label, mask)
        return total


class SingleBranchLoss(nn.Module):
    """Loss of a :class:`SingleBranchNet`: cross-entropy on ``logits`` (``head="ce"``), or the metric loss on
    ``c`` plus ``lambda_at`` times the attention cross-entropy when the net has attention (``head="metric"``).
    Values are not validated (no host sync per batch), as in :class:`TwoBranchLoss`.

    ``parts`` keys: ``ce`` or ``metric`` (+ ``attention``), and ``total``.
    """

    def __init__(
        self,
        head: str = "metric",
        r_minus: float = 0.1,
        r_plus: float = 18.0,
        lambda_at: float = 1.0,
        reduction: str = "mean",
    ):
        super().__init__()
        self.head, self.r_minus, self.r_plus, self.lambda_at = head, r_minus, r_plus, lambda_at
        self.reduction = reduction
        self.parts: dict[str, Tensor] = {}

    def forward(self, pred, mask: Tensor, label: Tensor) -> Tensor:
        parts = {}
        if self.head == "ce":
            parts["ce"] = F.cross_entropy(pred.logits.float(), label.long())
            total = parts["ce"]
        else:
            parts["metric"] = metric_loss(pred.c, label, self.r_minus, self.r_plus, self.reduction, validate=False)
            total = parts["metric"]
        if pred.m is not None and self.lambda_at > 0:
            parts["attention"] = attention_loss(pred.m, mask, validate=False)
            total = total + self.lambda_at * parts["attention"]
        parts["total"] = total
        self.parts = {k: v.detach().float() for k, v in parts.items()}
        return total


# ---------------------------------------------------------------------------------------------------------------
# Learner builders


def make_dataloaders(index, config: TrainConfig, num_workers=None, device=None):
    """The loaders ``config`` trains on: the cached pairs of ``index`` (:func:`~antiforge_lib.data.pair_dataloaders`),
    or with ``config.self_blend`` the stream made from its real training faces
    (:func:`~antiforge_lib.data.self_blend_dataloaders`). Validation and test are the cached pairs either way
    (a cache of real faces only validates on fixed self-blends). ``config.augment_on`` says where the cached training
    pairs are augmented. ``num_workers``: loader processes (default as ``pair_dataloaders``); ``device``: where
    batches go (default CUDA if available).
    """
    _check_classes(index, config.self_blend)
    common = dict(size=config.size, bs=config.batch_size, num_workers=num_workers, seed=config.seed, device=device)
    if not config.self_blend:
        return pair_dataloaders(index, **common, augment_on=config.augment_on)
    return self_blend_dataloaders(index, length=config.items_per_epoch, codec=config.lq_codec, **common)


def _check_classes(index, self_blend: bool) -> None:
    """Before any epoch: training and validation can hold both classes (not after an epoch, as AUC would find)."""
    if not hasattr(index, "columns") or not {"split", "label"} <= set(index.columns):
        return  # a custom index: the loaders say what they need
    real_only = not (index["label"] == 1).any()  # validated on fixed self-blends, trained on them too
    for split in ("train", "val"):
        labels = set(index.loc[index["split"] == split, "label"].astype(int))
        needed = {0} if real_only or (self_blend and split == "train") else {0, 1}
        lacking = sorted(needed - labels)
        if lacking:
            kinds = " and ".join("fake" if k else "real" for k in lacking)
            raise ValueError(
                f"the {split!r} split of the pair index has no {kinds} pairs: training needs both classes in "
                "training and validation (did prepare warn that a split lost a class? see its report.json)"
            )


def fit(learn: Learner, n_epoch: int | None = None, start_epoch: int = 0, **kwargs) -> Learner:
    """Train ``learn`` as its config says: ``learn.fit`` at the constant ``lr`` (the paper's Adam), or
    ``learn.fit_one_cycle`` peaking at ``lr`` (``schedule="one_cycle"``). ``n_epoch`` defaults to ``config.epochs``;
    ``start_epoch`` skips finished epochs (fastai replays the one-cycle schedule to the right point)."""
    config = getattr(learn, "train_config", None)
    if config is None:  # a Learner built by hand: fastai's own loop
        learn.fit(n_epoch, start_epoch=start_epoch, **kwargs)
        return learn
    n_epoch = config.epochs if n_epoch is None else n_epoch
    if config.schedule == "one_cycle":
        learn.fit_one_cycle(n_epoch, lr_max=config.lr, start_epoch=start_epoch, **kwargs)
    else:
        learn.fit(n_epoch, lr=config.lr, start_epoch=start_epoch, **kwargs)
    return learn


def _config(config: TrainConfig | None, overrides: dict) -> TrainConfig:
    return (config or TrainConfig()).replace(**overrides)


def _common_cbs(config: TrainConfig, on_cuda: bool, checkpoint, save_best: bool) -> list:
    cbs = [SetEpoch(), StopOnDivergence()]  # a NaN stops the fit before anything of its epoch is saved
    if config.patience is not None:
        # The paper's rule: stop when the validation loss stops falling; the best epoch's weights are kept.
        cbs.append(EarlyStopping(monitor="valid_loss", patience=config.patience))
    if save_best:
        cbs.append(SaveBestModel(monitor="valid_loss", fname="best"))
    if checkpoint is not None:
        cbs.append(CheckpointEveryEpoch(checkpoint))
    if on_cuda and config.channels_last:
        cbs.append(ChannelsLast())
    return cbs


def _finish(learn: Learner, config: TrainConfig, on_cuda: bool) -> Learner:
    learn.train_config = config
    learn.model.antiforge_config = config  # evaluate() and viz take the default threshold from it
    if config.compile:
        learn.model.compile()
    if on_cuda and config.mixed_precision is not None:
        learn.add_cb(MixedPrecision(amp_mode=config.mixed_precision))
    return learn


def _on_cuda(dls) -> bool:
    device = getattr(dls, "device", None)
    return torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda")


def _opt_func(config: TrainConfig):
    return partial(Adam, sqr_mom=0.999, eps=1e-8, wd=config.wd)  # torch.optim.Adam's betas and eps


def anticompression_learner(
    dls,
    config: TrainConfig | None = None,
    *,
    cbs=None,
    path=None,
    checkpoint=None,
    save_best: bool = False,
    **overrides,
) -> Learner:
    """fastai ``Learner`` for the two-branch model trained with eq. 1 (Sec. 3).

    Parameters
    ----------
    dls : fastai DataLoaders
        Batches ``(hq, lq, mask, label)``; ``dls.n_inp`` is set to 2 here.
    config : TrainConfig, optional
        Defaults to ``TrainConfig()`` (the paper's settings); ``overrides`` replace single fields.
    cbs : list of Callback, optional
        Extra callbacks.
    path : path, optional
        ``Learner.path`` (where :class:`~antiforge_lib.callbacks.SaveBestModel` writes ``models/best.pth``).
    checkpoint : path, optional
        Add :class:`CheckpointEveryEpoch` writing there (use :func:`~antiforge_lib.callbacks.resume`).
    save_best : bool, default=False
        Add :class:`~antiforge_lib.callbacks.SaveBestModel`: keeps and reloads the best epoch's weights (valid loss).

    Returns
    -------
    Learner
        ``model``: :class:`TwoBranchNet`; ``loss_func``: :class:`TwoBranchLoss`; metrics AUC, ACC at
        ``(r- + r+)/2``, TAR@0.1% (+ PBCA with attention); callbacks :class:`LossBreakdown`,
        :class:`AdversarialAlignment` (if ``gan`` and ``lambda_gan > 0``), early stopping (if ``patience``),
        GPU settings on CUDA. ``learn.train_config`` holds the config.
    """
    config = _config(config, overrides)
    if config.model != "two-branch":
        raise ValueError(
            f"anticompression_learner builds the two-branch model, but the config says model={config.model!r}; "
            "use antiforge_lib.run.build_learner(dls, config), which builds the model the config names"
        )
    set_seed(config.seed)
    model = TwoBranchNet(
        config.backbone, config.cut, config.pretrained, config.attention, config.weights, stem=config.stem
    )
    own = [LossBreakdown()]
    if config.gan and config.lambda_gan > 0:
        own.append(
            AdversarialAlignment(
                2 * model.feature_channels, config.n_critic, config.critic_lr, config.gp_weight, config.lambda_gan
            )
        )
    return _learner(
        dls,
        model,
        TwoBranchLoss(config),
        config,
        decision_threshold(config),
        config.attention,
        own,
        cbs,
        path,
        checkpoint,
        save_best,
    )


def _learner(dls, model, loss_func, config, threshold, attention, own_cbs, cbs, path, checkpoint, save_best):
    """What both learners share: the batch convention, metrics, optimiser and common callbacks."""
    dls.n_inp = 2  # xb = (hq, lq), yb = (mask, label)
    on_cuda = _on_cuda(dls)
    metrics = [AUCMetric(), AccuracyAtThreshold(threshold), TARatFAR(1e-3)]
    if attention:
        metrics.append(PBCAMetric())
    learn = Learner(
        dls,
        model,
        loss_func=loss_func,
        opt_func=_opt_func(config),
        lr=config.lr,
        splitter=splitter,
        metrics=metrics,
        # batch_callbacks: the device-side augmentation of pair_dataloaders(augment_on="device"), when asked for
        cbs=own_cbs
        + list(getattr(dls, "batch_callbacks", []))
        + _common_cbs(config, on_cuda, checkpoint, save_best)
        + list(cbs or []),
        path=Path(path) if path is not None else None,
    )
    return _finish(learn, config, on_cuda)


def single_branch_learner(
    dls,
    config: TrainConfig | None = None,
    head: str = "metric",
    attention: bool = False,
    train_on: str = "lq",
    *,
    cbs=None,
    path=None,
    checkpoint=None,
    save_best: bool = False,
    **overrides,
) -> Learner:
    """fastai ``Learner`` for one branch (Table 3, rows 1-4), trained on one image of each pair.

    Parameters
    ----------
    head : {"metric", "ce"}
        Metric loss on ``||c||`` (threshold ``(r- + r+)/2``) or cross-entropy on 2 logits (threshold 0.5).
    attention : bool
        Add the attention layer and its cross-entropy term (weight ``lambda_at``).
    train_on : {"lq", "hq"}
        Which image the net sees (:class:`~antiforge_lib.callbacks.SelectInput`); masks and labels as usual.

    Other parameters as :func:`anticompression_learner`; ``config.attention``, ``gan``, ``pair`` and
    ``transfer`` do not apply.
    """
    if head not in ("metric", "ce"):
        raise ValueError(f"head must be 'metric' or 'ce', got {head!r}")
    # The arguments name the model; the config records them, so checkpoints and thresholds say what was trained.
    config = _config(config, overrides).replace(model=f"single-{head}", train_on=train_on, attention=attention)
    set_seed(config.seed)
    model = SingleBranchNet(
        config.backbone, config.cut, head, attention, config.pretrained, config.weights, stem=config.stem
    )
    threshold = decision_threshold(config)
    names = ("ce",) if head == "ce" else ("metric",)
    names += ("attention", "total") if attention else ("total",)
    own = [SelectInput(train_on), LossBreakdown(names)]
    loss_func = SingleBranchLoss(head, config.r_minus, config.r_plus, config.lambda_at, config.reduction)
    return _learner(dls, model, loss_func, config, threshold, attention, own, cbs, path, checkpoint, save_best)
