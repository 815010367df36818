"""H.264 the way FaceForensics++ compressed its videos, through PyAV's bundled libx264.

FaceForensics++ encoded every video with x264 at a constant rate factor:
CRF 23 for "c23" (HQ), CRF 40 for "c40" (LQ), and lossless for "c0". Whole
videos are compressed, never single frames, because inter-frame prediction is
part of what c40 does to a face.

Frames are ``uint8`` arrays ``(T, H, W, 3)`` in RGB order throughout.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from .._io import atomic_write

__all__ = [
    "LEVELS",
    "VideoError",
    "VideoInfo",
    "encode_video",
    "iter_video",
    "read_video",
    "video_info",
    "h264_roundtrip",
]

#: FaceForensics++ compression levels and their x264 constant rate factors.
LEVELS = {"c0": 0, "c23": 23, "c40": 40}


class VideoError(ValueError):
    """A video file is missing, unreadable or not what was expected."""


@dataclass(frozen=True)
class VideoInfo:
    frames: int
    height: int
    width: int
    fps: float


def _crf(level) -> int:
    if isinstance(level, str):
        if level not in LEVELS:
            raise ValueError(f"compression level must be one of {sorted(LEVELS)} or a CRF 0..51, got {level!r}")
        return LEVELS[level]
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 0 <= level <= 51:
        raise ValueError(f"CRF must be an integer in 0..51 (x264's scale), got {level!r}")
    return int(level)


def _check_frames(frames) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 RGB of shape (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if len(frames) == 0:
        raise ValueError("frames is empty: a video needs at least one frame")
    return frames


def _encode(frames: np.ndarray, target, crf: int, fps: int) -> None:
    t, h, w, _ = frames.shape
    # CRF 0 in libx264rgb is exactly lossless in RGB (FF++'s c0); yuv420p needs even sizes.
    codec, pix_fmt = ("libx264rgb", "rgb24") if crf == 0 else ("libx264", "yuv420p")
    if pix_fmt == "yuv420p" and (h % 2 or w % 2):
        raise ValueError(f"H.264 with 4:2:0 chroma needs even frame sizes, got {h}x{w}; crop one row/column first")
    with av.open(target, mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps, options={"crf": str(crf)})
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def encode_video(frames, path, level="c23", fps: int = 30) -> Path:
    """Write ``frames`` ``(T, H, W, 3)`` uint8 RGB to an MP4 at ``level``.

    level : ``"c0"`` (lossless, libx264rgb CRF 0), ``"c23"``, ``"c40"``, or an
        integer CRF 0..51 (libx264, 4:2:0 chroma).
    The file appears atomically: it is written beside ``path`` and renamed.
    Returns ``path`` as a ``Path``.
    """
    frames = _check_frames(frames)
    crf = _crf(level)
    return atomic_write(path, lambda tmp: _encode(frames, str(tmp), crf, fps))  # format="mp4": the name is not read


def _open(path):
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path}: no such video file")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as e:
        raise VideoError(f"{path}: not a readable video ({e})") from e
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: contains no video stream")
    return container


def iter_video(path, indices=None):
    """Yield ``(n, frame)`` for frame numbers ``n`` in ``indices`` (all if None), decoding as it goes.

    Frames are ``(H, W, 3)`` uint8 RGB. Only one decoded frame is held at a
    time, so long, large videos stream from disk. Raises :class:`VideoError`
    naming the file when it is missing or corrupt, or when an index is past the end.
    """
    wanted = None if indices is None else sorted({int(i) for i in indices})
    k = 0
    with _open(path) as container:
        try:
            for n, frame in enumerate(container.decode(video=0)):
                if wanted is not None and k == len(wanted):
                    return
                if wanted is None or n == wanted[k]:
                    k += 1
                    yield n, frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as e:
            raise VideoError(f"{path}: decoding failed after {k} frames ({e})") from e
    if wanted is not None and k < len(wanted):
        raise VideoError(f"{path}: asked for frame {wanted[k]}, but the video ends before it")
    if k == 0:
        raise VideoError(f"{path}: no frames could be decoded")


def read_video(path, indices=None) -> np.ndarray:
    """Decode a video into ``(T, H, W, 3)`` uint8 RGB frames.

    indices : optional frame numbers to keep (0-based, returned in increasing
        order); the others are decoded (H.264 needs them for prediction) but
        not stored. Errors as :func:`iter_video`.
    """
    return np.stack([f for _, f in iter_video(path, indices)])


def video_info(path) -> VideoInfo:
    """Frame count, size and frame rate of a video. Counts frames by
    demuxing packets when the container does not record the count."""
    with _open(path) as container:
        stream = container.streams.video[0]
        h, w = stream.codec_context.height, stream.codec_context.width
        fps = float(stream.average_rate or stream.base_rate or 0)
        frames = stream.frames
        if not frames:
            try:
                frames = sum(1 for p in container.demux(stream) if p.size)
            except av.error.FFmpegError as e:
                raise VideoError(f"{path}: could not count frames ({e})") from e
    if frames == 0 or h == 0:
        raise VideoError(f"{path}: empty or unreadable video stream")
    return VideoInfo(frames=int(frames), height=int(h), width=int(w), fps=fps)


def h264_roundtrip(frames, crf="c40", fps: int = 30, return_size: bool = False):
    """Compress ``frames`` ``(T, H, W, 3)`` uint8 as ONE video and decode it back.

    crf : ``"c0"``, ``"c23"``, ``"c40"`` or an integer CRF. Everything happens
    in memory. Returns the decoded frames, and the encoded size in bytes too
    when ``return_size`` is true.
    """
    frames = _check_frames(frames)
    buf = io.BytesIO()
    _encode(frames, buf, _crf(crf), fps)
    size = buf.tell()
    buf.seek(0)
    with av.open(buf, mode="r") as container:
        out = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    return (out, size) if return_size else out
