"""Pixel-aligned HQ/LQ/mask face crops from a FaceForensics++-shaped tree.

For each video the same evenly spaced frames are read from the HQ video, the
LQ video and (for fakes) the mask video. The face is found on the HQ frame;
the box is squared, enlarged x1.3, smoothed across frames and clamped to the
image, and that one box crops all three (Cao et al. 2021, Sec. 4.1). Crops are
stored as PNG (lossless), masks binarised at > 0.1 of full scale (Sec. 4.2).

The cache is resumable: each video's files are written atomically and a
``_done.json`` marker is written last, so a killed run restarted with the same
arguments redoes only unfinished videos and returns the same index. A video whose
source files changed since it was cropped (size or modification time) is cropped again.
"""

from __future__ import annotations

import json
import os
import threading
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from .._io import atomic_write, exclusive_lock
from .faces import face_crops
from .index import INDEX_COLUMNS, MASK_THRESHOLD, _resolve, load_index
from .layout import SPLITS, FFPPLayout, Video
from .video import VideoError, video_info

__all__ = [
    "prepare_pairs",
    "prepare_faces",
    "load_index",
    "frame_indices",
    "resize_crop",
    "INDEX_COLUMNS",
    "VIDEO_SUFFIXES",
]


def frame_indices(n_frames: int, k: int) -> np.ndarray:
    """``k`` evenly spaced frame numbers in ``0..n_frames-1`` (all frames if ``k >= n_frames``)."""
    if n_frames < 1 or k < 1:
        raise ValueError(f"need n_frames >= 1 and k >= 1, got {n_frames}, {k}")
    return np.unique(np.linspace(0, n_frames - 1, min(k, n_frames)).round().astype(int))


def resize_crop(crop: np.ndarray, size: int, mask: bool = False) -> Image.Image:
    """A face crop ``(s, s, 3)`` uint8 as the pair cache stores it: ``size`` x ``size`` pixels, bicubic (RGB); a
    mask is resized bilinearly in grey and binarised at :data:`MASK_THRESHOLD` (0 / 255, mode "L")."""
    img = Image.fromarray(crop)
    if not mask:
        return img.resize((size, size), Image.Resampling.BICUBIC)
    grey = img.convert("L").resize((size, size), Image.Resampling.BILINEAR)
    return Image.fromarray(((np.asarray(grey) / 255) > MASK_THRESHOLD).astype(np.uint8) * 255)


def _exit_with(parent: int) -> None:
    """Pool initializer: end this worker once the process that started the pool is gone (``kill -9`` included),
    instead of living on as an orphan that holds memory."""

    def watch():
        while True:
            time.sleep(1.0)
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # alive, under another user
                pass

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


class WorkerDied(RuntimeError):
    """A process of the preparing pool died (the OOM killer, a crash); finished videos are kept."""


def _atomic_json(path: Path, obj) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=1)))


def _atomic_png(path: Path, img: Image.Image) -> None:
    atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))


def _process_video(args) -> dict:
    """Crop one video's frames; returns its rows and counts (runs in a worker).

    ``paths`` maps "hq" (and "lq", "mask" where there are such videos) to files with the same frames; the face is
    found on "hq" and its box crops every stream.
    """
    paths, video, cfg, out_dir = args
    sources = _sources(paths)
    paths = {k: Path(p) for k, p in paths.items()}
    video = Video(**video)
    vdir = Path(out_dir) / video.method / video.id
    done = vdir / "_done.json"
    _remove_stale(vdir)
    vdir.mkdir(parents=True, exist_ok=True)
    result = {"video": asdict(video), "rows": [], "no_face": 0, "unmanipulated": 0, "skipped": None, "sources": sources}
    try:
        infos = {k: video_info(p) for k, p in paths.items()}
    except VideoError as e:
        result["skipped"] = str(e)
        return result
    shapes = {k: (i.frames, i.height, i.width) for k, i in infos.items()}
    if len(set(shapes.values())) > 1:
        result["skipped"] = "frame count or size differs: " + ", ".join(f"{k} {v}" for k, v in shapes.items())
        return result
    idx = frame_indices(shapes["hq"][0], cfg["frames_per_video"])
    size = cfg["size"]
    try:
        # The face is found on the HQ frames; its box crops HQ, LQ and mask alike (pixel-aligned).
        for fno, box, arrays in face_crops(list(paths.values()), idx, cfg["scale"], cfg["smooth"]):
            if box is None:
                result["no_face"] += 1
                continue
            row = {"split": video.split, "method": video.method, "video": video.id, "frame": fno}
            row["label"] = video.label
            crops = {key: resize_crop(arr, size, mask=key == "mask") for key, arr in zip(paths, arrays, strict=True)}
            if "mask" in crops and not crops["mask"].getbbox():
                # The manipulation left this frame alone (e.g. it found no face there): it is not a forgery.
                result["unmanipulated"] += 1
                continue
            for key, crop in crops.items():
                rel = f"{video.method}/{video.id}/{fno:04d}_{key}.png"
                _atomic_png(Path(out_dir) / rel, crop)
                row[key] = rel
            if "mask" not in row:  # reals: an all-zero mask, shared by every real crop
                row["mask"] = "_zero_mask.png"
            row.setdefault("lq", row["hq"])  # a cache of real faces only (prepare_faces) has no LQ video
            row.update(zip(("x0", "y0", "x1", "y1"), box, strict=True))
            result["rows"].append(row)
    except VideoError as e:
        for orphan in vdir.glob("*.png"):  # crops of the frames before the error: no row will name them
            orphan.unlink()
        result = {**result, "rows": [], "skipped": str(e)}
        return result
    _atomic_json(done, result)
    return result


