"""Beyond c23/c40: how a detector holds up under other codecs and every compression strength.

Cao et al. (2021) test one codec at two points: H.264 at FaceForensics++'s c23 and c40 (Sec. 4.1, 4.3). This module
re-encodes the test split's source videos with H.264, HEVC, VP9, AV1 (PyAV's libx264, libx265, libvpx-vp9,
libsvtav1) or JPEG (Pillow's libjpeg, frame by frame) at any strength, and scores trained detectors on every point.

- :data:`CODECS` -- the registry: encoder, strength knob (CRF or JPEG quality), default sweep.
- :func:`encode`, :func:`decode`, :func:`roundtrip` -- a clip through a codec, in memory, with its size.
- :func:`prepare_point` -- one (codec, strength) point of a pair cache's test split: the source (c0) videos
  re-encoded whole, as FF++ did, then cropped at the SAME frames with the SAME boxes as the cache's HQ crops
  (read from its ``index.csv``), so every point scores the same faces; masks are the cache's own. Cached in
  ``<cache>/robustness/<codec>_<knob><strength>/`` and resumable, video by video.
- :func:`robustness_curve` -- models x points -> a tidy DataFrame (AUC, ACC at the model's fixed threshold, TAR@FAR,
  video AUC, bits per pixel), scored by :func:`antiforge_lib.run.evaluate_checkpoint` (so by
  :func:`antiforge_lib.metrics.evaluate`), and a results JSON with provenance. :func:`plot_robustness` draws it.

Bits per pixel (bpp) = encoded bytes x 8 / (frames x width x height), summed over the test videos: the codec's
payload (the packets of a video stream, the files of JPEG frames), not the container around it. It puts codecs on
one axis: two codecs compared at the same bpp spend the same bits.

In a point's index both ``hq`` and ``lq`` name the re-encoded crop, so every model -- a single-branch net trained
on HQ or LQ images, or the two-branch net, scored on its LQ branch as at test time -- sees the same re-encoded face.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import pandas as pd
from PIL import Image

from ._io import atomic_write, exclusive_lock, read_json, write_json
from .data.faces import crop_box
from .data.index import INDEX_COLUMNS, load_index
from .data.layout import FFPPLayout
from .data.pairs import resize_crop
from .data.video import LEVELS, iter_video, video_info

__all__ = [
    "Codec",
    "CODECS",
    "EncodedClip",
    "available_codecs",
    "get_codec",
    "encode",
    "decode",
    "roundtrip",
    "bits_per_pixel",
    "prepare_point",
    "prepare_points",
    "robustness_curve",
    "load_robustness",
    "plot_robustness",
    "metric_table",
    "save_figure",
    "METRICS",
]

#: The metrics of a curve, as :func:`antiforge_lib.metrics.evaluate` names them (fractions in [0, 1]).
METRICS = ("AUC", "ACC", "TAR@0.1%", "TAR@0.01%", "video_AUC")
_FORMAT = 1  # version of the results JSON


@dataclass(frozen=True)
class Codec:
    """One codec of the study.

    Attributes
    ----------
    name : short name ("h264", "hevc", "vp9", "av1", "jpeg").
    encoder : PyAV's encoder ("libx264", ...) or "pillow" (JPEG through Pillow's libjpeg).
    knob : the strength setting, "crf" (constant rate factor: higher = stronger compression) or "quality" (JPEG:
        higher = better quality).
    lo, hi : the knob's range (inclusive).
    container : PyAV container format of the video ("mp4", "webm"); None for JPEG frames.
    options : encoder options besides the knob (speed presets, log level).
    strengths : default sweep, from mild to strong compression.
    """

    name: str
    encoder: str
    knob: str
    lo: int
    hi: int
    container: str | None
    options: Mapping[str, str] = field(default_factory=dict)
    strengths: tuple[int, ...] = ()

    @property
    def stronger_is_higher(self) -> bool:
        """True when a higher knob value compresses more (CRF), False for JPEG quality."""
        return self.knob == "crf"

    def check(self, strength) -> int:
        """``strength`` as an int in the knob's range, or a one-line ValueError."""
        if (
            isinstance(strength, bool)
            or not isinstance(strength, (int, np.integer))
            or not (self.lo <= strength <= self.hi)
        ):
            raise ValueError(f"{self.name}: {self.knob} must be an integer in {self.lo}..{self.hi}, got {strength!r}")
        return int(strength)

    def label(self, strength: int) -> str:
        """E.g. ``"h264 crf 40"``, ``"jpeg quality 30"``."""
        return f"{self.name} {self.knob} {strength}"


