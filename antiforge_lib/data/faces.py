"""Face boxes for cropping: detection, the x1.3 square box, smoothing, clamping; and :func:`face_crops`, the one
pipeline that puts them together for the pair cache and for the detector.

FaceForensics++ cropped faces with dlib's HOG frontal-face detector; so do we
(``dlib-bin`` ships the detector inside its wheel, no download). Boxes are
``(x0, y0, x1, y1)`` in pixels, x to the right, y down, right/bottom exclusive.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .video import iter_video

__all__ = ["detect_face", "square_box", "smooth_boxes", "clamp_box", "crop_box", "face_crops"]


@lru_cache(maxsize=1)
def _detector():
    try:
        import dlib
    except ImportError as e:  # pragma: no cover - dlib-bin is a dependency
        raise ImportError("face detection needs dlib: pip install dlib-bin") from e
    return dlib.get_frontal_face_detector()


def detect_face(frame: np.ndarray, upsample: int | None = None):
    """The largest face in ``frame`` ``(H, W, 3)`` uint8 RGB, as ``(x0, y0, x1, y1)``, or None.

    upsample : dlib's image-pyramid upsampling. By default the frame is
        searched as it is (faces from ~80 px) and, if no face is found in a
        frame under 600 px on its short side, once more upsampled x2 (faces
        from ~40 px): small faces are found without slowing the common case.
    """
    frame = np.ascontiguousarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be uint8 RGB (H, W, 3), got {frame.dtype} {frame.shape}")
    tries = [upsample] if upsample is not None else [0, 1] if min(frame.shape[:2]) < 600 else [0]
    for up in tries:
        rects = _detector()(frame, up)
        if len(rects):
            r = max(rects, key=lambda r: r.width() * r.height())
            return (r.left(), r.top(), r.right() + 1, r.bottom() + 1)
    return None


def square_box(box, scale: float = 1.3):
    """The square of side ``scale`` x the box's longer side, on the same centre (floats)."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * scale
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def smooth_boxes(boxes: np.ndarray, window: int = 5) -> np.ndarray:
    """Moving average of boxes ``(N, 4)`` over ``window`` neighbouring detections.

    Rows with NaN (no face) stay NaN and do not enter their neighbours' average.
    Smoothing keeps the crop from jittering from frame to frame.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {boxes.shape}")
    valid = ~np.isnan(boxes).any(axis=1)
    out = np.full_like(boxes, np.nan)
    half = max(window, 1) // 2
    for i in np.flatnonzero(valid):
        lo, hi = max(0, i - half), min(len(boxes), i + half + 1)
        out[i] = boxes[lo:hi][valid[lo:hi]].mean(axis=0)
    return out


def clamp_box(box, height: int, width: int):
    """Integer square box inside a ``height`` x ``width`` image.

    The square is shifted (not squeezed) back inside the image; only a box
    larger than the image is shrunk to the image's shorter side.
    """
    x0, y0, x1, y1 = box
    side = int(round(min(x1 - x0, y1 - y0, height, width)))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = int(round(min(max(cx - side / 2, 0), width - side)))
    top = int(round(min(max(cy - side / 2, 0), height - side)))
    return (left, top, left + side, top + side)


def crop_box(frame: np.ndarray, box) -> np.ndarray:
    """``frame[y0:y1, x0:x1]`` for an integer box inside the frame."""
    x0, y0, x1, y1 = box
    return frame[y0:y1, x0:x1]


def _frames(video, indices):
    """``(n, frame)`` for frame numbers ``indices`` (all if None) of a video file, or of an array ``(T, H, W, 3)``."""
    if isinstance(video, np.ndarray):
        return ((int(n), video[n]) for n in (range(len(video)) if indices is None else indices))
    return iter_video(video, indices)


def face_crops(videos, indices=None, scale: float = 1.3, smooth: int = 5):
    """Crop the face out of frames ``indices`` of one or more videos that show the same frames (HQ, LQ, mask).

    The one face-crop pipeline, of the pair cache (:func:`~antiforge_lib.data.pairs.prepare_pairs`) and of the
    detector (:func:`antiforge_lib.detect.detect`), in two passes that hold one decoded frame at a time:

    1. on each frame of ``videos[0]``, the largest face (:func:`detect_face`), squared and enlarged ``scale`` times
       on its centre (:func:`square_box`); the boxes are then averaged over ``smooth`` neighbouring sampled frames
       (:func:`smooth_boxes`), so that the crop does not jitter;
    2. every video decoded again, in lockstep: each frame's box, clamped inside the frame (:func:`clamp_box`), cuts
       the same square out of every video, so that the crops stay pixel-aligned.

    Parameters
    ----------
    videos : sequence of video paths or of uint8 RGB arrays ``(T, H, W, 3)``
        The same frames at the same size in each (e.g. FF++'s c23, c40 and mask videos of one clip); faces are
        found on the first. An image is a one-frame array, ``image[None]``.
    indices : increasing frame numbers (0-based), optional
        The frames to crop; default all.
    scale : float
        Box enlargement, 1.3 as FaceForensics++.
    smooth : int
        Smoothing window, in sampled frames.

    Yields
    ------
    ``(n, box, crops)`` per frame, in order: ``n`` the frame number; ``box`` the integer ``(x0, y0, x1, y1)`` in
    pixels of the frame, or None where no face was found; ``crops`` a tuple of uint8 arrays ``(s, s, 3)`` (copies,
    ``s = x1 - x0``), one per video, or None with no face. Reading errors
    (:class:`~antiforge_lib.data.video.VideoError`) are raised as they occur.
    """
    boxes = []
    for _, frame in _frames(videos[0], indices):
        found = detect_face(frame)
        boxes.append((np.nan,) * 4 if found is None else square_box(found, scale))
    boxes = smooth_boxes(np.array(boxes, dtype=np.float64).reshape(-1, 4), smooth)
    for j, frames in enumerate(zip(*(_frames(v, indices) for v in videos), strict=True)):
        n, first = frames[0]
        if np.isnan(boxes[j]).any():
            yield int(n), None, None
            continue
        box = clamp_box(boxes[j], *first.shape[:2])
        yield int(n), box, tuple(np.ascontiguousarray(crop_box(frame, box)) for _, frame in frames)
