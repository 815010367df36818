"""``TrainConfig``: every setting of a training run, checked when it is made, with the paper's and the book's presets.

Checkpoints, results files and ablation records store it as a dict; :meth:`TrainConfig.from_dict` reads them back,
old records included.
"""

from __future__ import annotations

import math
import numbers
import typing
from dataclasses import InitVar, asdict, dataclass, fields

import timm

from .data.loaders import AUGMENT_ON
from .losses import REDUCTIONS
from .metrics import metric_threshold
from .models import MODELS, STEMS, renamed_cut
from .self_blend import CODECS

__all__ = ["TrainConfig", "SCHEDULES", "IMAGES"]

SCHEDULES = ("constant", "one_cycle")
IMAGES = ("lq", "hq")  # what a single-branch model sees of each pair


@dataclass
class TrainConfig:
    """Training settings; the defaults are the paper's (Sec. 4.2) where it gives them, except its ImageNet start.

    ``pretrained`` defaults to False, as in timm, so that a config never needs the network by accident; the paper
    starts both branches from ImageNet weights, and so does ``TrainConfig.preset("paper")``. Offline, pass
    ``weights=`` (a local timm state dict) to the preset instead, which turns ``pretrained`` off.

    Model: ``model`` (one of :data:`~antiforge_lib.models.MODELS`: "two-branch", the paper's net, or a
    single-branch baseline of Table 3, "single-ce" or "single-metric"), ``train_on`` ("lq" or "hq": the image a
    single-branch model sees), ``backbone`` (timm name; "legacy_xception" = FaceForensics++'s XceptionNet), ``cut``
    (first stage of the shared tail; "block8" cuts between Blocks 7 and 8; ``split`` is its old, deprecated name),
    ``attention``, ``pretrained`` (ImageNet weights;
    needs the network, True on Colab), ``weights`` (a local timm state dict instead). The embedding size ``d``
    (2048 for Xception) comes from the backbone, it is not a setting.

    Data and optimisation: ``size`` (pixels, 299), ``batch_size`` (32; the loaders are built by
    :func:`antiforge_lib.data.pair_dataloaders`, this records it), ``lr`` (Adam, 1e-4; betas (0.9, 0.999),
    eps 1e-8 as torch's Adam), ``wd`` (0: the paper mentions no weight decay), ``epochs`` (15, the cap of the
    authors' code; the paper gives none), ``patience`` (early stopping on the VALIDATION loss, the paper's rule:
    stop after this many epochs without improvement; None = off. The authors' code has no validation loop and
    picks each method's best epoch on the test set; we never look at the test set to choose).

    Loss (eq. 1, 5, 6): ``lambda_gan`` (lambda_1, 0.001), ``lambda_at`` (lambda_2, 1), ``lambda_pair`` (lambda_3,
    0.1), radii ``r_minus`` 0.1 and ``r_plus`` 18 (threshold (r- + r+)/2 = 9.05); switches ``metric``,
    ``transfer``, ``gan`` for ablations (``attention`` also switches the attention terms); ``reduction``
    ("mean": batch means everywhere; "sum": eq. 6's sums over the batch as printed, which weights ``L_Dis``
    about ``batch_size`` times more against the GAN and transfer terms).

    Critic (WGAN-GP, not given in the paper): ``n_critic`` critic steps per detector step (1: the term is a mild
    regulariser at lambda_1 = 0.001, and WGAN-GP's usual 5 would dominate the cost), ``critic_lr`` (Adam, betas
    (0.5, 0.9)), ``gp_weight`` (10, WGAN-GP's default).

    Demo recipe (none of it in the paper; the ``"demo"`` preset's choices for a CPU and no pretrained weights):
    ``stem`` ("highpass": a fixed difference-of-Gaussians filter before each head,
    :class:`~antiforge_lib.models.HighPass`),
    ``self_blend`` (train on fakes made on the fly from the training split's real faces,
    :class:`~antiforge_lib.data.SelfBlendedPairs`, instead of its cached fakes), ``items_per_epoch`` (items of
    that stream per epoch), ``lq_codec`` (the stream's LQ codec, "jpeg" or "h264"), ``schedule`` ("constant": plain
    Adam, as the paper; "one_cycle": fastai's one-cycle schedule peaking at ``lr``).

    Hardware: ``mixed_precision`` ("bf16", "fp16" or None) and ``channels_last`` apply on CUDA only;
    ``compile`` runs ``torch.compile`` on the model in place (``nn.Module.compile``: the state-dict keys stay the
    same); off by default, because the first steps then take minutes, which pays off only in long GPU runs;
    ``augment_on`` ("workers": the loader's processes augment each cached pair, as the book's runs; "device": they
    only read it, and :class:`~antiforge_lib.callbacks.AugmentOnDevice` applies the same transform to the batch on
    its device, so a 2-core machine can feed a GPU at 299 px; cached pairs only, not the self-blended stream);
    ``seed``.
    """

    model: str = "two-branch"
    train_on: str = "lq"
    backbone: str = "legacy_xception"
    cut: str = "block8"
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
    augment_on: str = "workers"
    seed: int = 0
    stem: str | None = None
    self_blend: bool = False
    items_per_epoch: int = 512
    lq_codec: str = "jpeg"
    schedule: str = "constant"
    reduction: str = "mean"
    split: InitVar[str | None] = None  # the old name of ``cut``; not stored

    PRESETS = {
        # Sec. 4.2: "XceptionNet pre-trained on ImageNet ... for both two branches".
        "paper": dict(pretrained=True),
        # Sized for two CPU cores and no pretrained weights (see Chapter 7): a small RegNet cut so that the heads keep
        # a 16x16 map at 128 px, a fixed high-pass stem, fakes made on the fly from real faces, one-cycle Adam, no
        # critic (its gradient penalty costs a second backward pass, for a term weighted 0.001; `make bench`).
        "demo": dict(
            backbone="regnetx_002",
            cut="s3",
            size=128,
            batch_size=32,
            lr=3e-3,
            epochs=4,
            patience=None,
            gan=False,
            stem="highpass",
            self_blend=True,
            items_per_epoch=2560,
            schedule="one_cycle",
        ),
    }

    @classmethod
    def preset(cls, name: str, **overrides) -> TrainConfig:
        """``"paper"`` (the defaults with ImageNet weights) or ``"demo"`` (the CPU recipe of the book).

        See :attr:`PRESETS`. ``weights=`` among the overrides replaces a preset's download with a local file.
        """
        if name not in cls.PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {sorted(cls.PRESETS)}")
        settings = {**cls.PRESETS[name], **overrides}
        if overrides.get("weights") is not None and "pretrained" not in overrides:
            settings["pretrained"] = False
        return cls(**settings)

    def __post_init__(self, split=None):
        """Check every setting when the config is made, so that a bad value fails here, by name, not mid-run."""
        self.cut = renamed_cut(self.cut, split, "TrainConfig")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.train_on not in IMAGES:
            raise ValueError(
                f"train_on must be 'lq' or 'hq' (the image a single-branch model sees), got {self.train_on!r}"
            )
        if self.model == "two-branch" and self.train_on != "lq":
            raise ValueError("train_on applies to the single-branch models; the two-branch model sees both images")
        for name, minimum in (("size", 16), ("batch_size", 1), ("epochs", 1), ("n_critic", 0), ("items_per_epoch", 1)):
            _check_whole(name, getattr(self, name), minimum)
        if self.patience is not None:
            _check_whole("patience", self.patience, 1, "or None (no early stopping)")
        for name in ("lr", "critic_lr"):
            value = getattr(self, name)
            if not (_is_number(value) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive, finite learning rate (e.g. 1e-4), got {value!r}")
        for name in ("wd", "lambda_gan", "lambda_at", "lambda_pair", "gp_weight", "r_minus", "r_plus"):
            value = getattr(self, name)
            if not (_is_number(value) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        metric_threshold(self.r_minus, self.r_plus)  # explains radii that are not 0 <= r_minus < r_plus
        if not timm.is_model(self.backbone):
            raise ValueError(f"backbone {self.backbone!r} is not a timm model name (e.g. legacy_xception, resnet18)")
        if self.mixed_precision not in (None, "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be 'bf16', 'fp16' or None, got {self.mixed_precision!r}")
        if self.pretrained and self.weights is not None:
            raise ValueError("give pretrained=True or weights=, not both")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.stem is not None and self.stem not in STEMS:
            raise ValueError(f"stem must be None or one of {STEMS}, got {self.stem!r}")
        if self.lq_codec not in CODECS:
            raise ValueError(f"lq_codec must be one of {sorted(CODECS)}, got {self.lq_codec!r}")
        if self.augment_on not in AUGMENT_ON:
            raise ValueError(f"augment_on must be one of {AUGMENT_ON}, got {self.augment_on!r}")
        if self.augment_on == "device" and self.self_blend:
            raise ValueError(
                "augment_on='device' applies to cached pairs; the self-blended stream (self_blend=True) is made and "
                "augmented in the loader's workers"
            )
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {self.reduction!r}")

    @property
    def threshold(self) -> float:
        """Decision threshold on ``||c||_2``, ``(r_minus + r_plus) / 2``."""
        return metric_threshold(self.r_minus, self.r_plus)

    def to_dict(self) -> dict:
        """Plain dict of all fields (for printing and results JSON)."""
        return asdict(self)

    def replace(self, **overrides) -> TrainConfig:
        """A copy with some fields changed; unknown names raise."""
        unknown = set(overrides) - {f.name for f in fields(self)} - {"split"}
        if unknown:
            raise TypeError(f"unknown TrainConfig fields: {sorted(unknown)}")
        # Not dataclasses.replace: it would read the deprecated ``split`` alias and warn on every copy.
        return type(self)(**{**{f.name: getattr(self, f.name) for f in fields(self)}, **overrides})

    @classmethod
    def parse_overrides(cls, items: list[str]) -> dict:
        """``["lr=3e-4", "gan=false", "patience=none"]`` -> typed overrides (later items win), for ``--set``.

        Each value is read as its field's annotated type: booleans as true/false (yes/no, on/off, 1/0), ``none``
        for None where the field allows it, integers and floats as Python reads them; anything else stays a string.
        Raises ``ValueError`` naming the item and what was expected.
        """
        hints = typing.get_type_hints(cls)
        out = {}
        for item in items:
            key, sep, raw = item.partition("=")
            key = key.strip()
            if not sep or not key:
                raise ValueError(f"{item!r}: expected KEY=VALUE")
            if key not in {f.name for f in fields(cls)}:
                raise ValueError(
                    f"{key}: unknown TrainConfig field; valid fields: {', '.join(f.name for f in fields(cls))}"
                )
            out[key] = _typed(
                key, raw, {getattr(a, "__name__", str(a)) for a in typing.get_args(hints[key]) or (hints[key],)}
            )
        return out

    @classmethod
    def from_dict(cls, saved: dict) -> TrainConfig:
        """The config a checkpoint or results file recorded (``to_dict()``), read by today's ``TrainConfig``.

        Old records keep working: ``split`` is read as ``cut``; a field added since the record was written ran at
        its default (the behaviour before the field existed); a missing ``model`` is ``"two-branch"`` (the
        library's only learner then). Keys that are not settings (a record's ``checkpoint``, ``pairs``, ...) are
        ignored.
        """
        names = {f.name for f in fields(cls)}
        saved = dict(saved)
        if "split" in saved and "cut" not in saved:
            saved["cut"] = saved.pop("split")
        return cls(**{k: v for k, v in saved.items() if k in names})


def _split_alias(self) -> str:
    renamed_cut(self.cut, self.cut, "TrainConfig.split")  # warns
    return self.cut


TrainConfig.split = property(_split_alias, doc="Deprecated: the old name of :attr:`TrainConfig.cut`.")


_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def _typed(key: str, raw: str, types: set[str]):
    """``raw`` as a value of a field annotated with ``types`` (names: "bool", "int", "float", "str", "NoneType")."""
    low = raw.strip().lower()
    if low in ("none", "null"):
        if "NoneType" in types:
            return None
        raise ValueError(f"{key}={raw}: {key} cannot be None")
    if "bool" in types:
        if low in _TRUE | _FALSE:
            return low in _TRUE
        raise ValueError(f"{key}={raw}: expected true or false")
    for kind, name in ((int, "an integer"), (float, "a number")):
        if kind.__name__ in types:
            try:
                return kind(raw)
            except ValueError:
                raise ValueError(f"{key}={raw}: expected {name}") from None
    return raw


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_whole(name: str, value, minimum: int, alternative: str = "") -> None:
    if not (_is_number(value) and float(value).is_integer() and value >= minimum):
        raise ValueError(
            f"{name} must be a whole number >= {minimum}{' ' + alternative if alternative else ''}, got {value!r}"
        )
