"""The embedded sample images every chapter can use offline.

They live in the repository's ``data/`` folder and ship inside the package
(as ``antiforge_lib._embedded``), so a pip-installed copy on Colab has them too.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch

__all__ = ["sample_path", "face_image", "face_tensor"]

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
