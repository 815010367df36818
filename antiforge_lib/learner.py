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

import warnings
from dataclasses import asdict, dataclass, fields, replace
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .callbacks import (
    AdversarialAlignment,
    ChannelsLast,
    CheckpointEveryEpoch,
    EarlyStopping,
    LossBreakdown,
    MixedPrecision,
    SaveBestModel,
    SelectInput,
    plot_loss_breakdown,
)
from .losses import AntiCompressionLoss, attention_loss, metric_loss
from .metrics import CE_THRESHOLD, AccuracyAtThreshold, AUCMetric, PBCAMetric, TARatFAR, metric_threshold
from .models import SingleBranchNet, TwoBranchNet, splitter

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=FutureWarning)
    from fastai.learner import Learner
    from fastai.optimizer import Adam
    from fastai.torch_core import set_seed

__all__ = [
    "TrainConfig",
    "TwoBranchLoss",
    "SingleBranchLoss",
    "anticompression_learner",
    "single_branch_learner",
    "plot_loss_breakdown",
]


@dataclass
class TrainConfig:
    """Training settings; the defaults are the paper's (Sec. 4.2) where it gives them.

    Model: ``backbone`` (timm name; "legacy_xception" = FaceForensics++'s XceptionNet), ``split`` (first stage of
    the shared tail; "block8" cuts between Blocks 7 and 8), ``attention``, ``pretrained`` (ImageNet weights;
    needs the network, True on Colab), ``weights`` (a local timm state dict instead). The embedding size ``d``
    (2048 for Xception) comes from the backbone, it is not a setting.

    Data and optimisation: ``size`` (pixels, 299), ``batch_size`` (32; the loaders are built by
    :func:`antiforge_lib.data.pair_dataloaders`, this records it), ``lr`` (Adam, 1e-4; betas (0.9, 0.999),
    eps 1e-8 as torch's Adam), ``wd`` (0: the paper mentions no weight decay), ``epochs``, ``patience`` (early
    stopping on the VALIDATION loss: stop after this many epochs without improvement; None = off).

    Loss (eq. 1, 5, 6): ``lambda_gan`` (lambda_1, 0.001), ``lambda_at`` (lambda_2, 1), ``lambda_pair`` (lambda_3,
    0.1), radii ``r_minus`` 0.1 and ``r_plus`` 18 (threshold (r- + r+)/2 = 9.05); switches ``metric``,
    ``transfer``, ``gan`` for ablations (``attention`` also switches the attention terms).

    Critic (WGAN-GP, not given in the paper): ``n_critic`` critic steps per detector step (1: the term is a mild
    regulariser at lambda_1 = 0.001, and WGAN-GP's usual 5 would dominate the cost), ``critic_lr`` (Adam, betas
    (0.5, 0.9)), ``gp_weight`` (10, WGAN-GP's default).

    Hardware: ``mixed_precision`` ("bf16", "fp16" or None) and ``channels_last`` apply on CUDA only;
    ``compile`` runs ``torch.compile`` on the model in place (``nn.Module.compile``: the state-dict keys stay the
    same); off by default, because the first steps then take minutes, which pays off only in long GPU runs;
    ``seed``.
    """

    backbone: str = "legacy_xception"
    split: str = "block8"
    attention: bool = True
    pretrained: bool = False
    weights: str | None = None
    size: int = 299
    batch_size: int = 32
    lr: float = 1e-4
    wd: float = 0.0
    epochs: int = 15
    patience: int | None = 3
    lambda_gan: float = 0.001
    lambda_at: float = 1.0
    lambda_pair: float = 0.1
    r_minus: float = 0.1
    r_plus: float = 18.0
    metric: bool = True
    transfer: bool = True
    gan: bool = True
    n_critic: int = 1
    critic_lr: float = 1e-4
    gp_weight: float = 10.0
    mixed_precision: str | None = "bf16"
    channels_last: bool = True
    compile: bool = False
    seed: int = 0

    PRESETS = {
        "paper": {},
        # CPU-sized: a small backbone cut so the heads keep a 4x4 map at 64 px; larger lr for few steps.
        "demo": dict(backbone="resnet18", split="layer3", size=64, batch_size=16, lr=1e-3, epochs=2, patience=None),
    }

    @classmethod
    def preset(cls, name: str, **overrides) -> TrainConfig:
        """``"paper"`` (the defaults) or ``"demo"`` (resnet18/layer3, 64 px, batch 16, lr 1e-3, 2 epochs)."""
        if name not in cls.PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {sorted(cls.PRESETS)}")
        return cls(**{**cls.PRESETS[name], **overrides})

    def __post_init__(self):
        if self.mixed_precision not in (None, "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be 'bf16', 'fp16' or None, got {self.mixed_precision!r}")
        if self.pretrained and self.weights is not None:
            raise ValueError("give pretrained=True or weights=, not both")

    @property
    def threshold(self) -> float:
        """Decision threshold on ``||c||_2``, ``(r_minus + r_plus) / 2``."""
        return metric_threshold(self.r_minus, self.r_plus)

    def to_dict(self) -> dict:
        """Plain dict of all fields (for printing and results JSON)."""
        return asdict(self)

    def replace(self, **overrides) -> TrainConfig:
        """A copy with some fields changed; unknown names raise."""
        unknown = set(overrides) - {f.name for f in fields(self)}
        if unknown:
            raise TypeError(f"unknown TrainConfig fields: {sorted(unknown)}")
        return replace(self, **overrides)


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
            use_gan=False,  # the critic lives in a callback; it adds lambda_gan * L_Gan in after_loss
        )
        self.parts: dict[str, Tensor] = {}

    def forward(self, pred, mask: Tensor, label: Tensor) -> Tensor:
        total, self.parts = self.loss(pred, label, mask)
        return total


