"""Run a trained detector on a photo or a video, cropping the face exactly as the training pairs were cropped.

:func:`detect` takes an image file, a video file (anything PyAV reads), a ``PIL.Image`` or a uint8 RGB array,
finds the face with the same dlib detector and box rule as :func:`antiforge_lib.data.pairs.prepare_pairs` (largest face,
square box x ``scale`` on its centre, for videos smoothed over neighbouring sampled frames, clamped to the frame),
resizes the crop to the model's input size (bicubic, as the pair cache), normalises it as
:mod:`antiforge_lib.data` does (``(x - 0.5) / 0.5``) and runs the LQ branch only -- the paper's test-time path
(Sec. 3.1): ``model.forward_lq`` of a :class:`~antiforge_lib.models.TwoBranchNet`, ``model(x)`` of a
:class:`~antiforge_lib.models.SingleBranchNet`.

The score is :func:`antiforge_lib.metrics.scores_from_output`: ``||c||_2`` for metric heads (fake when above
``(r- + r+) / 2``, 9.05 with the paper's radii), the fake-class probability for cross-entropy heads (fake when above
0.5). A video's score is the mean of its frame scores, as :func:`antiforge_lib.metrics.video_auc` averages them.

:func:`~antiforge_lib.run.load_detector` rebuilds the model from a run's ``detector.pth`` or checkpoint.

Example
-------
>>> model, config = load_detector("runs/demo/detector.pth")
>>> result = detect("face.jpg", model)
>>> result.score, result.is_fake, result.threshold
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .data.faces import face_crops
from .data.loaders import XCEPTION_MEAN, XCEPTION_STD
from .data.video import VideoError, video_info
from .metrics import decision_threshold, scores_from_output
from .models import MODELS as MODEL_KINDS  # noqa: F401  (the old name, kept importable)
from .models import evaluating, model_kind  # noqa: F401
from .run import export_detector as save_detector  # noqa: F401  (the old name, kept importable)
from .run import load_detector

__all__ = [
    "DEFAULT_FRAMES",
    "DEFAULT_SIZE",
    "MODEL_KINDS",
    "NoFaceError",
    "FrameDetection",
    "Detection",
    "detect",
    "detect_files",
    "load_detector",
    "save_detector",
    "model_kind",
]

#: Frames sampled evenly from a video when ``frames`` is not given.
DEFAULT_FRAMES = 16
#: Model input side when neither ``size`` nor the model's config gives one (Xception's 299 px).
DEFAULT_SIZE = 299
SMOOTH_WINDOW = 5  # prepare_pairs' default smoothing window, in sampled frames
_BATCH = 32  # crops per forward pass


class NoFaceError(ValueError):
    """No face was found in an image, or in any sampled frame of a video."""


@dataclass
class FrameDetection:
    """One face crop and its score.

    Attributes
    ----------
    frame : int or None
        Frame number in the video (0-based); None for an image.
    score : float
        Detector score (higher = more likely fake).
    is_fake : bool
        ``score > threshold``.
    box : tuple of 4 int
        ``(x0, y0, x1, y1)`` of the square crop in the source frame (right/bottom exclusive).
    crop : numpy.ndarray, uint8, shape (H, W, 3)
        The RGB crop at the source's resolution (``H == W == x1 - x0``), before resizing to the model's input.
    attention : numpy.ndarray, float32, shape (H, W), values in [0, 1], or None
        The LQ branch's attention map, upsampled bilinearly to the crop's size; None for models without attention.
    """

    frame: int | None
    score: float
    is_fake: bool
    box: tuple[int, int, int, int]
    crop: np.ndarray = field(repr=False)
    attention: np.ndarray | None = field(repr=False)


@dataclass
class Detection:
    """What :func:`detect` returns, for an image or a whole video.

    Attributes
    ----------
    source : str
        The file path, or ``"the image"`` for an in-memory image.
    kind : {"image", "video"}
    score : float
        The image's score, or the mean of the video's frame scores.
    is_fake : bool
        ``score > threshold``.
    threshold : float
        Decision threshold, in the units of ``score``.
    score_type : {"norm", "probability"}
        ``||c||_2`` (metric heads) or the fake-class probability (cross-entropy heads).
    frames : list of FrameDetection
        One per image, or one per sampled video frame with a face, in frame order.
    no_face_frames : list of int
        Sampled video frames where no face was found (left out of the score).
    crop, box, attention, frame
        Those of the image, or of the video's highest-scoring (most suspicious) frame.
    """

    source: str
    kind: str
    score: float
    is_fake: bool
    threshold: float
    score_type: str
    frames: list[FrameDetection] = field(repr=False)
    no_face_frames: list[int] = field(default_factory=list)

    @property
    def _top(self) -> FrameDetection:
        return max(self.frames, key=lambda f: f.score)

    @property
    def crop(self) -> np.ndarray:
        return self._top.crop

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self._top.box

    @property
    def attention(self) -> np.ndarray | None:
        return self._top.attention

    @property
    def frame(self) -> int | None:
        return self._top.frame

    @property
    def frame_scores(self) -> np.ndarray:
        """Scores of the frames with a face, shape (n,) (one value for an image)."""
        return np.array([f.score for f in self.frames], dtype=np.float64)

    def to_dict(self) -> dict:
        """JSON-ready summary (no pixel arrays)."""
        out = {
            "input": self.source,
            "kind": self.kind,
            "score": self.score,
            "is_fake": self.is_fake,
            "threshold": self.threshold,
            "score_type": self.score_type,
            "box": list(self.box),
        }
        if self.kind == "video":
            out["frames"] = [f.frame for f in self.frames]
            out["frame_scores"] = [f.score for f in self.frames]
            out["frame_boxes"] = [list(f.box) for f in self.frames]
            out["no_face_frames"] = list(self.no_face_frames)
        return out


# ---------------------------------------------------------------------------------------------------------------
# Reading the source


def _read_image(path: Path) -> np.ndarray | None:
    """The file as an upright uint8 RGB array, or None if PIL does not recognise it as an image."""
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)  # phone photos: boxes refer to the upright image
            if im.mode.startswith("I"):  # 16- or 32-bit grey: convert("RGB") would clip it to white
                grey = np.asarray(im).astype(np.float64)
                top = 65535.0 if im.mode.startswith("I;16") or grey.max() > 255 else 255.0
                return np.repeat(np.clip(grey / top * 255 + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
            return np.asarray(im.convert("RGB"))
    except UnidentifiedImageError:
        return None
    except Image.DecompressionBombError as e:
        raise ValueError(f"{path}: {e}") from None
    except OSError as e:  # truncated or corrupt image data
        raise ValueError(f"{path}: cannot read the image ({e})") from e


def _as_frame(image) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"an image array must be uint8 RGB of shape (H, W, 3), got {arr.dtype} {arr.shape}")
    return np.ascontiguousarray(arr)


# ---------------------------------------------------------------------------------------------------------------
# Model plumbing


def _config_of(model, config) -> dict:
    if config is None:
        config = getattr(model, "antiforge_config", None)
    if config is None:
        return {}
    return dict(config.to_dict() if hasattr(config, "to_dict") else config)


def _normalise(crops: list[np.ndarray], size: int) -> torch.Tensor:
    """Crops -> float32 (B, 3, size, size): bicubic resize (as the pair cache), [0, 1], then (x - mean) / std."""
    arrs = [np.asarray(Image.fromarray(c).resize((size, size), Image.Resampling.BICUBIC)) for c in crops]
    x = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor(XCEPTION_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(XCEPTION_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def _run(model, crops: list[np.ndarray], size: int, device) -> tuple[np.ndarray, list, bool]:
    """Scores (N,), attention maps at crop size (or Nones), and whether the model has a CE head."""
    run = model.forward_lq if hasattr(model, "forward_lq") else model
    scores, maps, ce = [], [], False
    with evaluating(model):
        for i in range(0, len(crops), _BATCH):
            chunk = crops[i : i + _BATCH]
            out = run(_normalise(chunk, size).to(device))
            ce = getattr(out, "logits", None) is not None
            scores.append(scores_from_output(out).cpu().double().numpy())
            m = getattr(out, "m", None)
            for j, crop in enumerate(chunk):
                if m is None:
                    maps.append(None)
                    continue
                up = F.interpolate(m[j : j + 1].float(), size=crop.shape[:2], mode="bilinear", align_corners=False)
                maps.append(up[0, 0].clamp(0, 1).cpu().numpy())

    return np.concatenate(scores), maps, ce


# ---------------------------------------------------------------------------------------------------------------
# Detection


def _video_crops(path: Path, frames: int, scale: float):
    """(frame numbers, boxes, crops, no-face frame numbers) of a video, as prepare_pairs computes them."""
    from .data.pairs import frame_indices  # pairs imports pandas and the FF++ layout; only needed for videos

    idx = frame_indices(video_info(path).frames, frames)
    numbers, boxes, crops, no_face = [], [], [], []
    for n, box, crop in face_crops([path], idx, scale, SMOOTH_WINDOW):
        if box is None:
            no_face.append(n)
            continue
        numbers.append(n)
        boxes.append(box)
        crops.append(crop[0])
    return numbers, boxes, crops, no_face


def _image_crop(frame: np.ndarray, scale: float, name: str):
    _, box, crop = next(face_crops([frame[None]], scale=scale))
    if box is None:
        raise NoFaceError(
            f"no face found in {name} ({frame.shape[1]}x{frame.shape[0]} px; dlib's frontal-face detector finds "
            "upright faces from about 40 px)"
        )
    return box, crop[0]


def detect(
    source,
    model: torch.nn.Module,
    *,
    size: int | None = None,
    threshold: float | None = None,
    device=None,
    frames: int | None = None,
    scale: float = 1.3,
    config: Mapping | None = None,
) -> Detection:
    """Score the face in an image or a video with the LQ branch of a trained detector.

    Parameters
    ----------
    source : path, PIL.Image or numpy.ndarray
        An image file, a video file (any format PyAV reads), a PIL image, or a uint8 RGB array (H, W, 3).
        Files are told apart by content: what PIL opens is an image, anything else is tried as a video.
    model : TwoBranchNet or SingleBranchNet
        Runs in eval mode under ``torch.inference_mode()``; its train/eval mode is restored afterwards.
    size : int, optional
        Model input side; default the config's ``size``, else 299.
    threshold : float, optional
        Decision threshold; default :func:`~antiforge_lib.metrics.decision_threshold` of the config: 0.5 for
        cross-entropy heads, else ``(r- + r+) / 2`` from its radii (9.05 with the paper's).
    device : torch.device or str, optional
        Where to run; the model is moved there. Default: where the model's parameters are.
    frames : int, optional
        Video frames sampled evenly (:func:`antiforge_lib.data.pairs.frame_indices`); default 16.
    scale : float
        Face-box enlargement, 1.3 as FaceForensics++ and the pair cache.
    config : mapping, optional
        The training config (a ``TrainConfig`` or its dict); default ``model.antiforge_config``, which
        :func:`load_detector` sets.

    Returns
    -------
    Detection
        ``score``, ``is_fake``, ``threshold``, ``crop``, ``box``, ``attention`` and, per frame, ``frames`` /
        ``frame_scores``. For a video, ``score`` is the mean of the frame scores and ``crop``/``box``/``attention``
        are those of the highest-scoring frame.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    NoFaceError (a ValueError)
        No face in the image, or in any sampled frame of the video; the message names the file.
    ValueError
        The file is neither a readable image nor a readable video; the message names it.
    """
    cfg = _config_of(model, config)
    size = int(size if size is not None else cfg.get("size") or DEFAULT_SIZE)
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    if frames is not None and int(frames) < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    frames = DEFAULT_FRAMES if frames is None else int(frames)
    if device is not None:
        model.to(device)
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")

    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = str(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file")
        image = _read_image(path)
        if image is None:
            try:
                numbers, boxes, crops, no_face = _video_crops(path, frames, scale)
            except VideoError as e:
                raise ValueError(f"{path}: cannot read it as an image or as a video ({e})") from e
            if not crops:
                raise NoFaceError(f"no face found in {path}: none in the {len(no_face)} frames sampled")
            kind = "video"
        else:
            box, crop = _image_crop(image, scale, name)
            numbers, boxes, crops, no_face, kind = [None], [box], [crop], [], "image"
    else:
        name = "the image"
        box, crop = _image_crop(_as_frame(source), scale, name)
        numbers, boxes, crops, no_face, kind = [None], [box], [crop], [], "image"

    scores, maps, ce = _run(model, crops, size, device)
    if threshold is None:
        threshold = decision_threshold(cfg, ce)
    threshold = float(threshold)
    per_frame = [
        FrameDetection(n, float(s), bool(s > threshold), b, c, m)
        for n, s, b, c, m in zip(numbers, scores, boxes, crops, maps, strict=True)
    ]
    score = float(np.mean(scores))
    return Detection(
        source=name,
        kind=kind,
        score=score,
        is_fake=bool(score > threshold),
        threshold=threshold,
        score_type="probability" if ce else "norm",
        frames=per_frame,
        no_face_frames=no_face,
    )


def detect_files(paths, model: torch.nn.Module, *, progress: bool = False, on_result=None, **kwargs) -> list[dict]:
    """:func:`detect` on each image or video file of ``paths``; a file that fails does not stop the others.

    Parameters
    ----------
    paths : iterable of path
    model : TwoBranchNet or SingleBranchNet
    progress : bool, default False
        A progress bar over the files (shown for two or more).
    on_result : callable, optional
        Called after each file with ``(path, detection, error)``: a :class:`Detection` and None, or None and the
        one-line message of a file without a face or that cannot be read (``antiforge detect`` prints it there).
    **kwargs
        ``size``, ``threshold``, ``device``, ``frames``, ``scale``, ``config``: as :func:`detect`.

    Returns
    -------
    list of dict
        One per input, in order: :meth:`Detection.to_dict`, or ``{"input": path, "error": message}``.
    """
    from tqdm import tqdm

    paths = [str(p) for p in paths]
    out = []
    for path in tqdm(paths, desc="inputs", unit="file", disable=not progress or len(paths) < 2):
        try:
            res, error = detect(path, model, **kwargs), None
        except (FileNotFoundError, ValueError) as e:  # no face, unreadable file: reported, the others still run
            res, error = None, " ".join(str(e).split())
        out.append(res.to_dict() if res is not None else {"input": path, "error": error})
        if on_result is not None:
            on_result(path, res, error)
    return out
