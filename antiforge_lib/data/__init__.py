"""Chapter 2: from FaceForensics++ videos to the pixel-aligned HQ/LQ/mask pairs that training reads.

- :mod:`~antiforge_lib.data.layout` -- the FaceForensics++ folder layout and its official splits
- :mod:`~antiforge_lib.data.video` -- H.264 at FaceForensics++'s levels c0/c23/c40
- :mod:`~antiforge_lib.data.faces` -- face boxes (detect, square x1.3, smooth, clamp) and the face-crop pipeline
- :mod:`~antiforge_lib.data.pairs` -- the pair cache: ``prepare_pairs``, ``prepare_faces``
- :mod:`~antiforge_lib.data.index` -- the cache's ``index.csv``: its columns and ``load_index``
- :mod:`~antiforge_lib.data.packed` -- the cache's packed copy (raw uint8 per split) that loaders read undecoded
- :mod:`~antiforge_lib.data.sample` -- the embedded real-face mini FaceForensics++
- :mod:`~antiforge_lib.data.loaders` -- the paired datasets and their fastai loaders (torch)

The loaders' names are re-exported here (``from antiforge_lib.data import PairedFaces``), but only on first use:
importing ``antiforge_lib.data.layout`` or ``.pairs`` must not import torch (the CLI checks its arguments, and
``prepare_pairs``' worker processes start, without it).
"""

from __future__ import annotations

import importlib

#: The public names of :mod:`.loaders` (which takes this list as its own ``__all__``).
__all__ = [
    "XCEPTION_MEAN",
    "XCEPTION_STD",
    "REQUIRED_COLUMNS",
    "PairedFaces",
    "pair_dataloaders",
    "pair_transform",
    "augment_pair_batch",
    "SelfBlendedPairs",
    "StreamSampler",
    "self_blend_dataloaders",
    "read_image",
    "denormalize",
]

_SUBMODULES = ("layout", "video", "faces", "pairs", "index", "packed", "sample", "loaders")


def __getattr__(name: str):
    # PEP 562: reached only for names not yet in this module; a loader name imports .loaders (and torch) then.
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in __all__ or name == "VAL_SEED":
        return getattr(importlib.import_module(".loaders", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_SUBMODULES})