#: The study's codecs. CRF scales differ: x264/x265 0..51, VP9 and SVT-AV1 0..63 (1..63); JPEG quality 1..95.
CODECS: Mapping[str, Codec] = {
    "h264": Codec("h264", "libx264", "crf", 0, 51, "mp4", {}, (23, 32, 40, 46)),
    "hevc": Codec("hevc", "libx265", "crf", 0, 51, "mp4", {"x265-params": "log-level=error"}, (23, 32, 40, 46)),
    "vp9": Codec(
        "vp9", "libvpx-vp9", "crf", 0, 63, "webm", {"b": "0", "deadline": "good", "cpu-used": "4"}, (31, 45, 55, 63)
    ),
    "av1": Codec("av1", "libsvtav1", "crf", 1, 63, "mp4", {"preset": "8"}, (30, 45, 55, 63)),
    "jpeg": Codec("jpeg", "pillow", "quality", 1, 95, None, {}, (90, 50, 20, 5)),
}


def available_codecs() -> list[str]:
    """The names of :data:`CODECS` whose encoder this installation has (Pillow's JPEG always)."""
    return [n for n, c in CODECS.items() if c.encoder == "pillow" or c.encoder in av.codecs_available]


def get_codec(name) -> Codec:
    """The :class:`Codec` called ``name``; a one-line ValueError for an unknown one or one the local PyAV lacks."""
    have = ", ".join(available_codecs())
    if isinstance(name, Codec):
        name = name.name
    if name not in CODECS:
        raise ValueError(f"unknown codec {name!r}; available here: {have}")
    codec = CODECS[name]
    if name not in available_codecs():
        raise ValueError(
            f"codec {name!r} needs the encoder {codec.encoder}, which this PyAV ({av.__version__}) lacks; "
            f"available here: {have}"
        )
    return codec


@dataclass(frozen=True)
class EncodedClip:
    """An encoded clip in memory: ``chunks`` (one container file, or one JPEG file per frame), ``nbytes`` (the
    payload in bytes: the video stream's packets as the container stores them, or the JPEG files), ``frames``,
    ``height``, ``width`` (pixels)."""

    codec: str
    strength: int
    chunks: tuple[bytes, ...]
    nbytes: int
    frames: int
    height: int
    width: int

    @property
    def bpp(self) -> float:
        """Bits per pixel: ``nbytes * 8 / (frames * height * width)``."""
        return bits_per_pixel(self.nbytes, self.frames, self.height, self.width)


def bits_per_pixel(nbytes: int, frames: int, height: int, width: int) -> float:
    """``nbytes * 8 / (frames * height * width)``: encoded bits per pixel of the video (pixels counted once per
    frame, not per colour channel)."""
    pixels = int(frames) * int(height) * int(width)
    if pixels <= 0:
        raise ValueError(f"need frames, height, width >= 1, got {frames}, {height}, {width}")
    return int(nbytes) * 8 / pixels


def _frame(frame) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 RGB (H, W, 3), got {frame.dtype} {frame.shape}")
    return frame


