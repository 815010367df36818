"""The embedded samples every chapter can use offline: a face photo, and the pairs of the mini FaceForensics++.

The photo lives in the repository's ``data/`` folder and ships inside the package
(as ``antiforge_lib._embedded``), so a pip-installed copy on Colab has it too.
:func:`sample_pairs` is the chapters' one data call: the pair index of the embedded
mini FaceForensics++ (:mod:`antiforge_lib.data.sample`), built on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import pandas as pd
    import torch

__all__ = ["sample_path", "face_image", "face_tensor", "sample_pairs", "sample_pairs_dir"]

# NASA portrait of astronaut Eileen Collins (public domain), as shipped by scikit-image.
_FACE = "faces/astronaut.png"
# Square box (left, top, right, bottom) in pixels around the face, scaled about
# 1.3x beyond the face as FaceForensics++ crops do.
_FACE_BOX = (128, 0, 320, 192)


def checkout_data() -> Path | None:
    """The ``data/`` folder of a source checkout (or editable install) holding the library, else None (a wheel)."""
    data = Path(__file__).resolve().parent.parent / "data"
    return data if (data.parent / "pyproject.toml").is_file() and data.is_dir() else None


def _data_root():
    # A source checkout reads data/ in place; a wheel carries the same files as the antiforge_lib._embedded package.
    checkout = checkout_data()
    if checkout is not None and (checkout / _FACE).is_file():
        return checkout
    try:
        return resources.files("antiforge_lib._embedded")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "data"


def sample_path(name: str = _FACE):
    """Path of an embedded sample file, e.g. ``"faces/astronaut.png"``."""
    root = _data_root()
    path = root.joinpath(name)
    if not path.is_file():
        raise FileNotFoundError(
            f"embedded sample {name!r} not found under {root}; reinstall antiforge_lib "
            "(pip install -e . from a full clone) so that the data/ folder is present"
        )
    return path


def face_image(crop: bool = True, size: int | None = None) -> Image.Image:
    """The sample face as an RGB ``PIL.Image``.

    crop : True for the square face crop (192x192 px), False for the whole 512x512 photo.
    size : if given, resize the result to ``size`` x ``size`` with Lanczos filtering.
    """
    with sample_path().open("rb") as f:
        img = Image.open(f).convert("RGB")
    if crop:
        img = img.crop(_FACE_BOX)
    if size is not None:
        if not isinstance(size, int) or size < 8:
            raise ValueError(f"size must be an integer >= 8, got {size!r}")
        img = img.resize((size, size), Image.Resampling.LANCZOS)
    return img


def face_tensor(crop: bool = True, size: int | None = None) -> torch.Tensor:
    """:func:`face_image` as a float tensor ``(1, 3, H, W)`` in [0, 1]."""
    arr = np.asarray(face_image(crop, size), dtype=np.float32) / 255
    import torch  # here, not at the top: the data modules use this module and stay torch-free

    return torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous()


# The data modules import this module (checkout_data), so it imports them inside its functions, not at the top.


def sample_pairs_dir(size: int = 128, frames: int = 16, hq: str = "c23", lq: str = "c40", root=None) -> Path:
    """The pair cache folder of the mini FaceForensics++ at ``root`` (default
    :func:`~antiforge_lib.data.sample.default_sample_root`): ``pairs/sample_{hq}_{lq}_{frames}f_{size}px`` beside
    it, e.g. ``data/pairs/sample_c23_c40_16f_128px``. The chapters and ``antiforge prepare --sample`` share it."""
    from .data.sample import default_sample_root

    root = Path(root) if root is not None else default_sample_root()
    return root.parent / "pairs" / f"sample_{hq}_{lq}_{int(frames)}f_{int(size)}px"


def sample_pairs(
    size: int = 128,
    frames: int = 16,
    hq: str = "c23",
    lq: str = "c40",
    per_method: int | Mapping[str, int | None] | None = None,
) -> pd.DataFrame:
    """The pair index of the embedded mini FaceForensics++: the chapters' one data call.

    Builds the dataset if needed (:func:`~antiforge_lib.data.sample.build_sample_ffpp`, about a minute once) and its
    pair cache in :func:`sample_pairs_dir` (:func:`~antiforge_lib.data.pairs.prepare_pairs`; found done when Chapter
    2 or another chapter built it with the same arguments).

    Parameters
    ----------
    size : crop side in pixels.
    frames : evenly spaced frames per video.
    hq, lq : compression levels of the two branches ("c0", "c23", "c40").
    per_method : optional
        Keep only this many random pairs of each method (real included) -- an int: of the "train" split; a mapping
        ``{"train": 16, "val": 8}``: of each split it names (None: all of it, 0: none). The other splits are kept
        whole. Drawn as ``rows.groupby("method").sample(n, random_state=0)``: the same pairs on every run.

    Returns
    -------
    DataFrame
        As :func:`~antiforge_lib.data.pairs.prepare_pairs`: one row per pair, columns
        :data:`~antiforge_lib.data.index.INDEX_COLUMNS` (``hq``, ``lq``, ``mask`` as absolute paths), and
        ``attrs["report"]`` (of the whole cache). With ``per_method``, the splits in the cache's order, each split's
        rows in the order drawn, numbered from 0.
    """
    import pandas as pd

    from .data.pairs import prepare_pairs
    from .data.sample import build_sample_ffpp

    root = build_sample_ffpp()
    out = sample_pairs_dir(size, frames, hq, lq, root)
    index = prepare_pairs(root, out, hq=hq, lq=lq, frames_per_video=frames, size=size, progress=False)
    if per_method is None:
        return index
    counts = per_method if isinstance(per_method, Mapping) else {"train": per_method}
    unknown = sorted(set(counts) - set(index["split"]))
    if unknown:
        raise ValueError(f"per_method names split(s) {unknown} that {out} lacks; it has {sorted(set(index['split']))}")
    parts = []
    for split in index["split"].unique():
        rows, n = index[index["split"] == split], counts.get(split)
        if n == 0:
            continue
        if n is not None:
            have = rows.groupby("method").size()
            if have.min() < n:
                raise ValueError(
                    f"per_method asks for {n} pairs of each method in split {split!r}, but {out} has only "
                    f"{have.min()} of {have.idxmin()!r}; ask for at most that many"
                )
            rows = rows.groupby("method").sample(n, random_state=0)
        parts.append(rows)
    subset = pd.concat(parts).reset_index(drop=True)
    subset.attrs["report"] = index.attrs["report"]
    return subset
