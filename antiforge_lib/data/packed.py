"""A packed copy of a pair cache: one raw uint8 array per split, memory-mapped, so that loaders decode nothing.

Decoding the PNGs of a 299 px cache costs about 4-5 ms of one core per pair (HQ, LQ and mask; see
``benchmarks/README.md``), more than a GPU needs to train on the pair (about 2.4 ms on an H100). The packed copy
holds the same pixels, uncompressed, so reading a pair is a copy out of the page cache.

Layout, beside ``index.csv`` in the cache folder:

- ``packed/<split>.npy``: numpy's ``.npy`` format, uint8, shape ``(N, 7, S, S)``, one row per pair of the split
  in ``index.csv`` order; channels 0-2 the HQ crop (RGB), 3-5 the LQ crop (RGB), 6 the mask (0 or 255).
- ``packed/<split>.json``: ``format``, ``size`` S, ``keys`` (each row's ``hq`` path as ``index.csv`` writes it) and
  ``index_sha1`` (of ``index.csv`` when it was packed).

It is lossless: the arrays are the PNGs' pixels, byte for byte, and the PNGs stay where they are (the book's
chapters and every other reader open them). It costs ``7 * S * S`` bytes per pair (625,807 at 299 px, 114,688 at
128 px), about 3.4x the PNGs. :class:`~antiforge_lib.data.PairedFaces` reads it when it is there and current: made
from the ``index.csv`` the cache has now. After the cache is prepared again, pack it again.

Migrate an existing cache with one command (it takes the cache's lock, so it waits for a running ``prepare``)::

    python -m antiforge_lib.data.packed data/pairs/sample_c23_c40_16f_299px

Kept free of torch, as :mod:`antiforge_lib.data.index` is.
"""

from __future__ import annotations

import argparse
import hashlib
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from .._io import atomic_write, exclusive_lock, read_json, write_json
from .index import load_index

__all__ = ["CHANNELS", "PACKED_DIR", "pack_cache", "PackedPairs"]

#: Channels of a packed pair: HQ RGB, LQ RGB, mask.
CHANNELS = 7
#: The packed copy's folder inside a cache.
PACKED_DIR = "packed"
FORMAT = 1


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def _key(path, root: Path) -> str:
    """A row's ``hq`` path as ``index.csv`` holds it (relative to the cache folder, with forward slashes)."""
    return Path(path).relative_to(root).as_posix()


def _read(path, mode: str) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert(mode))


def _write_split(tmp: Path, rows: pd.DataFrame, size: int) -> None:
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(rows), CHANNELS, size, size))
    for i, (hq, lq, mask) in enumerate(zip(rows["hq"], rows["lq"], rows["mask"], strict=True)):
        images = (_read(hq, "RGB"), _read(lq, "RGB"), _read(mask, "L"))
        if any(a.shape[:2] != (size, size) for a in images):
            raise ValueError(f"{hq}: the crops of a pair must be {size}x{size} px, as the cache's config.json says")
        out[i, 0:3] = images[0].transpose(2, 0, 1)
        out[i, 3:6] = images[1].transpose(2, 0, 1)
        out[i, 6] = images[2]
    out.flush()
    del out


def pack_cache(out_dir, progress: bool = True) -> dict[str, Path]:
    """Write the packed copy of the pair cache in ``out_dir`` (see the module docstring); returns ``{split: .npy}``.

    Reads every PNG of the cache once. Holds the cache's lock (the one ``prepare_pairs`` takes), so it never packs
    a cache that is being built. Each file is written atomically; the ``.json`` that marks a split as packed is
    written last.
    """
    out_dir = Path(out_dir)
    cfg = read_json(out_dir / "config.json") if (out_dir / "config.json").is_file() else {}
    with exclusive_lock(out_dir / ".lock", what=f"pair cache {out_dir}"):
        index = load_index(out_dir)
        sha = _sha1(out_dir / "index.csv")
        if index.empty:
            raise ValueError(f"{out_dir / 'index.csv'} holds no pairs; there is nothing to pack")
        size = int(cfg.get("size") or _read(index["hq"].iloc[0], "RGB").shape[0])
        written = {}
        for split, rows in index.groupby("split", sort=True):
            npy, meta = out_dir / PACKED_DIR / f"{split}.npy", out_dir / PACKED_DIR / f"{split}.json"
            meta.unlink(missing_ok=True)  # no reader trusts the old array while it is being replaced
            if progress:
                print(f"packing {len(rows)} {split} pairs of {out_dir} ...", flush=True)
            atomic_write(npy, lambda tmp, rows=rows: _write_split(tmp, rows, size))
            keys = [_key(p, out_dir) for p in rows["hq"]]
            write_json(meta, {"format": FORMAT, "size": size, "index_sha1": sha, "keys": keys})
            written[split] = npy
        return written