def encode(frames: Iterable[np.ndarray], codec, strength: int, fps: int = 30) -> EncodedClip:
    """Encode ``frames`` (an iterable of ``(H, W, 3)`` uint8 RGB, or an array ``(T, H, W, 3)``) as ONE clip.

    Videos are encoded whole (inter-frame prediction included) with 4:2:0 chroma, in memory; JPEG encodes each
    frame on its own (Pillow, ``quality=strength``, its default 4:2:0 subsampling). Frames stream through: only
    the encoded bytes are kept.
    """
    codec = get_codec(codec)
    strength = codec.check(strength)
    it = iter(frames)
    try:
        first = _frame(next(it))
    except StopIteration:
        raise ValueError("frames is empty: a clip needs at least one frame") from None
    h, w = first.shape[:2]
    if codec.encoder == "pillow":
        chunks = []
        for f in _chain(first, it):
            buf = io.BytesIO()
            Image.fromarray(_same_size(f, h, w)).save(buf, format="JPEG", quality=strength)
            chunks.append(buf.getvalue())
        return EncodedClip(codec.name, strength, tuple(chunks), sum(map(len, chunks)), len(chunks), h, w)
    if h % 2 or w % 2:
        raise ValueError(f"{codec.name} with 4:2:0 chroma needs even frame sizes, got {h}x{w}")
    buf, n = io.BytesIO(), 0
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration to stderr otherwise
    with av.open(buf, mode="w", format=codec.container) as container:
        stream = container.add_stream(codec.encoder, rate=fps, options={**codec.options, codec.knob: str(strength)})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for f in _chain(first, it):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(_same_size(f, h, w), format="rgb24")))
            n += 1
        container.mux(stream.encode())
    nbytes = _video_payload(io.BytesIO(buf.getvalue()))
    return EncodedClip(codec.name, strength, (buf.getvalue(),), nbytes, n, h, w)


def _chain(first, rest) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def _same_size(frame, h: int, w: int) -> np.ndarray:
    frame = _frame(frame)
    if frame.shape[:2] != (h, w):
        raise ValueError(f"all frames must have one size; got {frame.shape[:2]} after {(h, w)}")
    return frame


def decode(clip: EncodedClip) -> Iterator[np.ndarray]:
    """The frames of ``clip`` in order, ``(H, W, 3)`` uint8 RGB, one at a time."""
    if get_codec(clip.codec).encoder == "pillow":
        for chunk in clip.chunks:
            with Image.open(io.BytesIO(chunk)) as im:
                yield np.asarray(im.convert("RGB"))
        return
    with av.open(io.BytesIO(clip.chunks[0]), mode="r") as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


def roundtrip(frames, codec, strength: int, fps: int = 30) -> tuple[np.ndarray, EncodedClip]:
    """Encode ``frames`` ``(T, H, W, 3)`` uint8 and decode them back: ``(decoded (T, H, W, 3), EncodedClip)``."""
    clip = encode(frames, codec, strength, fps)
    return np.stack(list(decode(clip))), clip


# ---------------------------------------------------------------------------------------------------------------
# Points of a pair cache


def _point_name(codec: Codec, strength: int) -> str:
    return f"{codec.name}_{codec.knob}{strength}"


def _test_rows(pairs: Path, split: str) -> pd.DataFrame:
    index = load_index(pairs)
    rows = index[index["split"] == split].reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"{pairs / 'index.csv'}: no rows of split {split!r} (it has {sorted(set(index['split']))})")
    return rows


def _relative(paths: Iterable[str], start: Path) -> list[str]:
    return [os.path.relpath(p, start) for p in paths]


def _write_index(out: Path, rows: pd.DataFrame, crops: list[str]) -> pd.DataFrame:
    """The point's ``index.csv``: the cache's rows; ``hq`` and ``lq`` both the point's crop, ``mask`` the cache's."""
    view = rows[INDEX_COLUMNS].copy()
    view["hq"] = view["lq"] = _relative(crops, out)
    view["mask"] = _relative(view["mask"], out)
    atomic_write(out / "index.csv", lambda tmp: view.to_csv(tmp, index=False))
    return load_index(out)