def _warn_about_losses(results: list[dict], index: pd.DataFrame, out_dir: Path) -> None:
    """Warn when a split lost a whole class, or most of its frames (no face found, skipped videos)."""
    for split in sorted({r["video"]["split"] for r in results}):
        mine = [r for r in results if r["video"]["split"] == split]
        labels = {int(r["video"]["method"] != "original") for r in mine}
        have = set(index.loc[index["split"] == split, "label"].astype(int))
        for label in sorted(labels - have):
            kind = "fake" if label else "real"
            warnings.warn(
                f"split {split!r} of {out_dir} has no {kind} face left: every {kind} video was skipped or showed no "
                "face (see report.json); training or scoring on it needs both classes",
                stacklevel=4,
            )
        kept = sum(len(r["rows"]) for r in mine)
        seen = kept + sum(r["no_face"] + r.get("unmanipulated", 0) for r in mine)
        if seen and kept < seen / 2:
            warnings.warn(f"split {split!r} of {out_dir} kept {kept} of {seen} frames (see report.json)", stacklevel=4)


def _split_classes(index: pd.DataFrame) -> dict:
    """Real and fake pairs of each split the index has, in train/val/test order."""
    counts = index.groupby(["split", "label"]).size()
    have = set(index["split"])
    return {s: {"real": int(counts.get((s, 0), 0)), "fake": int(counts.get((s, 1), 0))} for s in SPLITS if s in have}


def _sources(paths: dict) -> dict:
    """Size and modification time of a video's source files: what its finished result was made from."""
    paths = {k: Path(p) for k, p in paths.items()}
    return {k: [p.stat().st_size, p.stat().st_mtime_ns] if p.is_file() else None for k, p in paths.items()}


def _cached_result(job, verify: bool = False) -> dict | None:
    """A video's finished result, if its crops are still good (decoded, with ``verify``), else None.

    A video re-encoded since it was cropped (e.g. a rebuilt sample) is cropped again, not served stale; so is one
    whose crops were deleted or damaged since.
    """
    paths, video, _, out_dir = job
    done = Path(out_dir) / video["method"] / video["id"] / "_done.json"
    if not done.is_file():
        return None
    try:
        cached = json.loads(done.read_text())
    except ValueError:
        return None
    same = cached.get("sources") == _sources(paths) and cached.get("video") == video  # same files, same split
    if not (same and _crops_intact(cached.get("rows", []), Path(out_dir), verify)):
        return None
    _remove_stale(done.parent)
    return cached


def _remove_stale(vdir: Path) -> None:
    for stale in [*vdir.glob(".*.part"), *vdir.glob("*.tmp")]:  # left by a writer killed mid-file
        stale.unlink()


def _crops_intact(rows: list[dict], out_dir: Path, verify: bool = False) -> bool:
    """Every crop the rows name is there and at least as long as the smallest PNG; with ``verify``, every one also
    decodes (slower: it reads the whole cache)."""
    smallest_png = 67  # signature + IHDR + a one-pixel IDAT + IEND
    for path in {out_dir / row[key] for row in rows for key in ("hq", "lq", "mask")}:
        if not path.is_file() or path.stat().st_size < smallest_png:
            return False
        if verify:
            try:
                with Image.open(path) as im:
                    im.load()
            except (OSError, SyntaxError, ValueError):
                return False
    return True


