"""Face boxes for cropping: detection, the x1.3 square box, smoothing, clamping.

FaceForensics++ cropped faces with dlib's HOG frontal-face detector; so do we
(``dlib-bin`` ships the detector inside its wheel, no download). Boxes are
``(x0, y0, x1, y1)`` in pixels, x to the right, y down, right/bottom exclusive.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["detect_face", "square_box", "smooth_boxes", "clamp_box", "crop_box"]


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