def _source(layout: FFPPLayout, method: str, video: str, level: str) -> Path:
    return layout.video_path(video, method=method, level=level)


def _video_payload(file) -> int:
    """Bytes of the packets of a video file's (a path or a file object) first video stream, as its container stores
    them: the payload, without the container's own headers and index."""
    with av.open(file if isinstance(file, io.IOBase) else str(file)) as container:
        return sum(p.size for p in container.demux(video=0) if p.size)


#: Decoded source videos up to this many bytes are held in memory and encoded at every point from there; longer
#: ones are decoded again for each point (FF++ videos run to 1.4 GB of RGB frames at 720p).
_HOLD_BYTES = 1 << 30


def _source_frames(src: Path, info):
    """A callable giving ``src``'s frames anew each time: decoded once and held, if small enough."""
    if info.frames * info.height * info.width * 3 <= _HOLD_BYTES:
        held = [f for _, f in iter_video(src)]
        return lambda: iter(held)
    return lambda: (f for _, f in iter_video(src))


def _crop_video(frames, fps: int, rows: pd.DataFrame, codec: Codec, strength: int, size: int, out: Path) -> dict:
    """Encode one source video whole, decode it and write the crops of ``rows`` (its frames and boxes); returns the
    clip's sizes."""
    clip = encode(frames, codec, strength, fps=fps)
    wanted = {int(r.frame): r for r in rows.itertuples()}
    written = 0
    for n, frame in enumerate(decode(clip)):
        r = wanted.get(n)
        if r is None:
            continue
        rel = f"{r.method}/{r.video}/{n:04d}.png"
        crop = resize_crop(np.ascontiguousarray(crop_box(frame, (r.x0, r.y0, r.x1, r.y1))), size)
        atomic_write(out / rel, lambda tmp, crop=crop: crop.save(tmp, format="PNG"))
        written += 1
    if written != len(wanted):
        first = rows.iloc[0]
        raise ValueError(f"{out}: the {codec.name} clip of {first.method}/{first.video} decoded to too few frames")
    return {"nbytes": clip.nbytes, "frames": clip.frames, "height": clip.height, "width": clip.width}


def prepare_point(
    pairs,
    root,
    codec,
    strength: int,
    *,
    split: str = "test",
    source: str = "c0",
    out_dir=None,
    progress: bool = False,
) -> pd.DataFrame:
    """One (codec, strength) point of a pair cache's ``split``: its pair index, built on first use.

    Parameters
    ----------
    pairs : path
        A pair cache of :func:`~antiforge_lib.data.pairs.prepare_pairs` (``index.csv``, ``config.json``).
    root : path
        The FaceForensics++-shaped tree the cache was cropped from.
    codec, strength : a name of :data:`CODECS` and its knob's value (CRF, or JPEG quality).
    split : the cache's split to re-encode (the test split).
    source : the level re-encoded, whole: "c0" (FF++'s raw videos, default).
    out_dir : where points go (default ``<pairs>/robustness``); this point is ``<out_dir>/<codec>_<knob><strength>``.
    progress : a progress bar over the videos.

    Returns
    -------
    DataFrame
        As :func:`~antiforge_lib.data.index.load_index`: the cache's ``split`` rows in its order, same frames and
        boxes, ``hq`` and ``lq`` the point's crops (PNG, the cache's size), ``mask`` the cache's. ``attrs["point"]``:
        ``codec, knob, strength, bpp, nbytes, pixels, videos`` (bytes per video); ``attrs["folder"]``: the point's
        folder (a pair cache of its own: ``index.csv`` and the crops).

    A video's crops are written atomically, then its ``_done.json``; a rerun skips finished videos (and a finished
    point entirely), so a killed run resumes. :func:`prepare_points` builds several points and decodes each source
    video once for all of them.
    """
    return prepare_points(
        pairs, root, [(codec, strength)], split=split, source=source, out_dir=out_dir, progress=progress
    )[0]