def prepare_pairs(
    ffpp_root,
    out_dir,
    methods=None,
    hq: str = "c23",
    lq: str = "c40",
    frames_per_video: int = 270,
    size: int = 299,
    workers: int | None = None,
    splits_dir=None,
    scale: float = 1.3,
    smooth: int = 5,
    allow_missing: bool = False,
    progress: bool = True,
    verify: bool = False,
) -> pd.DataFrame:
    """Write the pair cache for a FaceForensics++-shaped tree and return its index.

    Parameters
    ----------
    ffpp_root : dataset root (see :class:`antiforge_lib.data.layout.FFPPLayout`).
    out_dir : cache folder; holds ``index.csv``, ``report.json``, ``config.json``
        and ``<method>/<video>/<frame>_{hq,lq,mask}.png``.
    methods : manipulation folders to use (default: all present).
    hq, lq : compression levels of the two branches ("c0", "c23", "c40").
    frames_per_video : evenly spaced frames per video (the paper samples 270).
    size : side of the square crops in pixels (299 for Xception).
    workers : parallel processes across videos (default: all cores).
    scale, smooth : box enlargement (1.3 as FF++) and smoothing window in frames.
    verify : decode every crop of the videos already done, and redo those with a damaged one. Without it a rerun
        checks only that each crop is there with a plausible size (enough for a killed run, a deleted file or a
        full disk).
    allow_missing : if true, videos the splits name but the tree lacks are
        skipped and listed in the report; by default they are an error.

    Returns
    -------
    DataFrame, one row per pair, columns :data:`INDEX_COLUMNS` (``hq``,
    ``lq``, ``mask`` as absolute paths). ``df.attrs["report"]`` counts the
    frames without a face and the frames of fake videos whose mask is empty
    in the crop (left out: the manipulation did not touch them, so they are
    not forgeries), lists skipped and missing videos, and gives the real and
    fake pairs of each split (``"splits": {"train": {"real": .., "fake": ..}}``).
    """
    if hq == lq:
        raise ValueError(f"hq and lq must differ, both are {hq!r}")
    layout = FFPPLayout(ffpp_root, splits_dir=splits_dir)
    methods = layout.methods() if methods is None else list(methods)
    present, missing = layout.check(methods, levels=(hq, lq), require_all=not allow_missing)
    cfg = dict(hq=hq, lq=lq, frames_per_video=int(frames_per_video), size=int(size), scale=scale, smooth=smooth)
    jobs = []
    for v in present:
        paths = {"hq": layout.video_path(v, level=hq), "lq": layout.video_path(v, level=lq)}
        if v.label:
            paths["mask"] = layout.video_path(v, level="masks")
        jobs.append(({k: str(p) for k, p in paths.items()}, asdict(v)))
    jobs.sort(key=lambda job: job[1]["method"] == "original")  # fakes (3 streams) first: no slow job left last
    missing = [f"{v.method}/{v.id}" for v in missing]
    return _build_cache(out_dir, cfg, jobs, workers, progress, missing=missing, verify=verify)


