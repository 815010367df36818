"""The paired-face dataset and its fastai loaders.

Each item of the pair index (written by :func:`antiforge_lib.pairs.prepare_pairs`)
is one face seen twice -- a high-quality (HQ) crop and its low-quality (LQ),
more compressed twin -- plus the forgery mask. The paper's two-stream training
needs both views and the mask to stay aligned, so every random geometric
transform here is drawn once and applied to all three.

Conventions: images are float32 ``(3, S, S)`` RGB tensors normalised with the
FaceForensics++ Xception statistics, i.e. ``(x - 0.5) / 0.5`` with ``x`` in
[0, 1]; masks are float32 ``(1, S, S)`` in {0, 1} (1 = manipulated pixel);
labels are int64, 1 = fake, 0 = real.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError
from torchvision import tv_tensors
from torchvision.transforms import v2

__all__ = ["XCEPTION_MEAN", "XCEPTION_STD", "REQUIRED_COLUMNS", "PairedFaces", "pair_dataloaders", "denormalize"]

# FaceForensics++ / timm legacy_xception normalisation: maps [0, 1] to [-1, 1].
XCEPTION_MEAN = (0.5, 0.5, 0.5)
XCEPTION_STD = (0.5, 0.5, 0.5)

REQUIRED_COLUMNS = ("split", "label", "hq", "lq", "mask")


def _read_png(path, mode: str) -> torch.Tensor:
    """Read an image file as a uint8 ``(C, H, W)`` tensor (C = 3 for "RGB", 1 for "L")."""
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

    Attributes
    ----------
    items : pandas.DataFrame
        The rows actually served, after balancing; ``len(self) == len(items)``.
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

        if self.augment:
            geometry = [
                v2.RandomResizedCrop(self.size, scale=(0.8, 1.0), ratio=(0.9, 1.1), antialias=True),
                v2.RandomHorizontalFlip(),
            ]
        else:
            geometry = [v2.Resize((self.size, self.size), antialias=True)]
        # v2 draws random parameters once per call and resizes Masks with nearest neighbour (floor
        # rounding, so a mask edge can sit up to one pixel off the bilinear image's edge);
        # ToDtype(dtype)/Normalize touch only the Images and pass the Mask through.
        self.transform = v2.Compose([*geometry, v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        row = self.items.iloc[i]
        hq, lq, mask = _read_png(row["hq"], "RGB"), _read_png(row["lq"], "RGB"), _read_png(row["mask"], "L")
        if not (hq.shape[1:] == lq.shape[1:] == mask.shape[1:]):
            raise ValueError(
                f"Pair crops differ in size: {row['hq']} {tuple(hq.shape[1:])}, "
                f"{row['lq']} {tuple(lq.shape[1:])}, {row['mask']} {tuple(mask.shape[1:])}."
            )
        # One call on all three, so the crop box and flip are shared (Resize is a no-op at size S).
        hq, lq, mask = self.transform(tv_tensors.Image(hq), tv_tensors.Image(lq), tv_tensors.Mask(mask))
        mask = (mask.float() / 255 > 0.5).float()  # masks come back uint8 0/255
        label = torch.tensor(int(row["label"]), dtype=torch.int64)
        return hq.as_subclass(torch.Tensor), lq.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor), label


def pair_dataloaders(index: pd.DataFrame, size: int = 299, bs: int = 32, num_workers=None, seed: int = 0, device=None):
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

    Returns
    -------
    dls : fastai.data.core.DataLoaders
        ``dls.train`` (shuffled, balanced, augmented), ``dls.valid`` and
        ``dls.test`` (None without a "test" split), batches of
        ``(hq, lq, mask, label)`` shaped ``(B,3,S,S), (B,3,S,S), (B,1,S,S), (B,)``.
    """
    from fastai.data.core import DataLoaders  # heavy import, only needed here

    if num_workers is None:
        num_workers = min(4, os.cpu_count() or 1)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    opts = dict(
        batch_size=bs,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(),
    )

    def loader(split, **kw):
        return torch.utils.data.DataLoader(PairedFaces(index, split, size=size), **opts, **kw)

    train = loader("train", shuffle=True, drop_last=False, generator=torch.Generator().manual_seed(seed))
    dls = DataLoaders(train, loader("val", shuffle=False), device=device)
    # Plain torch loaders have no .to(), so fastai skips its device setter; record it for Learner.
    dls._device = device
    dls.test = loader("test", shuffle=False) if "test" in set(index["split"]) else None
    return dls


def denormalize(x: torch.Tensor, mean: Sequence[float] = XCEPTION_MEAN, std: Sequence[float] = XCEPTION_STD):
    """Undo the normalisation: ``(..., 3, H, W)`` tensor back to [0, 1], for plotting."""
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return (x * s + m).clamp(0, 1)