class SingleBranchLoss(nn.Module):
    """Loss of a :class:`SingleBranchNet`: cross-entropy on ``logits`` (``head="ce"``), or the metric loss on
    ``c`` plus ``lambda_at`` times the attention cross-entropy when the net has attention (``head="metric"``).

    ``parts`` keys: ``ce`` or ``metric`` (+ ``attention``), and ``total``.
    """

    def __init__(self, head: str = "metric", r_minus: float = 0.1, r_plus: float = 18.0, lambda_at: float = 1.0):
        super().__init__()
        self.head, self.r_minus, self.r_plus, self.lambda_at = head, r_minus, r_plus, lambda_at
        self.parts: dict[str, Tensor] = {}

    def forward(self, pred, mask: Tensor, label: Tensor) -> Tensor:
        parts = {}
        if self.head == "ce":
            parts["ce"] = F.cross_entropy(pred.logits.float(), label.long())
            total = parts["ce"]
        else:
            parts["metric"] = metric_loss(pred.c, label, self.r_minus, self.r_plus)
            total = parts["metric"]
        if pred.m is not None and self.lambda_at > 0:
            parts["attention"] = attention_loss(pred.m, mask)
            total = total + self.lambda_at * parts["attention"]
        parts["total"] = total
        self.parts = {k: v.detach().float() for k, v in parts.items()}
        return total


# ---------------------------------------------------------------------------------------------------------------
# Learner builders


def _config(config: TrainConfig | None, overrides: dict) -> TrainConfig:
    return (config or TrainConfig()).replace(**overrides)


def _common_cbs(config: TrainConfig, on_cuda: bool, checkpoint, save_best: bool) -> list:
    cbs = []
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
    set_seed(config.seed)
    model = TwoBranchNet(config.backbone, config.split, config.pretrained, config.attention, config.weights)
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
        config.threshold,
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
        cbs=own_cbs + _common_cbs(config, on_cuda, checkpoint, save_best) + list(cbs or []),
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
    config = _config(config, overrides)
    set_seed(config.seed)
    model = SingleBranchNet(config.backbone, config.split, head, attention, config.pretrained, config.weights)
    threshold = CE_THRESHOLD if head == "ce" else config.threshold
    names = ("ce",) if head == "ce" else ("metric",)
    names += ("attention", "total") if attention else ("total",)
    own = [SelectInput(train_on), LossBreakdown(names)]
    loss_func = SingleBranchLoss(head, config.r_minus, config.r_plus, config.lambda_at)
    return _learner(dls, model, loss_func, config, threshold, attention, own, cbs, path, checkpoint, save_best)