def prepare_points(
    pairs, root, points, *, split: str = "test", source: str = "c0", out_dir=None, progress: bool = False
) -> list[pd.DataFrame]:
    """:func:`prepare_point` for each ``(codec, strength)`` of ``points``, in order; each source video is decoded
    once and encoded at every point that lacks it. Returns one pair index per point."""
    plan = []
    for codec, strength in points:
        codec = get_codec(codec)
        plan.append((codec, codec.check(strength)))  # every point checked before any work
    pairs = Path(pairs)
    cfg = read_json(pairs / "config.json") if (pairs / "config.json").is_file() else {}
    if "size" not in cfg:
        raise FileNotFoundError(f"{pairs / 'config.json'}: missing or without 'size'; is {pairs} a pair cache?")
    size = int(cfg["size"])
    rows = _test_rows(pairs, split)
    layout = FFPPLayout(root, splits={})
    out_dir = Path(out_dir or pairs / "robustness")
    groups = list(rows.groupby(["method", "video"], sort=False))
    sources = {}
    for method, video in (key for key, _ in groups):
        src = _source(layout, method, video, source)
        if not src.is_file():
            raise FileNotFoundError(f"{src}: no such source video for {method}/{video} (level {source})")
        sources[(method, video)] = src

    results = {}
    with contextlib.ExitStack() as locks:
        todo = []  # (point, out, meta, {video: want}) of the points not finished before
        for codec, strength in plan:
            out = out_dir / _point_name(codec, strength)
            if out in (t[1] for t in todo) or (codec.name, strength) in results:
                continue
            out.mkdir(parents=True, exist_ok=True)
            locks.enter_context(exclusive_lock(out / ".lock"))  # one builder per point folder
            meta = {
                "codec": codec.name,
                "encoder": codec.encoder,
                "knob": codec.knob,
                "strength": strength,
                "options": dict(codec.options),
                "source": source,
                "split": split,
                "size": size,
                "pyav": av.__version__,
            }
            done_file = out / "point.json"
            if done_file.is_file() and (out / "index.csv").is_file():
                done = read_json(done_file)
                if done.get("meta") == meta and done.get("rows") == len(rows):
                    index = load_index(out)
                    index.attrs.update(point=done["point"], folder=str(out))
                    results[(codec.name, strength)] = index
                    continue
            todo.append(((codec, strength), out, meta))

        sizes = {t[1]: {} for t in todo}
        for (method, video), grp in _bar(groups, progress and bool(todo), f"{len(todo)} point(s)"):
            src = sources[(method, video)]
            stat = [src.stat().st_size, src.stat().st_mtime_ns]
            frames = None
            for (codec, strength), out, meta in todo:
                marker = out / method / video / "_done.json"
                want = {"meta": meta, "source": stat, "frames": grp["frame"].tolist(), "boxes": _boxes(grp)}
                if marker.is_file():
                    old = read_json(marker)
                    if {k: old.get(k) for k in want} == want and all(
                        (out / f"{method}/{video}/{int(n):04d}.png").is_file() for n in grp["frame"]
                    ):
                        sizes[out][f"{method}/{video}"] = old["size"]
                        continue
                if frames is None:
                    info = video_info(src)
                    _check_boxes(src, info, grp)
                    frames = _source_frames(src, info)
                size_ = _crop_video(frames(), round(info.fps) or 30, grp, codec, strength, size, out)
                write_json(marker, {**want, "size": size_})
                sizes[out][f"{method}/{video}"] = size_

        for (codec, strength), out, meta in todo:
            videos = sizes[out]
            crops = [str(out / f"{r.method}/{r.video}/{int(r.frame):04d}.png") for r in rows.itertuples()]
            index = _write_index(out, rows, crops)
            nbytes = sum(v["nbytes"] for v in videos.values())
            pixels = sum(v["frames"] * v["height"] * v["width"] for v in videos.values())
            point = {
                "codec": codec.name,
                "knob": codec.knob,
                "strength": strength,
                "bpp": nbytes * 8 / pixels,
                "nbytes": nbytes,
                "pixels": pixels,
                "videos": {k: v["nbytes"] for k, v in videos.items()},
            }
            write_json(out / "point.json", {"meta": meta, "rows": len(rows), "point": point})
            index.attrs.update(point=point, folder=str(out))
            results[(codec.name, strength)] = index
    return [results[(c.name, s)] for c, s in plan]


