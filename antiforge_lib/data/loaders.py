"""The paired-face datasets and their fastai loaders.

Each item of the pair index (written by :func:`antiforge_lib.data.pairs.prepare_pairs`)
is one face seen twice -- a high-quality (HQ) crop and its low-quality (LQ),
more compressed twin -- plus the forgery mask. The paper's two-stream training
needs both views and the mask to stay aligned, so every random geometric
transform here is drawn once and applied to all three.

Two sources of pairs: :class:`PairedFaces` reads a pair cache (fixed fakes, HQ and LQ from the videos) and
:class:`SelfBlendedPairs` makes them on the fly from real faces alone (:mod:`antiforge_lib.self_blend`);
:func:`pair_dataloaders` and :func:`self_blend_dataloaders` serve either to fastai, with the same batches.

Conventions: images are float32 ``(3, S, S)`` RGB tensors normalised with the
FaceForensics++ Xception statistics, i.e. ``(x - 0.5) / 0.5`` with ``x`` in
[0, 1]; masks are float32 ``(1, S, S)`` in {0, 1} (1 = manipulated pixel);
labels are int64, 1 = fake, 0 = real.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageFilter, UnidentifiedImageError
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from .._fastai import quiet_import
from ..self_blend import CODECS, FACE_BOX, alter, compress, draw_blend, self_blend
from . import __all__  # noqa: F401 -- listed once, in the package, which re-exports them without importing torch
from .index import MASK_THRESHOLD
from .packed import PackedPairs

#: Where the training pairs are augmented: in the loader's worker processes, or on the batch's device.
AUGMENT_ON = ("workers", "device")

# FaceForensics++ / timm legacy_xception normalisation: maps [0, 1] to [-1, 1].
XCEPTION_MEAN = (0.5, 0.5, 0.5)
XCEPTION_STD = (0.5, 0.5, 0.5)

REQUIRED_COLUMNS = ("split", "label", "hq", "lq", "mask")


def read_image(path, mode: str) -> torch.Tensor:
    """Read an image file as a uint8 ``(C, H, W)`` tensor (C = 3 for "RGB", 1 for "L"); errors name the file."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert(mode))
    except FileNotFoundError:
        raise FileNotFoundError(f"Pair image not found: {path}. Re-run prepare_pairs to rebuild the cache.") from None
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"Cannot read pair image {path} (corrupt or not an image): {e}") from e
    t = torch.from_numpy(arr.copy())
    return t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)


