"""The FaceForensics++ folder layout and its official splits.

FaceForensics++ (Rössler et al., ICCV 2019) ships, under one root::

    original_sequences/youtube/{raw,c23,c40}/videos/NNN.mp4
    manipulated_sequences/<Method>/{raw,c23,c40}/videos/TTT_SSS.mp4
    manipulated_sequences/<Method>/masks/videos/TTT_SSS.mp4

"raw" is the lossless c0 level. The official splits are three JSON lists of
``[target, source]`` id pairs (360/70/70 pairs = 720/140/140 videos): a split
holds the real videos ``TTT`` and ``SSS`` and the fakes ``TTT_SSS`` and ``SSS_TTT``.
The embedded sample dataset (:mod:`antiforge_lib.data.sample`) uses the same layout.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .._io import atomic_write

__all__ = ["SPLITS", "LEVEL_DIRS", "SPLITS_URL", "Video", "FFPPLayout", "load_splits", "LayoutError"]

SPLITS = ("train", "val", "test")
#: compression level -> folder name in FaceForensics++
LEVEL_DIRS = {"c0": "raw", "raw": "raw", "c23": "c23", "c40": "c40"}
#: The dataset's manipulation folders (the first four are the original release; the paper uses Deepfakes in Table 3)
MANIPULATIONS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter")
SPLITS_URL = "https://raw.githubusercontent.com/ondyari/FaceForensics/master/dataset/splits/{split}.json"
_SPLIT_DIRS = ("splits", "dataset/splits")


class LayoutError(FileNotFoundError):
    """The FaceForensics++ tree lacks folders, videos or split files."""


@dataclass(frozen=True)
class Video:
    """One video of the dataset: a real one (``method="original"``) or a fake."""

    id: str  # "071" or "071_054"
    method: str  # "original" or the manipulation, e.g. "Deepfakes"
    split: str

    @property
    def label(self) -> int:
        return int(self.method != "original")


def _read_split_files(folder: Path) -> dict[str, list[list[str]]]:
    out = {}
    for split in SPLITS:
        path = folder / f"{split}.json"
        try:
            pairs = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise LayoutError(f"{path}: not valid JSON ({e})") from e
        if not all(isinstance(p, list) and len(p) == 2 for p in pairs):
            raise LayoutError(f"{path}: expected a list of [target, source] id pairs")
        out[split] = [[str(a), str(b)] for a, b in pairs]
    return out


def _splits_cache() -> Path:
    """Where downloaded split files go: the user's cache, never the dataset root (which may be read-only, or shared)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "antiforge" / "ffpp_splits"


def _download_splits(dest: Path, timeout: float) -> dict[str, list[list[str]]]:
    # All three first, in memory: a failed download writes nothing, not even an empty folder.
    files = {}
    for split in SPLITS:
        with urllib.request.urlopen(SPLITS_URL.format(split=split), timeout=timeout) as r:
            files[split] = r.read()
    for split, data in files.items():
        atomic_write(dest / f"{split}.json", lambda tmp, data=data: tmp.write_bytes(data))
    return _read_split_files(dest)


def load_splits(root=None, splits_dir=None, download: bool = True, timeout: float = 10.0):
    """The official train/val/test lists of ``[target, source]`` id pairs.

    Looked for, in order: ``splits_dir``; ``$ANTIFORGE_FFPP_SPLITS``;
    ``root/splits`` and ``root/dataset/splits``; the download cache
    (``~/.cache/antiforge/ffpp_splits``). If none has all three files and
    ``download`` is true, they are fetched from the FaceForensics++
    repository into that cache (``timeout`` seconds per file); nothing is
    ever written into the dataset root. Offline, the error says where to get
    them.
    """
    candidates = []
    if splits_dir is not None:
        candidates.append(Path(splits_dir))
    if os.environ.get("ANTIFORGE_FFPP_SPLITS"):
        candidates.append(Path(os.environ["ANTIFORGE_FFPP_SPLITS"]))
    if root is not None:
        candidates += [Path(root) / d for d in _SPLIT_DIRS]
    candidates.append(_splits_cache())
    for folder in candidates:
        if all((folder / f"{s}.json").is_file() for s in SPLITS):
            return _read_split_files(folder)
    where = ", ".join(str(c) for c in candidates) or "(no folder given)"
    if download and root is not None:
        try:
            return _download_splits(_splits_cache(), timeout)
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            reason = f"downloading them failed ({e})"
    else:
        reason = "downloading was not allowed" if root is not None else "no dataset root was given"
    raise LayoutError(
        f"FaceForensics++ split files train.json, val.json, test.json not found in {where}; {reason}. "
        f"Get them from {SPLITS_URL.format(split='<split>')} (the FaceForensics++ repository, "
        "dataset/splits/) and put them in <root>/splits/, or pass splits_dir=..."
    )