def _check_boxes(src: Path, info, rows: pd.DataFrame) -> None:
    bad = rows[(rows["frame"] >= info.frames) | (rows["x1"] > info.width) | (rows["y1"] > info.height)]
    if len(bad):
        raise ValueError(
            f"{src}: frame {int(bad['frame'].iloc[0])} or its box in the pair cache lies outside this video "
            f"({info.frames} frames, {info.width}x{info.height}); is it the source of the cache's crops?"
        )


def _boxes(grp: pd.DataFrame) -> list[list[int]]:
    return grp[["x0", "y0", "x1", "y1"]].astype(int).to_numpy().tolist()


def _bar(items, progress: bool, desc: str):
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="video", disable=not progress, leave=False)


def _reference_point(pairs: Path, root, level: str, split: str, out_dir) -> pd.DataFrame:
    """The cache's own crops at ``level`` (its "hq" or "lq" level, e.g. c40) as a point: ``hq = lq =`` those crops;
    bpp from the payload of the level's videos of ``split``."""
    cfg = read_json(pairs / "config.json")
    key = next((k for k in ("hq", "lq") if cfg.get(k) == level), None)
    if key is None:
        raise ValueError(f"{pairs}: the cache holds {cfg.get('hq')} and {cfg.get('lq')} crops, not {level}")
    rows = _test_rows(pairs, split)
    layout = FFPPLayout(root, splits={})
    out = Path(out_dir or pairs / "robustness") / f"cache_{level}"
    out.mkdir(parents=True, exist_ok=True)
    nbytes = pixels = 0
    for (method, video), _ in rows.groupby(["method", "video"], sort=False):
        src = _source(layout, method, video, level)
        info = video_info(src)
        nbytes += _video_payload(src)
        pixels += info.frames * info.height * info.width
    index = _write_index(out, rows, list(rows[key]))
    index.attrs["point"] = {
        "codec": level,
        "knob": "crf",
        "strength": LEVELS[level],
        "bpp": nbytes * 8 / pixels,
        "nbytes": nbytes,
        "pixels": pixels,
    }
    index.attrs["folder"] = str(out)
    return index


# ---------------------------------------------------------------------------------------------------------------
# Curves


def _strengths_for(codec: Codec, strengths) -> list[int]:
    if strengths is None:
        return list(codec.strengths)
    if isinstance(strengths, Mapping):
        return [codec.check(s) for s in strengths.get(codec.name, codec.strengths)]
    return [codec.check(s) for s in strengths]


def _model_labels(models) -> dict[str, str]:
    if isinstance(models, Mapping):
        return {str(k): str(v) for k, v in models.items()}
    if isinstance(models, (str, os.PathLike)):
        models = [models]
    labels = {}
    for m in models:
        p = Path(m)
        label = p.name if p.is_dir() else p.parent.name or p.stem
        labels[label if label not in labels else str(p)] = str(p)
    return labels