class PairedFaces(torch.utils.data.Dataset):
    """HQ/LQ face pairs with their forgery masks, for one split of the pair index.

    Parameters
    ----------
    index : pandas.DataFrame
        One row per pair, with at least the columns ``split``, ``label``
        (1 = fake, 0 = real) and ``hq``, ``lq``, ``mask`` (absolute paths of
        S x S PNGs: RGB uint8 crops and an "L" mask with values 0 / 255).
    split : str
        Which rows to serve: ``"train"``, ``"val"`` or ``"test"``.
    size : int, default=299
        Output side in pixels (299 is Xception's input size).
    augment : bool, optional
        Random resized crop (scale 0.8-1.0 of the area, aspect 0.9-1.1) and
        horizontal flip, identical for HQ, LQ and mask. Defaults to
        ``split == "train"``. Without it, crops are only resized to ``size``.
    balance : bool, optional
        Oversample reals (rows repeated round-robin) until there are as many
        real items as fake ones, as the paper does. Defaults to
        ``split == "train"``. Skipped if a class is absent.
    mean, std : sequence of 3 floats
        Per-channel normalisation, in [0, 1] units.
    packed : bool, optional
        Read the pixels from the cache's packed copy (:mod:`antiforge_lib.data.packed`: raw uint8, memory-mapped,
        no decoding) instead of the PNGs. Default: when every row's cache has a current packed copy. True insists
        on it (an error otherwise); False always decodes the PNGs. The items are the same either way.
    decode_only : bool, default False
        Serve the pixels as the cache holds them -- uint8 ``(3, S0, S0)``, ``(3, S0, S0)`` and a ``(1, S0, S0)`` mask
        in {0, 255} -- with no transform: the batch transform :func:`augment_pair_batch` does the rest on the device
        (``pair_dataloaders(..., augment_on="device")``).

    Attributes
    ----------
    items : pandas.DataFrame
        The rows actually served, after balancing; ``len(self) == len(items)``.
    packed : PackedPairs or None
        Where the rows lie in the packed copy, when it is read.
    counts : dict
        ``{"real": n, "fake": m}`` in the split, before balancing.

    Items are tuples ``(hq, lq, mask, label)``: float32 ``(3, S, S)``,
    float32 ``(3, S, S)``, float32 ``(1, S, S)`` in {0, 1}, int64 scalar.
    """

    def __init__(
        self,
        index: pd.DataFrame,
        split: str,
        size: int = 299,
        augment: bool | None = None,
        balance: bool | None = None,
        mean: Sequence[float] = XCEPTION_MEAN,
        std: Sequence[float] = XCEPTION_STD,
        packed: bool | None = None,
        decode_only: bool = False,
    ):
        missing = [c for c in REQUIRED_COLUMNS if c not in index.columns]
        if missing:
            raise ValueError(f"The pair index lacks column(s) {missing}; it has {list(index.columns)}.")
        splits = sorted(index["split"].dropna().unique().tolist())
        if split not in splits:
            raise ValueError(f"No rows for split {split!r} in the pair index; available splits: {splits}.")
        bad = set(index["label"].unique()) - {0, 1}
        if bad:
            raise ValueError(f"Labels must be 0 (real) or 1 (fake); found {sorted(bad)}.")

        self.split, self.size = split, int(size)
        self.augment = split == "train" if augment is None else bool(augment)
        self.balance = split == "train" if balance is None else bool(balance)
        rows = index[index["split"] == split].reset_index(drop=True)
        reals, fakes = rows[rows["label"] == 0], rows[rows["label"] == 1]
        self.counts = {"real": len(reals), "fake": len(fakes)}
        if self.balance and 0 < len(reals) < len(fakes):
            # Deterministic round-robin copies, so every real is repeated (almost) equally often.
            extra = reals.iloc[np.arange(len(fakes) - len(reals)) % len(reals)]
            rows = pd.concat([rows, extra], ignore_index=True)
        self.items = rows
        self.packed = PackedPairs.find(rows) if packed is not False else None
        if packed and self.packed is None:
            raise ValueError(
                f"packed=True, but the {split!r} rows have no current packed copy; write it with "
                "python -m antiforge_lib.data.packed CACHE_DIR"
            )

        self.decode_only = bool(decode_only)
        self.transform = pair_transform(self.size, self.augment, mean, std)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        row = self.items.iloc[i]
        if self.packed is not None:
            pixels = torch.from_numpy(self.packed[i])  # (7, S, S) uint8: HQ RGB, LQ RGB, mask
            hq, lq, mask = pixels[0:3], pixels[3:6], pixels[6:7]
        else:
            hq, lq, mask = read_image(row["hq"], "RGB"), read_image(row["lq"], "RGB"), read_image(row["mask"], "L")
        if not (hq.shape[1:] == lq.shape[1:] == mask.shape[1:]):
            raise ValueError(
                f"Pair crops differ in size: {row['hq']} {tuple(hq.shape[1:])}, "
                f"{row['lq']} {tuple(lq.shape[1:])}, {row['mask']} {tuple(mask.shape[1:])}."
            )
        if not self.decode_only:
            hq, lq, mask = self.transform(hq, lq, mask)
        label = torch.tensor(int(row["label"]), dtype=torch.int64)
        return hq, lq, mask, label


