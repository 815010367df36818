"""The networks of Cao et al. 2021 (Sec. 3.2-3.4): a two-branch embedding net and its WGAN-GP critic.

A timm backbone is cut at a named stage into a *head* (image -> mid-level feature map ``V``) and a *tail*
(``V`` -> ``d``-dimensional embedding ``C``, global average pooled, no classifier). The paper cuts XceptionNet
between Block 7 and Block 8 of the middle flow (Sec. 4.2), which is ``cut="block8"`` here, in timm's
``legacy_xception`` numbering (middle flow = ``block4`` ... ``block11``), as FFD and the authors' code read it.
In Keras' numbering (middle flow = ``block5`` ... ``block12``) the same words would cut one block earlier.

:class:`TwoBranchNet` holds two heads with separate weights (``head_hq``, ``head_lq``), one attention layer per
branch (``attention_hq``, ``attention_lq``) and ONE ``tail`` shared by both branches; per branch (eq. 3/4)::

    V = head(x);  M = attention(V);  V' = V * M;  C = tail(V')

:class:`SingleBranchNet` is one such branch (the paper's single-XceptionNet rows), optionally with a 2-way
classifier. :class:`Discriminator` is the critic that sees ``concat(V_H, V_L)`` (Sec. 3.3).

Example
-------
>>> net = create_model("two-branch", backbone="resnet18", cut="layer4")
>>> out = net(torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64))
>>> out.c_hq.shape, out.m_lq.shape
(torch.Size([2, 512]), torch.Size([2, 1, 4, 4]))
"""

from __future__ import annotations

import copy
import os
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from contextlib import contextmanager
from typing import NamedTuple

import timm
import torch
from torch import Tensor, nn

from ._hub import PretrainedWeightsUnavailable, create_pretrained

__all__ = [
    "STEMS",
    "HighPass",
    "TwoBranchNet",
    "SingleBranchNet",
    "Discriminator",
    "TwoBranchOutput",
    "BranchOutput",
    "split_backbone",
    "MODELS",
    "model_kind",
    "param_counts",
    "splitter",
    "create_model",
    "evaluating",
    "PretrainedWeightsUnavailable",
]


# ---------------------------------------------------------------------------------------------------------------
# Output structures
# ---------------------------------------------------------------------------------------------------------------


class _FastaiRebuildable:
    """Lets a NamedTuple also be built from one iterable of its fields, as fastai rebuilds tuples.

    fastai's ``to_detach``, ``to_device``, ``get_preds`` ... rebuild any tuple as ``type(x)(f(o) for o in x)``;
    a plain NamedTuple would reject that single argument.
    """

    __slots__ = ()

    def __new__(cls, *args, **kwargs):
        if len(args) == 1 and not kwargs and len(cls._fields) > 1:
            args = tuple(args[0])
        return super().__new__(cls, *args, **kwargs)


class _TwoBranchFields(NamedTuple):
    c_hq: Tensor
    c_lq: Tensor
    m_hq: Tensor | None
    m_lq: Tensor | None
    v_hq: Tensor
    v_lq: Tensor


class TwoBranchOutput(_FastaiRebuildable, _TwoBranchFields):
    """What :meth:`TwoBranchNet.forward` returns (a NamedTuple; fastai passes it whole to the loss).

    Attributes
    ----------
    c_hq, c_lq : Tensor, shape (B, d)
        Embeddings ``C_h``, ``C_l`` of the HQ and LQ images (tail output, before any classifier).
    m_hq, m_lq : Tensor, shape (B, 1, h, w), values in [0, 1], or None
        Attention maps ``M_H``, ``M_L`` (1 = manipulated); None when the net has no attention.
    v_hq, v_lq : Tensor, shape (B, C, h, w)
        Mid-level features ``V_H``, ``V_L`` (head output, BEFORE masking): the discriminator's input.
    """

    __slots__ = ()


class _BranchFields(NamedTuple):
    c: Tensor
    logits: Tensor | None
    m: Tensor | None
    v: Tensor