def robustness_curve(
    models,
    codecs: Sequence[str] = ("h264", "hevc", "vp9", "av1", "jpeg"),
    strengths=None,
    *,
    pairs,
    root,
    split: str = "test",
    reference: Sequence[str] = ("c40",),
    out_dir=None,
    results=None,
    batch_size: int | None = None,
    device=None,
    progress: bool = False,
    command: str | None = None,
) -> pd.DataFrame:
    """Score trained detectors on every (codec, strength) point of a pair cache's test split.

    Parameters
    ----------
    models : mapping ``{label: checkpoint}`` or sequence of checkpoints
        Run folders, ``detector.pth`` or ``checkpoint.pth`` files (:func:`antiforge_lib.run.load_detector`);
        a sequence is labelled by the run folders' names.
    codecs : names of :data:`CODECS`.
    strengths : None (each codec's default sweep), a sequence (for every codec), or ``{codec: [...]}``.
    pairs, root : the pair cache and the FaceForensics++-shaped tree it was cropped from (see :func:`prepare_point`).
    split : the split scored ("test").
    reference : levels of the cache's own crops scored as reference points (default its "c40" LQ crops;
        ``()`` for none), drawn as markers by :func:`plot_robustness`.
    out_dir : where points are cached (default ``<pairs>/robustness``).
    results : path of the results JSON (default ``<out_dir>/robustness.json``); written atomically, with provenance.
    batch_size, device, progress : as :func:`antiforge_lib.run.evaluate_checkpoint`.
    command : the command line recorded in the provenance (default this process's ``sys.argv``).

    Returns
    -------
    DataFrame, one row per (model, point)
        ``model, codec, knob, strength, bpp`` and :data:`METRICS` (fractions), ``threshold`` (the model's fixed
        decision threshold, for ACC), ``n_real, n_fake``; reference rows have ``codec`` = the level ("c40"). Rows in
        the order models x (references, then codecs x strengths as given). ``attrs["results"]``: the JSON's path.
    """
    from .provenance import provenance
    from .run import evaluate_checkpoint

    labels = _model_labels(models)
    chosen = [get_codec(c) for c in codecs]  # every codec checked before any work
    plan = [(c, s) for c in chosen for s in _strengths_for(c, strengths)]
    pairs = Path(pairs)
    out_dir = Path(out_dir or pairs / "robustness")
    points = [_reference_point(pairs, root, level, split, out_dir) for level in reference]
    points += [prepare_point(pairs, root, c, s, split=split, out_dir=out_dir, progress=progress) for c, s in plan]
    rows = []
    for label, ckpt in labels.items():
        for index in points:
            point = index.attrs["point"]
            folder = index.attrs["folder"]
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r".*FAR.*")  # a few dozen reals cannot resolve 0.01%
                metrics, info = evaluate_checkpoint(
                    ckpt, folder, split, batch_size=batch_size, device=device, progress=False
                )
            rows.append(
                {
                    "model": label,
                    "codec": point["codec"],
                    "knob": point["knob"],
                    "strength": point["strength"],
                    "bpp": point["bpp"],
                    **{m: metrics[m] for m in METRICS},
                    "threshold": info["threshold"],
                    "n_real": metrics["n_real"],
                    "n_fake": metrics["n_fake"],
                }
            )
    df = pd.DataFrame(rows)
    for m in METRICS:
        df[m] = df[m].astype(float)
    results = Path(results) if results is not None else out_dir / "robustness.json"
    write_json(
        results,
        {
            "format": _FORMAT,
            "models": labels,
            "pairs": str(pairs),
            "root": str(root),
            "split": split,
            "codecs": {c.name: {"encoder": c.encoder, "knob": c.knob, "options": dict(c.options)} for c in chosen},
            "pyav": av.__version__,
            "units": {"bpp": "bits per pixel", "metrics": "fraction in [0, 1]"},
            "rows": df.to_dict("records"),
            "provenance": provenance(command=command, device=device),
        },
    )
    df.attrs["results"] = str(results)
    return df


def load_robustness(path) -> pd.DataFrame:
    """The DataFrame of :func:`robustness_curve` again, from its results JSON (e.g. copied from a GPU run)."""
    rec = read_json(path)
    if "rows" not in rec:
        raise ValueError(f"{path}: not a robustness results file (no 'rows')")
    df = pd.DataFrame(rec["rows"])
    for m in METRICS:
        df[m] = df[m].astype(float)
    df.attrs["results"] = str(path)
    df.attrs["provenance"] = rec.get("provenance", {})
    return df