def pair_transform(
    size: int, augment: bool, mean: Sequence[float] = XCEPTION_MEAN, std: Sequence[float] = XCEPTION_STD
):
    """The transform of a pair: ``f(hq, lq, mask) -> (hq, lq, mask)``, one random draw shared by all three.

    Takes uint8 tensors ``(3, H, W)``, ``(3, H, W)`` and ``(1, H, W)`` (mask 0 / 255); returns float32 ``(3, S, S)``
    twice, normalised with ``mean``/``std``, and the mask as float32 ``(1, S, S)`` in {0, 1}. With ``augment``: a
    random resized crop (scale 0.8-1.0 of the area, aspect 0.9-1.1) and a horizontal flip (our addition: the
    paper mentions no augmentation); without, a resize.

    The result is bit for bit torchvision's ``v2.Compose([RandomResizedCrop(size, ...), RandomHorizontalFlip(),
    ToDtype(float32, scale=True), Normalize(mean, std)])`` on ``(Image, Image, Mask)``: the same parameters, drawn
    from torch's generator in the same order by the same ``make_params``, and the same kernels (bilinear with
    antialias for the images; nearest neighbour for the mask, with floor rounding, so a mask edge can sit up to one
    pixel off the bilinear image's edge). Calling the kernels directly skips v2's per-call dispatch over three
    inputs, which cost about twice the kernels' own time at 299 px.
    """
    size_hw = [int(size), int(size)]
    crop = v2.RandomResizedCrop(size_hw, scale=(0.8, 1.0), ratio=(0.9, 1.1), antialias=True)
    bilinear = v2.InterpolationMode.BILINEAR

    def apply(hq: torch.Tensor, lq: torch.Tensor, mask: torch.Tensor):
        if augment:
            box = crop.make_params([hq])  # top, left, height, width
            hq, lq = (TF.resized_crop_image(x, **box, size=size_hw, interpolation=bilinear) for x in (hq, lq))
            mask = TF.resized_crop_mask(mask, **box, size=size_hw)
            if torch.rand(1) < 0.5:  # RandomHorizontalFlip(p=0.5) draws after the crop, as in the Compose
                hq, lq, mask = TF.horizontal_flip_image(hq), TF.horizontal_flip_image(lq), TF.horizontal_flip_mask(mask)
        else:
            hq, lq = (TF.resize_image(x, size_hw, interpolation=bilinear, antialias=True) for x in (hq, lq))
            mask = TF.resize_mask(mask, size_hw)
        hq, lq = (TF.normalize_image(TF.to_dtype_image(x, torch.float32, scale=True), mean, std) for x in (hq, lq))
        return hq, lq, (mask.float() / 255 > 0.5).float()  # masks come in as uint8 0/255

    return apply


def augment_pair_batch(transform, hq: torch.Tensor, lq: torch.Tensor, mask: torch.Tensor):
    """Apply a :func:`pair_transform` to each pair of a uint8 batch, on the batch's device.

    ``hq, lq`` are ``(B, 3, S0, S0)`` and ``mask`` ``(B, 1, S0, S0)`` (0 / 255), e.g. from
    ``PairedFaces(..., decode_only=True)``; returns float32 ``(B, 3, S, S)`` twice and ``(B, 1, S, S)`` in {0, 1}.
    Pair ``b`` gets exactly what ``transform(hq[b], lq[b], mask[b])`` gives: its own crop and flip, drawn from
    torch's CPU generator (so no device -> host sync), shared by its HQ, LQ and mask.
    """
    out = [transform(h, l_, m) for h, l_, m in zip(hq, lq, mask, strict=True)]
    return tuple(torch.stack(t) for t in zip(*out, strict=True))


