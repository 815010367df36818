"""The evaluation metrics of Cao et al. (2021), Sec. 4.1: ACC, AUC, TAR at low FAR, PBCA (and a per-video AUC).

Conventions: fakes are the positive class (label 1, "accept" = "call it fake"); a higher score means more likely
fake. For the metric-learning models the score is the embedding norm ``||c||_2`` of the LQ branch and a face is
called fake when it exceeds ``(r- + r+) / 2`` (Sec. 4.2); for cross-entropy models it is the softmax probability
of class 1. All metrics are fractions in [0, 1] (the paper prints percentages).

- :func:`accuracy`, :func:`auc`, :func:`tar_at_far`, :func:`video_auc` take per-sample scores and labels (numpy
  arrays, torch tensors or lists); :func:`pbca` takes attention maps and masks.
- :func:`scores_from_output` turns a model output into scores; :func:`evaluate` runs a model over a loader and
  returns one row of all metrics.
- :class:`AUCMetric`, :class:`AccuracyAtThreshold`, :class:`TARatFAR`, :class:`PBCAMetric` are fastai metrics for
  ``Learner(metrics=[...])``.

Batch convention for fastai (a training module builds on it)
------------------------------------------------------------
The loaders of :func:`antiforge_lib.data.pair_dataloaders` yield ``(hq, lq, mask, label)``. fastai splits each
batch into inputs ``xb = b[:n_inp]`` and targets ``yb = b[n_inp:]``; plain torch loaders have no ``n_inp``, so
fastai would fall back to ``len(b) - 1 = 3`` and feed the mask to the model. Set ``dls.n_inp = 2``::

    xb = (hq, lq)       ->  pred = model(hq, lq)                 (a TwoBranchOutput)
    yb = (mask, label)  ->  loss = loss_func(pred, mask, label)

The metrics here read ``learn.pred`` and take the label from ``learn.yb[-1]`` and the mask from ``learn.yb[0]``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score, roc_curve

from ._fastai import quiet_import
from .losses import resize_mask
from .models import evaluating

with quiet_import():
    from fastai.learner import Metric
    from fastai.torch_core import maybe_gather

__all__ = [
    "METRIC_THRESHOLD",
    "CE_THRESHOLD",
    "FewNegativesWarning",
    "metric_threshold",
    "decision_threshold",
    "accuracy",
    "auc",
    "tar_at_far",
    "pbca",
    "video_auc",
    "scores_from_output",
    "evaluate",
    "video_ids",
    "AUCMetric",
    "AccuracyAtThreshold",
    "TARatFAR",
    "PBCAMetric",
]


def metric_threshold(r_minus: float = 0.1, r_plus: float = 18.0) -> float:
    """The paper's decision threshold on ``||c||_2``: halfway between the radii, ``(r_minus + r_plus) / 2``.

    It is fixed by the training radii before any test data is seen, never tuned on the test set (a threshold
    tuned on the test set would overstate ACC).
    """
    if not 0 <= r_minus < r_plus:
        raise ValueError(f"the radii must satisfy 0 <= r_minus < r_plus; got r_minus={r_minus}, r_plus={r_plus}")
    return (r_minus + r_plus) / 2


#: Threshold on the embedding norm for the paper's radii r- = 0.1, r+ = 18.0: 9.05 (Sec. 4.2).
METRIC_THRESHOLD = metric_threshold(0.1, 18.0)
#: Threshold on the fake-class probability of a cross-entropy model.
CE_THRESHOLD = 0.5


def decision_threshold(config=None, ce: bool = False) -> float:
    """The threshold a detector was trained for; every default threshold of the library comes from here.

    Parameters
    ----------
    config : TrainConfig, dict or nn.Module, optional
        The training settings (a model carrying them as ``model.antiforge_config``, as the learners and
        :func:`~antiforge_lib.detect.load_detector` leave it, also works). Their radii ``r_minus`` and ``r_plus``
        give ``(r_minus + r_plus) / 2``; without a config, the paper's radii give 9.05 (Sec. 4.2). A config whose
        ``model`` is ``"single-ce"`` (the CLI's cross-entropy baseline) counts as ``ce=True``.
    ce : bool, default False
        The model has a cross-entropy head: the threshold is :data:`CE_THRESHOLD` (0.5) on the fake-class
        probability.
    """
    if isinstance(config, torch.nn.Module):
        config = getattr(config, "antiforge_config", None)
    if config is not None and not isinstance(config, dict):
        config = config.to_dict() if hasattr(config, "to_dict") else vars(config)
    config = config or {}
    if ce or config.get("model") == "single-ce":
        return CE_THRESHOLD
    return metric_threshold(float(config.get("r_minus", 0.1)), float(config.get("r_plus", 18.0)))


class FewNegativesWarning(UserWarning):
    """TAR at FAR was asked for a FAR smaller than one false accept among the real samples can resolve."""


# ---------------------------------------------------------------------------------------------------------------
# Input checks: messages say what was expected and what arrived.


def _to_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _check_scores(scores) -> np.ndarray:
    s = _to_numpy(scores)
    if s.ndim == 2 and s.shape[1] == 1:  # a (N, 1) column is a common slip; accept it
        s = s[:, 0]
    if s.ndim != 1:
        raise ValueError(f"scores must be one number per sample, shape (N,); got shape {s.shape}")
    if s.size == 0:
        raise ValueError("scores is empty; a metric needs at least one sample")
    if not np.issubdtype(s.dtype, np.number) and s.dtype != bool:
        raise TypeError(f"scores must be numbers; got dtype {s.dtype}")
    s = s.astype(np.float64)
    if not np.isfinite(s).all():
        raise ValueError(f"scores must be finite; found {int((~np.isfinite(s)).sum())} NaN or infinite values")
    return s


def _check_labels(is_fake, n: int) -> np.ndarray:
    y = _to_numpy(is_fake)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.shape != (n,):
        raise ValueError(f"is_fake must hold one label per score, shape ({n},); got shape {y.shape}")
    if y.dtype == bool:
        return y
    if not np.isin(y, (0, 1)).all():
        bad = np.unique(y[~np.isin(y, (0, 1))])[:5].tolist()
        raise ValueError(f"is_fake must hold labels in {{0, 1}} (1 = fake); found {bad}")
    return y == 1


def _scores_and_labels(scores, is_fake) -> tuple[np.ndarray, np.ndarray]:
    s = _check_scores(scores)
    return s, _check_labels(is_fake, len(s))


def _check_both_classes(y: np.ndarray, what: str) -> None:
    n_fake = int(y.sum())
    if n_fake == 0 or n_fake == len(y):
        only = "fakes" if n_fake else "reals"
        raise ValueError(
            f"{what} needs both real (0) and fake (1) samples; got only {only} ({len(y)} samples). "
            "Evaluate on a set that contains both classes."
        )


# ---------------------------------------------------------------------------------------------------------------
# Per-sample classification metrics


def accuracy(scores, is_fake, threshold: float) -> float:
    """ACC: fraction of samples classified correctly, a sample being called fake when ``score > threshold``.

    The threshold must be fixed in advance -- :data:`METRIC_THRESHOLD` (9.05) for embedding norms,
    :data:`CE_THRESHOLD` (0.5) for fake-class probabilities -- never tuned on the test set.

    Parameters
    ----------
    scores : array-like of shape (N,)
        Higher = more likely fake (e.g. ``||c_lq||_2`` in embedding units).
    is_fake : array-like of shape (N,)
        Labels in {0, 1} (1 = fake), bool, integer or float.
    threshold : float
        Decision threshold, in the units of ``scores``; a score equal to it counts as real.

    Returns
    -------
    acc : float in [0, 1]
    """
    s, y = _scores_and_labels(scores, is_fake)
    return float(np.mean((s > threshold) == y))


def auc(scores, is_fake) -> float:
    """AUC: area under the ROC curve (sklearn's ``roc_auc_score``), in [0, 1]; 0.5 is chance.

    Threshold-free: the probability that a random fake scores higher than a random real (ties count half).
    Raises ValueError if only one class is present.
    """
    s, y = _scores_and_labels(scores, is_fake)
    _check_both_classes(y, "AUC")
    return float(roc_auc_score(y, s))


def tar_at_far(scores, is_fake, far: float) -> float:
    """TAR at FAR: the highest true-accept rate reachable with a false-accept rate of at most ``far``.

    "Accept" means "call it fake": TAR is the fraction of fakes scored at or above a threshold (TPR), FAR the
    fraction of reals (FPR). Over all operating points of sklearn's ``roc_curve`` (``drop_intermediate=False``;
    one point per distinct score, so tied scores move together and are never split by the threshold) we take
    the largest TPR whose FPR is ``<= far``. The paper reports ``far = 1e-3`` (TAR@0.1%) and ``1e-4``
    (TAR@0.01%).

    With ``n_neg`` real samples FAR moves in steps of ``1 / n_neg``; when ``n_neg < 1 / far`` no false accept is
    allowed at all and the value is TAR at FAR = 0, so a :class:`FewNegativesWarning` says so (the value is still
    returned).

    Parameters
    ----------
    scores : array-like of shape (N,)
        Higher = more likely fake.
    is_fake : array-like of shape (N,)
        Labels in {0, 1} (1 = fake).
    far : float in (0, 1]
        Largest false-accept rate allowed, as a fraction (1e-3 = 0.1%).

    Returns
    -------
    tar : float in [0, 1]
    """
    s, y = _scores_and_labels(scores, is_fake)
    if not 0 < far <= 1:
        raise ValueError(f"far is a fraction in (0, 1], e.g. 1e-3 for 0.1%; got {far}")
    _check_both_classes(y, "TAR at FAR")
    n_neg = int((~y).sum())
    if n_neg * far < 1:
        warnings.warn(
            f"TAR at FAR={far:g} rests on only {n_neg} real (negative) samples: the smallest non-zero FAR "
            f"measurable is 1/{n_neg} = {1 / n_neg:.3g}, so this is TAR at FAR = 0. "
            f"At least {math.ceil(1 / far)} reals are needed to resolve FAR={far:g}.",
            FewNegativesWarning,
            stacklevel=2,
        )
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)  # the first point (threshold +inf) has FPR = 0
    return float(tpr[fpr <= far].max())


def video_auc(scores, is_fake, video_ids) -> float:
    """Video-level AUC: average the frame scores of each video, then :func:`auc` over the videos.

    Parameters
    ----------
    scores : array-like of shape (N,)
        Frame scores, higher = more likely fake.
    is_fake : array-like of shape (N,)
        Frame labels in {0, 1}; all frames of a video must share one label.
    video_ids : array-like of shape (N,)
        Any hashable id per frame. In FaceForensics++ the fakes of the four methods share ids ("071_054"), so
        prefix the method (``"Deepfakes/071_054"``), as :func:`evaluate` does with the pair index's columns.

    Returns
    -------
    auc : float in [0, 1]
    """
    s, y = _scores_and_labels(scores, is_fake)
    v = _to_numpy(video_ids)
    if v.shape != s.shape:
        raise ValueError(f"video_ids must hold one id per score, shape {s.shape}; got shape {v.shape}")
    per_video = pd.DataFrame({"video": v, "score": s, "fake": y}).groupby("video", sort=False)
    labels = per_video["fake"].agg(["min", "max"])
    mixed = labels.index[labels["min"] != labels["max"]].tolist()
    if mixed:
        raise ValueError(
            f"{len(mixed)} video(s) mix real and fake frames, e.g. {mixed[:3]}; a video must have one label "
            "(are reals and fakes sharing ids?)"
        )
    return auc(per_video["score"].mean().to_numpy(), labels["max"].to_numpy())


# ---------------------------------------------------------------------------------------------------------------
# PBCA


def _pbca_counts(maps, masks, threshold: float) -> tuple[int, int]:
    """(correctly classified pixels, all pixels) of a batch; see :func:`pbca`."""
    maps, masks = torch.as_tensor(maps), torch.as_tensor(masks)
    if not maps.is_floating_point() or maps.dim() != 4 or maps.shape[1] != 1:
        raise ValueError(f"maps must be a float tensor of shape (B, 1, h, w); got {maps.dtype} {tuple(maps.shape)}")
    if masks.dim() != 4 or masks.shape[0] != maps.shape[0]:
        raise ValueError(
            f"masks must have shape (B, 1, H, W) with the same B as maps {tuple(maps.shape)}; got {tuple(masks.shape)}"
        )
    if ((maps < 0) | (maps > 1)).any():
        raise ValueError("maps must hold values in [0, 1] (sigmoid outputs, not logits)")
    target = resize_mask(masks.to(maps.device), maps.shape[-2:]).bool()
    correct = ((maps >= threshold) == target).sum().item()
    return int(correct), maps.numel()


def pbca(maps, masks, threshold: float = 0.5) -> float:
    """PBCA: pixel-wise binary classification accuracy of attention maps (Sec. 4.1, after Dang et al. [8]).

    Every pixel of every image is one sample: a pixel is predicted manipulated when ``map >= threshold`` and
    compared with the ground-truth mask brought to the map's size by :func:`antiforge_lib.losses.resize_mask`
    (area average, then >= 0.5 -- the same target the attention loss sees). Real faces count too: their masks
    are all zeros, so a real whose map stays below the threshold everywhere scores 100%.

    Threshold rule: the paper only says the map is "transformed to a binary map at a threshold of 0.5"; we use
    ``>=``, the same rule ``resize_mask`` applies to the mask (and a map value exactly at 0.5 is "at" the
    threshold). The two rules differ only for values exactly equal to the threshold, e.g. ``sigmoid(0)`` from a
    zero-initialised attention layer.

    Parameters
    ----------
    maps : Tensor of shape (B, 1, h, w)
        Attention maps, values in [0, 1].
    masks : Tensor of shape (B, 1, H, W)
        Ground-truth masks in {0, 1} at any resolution; all zeros for real faces.
    threshold : float, default 0.5

    Returns
    -------
    pbca : float in [0, 1]
        Correct pixels / all pixels, over the whole batch (equal to the mean of per-image accuracies, as all
        maps have the same size).
    """
    correct, total = _pbca_counts(maps, masks, threshold)
    return correct / total


# ---------------------------------------------------------------------------------------------------------------
# Model outputs and whole-loader evaluation


def scores_from_output(out) -> torch.Tensor:
    """Detector scores (higher = more likely fake) from a model output, shape (B,), detached float32.

    - an output with ``logits`` (``SingleBranchNet(head="ce")``): softmax probability of class 1 (fake), in [0, 1];
    - a ``BranchOutput`` without logits (``forward_lq``, ``SingleBranchNet(head="metric")``): ``||c||_2``;
    - a ``TwoBranchOutput``: ``||c_lq||_2`` (the test-time branch, Sec. 3.1);
    - a plain (B, d) tensor of embeddings: its row norms.
    """
    logits = getattr(out, "logits", None)
    if logits is not None:
        if logits.dim() != 2 or logits.shape[1] != 2:
            raise ValueError(f"logits must have shape (B, 2), class 1 = fake; got {tuple(logits.shape)}")
        return F.softmax(logits.detach().float(), dim=1)[:, 1]
    for name in ("c", "c_lq"):
        if hasattr(out, name):
            out = getattr(out, name)
            break
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        raise TypeError(
            "expected a BranchOutput, a TwoBranchOutput or a (B, d) embedding tensor; "
            f"got {type(out).__name__} {tuple(out.shape) if isinstance(out, torch.Tensor) else ''}"
        )
    return torch.linalg.vector_norm(out.detach().float(), dim=1)


def _far_column(far: float) -> str:
    return f"TAR@{far * 100:g}%"


def video_ids(items: pd.DataFrame) -> np.ndarray:
    """One video id per pair, ``"method/video"`` (FF++ methods share fake ids like "071_054"), from a pair index
    (``PairedFaces.items``, :func:`~antiforge_lib.data.index.load_index`): what :func:`evaluate`'s ``video_ids``
    takes."""
    cols = [c for c in ("method", "video") if c in items.columns]
    return items[cols].astype(str).agg("/".join, axis=1).to_numpy()


def _video_ids(dl, n: int):
    """The dataset's ``items["video"]`` in loader order, or None (with a warning when order is not guaranteed)."""
    items = getattr(getattr(dl, "dataset", None), "items", None)
    if not isinstance(items, pd.DataFrame) or "video" not in items.columns:
        return None
    sampler = getattr(dl, "sampler", None)
    in_order = isinstance(sampler, torch.utils.data.SequentialSampler) or (
        sampler is None and not getattr(dl, "shuffle", True)
    )
    if not in_order or len(items) != n:
        warnings.warn(
            "video_AUC skipped: the loader does not serve its dataset once, in order (shuffle or drop_last?)",
            stacklevel=3,
        )
        return None
    return video_ids(items)


def _safe(metric, *args):
    """A metric value, or NaN with a warning when the set lacks a class (so ACC is still reported)."""
    try:
        return metric(*args)
    except ValueError as err:
        if "needs both real" not in str(err):
            raise
        warnings.warn(str(err), stacklevel=3)
        return math.nan


def evaluate(
    model: torch.nn.Module,
    dl,
    threshold: float | None = None,
    fars: Sequence[float] = (1e-3, 1e-4),
    device=None,
    return_scores: bool = False,
    *,
    image: str = "lq",
    video_ids=None,
):
    """Run a detector over a loader and compute the paper's metrics on its LQ input (one table row).

    The model runs in eval mode under ``torch.inference_mode()`` (its train/eval mode is restored afterwards), on
    the LQ images only: ``model.forward_lq(lq)`` if it has that method (:class:`~antiforge_lib.models.TwoBranchNet`),
    else ``model(lq)``. Scores come from :func:`scores_from_output`.

    Parameters
    ----------
    model : nn.Module
        A ``TwoBranchNet`` or ``SingleBranchNet``.
    dl : iterable of batches ``(hq, lq, mask, label)``
        E.g. ``dls.valid`` or ``dls.test`` of :func:`~antiforge_lib.data.pair_dataloaders`. If its dataset has
        ``items`` with a ``video`` column (and optionally ``method``) and the loader serves it in order, the
        video-level AUC is computed too, with ids ``"method/video"``.
    threshold : float, optional
        ACC threshold; default :func:`decision_threshold` of the model's training config
        (``model.antiforge_config``): ``(r_minus + r_plus) / 2`` for embedding norms (9.05 with the paper's radii or
        without a config), 0.5 for fake-class probabilities. Fix it in advance; do not tune it on the set you
        report.
    fars : sequence of float
        FARs (fractions) for the TAR columns, named ``TAR@{100 * far:g}%``.
    device : torch.device or str, optional
        Default: the device of the model's parameters.
    return_scores : bool, default False
        Also return the per-sample scores.
    image : {"lq", "hq"}, default "lq"
        Which image of each pair the model scores: the LQ one, as at test time, or the HQ one (Table 3, row 4).
    video_ids : sequence of str, optional
        One video id per pair, in loader order (e.g. :func:`video_ids` of the pair index), for the video AUC. By
        default they are read from ``dl.dataset.items`` when the loader serves its dataset once, in order.

    Returns
    -------
    row : pandas.DataFrame, one row
        ``ACC, AUC, TAR@0.1%, TAR@0.01%, PBCA, video_AUC`` as fractions in [0, 1] (PBCA NaN without attention
        maps, video_AUC NaN without video ids; AUC/TAR NaN, with a warning, if a class is missing), then
        ``n_real, n_fake``.
    scores : dict, only with ``return_scores=True``
        Numpy arrays ``score`` (N,) (embedding units or probabilities), ``is_fake`` (N,) bool, ``video`` (N,) str
        or None; in loader order.
    """
    if image not in ("lq", "hq"):
        raise ValueError(f"image must be 'lq' or 'hq', got {image!r}")
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    run = model.forward_lq if hasattr(model, "forward_lq") else model
    scores, labels, correct, total, default = [], [], 0, 0, None
    with evaluating(model):
        for batch in dl:
            if not isinstance(batch, (tuple, list)) or len(batch) != 4:
                raise ValueError("each batch must be (hq, lq, mask, label), as pair_dataloaders yields")
            hq, lq, mask, label = batch
            out = run((hq if image == "hq" else lq).to(device))
            scores.append(scores_from_output(out).cpu())
            labels.append(torch.as_tensor(label).reshape(-1).cpu())
            if default is None:
                default = decision_threshold(model, ce=getattr(out, "logits", None) is not None)
            m = getattr(out, "m", None)
            if m is not None:
                c, t = _pbca_counts(m, mask, 0.5)
                correct, total = correct + c, total + t

    if not scores:
        raise ValueError("the loader yielded no batches")
    s = torch.cat(scores).numpy().astype(np.float64)
    y = _check_labels(torch.cat(labels).numpy(), len(s))
    if video_ids is not None:
        video = np.asarray(video_ids, dtype=str)
        if video.shape != (len(s),):
            raise ValueError(f"video_ids must hold one id per pair: {len(s)} pairs, {video.size} ids")
    else:
        video = _video_ids(dl, len(s))
    threshold = default if threshold is None else threshold

    row = {"ACC": accuracy(s, y, threshold), "AUC": _safe(auc, s, y)}
    for far in fars:
        row[_far_column(far)] = _safe(tar_at_far, s, y, far)
    row["PBCA"] = correct / total if total else math.nan
    row["video_AUC"] = _safe(video_auc, s, y, video) if video is not None else math.nan
    row["n_real"], row["n_fake"] = int((~y).sum()), int(y.sum())
    df = pd.DataFrame([row])
    if return_scores:
        return df, {"score": s, "is_fake": y, "video": video}
    return df


# ---------------------------------------------------------------------------------------------------------------
# fastai metrics (validation only; see the batch convention at the top of this module)


class _ScoreMetric(Metric):
    """Collects scores (:func:`scores_from_output` of ``learn.pred``) and labels (``learn.yb[label_index]``)."""

    def __init__(self, label_index: int = -1):
        self.label_index = label_index
        self.reset()

    def reset(self):
        self.scores, self.labels = [], []

    def accumulate(self, learn):
        # maybe_gather: in a distributed run every rank sees the whole validation set's scores
        self.scores.append(maybe_gather(scores_from_output(learn.pred).detach()).cpu())
        self.labels.append(maybe_gather(torch.as_tensor(learn.yb[self.label_index]).detach().reshape(-1)).cpu())

    def _collected(self):
        return torch.cat(self.scores).numpy(), torch.cat(self.labels).numpy()


class AUCMetric(_ScoreMetric):
    """fastai metric: :func:`auc` of the LQ scores over the validation set (name "auc")."""

    name = "auc"

    @property
    def value(self):
        return auc(*self._collected()) if self.scores else None


class AccuracyAtThreshold(_ScoreMetric):
    """fastai metric: :func:`accuracy` at a fixed threshold (default :data:`METRIC_THRESHOLD`; name "acc")."""

    name = "acc"

    def __init__(self, threshold: float = METRIC_THRESHOLD, label_index: int = -1):
        super().__init__(label_index)
        self.threshold = threshold

    @property
    def value(self):
        return accuracy(*self._collected(), self.threshold) if self.scores else None


class TARatFAR(_ScoreMetric):
    """fastai metric: :func:`tar_at_far` (name "tar@0.1%" for ``far=1e-3``)."""

    def __init__(self, far: float = 1e-3, label_index: int = -1):
        if not 0 < far <= 1:
            raise ValueError(f"far is a fraction in (0, 1], e.g. 1e-3 for 0.1%; got {far}")
        super().__init__(label_index)
        self.far = far

    @property
    def name(self):
        return _far_column(self.far).lower()

    @property
    def value(self):
        return tar_at_far(*self._collected(), self.far) if self.scores else None


class PBCAMetric(Metric):
    """fastai metric: :func:`pbca` of the LQ attention maps (name "pbca"; NaN for a model without attention).

    The map is ``learn.pred.m_lq`` (``TwoBranchOutput``) or ``learn.pred.m`` (``BranchOutput``). The mask must
    reach the metric as a target: with ``dls.n_inp = 2`` fastai's targets are ``learn.yb = (mask, label)`` and the
    mask is ``learn.yb[mask_index]`` (default 0).
    """

    name = "pbca"

    def __init__(self, threshold: float = 0.5, mask_index: int = 0):
        self.threshold, self.mask_index = threshold, mask_index
        self.reset()

    def reset(self):
        self.correct, self.total, self.seen = 0, 0, False

    def accumulate(self, learn):
        self.seen = True
        pred = learn.pred
        m = getattr(pred, "m_lq", None) if hasattr(pred, "m_lq") else getattr(pred, "m", None)
        if m is None:
            return
        if len(learn.yb) < 2:
            raise ValueError(
                "PBCAMetric needs the mask among the targets: set dls.n_inp = 2 so that learn.yb = (mask, label)"
            )
        c, t = _pbca_counts(m.detach(), learn.yb[self.mask_index].detach(), self.threshold)
        c, t = maybe_gather(torch.tensor([c, t], dtype=torch.long, device=m.device)).reshape(-1, 2).sum(0).tolist()
        self.correct, self.total = self.correct + int(c), self.total + int(t)

    @property
    def value(self):
        if not self.seen:
            return None
        return self.correct / self.total if self.total else math.nan