class BranchOutput(_FastaiRebuildable, _BranchFields):
    """What one branch returns: :meth:`SingleBranchNet.forward` and :meth:`TwoBranchNet.forward_lq`.

    Attributes
    ----------
    c : Tensor, shape (B, d)
        Embedding (tail output).
    logits : Tensor, shape (B, 2), or None
        Real/fake logits (class 1 = fake) for ``SingleBranchNet(head="ce")``; None otherwise.
    m : Tensor, shape (B, 1, h, w), values in [0, 1], or None
        Attention map; None without attention.
    v : Tensor, shape (B, C, h, w)
        Mid-level features before masking.
    """

    __slots__ = ()


@contextmanager
def evaluating(model: nn.Module):
    """``model.eval()`` and ``torch.inference_mode()`` inside the block; the model's train/eval mode comes back after.

    How every scoring loop of the library runs a model (metrics, embeddings, detection): BatchNorm uses its running
    statistics, dropout is off, no graph is built, and a model that was training goes on training afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield model
    finally:
        model.train(was_training)


# ---------------------------------------------------------------------------------------------------------------
# Backbone construction
# ---------------------------------------------------------------------------------------------------------------


def _load_weights(model: nn.Module, weights: str | os.PathLike | Mapping[str, Tensor], backbone: str) -> None:
    """Load a timm state dict (file or mapping) into ``model`` (built with ``num_classes=0``)."""
    if isinstance(weights, Mapping):
        state = dict(weights)
    else:
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as e:  # UnpicklingError, a zip or pickle cut short, a file that is not torch's at all
            raise ValueError(
                f"weights file {weights!s} is not a readable torch state dict ({type(e).__name__}: "
                f"{' '.join(str(e).split())[:200]}); save one with torch.save(model.state_dict(), path)"
            ) from None
        if not isinstance(state, Mapping):
            raise ValueError(f"weights file {weights!s} holds a {type(state).__name__}, not a state dict")
    missing, unexpected = model.load_state_dict(state, strict=False)
    # The file may come from a model with its ImageNet classifier; ours has none.
    classifier = model.pretrained_cfg.get("classifier") or ()
    classifier = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    unexpected = [k for k in unexpected if not any(k.startswith(c + ".") for c in classifier)]
    if missing or unexpected:
        raise ValueError(
            f"weights do not fit timm's {backbone!r}: {len(missing)} missing keys {missing[:5]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:5]}"
        )


def renamed_cut(cut: str, split: str | None, where: str) -> str:
    """The backbone cut, from the deprecated ``split=`` keyword when a caller still uses it (with a warning)."""
    if split is None:
        return cut
    warnings.warn(
        f"{where}: 'split' is now called 'cut' (the first backbone stage of the shared tail); pass cut={split!r}",
        FutureWarning,
        stacklevel=3,
    )
    return split


def split_backbone(
    backbone: str = "legacy_xception",
    cut: str = "block8",
    pretrained: bool = False,
    weights: str | os.PathLike | Mapping[str, Tensor] | None = None,
    *,
    split: str | None = None,
) -> tuple[nn.Sequential, nn.Sequential, int, int]:
    """Cut a timm model into a head and a tail at the named top-level stage ``cut``.

    Parameters
    ----------
    backbone : str
        timm model name, e.g. ``"legacy_xception"`` (FaceForensics++'s Xception) or ``"resnet18"``.
    cut : str
        Name of the FIRST child of the timm model that goes to the tail. Xception: ``"block8"`` (head =
        conv1 ... block7, the paper's cut); resnet18: ``"layer4"`` (head = conv1 ... layer3). ``split=`` is the
        old, deprecated name of this argument.
    pretrained : bool
        Download ImageNet weights through timm (needs the network).
    weights : path or state dict, optional
        A state dict of the timm model (with or without its classifier) to load instead; the offline route.

    Returns
    -------
    head : nn.Sequential
        Images (B, 3, H, W) -> mid-level features (B, C, h, w).
    tail : nn.Sequential
        Features (B, C, h, w) -> embeddings (B, d), ending in global average pooling; no classifier.
    feature_channels : int
        ``C``, channels of the head's output (728 for Xception at block8).
    embed_dim : int
        ``d``, embedding size (2048 for Xception).
    """
    cut = renamed_cut(cut, split, "split_backbone")
    if not timm.is_model(backbone):
        raise ValueError(f"unknown timm model {backbone!r}")
    if pretrained and weights is not None:
        raise ValueError("give pretrained=True (download) or weights= (local file), not both")
    if pretrained:
        model = create_pretrained(backbone)
    else:
        model = timm.create_model(backbone, pretrained=False, num_classes=0)
        if weights is not None:
            _load_weights(model, weights, backbone)

    children = list(model.named_children())
    names = [name for name, _ in children]
    if cut not in names or names.index(cut) == 0:
        raise ValueError(f"cut={cut!r} must name a stage of {backbone!r} other than the first; stages: {names}")
    at = names.index(cut)
    head = nn.Sequential(OrderedDict(children[:at]))
    # num_classes=0 leaves the classifier as an Identity; dropping it keeps the printed tail honest.
    tail = nn.Sequential(OrderedDict((n, m) for n, m in children[at:] if not isinstance(m, nn.Identity)))

    # Running the children in order must equal timm's own forward, or the cut is meaningless (e.g. models
    # with a functional forward); this also measures C. Eval mode so BatchNorm statistics stay untouched.
    cfg = getattr(model, "pretrained_cfg", None) or {}
    size = cfg["input_size"][-2:] if cfg.get("fixed_input_size") else (64, 64)
    x = torch.randn(1, cfg.get("input_size", (3,))[0], *size, generator=torch.Generator().manual_seed(0))
    try:
        with evaluating(model):
            v = head(x)
            same = torch.allclose(tail(v), model(x), atol=1e-5)
    except Exception as err:  # any failure here means the stages do not chain
        raise ValueError(f"{backbone!r} cannot be cut at {cut!r}: running its stages in order fails") from err
    if not same or v.ndim != 4:
        raise ValueError(f"{backbone!r}'s forward is not its stages run in order; it cannot be cut at {cut!r}")
    return head, tail, v.shape[1], model.num_features


# ---------------------------------------------------------------------------------------------------------------
# A fixed high-pass stem (not in the paper; the demo preset's choice)

#: Stems that :class:`TwoBranchNet` and :class:`SingleBranchNet` can put in front of each head.
STEMS = ("highpass",)


class HighPass(nn.Module):
    """A fixed difference-of-Gaussians filter: ``gain * (x - G_sigma * x)`` per channel; no trainable parameters.

    Images (B, 3, H, W) -> high-pass residuals (B, 3, H, W), same size (zero padding). Subtracting the Gaussian blur
    removes what varies slowly across the face -- skin tone, lighting, the shape of the face, much of what makes a
    person recognisable -- and keeps edges, texture, noise and compression artefacts, which is where a blend
    boundary or a resampled region shows. A network trained from random weights on a handful of people then has
    less to memorise them by. The Gaussian is ``2 * round(3 sigma) + 1`` taps wide, normalised to sum 1; the kernel
    is a buffer that is not saved in state dicts (a constant, rebuilt with the module).

    Parameters
    ----------
    sigma : float, default=2.0
        Width of the Gaussian in input pixels (2 px at the demo's 128 px input).
    gain : float, default=2.0
        Scale of the residuals, which are small next to the image.
    """

    def __init__(self, sigma: float = 2.0, gain: float = 2.0):
        super().__init__()
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        radius = int(round(3 * sigma))
        r = torch.arange(-radius, radius + 1, dtype=torch.float32)
        g = torch.exp(-(r**2) / (2 * sigma**2))
        g = g / g.sum()
        kernel = -torch.outer(g, g)
        kernel[radius, radius] += 1  # identity minus blur
        self.register_buffer("weight", (gain * kernel).expand(3, 1, -1, -1).contiguous(), persistent=False)
        self.sigma, self.gain = sigma, gain

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.conv2d(x, self.weight.to(x.dtype), padding=self.weight.shape[-1] // 2, groups=3)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma}, gain={self.gain}"


def _with_stem(head: nn.Sequential, stem: str | None) -> nn.Sequential:
    if stem is None:
        return head
    if stem not in STEMS:
        raise ValueError(f"stem must be None or one of {STEMS}, got {stem!r}")
    # Its own name: a timm model may already have a child called "stem" (regnet does).
    return nn.Sequential(OrderedDict([("highpass", HighPass()), *head.named_children()]))


def _attention_layer(channels: int) -> nn.Sequential:
    """Conv (C -> 1, 3x3, padding 1) + Sigmoid: one map in [0, 1] per image, same h x w as ``V``.

    The paper's "convolution layer follow[ed] by a Sigmoid" (Sec. 3.4). The authors' code uses a depthwise-
    separable 3x3 conv; a plain 3x3 conv does the same job with 6.5 k parameters (C=728), negligible next to
    the heads.
    """
    return nn.Sequential(nn.Conv2d(channels, 1, kernel_size=3, padding=1), nn.Sigmoid())


def _check_images(x: Tensor, name: str) -> None:
    if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a float tensor of shape (B, 3, H, W), got {shape}")


class _Branched(nn.Module):
    """Shared construction and per-branch forward of the two nets."""

    def _build(self, backbone, cut, pretrained, weights, stem=None) -> nn.Sequential:
        head, self.tail, self.feature_channels, self.embed_dim = split_backbone(backbone, cut, pretrained, weights)
        self.backbone, self.cut, self.stem = backbone, cut, stem
        return _with_stem(head, stem)

    def _branch(self, head: nn.Module, attention: nn.Module | None, x: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
        v = head(x)
        if attention is None:
            return self.tail(v), None, v
        m = attention(v)
        return self.tail(v * m), m, v  # eq. 3/4: V' = V (.) M, M broadcast over channels


class TwoBranchNet(_Branched):
    """Two-branch embedding network of Cao et al. 2021 (Fig. 2): separate heads, one shared tail.

    Parameters
    ----------
    backbone : str, default="legacy_xception"
        timm model name; the paper uses XceptionNet.
    cut : str, default="block8"
        First stage of the shared tail (see :func:`split_backbone`); the heads get every stage before it.
        (``split=`` is its old, deprecated name.)
    pretrained : bool, default=False
        Start both heads and the tail from timm's ImageNet weights (downloads; fails fast offline).
    attention : bool, default=True
        Insert the attention layers; False gives ``V' = V`` and ``m_*`` = None.
    weights : path or state dict, optional
        Local timm state dict to start from instead of ``pretrained`` (offline).
    stem : {None, "highpass"}, default=None
        ``"highpass"`` puts a fixed :class:`HighPass` filter first in each head (not in the paper; the demo
        preset's choice for training from random weights on a handful of people).

    Attributes
    ----------
    head_hq, head_lq : nn.Sequential
        Backbone stages before ``cut`` (after the stem, if any); separate parameters, same initial values (both
        start from the backbone, as in the paper). Images (B, 3, H, W) -> V (B, C, h, w).
    attention_hq, attention_lq : nn.Sequential or None
        3x3 conv C -> 1 then Sigmoid: V -> M (B, 1, h, w) in [0, 1].
    tail : nn.Sequential
        Shared by both branches: V' (B, C, h, w) -> C (B, d), ending in global average pooling.
    feature_channels : int
        ``C`` (728 for Xception at block8).
    embed_dim : int
        ``d`` (2048 for Xception).
    """

    def __init__(
        self,
        backbone: str = "legacy_xception",
        cut: str = "block8",
        pretrained: bool = False,
        attention: bool = True,
        weights: str | os.PathLike | Mapping[str, Tensor] | None = None,
        stem: str | None = None,
        *,
        split: str | None = None,
    ):
        super().__init__()
        self.head_hq = self._build(backbone, renamed_cut(cut, split, "TwoBranchNet"), pretrained, weights, stem)
        self.head_lq = copy.deepcopy(self.head_hq)
        self.attention_hq = _attention_layer(self.feature_channels) if attention else None
        self.attention_lq = _attention_layer(self.feature_channels) if attention else None

    def forward(self, hq: Tensor, lq: Tensor) -> TwoBranchOutput:
        """Run a batch of HQ/LQ pairs through both branches.

        Parameters
        ----------
        hq, lq : Tensor, shape (B, 3, H, W)
            Pixel-aligned HQ and LQ crops, normalised as the backbone expects (Xception: mean 0.5, std 0.5,
            i.e. pixels in [-1, 1]).

        Returns
        -------
        TwoBranchOutput
            ``c_hq``, ``c_lq`` (B, d); ``m_hq``, ``m_lq`` (B, 1, h, w) or None; ``v_hq``, ``v_lq`` (B, C, h, w).
        """
        _check_images(hq, "hq")
        _check_images(lq, "lq")
        if hq.shape != lq.shape:
            raise ValueError(f"hq and lq must be pairs of the same shape, got {tuple(hq.shape)} and {tuple(lq.shape)}")
        c_hq, m_hq, v_hq = self._branch(self.head_hq, self.attention_hq, hq)
        c_lq, m_lq, v_lq = self._branch(self.head_lq, self.attention_lq, lq)
        return TwoBranchOutput(c_hq, c_lq, m_hq, m_lq, v_hq, v_lq)

    def forward_lq(self, lq: Tensor) -> BranchOutput:
        """Test-time path (Sec. 3.1): the LQ branch alone.

        Returns a :class:`BranchOutput` (``c``, ``m``, ``v``; ``logits`` None), the same type as
        :class:`SingleBranchNet` returns, so one evaluation routine serves both nets.
        """
        _check_images(lq, "lq")
        c, m, v = self._branch(self.head_lq, self.attention_lq, lq)
        return BranchOutput(c, None, m, v)


class SingleBranchNet(_Branched):
    """One branch (head, optional attention, tail): the paper's single-XceptionNet baselines.

    Parameters
    ----------
    backbone, cut, pretrained, weights, stem
        As in :class:`TwoBranchNet`.
    head : {"metric", "ce"}, default="metric"
        ``"metric"``: output the embedding only (for the metric loss, eq. 6). ``"ce"``: add a Linear(d, 2)
        classifier and output logits (for cross-entropy).
    attention : bool, default=False
        Insert the attention layer.

    Attributes
    ----------
    head : nn.Sequential
        Images (B, 3, H, W) -> V (B, C, h, w). (The constructor argument ``head`` is kept as ``head_type``.)
    attention : nn.Sequential or None
    tail : nn.Sequential
        V' -> C (B, d).
    classifier : nn.Linear or None
        d -> 2 logits (class 1 = fake), only for ``head="ce"``.
    """

    def __init__(
        self,
        backbone: str = "legacy_xception",
        cut: str = "block8",
        head: str = "metric",
        attention: bool = False,
        pretrained: bool = False,
        weights: str | os.PathLike | Mapping[str, Tensor] | None = None,
        stem: str | None = None,
        *,
        split: str | None = None,
    ):
        if head not in ("metric", "ce"):
            raise ValueError(f"head must be 'metric' or 'ce', got {head!r}")
        super().__init__()
        self.head_type = head
        self.head = self._build(backbone, renamed_cut(cut, split, "SingleBranchNet"), pretrained, weights, stem)
        self.attention = _attention_layer(self.feature_channels) if attention else None
        self.classifier = nn.Linear(self.embed_dim, 2) if head == "ce" else None

    def forward(self, x: Tensor) -> BranchOutput:
        """Images (B, 3, H, W) -> :class:`BranchOutput` (``c`` (B, d), ``logits`` (B, 2) or None, ``m``, ``v``)."""
        _check_images(x, "x")
        c, m, v = self._branch(self.head, self.attention, x)
        return BranchOutput(c, None if self.classifier is None else self.classifier(c), m, v)


# ---------------------------------------------------------------------------------------------------------------
# Discriminator
# ---------------------------------------------------------------------------------------------------------------


class Discriminator(nn.Module):
    """WGAN-GP critic on concatenated mid-level features (Sec. 3.3, 4.2).

    1x1 conv fusing the two maps, two strided 3x3 convs, global average pooling, Linear -> 1 score.
    No normalisation layers: batch norm couples the samples of a batch, which breaks the per-sample gradient
    penalty of WGAN-GP.

    Parameters
    ----------
    in_channels : int
        ``2C``: channels of ``concat(V_H, V_L)`` (1456 for Xception at block8).
    hidden : int, default=256
        Channels of the hidden convs.

    Notes
    -----
    Input (B, 2C, h, w); output (B,) unbounded critic scores (no sigmoid: it is a Wasserstein critic).
    """

    def __init__(self, in_channels: int, hidden: int = 256):
        super().__init__()
        if in_channels < 1 or hidden < 1:
            raise ValueError(f"in_channels and hidden must be positive, got {in_channels}, {hidden}")
        self.in_channels = in_channels
        self.fuse = nn.Conv2d(in_channels, hidden, kernel_size=1)  # paper: 1x1 first layer fuses V_H and V_L
        self.body = nn.Sequential(
            nn.LeakyReLU(0.2),
            nn.Conv2d(hidden, hidden, kernel_size=3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(hidden, hidden, kernel_size=3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.score = nn.Linear(hidden, 1)

    def forward(self, x: Tensor) -> Tensor:
        """Features (B, 2C, h, w) -> critic scores (B,)."""
        if not isinstance(x, Tensor) or x.ndim != 4 or x.shape[1] != self.in_channels:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"expected features of shape (B, {self.in_channels}, h, w), got {shape}")
        return self.score(self.body(self.fuse(x))).squeeze(1)


# ---------------------------------------------------------------------------------------------------------------
# Helpers for the book and for fastai
# ---------------------------------------------------------------------------------------------------------------

_PARTS = ("head_hq", "head_lq", "attention_hq", "attention_lq", "head", "attention", "tail", "classifier")


def param_counts(model: nn.Module) -> dict[str, int]:
    """Number of parameters per named part of a net, plus ``total`` (shared tensors counted once).

    For a :class:`TwoBranchNet`: ``head_hq``, ``head_lq``, ``attention_hq``, ``attention_lq``, ``tail``,
    ``total``; for a :class:`SingleBranchNet`: ``head``, ``attention``, ``tail``, ``classifier``, ``total``.
    Absent parts (no attention) count 0.
    """
    counts = {}
    for name in _PARTS:
        if hasattr(model, name):
            part = getattr(model, name)
            counts[name] = 0 if part is None else sum(p.numel() for p in part.parameters())
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts


def splitter(model: nn.Module) -> list[list[nn.Parameter]]:
    """fastai ``splitter``: [heads + attention layers, tail + classifier], for discriminative learning rates."""
    front = [p for name, m in model.named_children() if name.startswith(("head", "attention")) for p in m.parameters()]
    seen = {id(p) for p in front}
    return [front, [p for p in model.parameters() if id(p) not in seen]]


#: The model kinds, one spelling everywhere: ``TrainConfig.model``, checkpoints, the CLI's ``--model`` and results.
MODELS = ("two-branch", "single-ce", "single-metric")
_OLD_NAMES = {"two_branch": "two-branch", "single_branch": None}  # spellings before MODELS; None: head= decides


def model_kind(model: nn.Module) -> str:
    """The kind of a net of this module, one of :data:`MODELS`."""
    if isinstance(model, TwoBranchNet) or hasattr(model, "forward_lq"):
        return "two-branch"
    return "single-ce" if getattr(model, "classifier", None) is not None else "single-metric"


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a net by kind (timm-style): one of :data:`MODELS`; ``kwargs`` go to the class.

    ``"two-branch"`` is :class:`TwoBranchNet`; ``"single-ce"`` and ``"single-metric"`` are :class:`SingleBranchNet`
    with ``head="ce"`` or ``"metric"``. The old names ``"two_branch"`` and ``"single_branch"`` still work, with a
    warning.
    """
    if name in _OLD_NAMES:
        new = _OLD_NAMES[name] or f"single-{kwargs.pop('head', 'metric')}"
        warnings.warn(f"create_model({name!r}) is now create_model({new!r})", FutureWarning, stacklevel=2)
        name = new
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {MODELS}")
    if name == "two-branch":
        return TwoBranchNet(**kwargs)
    return SingleBranchNet(head=name.removeprefix("single-"), **kwargs)