def pair_dataloaders(
    index: pd.DataFrame,
    size: int = 299,
    bs: int = 32,
    num_workers=None,
    seed: int = 0,
    device=None,
    train: torch.utils.data.Dataset | None = None,
    valid: torch.utils.data.Dataset | None = None,
    packed: bool | None = None,
    augment_on: str = "workers",
):
    """fastai ``DataLoaders`` over the "train" and "val" splits, plus ``.test``.

    Parameters
    ----------
    index : pandas.DataFrame
        The pair index (see :class:`PairedFaces`).
    size : int, default=299
        Image side in pixels.
    bs : int, default=32
        Batch size.
    num_workers : int, optional
        Loader processes; default ``min(4, os.cpu_count())``. 0 loads in the main process.
    seed : int, default=0
        Seeds the training shuffle (and, through it, the workers' augmentation seeds).
    device : torch.device or str, optional
        Where fastai puts batches; default CUDA if available, else CPU.
    train : torch Dataset, optional
        Train on this instead of the index's "train" split, e.g. the self-blended stream of
        :class:`antiforge_lib.data.SelfBlendedPairs`; a dataset with a ``sampler`` attribute is read in that
        sampler's order (and not shuffled).
    valid : torch Dataset, optional
        Validate on this instead of the index's "val" split (served in order).
    packed : bool, optional
        Passed to :class:`PairedFaces`: read the cache's packed copy (default: when it is there and current).
    augment_on : {"workers", "device"}, default "workers"
        Where the training split is augmented and converted to float. "device": the workers only read (uint8 at
        the cache's size) and :class:`~antiforge_lib.callbacks.AugmentOnDevice`, listed in
        ``dls.batch_callbacks`` (the learners add it), does the same per-pair transform on the batch's device.
        Validation and test are resized and normalised in the workers either way.

    Returns
    -------
    dls : fastai.data.core.DataLoaders
        ``dls.train`` (shuffled, balanced, augmented), ``dls.valid`` and
        ``dls.test`` (None without a "test" split), batches of
        ``(hq, lq, mask, label)`` shaped ``(B,3,S,S), (B,3,S,S), (B,1,S,S), (B,)``.
    """
    with quiet_import():  # heavy import, only needed here
        from fastai.data.core import DataLoaders

    if augment_on not in AUGMENT_ON:
        raise ValueError(f"augment_on must be one of {AUGMENT_ON}, got {augment_on!r}")
    if num_workers is None:
        num_workers = min(4, os.cpu_count() or 1)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    opts = dict(
        batch_size=bs,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(),
    )

    def loader(split, decode_only=False, **kw):
        ds = PairedFaces(index, split, size=size, packed=packed, decode_only=decode_only)
        return torch.utils.data.DataLoader(ds, **opts, **kw)

    batch_callbacks = []
    if train is None:
        on_device = augment_on == "device"
        generator = torch.Generator().manual_seed(seed)
        train = loader("train", decode_only=on_device, shuffle=True, drop_last=False, generator=generator)
        if on_device:
            from ..callbacks import AugmentOnDevice

            batch_callbacks.append(AugmentOnDevice(train.dataset.transform))
    elif getattr(train, "sampler", None) is not None:
        train = torch.utils.data.DataLoader(train, sampler=train.sampler, **opts)
    else:
        train = torch.utils.data.DataLoader(train, shuffle=True, generator=torch.Generator().manual_seed(seed), **opts)
    if valid is None:
        valid = loader("val", shuffle=False)
    else:
        valid = torch.utils.data.DataLoader(valid, shuffle=False, **opts)
    dls = DataLoaders(train, valid, device=device)
    # Plain torch loaders have no .to(), so fastai skips its device setter; record it for Learner.
    dls._device = device
    dls.batch_callbacks = batch_callbacks
    dls.test = loader("test", shuffle=False) if "test" in set(index["split"]) else None
    return dls


# ---------------------------------------------------------------------------------------------------------------
# Pairs made on the fly from real faces (self-blending, antiforge_lib.self_blend)

#: Seed of the fixed validation self-blends of a real-only cache (the same whatever the training seed).
VAL_SEED = 12345