class FFPPLayout:
    """Find the videos of a FaceForensics++-shaped tree.

    Parameters
    ----------
    root : the dataset root (holding ``original_sequences`` and ``manipulated_sequences``).
    splits_dir : folder with ``train.json``, ``val.json``, ``test.json`` (see :func:`load_splits`).
    download_splits : allow fetching the split files when they are absent.
    splits : the split lists themselves (as :func:`load_splits` returns), to skip the lookup.
    """

    def __init__(self, root, splits_dir=None, download_splits: bool = True, splits=None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise LayoutError(f"{self.root}: dataset root does not exist")
        self.splits = splits if splits is not None else load_splits(self.root, splits_dir, download=download_splits)

    # -- folders ----------------------------------------------------------
    def video_dir(self, method: str, level: str) -> Path:
        """Folder of ``method`` ("original" or a manipulation) at ``level`` (c0/c23/c40, or "masks")."""
        if level == "masks":
            if method == "original":
                raise ValueError("real videos have no masks")
            return self.root / "manipulated_sequences" / method / "masks" / "videos"
        if level not in LEVEL_DIRS:
            raise ValueError(f"level must be one of c0, c23, c40 or 'masks', got {level!r}")
        sub = LEVEL_DIRS[level]
        if method == "original":
            return self.root / "original_sequences" / "youtube" / sub / "videos"
        return self.root / "manipulated_sequences" / method / sub / "videos"

    def video_path(self, video: Video | str, method: str | None = None, level: str = "c23") -> Path:
        vid, meth = (video.id, video.method) if isinstance(video, Video) else (video, method or "original")
        return self.video_dir(meth, level) / f"{vid}.mp4"

    def methods(self) -> list[str]:
        """Manipulation methods present under ``manipulated_sequences``."""
        base = self.root / "manipulated_sequences"
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    # -- videos -----------------------------------------------------------
    def videos(self, methods=None, splits=SPLITS) -> list[Video]:
        """Every video the splits name, reals first, for ``methods`` (default: all present)."""
        methods = self.methods() if methods is None else list(methods)
        out = []
        for split in splits:
            if split not in self.splits:
                raise ValueError(f"unknown split {split!r}; the splits are {list(self.splits)}")
            pairs = self.splits[split]
            reals = sorted({i for p in pairs for i in p})
            out += [Video(i, "original", split) for i in reals]
            fakes = sorted({f"{a}_{b}" for a, b in pairs} | {f"{b}_{a}" for a, b in pairs})
            out += [Video(f, m, split) for m in methods for f in fakes]
        return out

    def check(self, methods=None, levels=("c23", "c40"), splits=SPLITS, require_all: bool = False):
        """Find the videos the splits name at each level (plus masks for fakes).

        Returns ``(present, missing)``: lists of :class:`Video`. Missing folders
        raise one :class:`LayoutError` listing what is missing and what is
        present; missing videos do too when ``require_all`` is true.
        """
        methods = self.methods() if methods is None else list(methods)
        unknown = [m for m in methods if not (self.root / "manipulated_sequences" / m).is_dir()]
        need = [self.video_dir("original", lv) for lv in levels]
        need += [self.video_dir(m, lv) for m in methods for lv in (*levels, "masks") if m not in unknown]
        absent = [d for d in need if not d.is_dir()]
        if unknown or absent:
            lines = [f"  method {m}: no folder manipulated_sequences/{m}" for m in unknown]
            lines += [f"  {d.relative_to(self.root)}" for d in absent]
            present = sorted(str(p.relative_to(self.root)) for p in self.root.glob("*_sequences/*/*/videos"))
            raise LayoutError(
                f"{self.root} is not a complete FaceForensics++ tree for methods={methods}, levels={list(levels)}.\n"
                "Missing:\n" + "\n".join(lines) + "\nPresent:\n" + ("\n".join(f"  {p}" for p in present) or "  nothing")
            )
        present, missing = [], []
        for v in self.videos(methods, splits):
            lv = (*levels, "masks") if v.label else levels
            (present if all(self.video_path(v, level=x).is_file() for x in lv) else missing).append(v)
        if missing and require_all:
            shown = ", ".join(f"{v.method}/{v.id}" for v in missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise LayoutError(
                f"{len(missing)} of {len(present) + len(missing)} videos named by the splits are missing under "
                f"{self.root} (at levels {list(levels)}, plus masks for fakes): {shown}. {len(present)} are present. "
                "With prepare_pairs, pass allow_missing=True to use only the present ones."
            )
        return present, missing