def _build_cache(out_dir, cfg: dict, jobs: list, workers, progress: bool, missing=(), verify=False) -> pd.DataFrame:
    """Crop every ``(paths, video)`` job into ``out_dir`` under its lock; write the index and report; return both."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(out_dir / ".lock"):  # one builder per cache folder; others wait, then reuse it
        cfg_path = out_dir / "config.json"
        if cfg_path.is_file() and json.loads(cfg_path.read_text()) != cfg:
            raise ValueError(
                f"{out_dir} holds a cache made with other arguments ({cfg_path.read_text().strip()}); "
                "use another out_dir, or delete this one to rebuild"
            )
        _atomic_json(cfg_path, cfg)
        zero = out_dir / "_zero_mask.png"
        if not _crops_intact([{"hq": zero.name, "lq": zero.name, "mask": zero.name}], out_dir, verify):
            _atomic_png(zero, Image.new("L", (cfg["size"], cfg["size"]), 0))

        jobs = [(paths, video, cfg, str(out_dir)) for paths, video in jobs]
        cached = [_cached_result(job, verify) for job in jobs]  # a finished cache starts no worker processes at all
        todo = [job for job, res in zip(jobs, cached, strict=True) if res is None]
        workers = (os.cpu_count() or 1) if workers is None else max(1, int(workers))
        bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="videos", unit="video", disable=not progress)
        done = []
        if workers == 1 or len(todo) <= 1:
            for job in todo:
                done.append(_process_video(job))
                bar.update()
        else:
            # forkserver: a notebook kernel may hold torch's threads, which fork does not copy safely
            try:
                context = get_context("forkserver")
                with ProcessPoolExecutor(workers, context, initializer=_exit_with, initargs=(os.getpid(),)) as pool:
                    for res in pool.map(_process_video, todo):
                        done.append(res)
                        bar.update()
            except BrokenProcessPool:
                raise WorkerDied(
                    f"a worker preparing {out_dir} died (out of memory?); the videos finished so far are kept: rerun "
                    "with fewer workers (workers=1) to go on"
                ) from None
        bar.close()
        fresh = iter(done)
        results = [res if res is not None else next(fresh) for res in cached]  # in job order, as before

        rows = [r for res in results for r in res["rows"]]
        index = pd.DataFrame(rows, columns=INDEX_COLUMNS)
        index = index.sort_values(["split", "method", "video", "frame"], kind="stable").reset_index(drop=True)
        report = {
            "videos": len(jobs),
            "pairs": len(index),
            "no_face_frames": int(sum(r["no_face"] for r in results)),
            "unmanipulated_fake_frames": int(sum(r.get("unmanipulated", 0) for r in results)),
            "skipped": {f"{r['video']['method']}/{r['video']['id']}": r["skipped"] for r in results if r["skipped"]},
            "missing": list(missing),
            "splits": _split_classes(index),
        }
        if report["skipped"]:
            first = next(iter(report["skipped"].items()))
            warnings.warn(
                f"skipped {len(report['skipped'])} video(s), e.g. {first[0]}: {first[1]} "
                f"(all are listed in {out_dir / 'report.json'})",
                stacklevel=3,
            )
        _warn_about_losses(results, index, out_dir)
        atomic_write(out_dir / "index.csv", lambda tmp: index.to_csv(tmp, index=False))
        _atomic_json(out_dir / "report.json", report)
        out = _resolve(index, out_dir)
        out.attrs["report"] = report
        return out


#: File endings that :func:`prepare_faces` takes for videos when given a folder.
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")


def prepare_faces(
    videos,
    out_dir,
    val=0.2,
    frames_per_video: int = 48,
    size: int = 128,
    workers: int | None = None,
    scale: float = 1.3,
    smooth: int = 5,
    progress: bool = True,
    verify: bool = False,
) -> pd.DataFrame:
    """Crop the faces of your own REAL videos into a cache to train on: no FaceForensics++, no fakes needed.

    The faces are found and cropped exactly as :func:`prepare_pairs` does (one stream: each video as it is). The
    cache has the same layout and index, with real rows only (``method`` "original", ``label`` 0, ``lq`` equal to
    ``hq``: there is no LQ video). Train on it with fakes and LQ partners made on the fly
    (:func:`antiforge_lib.data.self_blend_dataloaders`, or ``TrainConfig(self_blend=True)``); validation then
    scores fixed self-blends of the "val" videos.

    Parameters
    ----------
    videos : folder, or sequence of video files
        A folder is searched (not recursively) for files ending in :data:`VIDEO_SUFFIXES`. Each file is one video;
        its name without the ending is its id, so names must be unique.
    out_dir : cache folder (``index.csv``, ``report.json``, ``config.json``, ``original/<id>/<frame>_hq.png``).
    val : float or sequence of str, default=0.2
        The videos held out for validation: a fraction of them (at least one when there are two or more; picked
        evenly from the sorted names), or their file names or ids. Hold out whole people where you can.
    frames_per_video, size, workers, scale, smooth, progress, verify
        As :func:`prepare_pairs`.

    Returns
    -------
    DataFrame
        One row per face crop, columns :data:`INDEX_COLUMNS`; ``attrs["report"]`` as :func:`prepare_pairs`.
    """
    folder = Path(videos) if isinstance(videos, (str, os.PathLike)) else None
    if folder is not None:
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder of videos")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"{folder}: no video files here (looked for {', '.join(VIDEO_SUFFIXES)})")
    else:
        files = sorted(Path(p) for p in videos)
        if not files:
            raise ValueError("videos is empty: give a folder or a list of video files")
    absent = [str(p) for p in files if not p.is_file()]
    if absent:
        raise FileNotFoundError(f"no such video file: {', '.join(absent[:3])}")
    ids = [p.stem for p in files]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ValueError(f"video names must be unique without their ending; repeated: {', '.join(twice)}")
    if isinstance(val, (int, float)) and not isinstance(val, bool):
        if not 0 <= val < 1:
            raise ValueError(f"val must be a fraction in [0, 1) or a list of videos, got {val}")
        n_val = max(1, round(val * len(files))) if val > 0 and len(files) > 1 else 0
        held = {ids[int(i)] for i in np.linspace(0, len(files) - 1, n_val).round()} if n_val else set()
    else:
        held = {Path(str(v)).stem for v in val}
        unknown = sorted(held - set(ids))
        if unknown:
            raise ValueError(f"val names videos that are not given: {', '.join(unknown)}")
    cfg = dict(source="videos", frames_per_video=int(frames_per_video), size=int(size), scale=scale, smooth=smooth)
    jobs = [
        ({"hq": str(p)}, asdict(Video(id=i, method="original", split="val" if i in held else "train")))
        for p, i in zip(files, ids, strict=True)
    ]
    return _build_cache(out_dir, cfg, jobs, workers, progress, verify=verify)