def metric_table(df: pd.DataFrame, metric: str = "AUC") -> pd.DataFrame:
    """``metric`` in percent, one row per point (``codec, strength``, in the order of ``df``), one column per model,
    after a ``bpp`` column."""
    order = pd.MultiIndex.from_frame(df[["codec", "strength"]].drop_duplicates())
    table = df.pivot_table(index=["codec", "strength"], columns="model", values=metric).reindex(order).mul(100)
    table.insert(0, "bpp", df.groupby(["codec", "strength"]).bpp.first().reindex(order))
    return table[["bpp", *dict.fromkeys(df["model"])]]


def plot_robustness(df: pd.DataFrame, metric: str = "AUC", title: str | None = None):
    """Plotly figure: ``metric`` (percent) against bits per pixel (log axis), one panel per codec, one line per model;
    reference points (the cache's own levels) as star markers in every panel.

    Returns a ``plotly.graph_objects.Figure``.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if metric not in df.columns:
        raise ValueError(f"metric must be one of {[m for m in METRICS if m in df.columns]}, got {metric!r}")
    codecs = [c for c in dict.fromkeys(df["codec"]) if c in CODECS]
    refs = df[~df["codec"].isin(CODECS)]
    models = list(dict.fromkeys(df["model"]))
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    fig = make_subplots(rows=1, cols=max(1, len(codecs)), subplot_titles=codecs, shared_yaxes=True)
    for j, codec in enumerate(codecs, start=1):
        for i, model in enumerate(models):
            d = df[(df["codec"] == codec) & (df["model"] == model)].sort_values("bpp")
            color = palette[i % len(palette)]
            fig.add_trace(
                go.Scatter(
                    x=d["bpp"],
                    y=100 * d[metric],
                    mode="lines+markers",
                    name=model,
                    legendgroup=model,
                    showlegend=j == 1,
                    line=dict(color=color),
                    text=[f"{d['knob'].iloc[0]} {s}" for s in d["strength"]] if len(d) else None,
                    hovertemplate=f"{model}<br>{codec} " + "%{text}<br>%{x:.4f} bpp<br>" + metric + " %{y:.1f}%"
                    "<extra></extra>",
                ),
                row=1,
                col=j,
            )
            r = refs[refs["model"] == model]
            if len(r):
                fig.add_trace(
                    go.Scatter(
                        x=r["bpp"],
                        y=100 * r[metric],
                        mode="markers",
                        marker=dict(symbol="star", size=11, color=color),
                        name=f"{model}: cache " + ", ".join(r["codec"]),
                        legendgroup=model,
                        showlegend=False,
                        text=list(r["codec"]),
                        hovertemplate=f"{model}<br>" + "cache %{text}<br>%{x:.4f} bpp<br>" + metric + " %{y:.1f}%"
                        "<extra></extra>",
                    ),
                    row=1,
                    col=j,
                )
        fig.update_xaxes(type="log", title_text="bits per pixel", row=1, col=j)
    fig.update_yaxes(title_text=f"{metric} (%)", row=1, col=1)
    fig.update_layout(
        title=title or f"{metric} against bits per pixel (stars: the pair cache's own crops)",
        height=380,
        width=max(600, 250 * max(1, len(codecs))),
    )
    return fig


def save_figure(df: pd.DataFrame, path, metric: str = "AUC") -> Path:
    """Write :func:`plot_robustness` of ``df`` as a self-contained HTML file (plotly.js inside; opens offline),
    atomically. Returns the path."""
    fig = plot_robustness(df, metric)
    return atomic_write(path, lambda tmp: fig.write_html(str(tmp), include_plotlyjs=True))