class PackedPairs:
    """Where each row of a pair table lies in the packed copies of its caches; ``self[i]`` reads row ``i``.

    Use :meth:`find`, which returns None unless every row is in a current packed copy. The arrays are opened
    (memory-mapped) on first read in each process and never pickled, so a DataLoader's workers map the files
    themselves.
    """

    def __init__(self, files: list[Path], which: np.ndarray, pos: np.ndarray):
        self.files, self.which, self.pos = files, which, pos
        self._arrays: dict[int, np.ndarray] = {}

    @classmethod
    def find(cls, rows: pd.DataFrame) -> PackedPairs | None:
        """The packed rows of ``rows`` (columns ``hq`` etc. as :func:`~antiforge_lib.data.pairs.load_index` gives
        them), or None when some row's cache has no current packed copy or the copy lacks the row."""
        if rows.empty or "hq" not in rows.columns:
            return None
        files: list[Path] = []
        where: dict[tuple[Path, str], tuple[int, int]] = {}
        roots: dict[Path, bool] = {}
        which, pos = np.empty(len(rows), np.int64), np.empty(len(rows), np.int64)
        for i, hq in enumerate(rows["hq"]):
            parents = Path(hq).parents
            if len(parents) < 3:  # not <method>/<video>/<frame>_hq.png inside a cache
                return None
            root = parents[2]  # the cache folder: prepare_pairs writes <method>/<video>/<frame>_hq.png
            if root not in roots:
                roots[root] = cls._load(root, files, where)
            if not roots[root]:
                return None
            hit = where.get((root, _key(hq, root)))
            if hit is None:
                return None
            which[i], pos[i] = hit
        return cls(files, which, pos)

    @staticmethod
    def _load(root: Path, files: list[Path], where: dict) -> bool:
        metas = sorted((root / PACKED_DIR).glob("*.json"))
        if not metas or not (root / "index.csv").is_file():
            return False
        sha = _sha1(root / "index.csv")
        for meta_path in metas:
            meta = read_json(meta_path)
            if meta.get("format") != FORMAT or meta.get("index_sha1") != sha:
                warnings.warn(
                    f"{meta_path}: the packed copy was made from another index.csv (the cache was prepared again); "
                    f"reading the PNGs. Pack it again: python -m antiforge_lib.data.packed {root}",
                    stacklevel=4,
                )
                return False
            files.append(meta_path.with_suffix(".npy"))
            for j, key in enumerate(meta["keys"]):
                where[(root, key)] = (len(files) - 1, j)
        return True

    def __len__(self) -> int:
        return len(self.pos)

    def __getitem__(self, i: int) -> np.ndarray:
        """Row ``i`` as a writable uint8 array ``(7, S, S)``: HQ RGB, LQ RGB, mask (0/255)."""
        k = int(self.which[i])
        if k not in self._arrays:
            self._arrays[k] = np.load(self.files[k], mmap_mode="r")
        return np.array(self._arrays[k][self.pos[i]])

    def __getstate__(self):
        return {**self.__dict__, "_arrays": {}}  # each process maps the files itself


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m antiforge_lib.data.packed",
        description="Write the packed copy (raw uint8, one memory-mapped array per split) of pair caches.",
    )
    ap.add_argument("caches", nargs="+", help="pair cache folders (each with index.csv)")
    args = ap.parse_args(argv)
    for cache in args.caches:
        written = pack_cache(cache)
        for npy in written.values():
            n, c, s, _ = np.load(npy, mmap_mode="r").shape
            print(f"{npy}: {n} pairs, {c * s * s:,} bytes per pair ({s} px)")


if __name__ == "__main__":
    main()
