"""Self-blended forgeries: a face blended with an altered copy of itself, with an exact mask.

A *self-blended* image (Shiohara & Yamasaki, CVPR 2022) is a face blended with a slightly altered copy of itself:
the copy is recoloured, sharpened or blurred, and rescaled, then pasted back through a soft, randomly deformed face
mask. The result carries what a face swap leaves behind -- a boundary where two renderings of a face meet, a colour
and sharpness mismatch inside it -- without a second identity, so any folder of real faces yields forgeries whose
ground-truth mask is exact: the blend weight itself.

- :func:`draw_blend` draws the random settings of one blend (:class:`BlendParams`); :func:`blend_mask` and
  :func:`self_blend` apply them to an image whose face box is known. The embedded sample's ``SelfBlend`` videos
  (:mod:`antiforge_lib.data.sample`) use these functions with one draw per video.
- :func:`compress` passes an image through a real codec (libjpeg through Pillow, or one H.264 frame through
  PyAV), for the LQ partner of a pair.
- :class:`antiforge_lib.data.SelfBlendedPairs` turns real face crops into an unlimited stream of training pairs
  with these functions, and :func:`antiforge_lib.data.self_blend_dataloaders` serves it to fastai.

This module needs numpy, Pillow and PyAV only (no torch), so the sample builder's worker processes start fast.

Conventions: images are uint8 ``(H, W, 3)`` RGB arrays; masks and blend weights float32 ``(H, W)`` in [0, 1];
boxes ``(x0, y0, x1, y1)`` in pixels, as in :mod:`antiforge_lib.data.faces`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageFilter

__all__ = ["BlendParams", "Blend", "CODECS", "FACE_BOX", "draw_blend", "blend_mask", "alter", "self_blend", "compress"]

#: Where the face sits in a crop of the pair cache, as fractions of its side: the detector's box enlarged x1.3
#: (:func:`antiforge_lib.data.faces.square_box`) leaves the face in the central 1/1.3 of the crop.
FACE_BOX = (0.115, 0.115, 0.885, 0.885)

#: Codecs for the LQ image, with the default range of their strength setting: libjpeg's quality (lower is
#: stronger) and x264's constant rate factor (higher is stronger; FaceForensics++'s c40 is CRF 40).
CODECS = {"jpeg": (15, 60), "h264": (28, 45)}


@dataclass(frozen=True)
class BlendParams:
    """The random settings of one self-blend (see :func:`draw_blend` for their ranges).

    Colour: ``gain`` (3 per-channel factors) and ``offset`` (3 values, in grey levels) applied to the copy.
    Sharpness: ``blur`` (Gaussian sigma as a fraction of the face width; 0 = none) or ``sharpen`` (unsharp-mask
    amount; 0 = none). Geometry of the copy: ``zoom`` about the face centre and a shift ``(dx, dy)`` in face widths.
    Mask: ellipse centre ``center`` and semi-axes ``axes`` as fractions of the face box, rotation ``angle``
    (radians), boundary ripple ``ripple`` (amplitudes of the harmonics 2..5 of the radius) and ``phase``, ramp width
    ``soft`` (fraction of the radius over which the weight falls from its peak to 0) and peak weight ``opacity``.
    """

    gain: tuple[float, float, float]
    offset: tuple[float, float, float]
    blur: float
    sharpen: float
    zoom: float
    dx: float
    dy: float
    center: tuple[float, float]
    axes: tuple[float, float]
    angle: float
    ripple: tuple[float, ...]
    phase: tuple[float, ...]
    soft: float
    opacity: float


class Blend(NamedTuple):
    """What :func:`self_blend` returns: ``fake`` uint8 ``(H, W, 3)``, ``mask`` float32 ``(H, W)`` in [0, 1] (the
    blend weight, so ``fake = round(mask * donor + (1 - mask) * image)``) and the altered copy ``donor``."""

    fake: np.ndarray
    mask: np.ndarray
    donor: np.ndarray


def draw_blend(rng: np.random.Generator, part: bool = False) -> BlendParams:
    """Draw the settings of one self-blend.

    Ranges: gain 0.8-1.2 and offset +-24 grey levels per channel; half the copies blurred (sigma 0.4-1.6 % of
    the face width), the other half sharpened (amount 0.4-1.5); zoom 0.94-1.06 and shift +-2 % of the face width;
    mask rotated +-0.25 rad, its radius rippled by up to +-5 % per harmonic, ramp 5-30 % of the radius, peak weight
    0.85-1. The mask covers the whole face (centre within +-4 % of (0.5, 0.55) of the face box, semi-axes 0.36-0.46
    by 0.46-0.58 of the box) or, with ``part``, a part of it (centre anywhere in x 0.3-0.7, y 0.3-0.85 of the box,
    semi-axes 0.14-0.32 by 0.10-0.26: an eye, the nose, the mouth, a cheek).
    """
    u = rng.uniform
    blurred = bool(rng.random() < 0.5)
    if part:
        center, axes = (u(0.3, 0.7), u(0.3, 0.85)), (u(0.14, 0.32), u(0.1, 0.26))
    else:
        center, axes = (0.5 + u(-0.04, 0.04), 0.55 + u(-0.04, 0.04)), (u(0.36, 0.46), u(0.46, 0.58))
    return BlendParams(
        gain=tuple(u(0.8, 1.2, 3).round(4).tolist()),
        offset=tuple(u(-24, 24, 3).round(2).tolist()),
        blur=round(u(0.004, 0.016), 5) if blurred else 0.0,
        sharpen=0.0 if blurred else round(u(0.4, 1.5), 3),
        zoom=round(u(0.94, 1.06), 4),
        dx=round(u(-0.02, 0.02), 4),
        dy=round(u(-0.02, 0.02), 4),
        center=tuple(round(float(c), 4) for c in center),
        axes=tuple(round(float(a), 4) for a in axes),
        angle=round(u(-0.25, 0.25), 4),
        ripple=tuple(u(-0.05, 0.05, 4).round(4).tolist()),
        phase=tuple(u(0, 2 * np.pi, 4).round(4).tolist()),
        soft=round(u(0.05, 0.3), 4),
        opacity=round(u(0.85, 1.0), 4),
    )


def _check_image(img, name: str = "image") -> np.ndarray:
    img = np.asarray(img)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"{name} must be a uint8 RGB array of shape (H, W, 3), got {img.dtype} {img.shape}")
    return img


def _check_box(box, h: int, w: int) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (float(v) for v in box)
    if not (np.isfinite([x0, y0, x1, y1]).all() and x1 > x0 and y1 > y0):
        raise ValueError(f"box must be (x0, y0, x1, y1) with x1 > x0 and y1 > y0, got {tuple(box)}")
    return x0, y0, x1, y1


def blend_mask(h: int, w: int, box, params: BlendParams) -> np.ndarray:
    """The blend weight ``(h, w)`` float32 in [0, 1]: a rotated, rippled, soft-edged ellipse in face box ``box``.

    Inside the ellipse the weight is ``params.opacity``; it falls linearly to 0 over ``params.soft`` of the radius.
    """
    x0, y0, x1, y1 = _check_box(box, h, w)
    bw, bh = x1 - x0, y1 - y0
    cx, cy = x0 + params.center[0] * bw, y0 + params.center[1] * bh
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xx + 0.5 - cx, yy + 0.5 - cy  # pixel centres
    cos, sin = np.cos(params.angle), np.sin(params.angle)
    u, v = (cos * dx + sin * dy) / (params.axes[0] * bw), (-sin * dx + cos * dy) / (params.axes[1] * bh)
    r, theta = np.hypot(u, v), np.arctan2(v, u)
    edge = 1 + sum(
        a * np.cos((k + 2) * theta + p) for k, (a, p) in enumerate(zip(params.ripple, params.phase, strict=True))
    )
    weight = np.clip((edge - r) / (params.soft * edge), 0, 1) * params.opacity
    return weight.astype(np.float32)


def alter(img: np.ndarray, box, params: BlendParams) -> np.ndarray:
    """The donor's alteration of a whole image, uint8 (H, W, 3) -> uint8 (H, W, 3), no blending: resampled (zoom,
    shift) about the centre of face box ``box``, sharpened or blurred, recoloured, as :func:`self_blend` alters its
    donor."""
    img = _check_image(img)
    x0, y0, x1, y1 = box
    bw = x1 - x0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    a = 1 / params.zoom
    sx, sy = params.dx * bw, params.dy * bw
    # PIL's affine maps output pixels to input pixels: x_in = a x_out + (cx - a cx - a sx).
    coeffs = (a, 0, cx - a * cx - a * sx, 0, a, cy - a * cy - a * sy)
    pil = Image.fromarray(img)
    pil = pil.transform(pil.size, Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR)
    if params.blur > 0:
        pil = pil.filter(ImageFilter.GaussianBlur(params.blur * bw))
    elif params.sharpen > 0:
        pil = pil.filter(ImageFilter.UnsharpMask(radius=max(1.0, 0.01 * bw), percent=int(100 * params.sharpen)))
    donor = np.asarray(pil, dtype=np.float32) * np.float32(params.gain) + np.float32(params.offset)
    return np.clip(donor.round(), 0, 255).astype(np.uint8)


def self_blend(image, box, params: BlendParams, source=None) -> Blend:
    """Blend an altered copy of ``image`` (or of ``source``) back into it through the mask of ``params``.

    Parameters
    ----------
    image : uint8 array (H, W, 3)
        RGB image holding a face.
    box : (x0, y0, x1, y1)
        The face box in pixels (e.g. the detector's box; for a crop of the pair cache, :data:`FACE_BOX` times the
        side).
    params : BlendParams
        From :func:`draw_blend`; reuse one draw for every frame of a video to keep the forgery steady.
    source : uint8 array (H, W, 3), optional
        Another face, aligned with ``image`` (the same face box), to alter and blend in instead of ``image`` itself.

    Returns
    -------
    Blend
        ``fake`` uint8 (H, W, 3), ``mask`` float32 (H, W) in [0, 1] -- the exact blend weight, 0 where the image is
        untouched -- and ``donor`` uint8 (H, W, 3).
    """
    image = _check_image(image)
    box = _check_box(box, *image.shape[:2])
    donor = alter(image if source is None else _check_image(source, "source"), box, params)
    mask = blend_mask(*image.shape[:2], box, params)
    m = mask[..., None]
    fake = np.clip((m * donor + (1 - m) * image).round(), 0, 255).astype(np.uint8)
    return Blend(fake, mask, donor)


# ---------------------------------------------------------------------------------------------------------------
# The LQ partner


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.array(im.convert("RGB"))


def compress(image, codec: str, strength: int) -> np.ndarray:
    """``image`` (H, W, 3) uint8 through a real codec and back: libjpeg at ``quality=strength`` (``"jpeg"``), or
    one x264 frame at ``crf=strength`` (``"h264"``, 4:2:0 chroma, so H and W must be even)."""
    image = _check_image(image)
    if codec == "jpeg":
        return _jpeg(image, strength)
    if codec == "h264":
        from .data.video import h264_roundtrip

        return h264_roundtrip(image[None], int(strength))[0]
    raise ValueError(f"codec must be one of {sorted(CODECS)}, got {codec!r}")