class StreamSampler(torch.utils.data.Sampler):
    """Item keys ``epoch * n ... epoch * n + n - 1`` for a :class:`SelfBlendedPairs` of length ``n``.

    Every epoch asks for new keys, so a stream never repeats an item; ``set_epoch`` (called by the learner's
    :class:`~antiforge_lib.callbacks.SetEpoch`, as for torch's ``DistributedSampler``) makes a resumed run see the
    same items as an unbroken one. Without it, each new iteration moves on one epoch.
    """

    def __init__(self, n: int):
        self.n, self.epoch, self._next = int(n), None, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        epoch = self._next if self.epoch is None else self.epoch
        self.epoch, self._next = None, epoch + 1
        return iter(range(epoch * self.n, (epoch + 1) * self.n))

    def __len__(self) -> int:
        return self.n


class SelfBlendedPairs(torch.utils.data.Dataset):
    """Training pairs made on the fly from real face crops: an unlimited stream with exact masks.

    For item key ``i`` (any integer >= 0) a generator seeded with ``(seed, i)`` builds the item, with the functions
    of :mod:`antiforge_lib.self_blend`:

    1. pick a real crop; with ``augment``, jitter its colour and sharpness, and with probability ``p_whole`` alter it
       as a whole the way a donor is altered (``alter``: colour, sharpness and scale, but no boundary), so that
       colour, sharpness and scale alone never tell a fake;
    2. with probability ``p_fake`` make it fake: ``self_blend`` with the face box ``FACE_BOX`` and a fresh
       ``draw_blend``; the mask covers a part of the face (eyes, nose, mouth, a cheek) instead of the whole face
       with probability ``p_part``, and the donor is another real crop instead of the crop itself (a blend of two
       faces, as Face X-ray builds its training fakes) with probability ``p_other``;
    3. the HQ image is the real or blended crop; the LQ image is ``compress(hq, codec, q)`` at a strength ``q``
       drawn from ``strength``; the mask is the blend weight binarised at 0.1 (Sec. 4.2), zeros for reals;
    4. with ``augment``, HQ, LQ and mask share one random resized crop and flip, as in :class:`PairedFaces`,
       then are resized to ``size`` and normalised.

    Parameters
    ----------
    reals : sequence of paths
        Real face crops (square images, e.g. the ``hq`` column of a pair index's real rows).
    size : int, default=299
        Output side in pixels.
    length : int, default=512
        Items per epoch (``len(self)``); the keys of epoch ``e`` are ``e * length ...`` (:class:`StreamSampler`).
    p_fake, p_part, p_other, p_whole : float, defaults 0.5, 0.3, 0.3, 0.5
        Probabilities of steps 1-2.
    codec : {"jpeg", "h264"}, default="jpeg"
    strength : (int, int), optional
        Inclusive range of the codec's setting (JPEG quality or x264 CRF); default ``self_blend.CODECS[codec]``.
    seed : int, default=0
    augment : bool, default=True
    paired : bool, default=False
        Items come in pairs, as Shiohara & Yamasaki train: key ``2k`` is a real crop and key ``2k + 1`` the same
        crop, with the same augmentation and codec strength, made fake, so that within a batch the blend is the
        only difference between a real item and its fake (``p_fake`` does not apply). Without ``augment`` the
        crops are taken in order: a fixed set where each crop appears once real and once fake.
    mean, std : sequence of 3 floats
        Normalisation, as :class:`PairedFaces`.

    Items are ``(hq, lq, mask, label)``: float32 ``(3, S, S)`` twice, float32 ``(1, S, S)`` in {0, 1}, int64
    scalar -- the same contract as :class:`PairedFaces`. :meth:`make` returns one item before
    the tensor conversion, with the unbinarised blend weight and the settings used.
    """

    def __init__(
        self,
        reals: Sequence,
        size: int = 299,
        length: int = 512,
        p_fake: float = 0.5,
        p_part: float = 0.3,
        p_other: float = 0.3,
        p_whole: float = 0.5,
        codec: str = "jpeg",
        strength: tuple[int, int] | None = None,
        seed: int = 0,
        augment: bool = True,
        paired: bool = False,
        mean: Sequence[float] = XCEPTION_MEAN,
        std: Sequence[float] = XCEPTION_STD,
    ):
        self.reals = [str(p) for p in reals]
        if not self.reals:
            raise ValueError("SelfBlendedPairs needs at least one real face crop; got none")
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {sorted(CODECS)}, got {codec!r}")
        strength = CODECS[codec] if strength is None else tuple(int(s) for s in strength)
        if len(strength) != 2 or strength[0] > strength[1]:
            raise ValueError(f"strength must be a range (low, high) with low <= high, got {strength}")
        probs = {"p_fake": p_fake, "p_part": p_part, "p_other": p_other, "p_whole": p_whole}
        for name, p in probs.items():
            if not 0 <= p <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        if int(length) < 1 or int(size) < 8:
            raise ValueError(f"length must be >= 1 and size >= 8, got {length} and {size}")
        self.size, self.length = int(size), int(length)
        self.p_fake, self.p_part, self.p_other, self.p_whole = (float(p) for p in probs.values())
        self.codec, self.strength, self.seed = codec, strength, int(seed)
        self.augment, self.paired = bool(augment), bool(paired)
        self.transform = pair_transform(self.size, self.augment, mean, std)
        self.sampler = StreamSampler(self.length)
        self.counts = {"real": len(self.reals), "fake": 0}  # as PairedFaces: reals on disk, fakes made on the fly

    @classmethod
    def from_index(cls, index: pd.DataFrame, split: str = "train", **kwargs) -> SelfBlendedPairs:
        """The stream over the real HQ crops of one split of a pair index (``label == 0``)."""
        rows = index[(index["split"] == split) & (index["label"] == 0)]
        if rows.empty:
            raise ValueError(f"the pair index has no real faces in split {split!r} to self-blend")
        return cls(rows["hq"].tolist(), **kwargs)

    def __len__(self) -> int:
        return self.length

    def _real(self, path: str) -> np.ndarray:
        img = read_image(path, "RGB").permute(1, 2, 0).numpy()  # errors name the file
        if img.shape[0] != img.shape[1]:
            raise ValueError(f"{path}: face crops must be square, got {img.shape[1]}x{img.shape[0]}")
        return img

    def _jitter(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Label-independent photometric augmentation of the real crop, before any blending."""
        x = img.astype(np.float32)
        grey = x.mean(axis=2, keepdims=True)
        x = grey + (x - grey) * rng.uniform(0.8, 1.2)  # saturation
        x = (x - x.mean()) * rng.uniform(0.85, 1.15) + x.mean() + rng.uniform(-15, 15)  # contrast, brightness
        out = Image.fromarray(np.clip(x.round(), 0, 255).astype(np.uint8))
        if rng.random() < 0.3:
            out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 1.0) * img.shape[0] / 128))
        return np.array(out)

    def make(self, i: int) -> dict:
        """Item ``i`` as arrays: ``hq``, ``lq`` uint8 (S0, S0, 3) at the crop's own side S0, ``weight`` float32
        (S0, S0) (the blend weight, zeros for reals), ``label`` (0/1), ``source`` and ``donor`` (paths of the real
        crop and, for fakes, of the crop blended into it), ``strength`` (the codec setting used) and ``params``
        (:class:`~antiforge_lib.self_blend.BlendParams` as a dict, or None)."""
        if int(i) < 0:
            raise IndexError(f"item keys are non-negative integers, got {i}")
        # In pairs, both items draw from the pair's generator: the same crop, augmentation and codec strength.
        key = self._key(i)
        rng = np.random.default_rng([self.seed, key])
        pick = int(rng.integers(len(self.reals)))
        if self.paired and not self.augment:  # a fixed set: the crops in order, each once real and once fake
            pick = key % len(self.reals)
        source = self.reals[pick]
        img = self._real(source)
        box = tuple(f * img.shape[0] for f in FACE_BOX)
        if self.augment:
            img = self._jitter(img, rng)
            if rng.random() < self.p_whole:  # the donor's kind of change, everywhere: no boundary, still real
                img = alter(img, box, draw_blend(rng))
        strength = int(rng.integers(self.strength[0], self.strength[1] + 1))
        fake = bool(int(i) % 2) if self.paired else bool(rng.random() < self.p_fake)
        item = dict(label=int(fake), source=source, donor=None, params=None)
        weight = np.zeros(img.shape[:2], np.float32)
        if fake:
            params = draw_blend(rng, part=bool(rng.random() < self.p_part))
            donor = None
            if rng.random() < self.p_other:
                item["donor"] = self.reals[int(rng.integers(len(self.reals)))]
                donor = self._real(item["donor"])
                donor = self._jitter(donor, rng) if self.augment else donor
            img, weight, _ = self_blend(img, box, params, source=donor)
            item["donor"], item["params"] = item["donor"] or source, asdict(params)
        return dict(hq=img, lq=compress(img, self.codec, strength), weight=weight, strength=strength, **item)

    def _key(self, i: int) -> int:
        """The generator key of item ``i``: both items of a pair share one."""
        return int(i) // 2 if self.paired else int(i)

    def __getitem__(self, i: int):
        item = self.make(i)
        hq, lq = (torch.from_numpy(np.array(item[k])).permute(2, 0, 1) for k in ("hq", "lq"))
        mask = torch.from_numpy((item["weight"] > MASK_THRESHOLD).astype(np.uint8) * 255)[None]
        # The random crop and flip draw from torch's generator: seed it from the item key, so that an item is the
        # same in any worker process and on any run.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(np.random.default_rng([self.seed, self._key(i), 1]).integers(2**62)))
            hq, lq, mask = self.transform(hq, lq, mask)
        return hq, lq, mask, torch.tensor(item["label"], dtype=torch.int64)


def self_blend_dataloaders(
    index: pd.DataFrame,
    size: int = 299,
    bs: int = 32,
    num_workers=None,
    seed: int = 0,
    device=None,
    length: int = 512,
    **stream,
):
    """fastai ``DataLoaders`` that train on self-blended pairs made from the "train" split's real crops.

    Validation and test are the cached pairs of the "val" and "test" splits, as :func:`pair_dataloaders` serves
    them; when the "val" split has no fakes (a cache of real faces only,
    :func:`antiforge_lib.data.pairs.prepare_faces`), validation is a fixed set made from its real crops instead: each
    crop once as it is and once self-blended, without augmentation, the same for every epoch and every training seed.

    ``length`` is the number of training items per epoch; ``stream`` goes to :class:`SelfBlendedPairs` (``codec``,
    ``strength``, ``p_part``, ``paired``, ...). The cached fakes of the training split are not used. Batches are
    ``(hq, lq, mask, label)``, as :func:`pair_dataloaders` gives them.
    """
    train = SelfBlendedPairs.from_index(index, "train", size=size, length=length, seed=seed, **stream)
    valid = None
    val = index[index["split"] == "val"]
    if len(val) and not (val["label"] == 1).any():
        opts = {k: v for k, v in stream.items() if k in ("codec", "strength", "p_part", "p_other")}
        n = int((val["label"] == 0).sum())
        valid = SelfBlendedPairs.from_index(
            index, "val", size=size, length=2 * n, seed=VAL_SEED, augment=False, paired=True, **opts
        )
    return pair_dataloaders(
        index, size=size, bs=bs, num_workers=num_workers, seed=seed, device=device, train=train, valid=valid
    )


def denormalize(x: torch.Tensor, mean: Sequence[float] = XCEPTION_MEAN, std: Sequence[float] = XCEPTION_STD):
    """Undo the normalisation: ``(..., 3, H, W)`` tensor back to [0, 1], for plotting."""
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return (x * s + m).clamp(0, 1)
