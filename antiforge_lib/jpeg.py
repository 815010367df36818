"""JPEG's DCT quantization, written out in torch so the book can look inside it.

The paper's premise (Sec. 1) is that compression zeroes high- and some
mid-frequency DCT coefficients, so what survives in a compressed forgery is a
subset of what the original held. This module reproduces baseline JPEG's lossy
steps -- colour conversion, 8x8 block DCT, quantization -- batched and on any
device, and :func:`jpeg_roundtrip` runs the real codec (libjpeg through Pillow)
for comparison.

Conventions: images are float tensors in [0, 1], ``(B, 3, H, W)`` RGB unless
stated; DCT coefficients are in 8-bit sample units (the level-shifted samples
lie in [-128, 127]).
"""

from __future__ import annotations

import io
import math
from functools import cache

import numpy as np
import torch
from PIL import Image

__all__ = [
    "LUMA_BASE",
    "CHROMA_BASE",
    "BANDS",
    "dct_matrix",
    "block_dct",
    "block_idct",
    "quant_table",
    "zigzag",
    "band_masks",
    "quantize_blocks",
    "rgb_to_ycbcr",
    "ycbcr_to_rgb",
    "jpeg_simulate",
    "coefficient_stats",
    "jpeg_roundtrip",
    "psnr",
]

# ITU-T T.81 Annex K, Tables K.1 (luminance) and K.2 (chrominance), row-major.
LUMA_BASE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
CHROMA_BASE = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
)

#: Frequency bands by diagonal index u + v of coefficient (u, v):
#: low 0-2 (6 coefficients, DC included), mid 3-7 (30), high 8-14 (28).
BANDS = {"low": (0, 2), "mid": (3, 7), "high": (8, 14)}


def _check_tensor(x, name: str, min_dim: int = 2) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimensions, got shape {tuple(x.shape)}")
    return x


def _check_quality(quality) -> int:
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)):
        raise TypeError(f"quality must be an integer in 1..100, got {quality!r}")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100 (libjpeg's scale), got {quality}")
    return int(quality)


@cache
def _dct_matrix_np() -> np.ndarray:
    k = np.arange(8)[:, None]
    n = np.arange(8)[None, :]
    d = np.sqrt(2 / 8) * np.cos((2 * n + 1) * k * np.pi / 16)
    d[0] /= np.sqrt(2)
    return d


def dct_matrix(dtype=torch.float32, device=None) -> torch.Tensor:
    """The orthonormal 8x8 DCT-II matrix ``D``: row ``k`` is basis function ``k``.

    A block ``X`` (8x8) transforms as ``D @ X @ D.T`` and back as ``D.T @ Y @ D``.
    """
    return torch.as_tensor(_dct_matrix_np(), dtype=dtype, device=device)


def _check_blocks(x: torch.Tensor, name: str) -> None:
    _check_tensor(x, name)
    h, w = x.shape[-2:]
    if h % 8 or w % 8:
        raise ValueError(
            f"{name} has height x width {h}x{w}; block_dct needs both to be multiples of 8. "
            "Crop or pad the image first (jpeg_simulate pads by edge replication, as libjpeg does)."
        )
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")


# Planes per chunk on the CPU: about 1M values (4 MB in float32), so the
# intermediate of the two passes stays in cache.
_CHUNK_VALUES = 1 << 20


def _separable(x: torch.Tensor, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    # left @ block @ right for every 8x8 block, as two matmuls on reshaped views
    # of the same memory (no permute copies): columns within blocks, then rows.
    *lead, h, w = x.shape
    if x.requires_grad or x.device.type != "cpu" or x.numel() == 0:
        cols = x.reshape(*lead, h, w // 8, 8) @ right
        return torch.matmul(left, cols.reshape(*lead, h // 8, 8, w)).reshape(x.shape)
    # On the CPU, writing into preallocated buffers chunk by chunk avoids
    # allocating (and page-faulting) two full-size temporaries per call.
    planes = x.reshape(-1, h, w)
    out = torch.empty_like(planes)
    step = max(1, _CHUNK_VALUES // (h * w))
    tmp = torch.empty((min(step, len(planes)), h, w // 8, 8), dtype=x.dtype)
    for i in range(0, len(planes), step):
        src = planes[i : i + step]
        m = len(src)
        torch.matmul(src.reshape(m, h, w // 8, 8), right, out=tmp[:m])
        torch.matmul(left, tmp[:m].reshape(m, h // 8, 8, w), out=out[i : i + m].reshape(m, h // 8, 8, w))
    return out.reshape(x.shape)


def block_dct(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal 2-D DCT-II of every 8x8 block.

    Parameters
    ----------
    x : tensor ``(..., H, W)``, floating point, H and W multiples of 8.

    Returns
    -------
    tensor ``(..., H, W)``: block ``(i, j)`` of the output holds the 64
    coefficients of block ``(i, j)`` of the input, coefficient ``(u, v)`` at
    row ``8i + u``, column ``8j + v``. Equal to ``scipy.fft.dctn(block, norm="ortho")``.
    """
    _check_blocks(x, "x")
    d = dct_matrix(x.dtype, x.device)
    return _separable(x, d, d.T)


def block_idct(y: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`block_dct` (orthonormal DCT-III per 8x8 block); same shapes."""
    _check_blocks(y, "y")
    d = dct_matrix(y.dtype, y.device)
    return _separable(y, d.T, d)


def quant_table(quality: int, kind: str = "luma") -> torch.Tensor:
    """The 8x8 quantization table libjpeg uses at ``quality`` (1..100).

    IJG scaling of the Annex K base table ``T``: ``s = 5000 / q`` for
    ``q < 50`` else ``200 - 2q``; entry ``= clip((T * s + 50) // 100, 1, 255)``
    (baseline JPEG caps entries at 255). Returned as an int64 tensor ``(8, 8)``
    in natural row-major order: entry ``(u, v)`` divides coefficient ``(u, v)``.
    """
    quality = _check_quality(quality)
    if kind not in ("luma", "chroma"):
        raise ValueError(f"kind must be 'luma' or 'chroma', got {kind!r}")
    base = torch.tensor(LUMA_BASE if kind == "luma" else CHROMA_BASE, dtype=torch.int64)
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return ((base * scale + 50) // 100).clamp(1, 255)


@cache
def _zigzag_np() -> np.ndarray:
    # Walk the anti-diagonals s = u + v, alternating direction.
    order = []
    for s in range(15):
        cells = [(u, s - u) for u in range(8) if 0 <= s - u < 8]
        order += cells if s % 2 else cells[::-1]
    return np.array([u * 8 + v for u, v in order])


def zigzag() -> torch.Tensor:
    """Zig-zag scan order: ``zigzag()[k]`` is the row-major index (``8u + v``)
    of the ``k``-th coefficient JPEG writes. Shape ``(64,)``, int64.

    ``table.flatten()[zigzag()]`` puts an 8x8 table into file (DQT) order.
    """
    return torch.from_numpy(_zigzag_np().copy())


def band_masks() -> dict[str, torch.Tensor]:
    """Boolean ``(8, 8)`` masks of the low, mid and high frequency bands.

    Coefficient ``(u, v)`` belongs to the band whose range in :data:`BANDS`
    contains ``u + v``: low 0..2 (the DC term and 5 AC terms), mid 3..7
    (30 terms), high 8..14 (28 terms). The three masks partition the block.
    """
    s = torch.arange(8)[:, None] + torch.arange(8)[None, :]
    return {name: (s >= lo) & (s <= hi) for name, (lo, hi) in BANDS.items()}


def _round_half_away(x: torch.Tensor) -> torch.Tensor:
    # libjpeg's quantizer and colour converters round halves away from zero.
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


def quantize_blocks(coefs: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Quantize block-DCT coefficients: ``round(coef / table)`` per block.

    coefs : ``(..., H, W)`` as returned by :func:`block_dct`.
    table : ``(8, 8)`` quantization table, tiled over the blocks.
    Returns the integer levels (as floats), same shape; multiply by the tiled
    table to dequantize.
    """
    _check_blocks(coefs, "coefs")
    if tuple(table.shape) != (8, 8):
        raise ValueError(f"table must be 8x8, got shape {tuple(table.shape)}")
    t = _tile(table.to(coefs), coefs.shape[-2:])
    return _round_half_away(coefs / t)


def _tile(table: torch.Tensor, hw) -> torch.Tensor:
    h, w = hw
    return table.repeat(h // 8, w // 8)


# JFIF (ITU-T T.871) full-range YCbCr, the conversion libjpeg applies.
_RGB2YCC = torch.tensor(
    [[0.299, 0.587, 0.114], [-0.168735892, -0.331264108, 0.5], [0.5, -0.418687589, -0.081312411]],
    dtype=torch.float64,
)
_YCC2RGB = torch.linalg.inv(_RGB2YCC)


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """JFIF RGB -> YCbCr on ``(B, 3, H, W)`` in 8-bit units (0..255), not rounded."""
    m = _RGB2YCC.to(x)
    y = torch.einsum("ij,bjhw->bihw", m, x)
    return y + torch.tensor([0.0, 128.0, 128.0]).to(x).view(1, 3, 1, 1)


def ycbcr_to_rgb(y: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr`, in 8-bit units, not rounded."""
    m = _YCC2RGB.to(y)
    c = y - torch.tensor([0.0, 128.0, 128.0]).to(y).view(1, 3, 1, 1)
    return torch.einsum("ij,bjhw->bihw", m, c)


def _check_image_batch(x, name="x") -> torch.Tensor:
    _check_tensor(x, name)
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} must be an RGB batch of shape (B, 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be floating point in [0, 1], got dtype {x.dtype}")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"{name} must lie in [0, 1], got range [{x.min():.3g}, {x.max():.3g}]")
    return x


def _pad8(x: torch.Tensor, mult: int = 8) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % mult, (-w) % mult
    if ph or pw:  # libjpeg pads partial blocks by repeating the edge sample
        x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="replicate")
    return x


def jpeg_simulate(x: torch.Tensor, quality: int, subsampling: str = "444") -> torch.Tensor:
    """Baseline JPEG's lossy steps on a batch, on any device (not differentiable: it rounds).

    RGB -> YCbCr (rounded to 8 bits as libjpeg does), level shift by -128,
    8x8 block DCT, quantize and dequantize with :func:`quant_table`
    (luma table for Y, chroma table for Cb and Cr), inverse DCT, +128,
    round and clip to 0..255, YCbCr -> RGB.

    Parameters
    ----------
    x : ``(B, 3, H, W)`` RGB in [0, 1]; any H, W (edges are replicated to whole blocks).
    quality : 1..100, libjpeg's quality scale.
    subsampling : ``"444"`` (full-resolution chroma; tracks Pillow's codec to
        about 43 dB PSNR) or ``"420"`` (chroma averaged over 2x2 pixels and
        upsampled bilinearly -- an approximation of libjpeg's filters).

    Returns
    -------
    ``(B, 3, H, W)`` in [0, 1], quantized to multiples of 1/255.
    """
    _check_image_batch(x)
    quality = _check_quality(quality)
    if subsampling not in ("444", "420"):
        raise ValueError(f"subsampling must be '444' or '420', got {subsampling!r}")
    h, w = x.shape[-2:]
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    ycc = _round_half_away(rgb_to_ycbcr(torch.round(x.to(work) * 255))).clamp(0, 255)
    qy = quant_table(quality, "luma")
    qc = quant_table(quality, "chroma")

    def code(plane, table):
        p = _pad8(plane) - 128
        c = block_dct(p)
        t = _tile(table.to(c), c.shape[-2:])
        rec = block_idct(_round_half_away(c / t) * t) + 128
        return torch.round(rec).clamp(0, 255)

    luma = code(ycc[:, :1], qy)[..., :h, :w]
    chroma = ycc[:, 1:]
    if subsampling == "420":
        small = torch.nn.functional.avg_pool2d(_pad8(chroma, 2), 2)
        small = code(small, qc)[..., : (h + 1) // 2, : (w + 1) // 2]
        chroma = torch.nn.functional.interpolate(small, scale_factor=2, mode="bilinear", align_corners=False)
        chroma = chroma[..., :h, :w]
    else:
        chroma = code(chroma, qc)[..., :h, :w]
    rgb = ycbcr_to_rgb(torch.cat([luma, chroma], 1))
    return (torch.round(rgb).clamp(0, 255) / 255).to(x.dtype)


def coefficient_stats(x: torch.Tensor, quality: int) -> dict[str, float]:
    """Fraction of luma DCT coefficients that quantize to zero, per band.

    x : ``(B, 3, H, W)`` RGB in [0, 1] (H, W multiples of 8) or ``(B, 1, H, W)``
        grey. The luma plane is level-shifted, block-transformed and quantized
        with the luma table at ``quality``.
    Returns ``{"low": f, "mid": f, "high": f, "all": f}``, each a fraction in [0, 1]
    over all blocks of all images.
    """
    _check_tensor(x, "x")
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"x must be (B, 3, H, W) RGB or (B, 1, H, W) grey, got {tuple(x.shape)}")
    if x.shape[1] == 3:
        _check_image_batch(x)
        y = rgb_to_ycbcr(x.float() * 255)[:, :1]
    else:
        y = x.float() * 255
    levels = quantize_blocks(block_dct(y - 128), quant_table(quality, "luma"))
    zero = (levels == 0).reshape(*levels.shape[:-2], levels.shape[-2] // 8, 8, levels.shape[-1] // 8, 8)
    zero = zero.permute(0, 1, 2, 4, 3, 5).reshape(-1, 8, 8).float()
    out = {name: zero[:, m].mean().item() for name, m in band_masks().items()}
    out["all"] = zero.mean().item()
    return out


def jpeg_roundtrip(img, quality: int, subsampling: str = "444"):
    """Encode and decode with the real codec (libjpeg, through Pillow).

    img : a ``PIL.Image`` (RGB), or a tensor ``(3, H, W)`` / ``(B, 3, H, W)``
        in [0, 1]. The result has the same type and shape.
    quality : 1..100. subsampling : ``"444"`` or ``"420"``.
    """
    quality = _check_quality(quality)
    codes = {"444": 0, "420": 2}
    if subsampling not in codes:
        raise ValueError(f"subsampling must be '444' or '420', got {subsampling!r}")

    def one(pil):
        buf = io.BytesIO()
        pil.convert("RGB").save(buf, format="JPEG", quality=quality, subsampling=codes[subsampling])
        buf.seek(0)
        out = Image.open(buf)
        out.load()
        return out

    if isinstance(img, Image.Image):
        return one(img)
    _check_tensor(img, "img", min_dim=3)
    batch = img if img.dim() == 4 else img[None]
    _check_image_batch(batch, "img")
    outs = []
    for t in batch:
        arr = (t.detach().cpu().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        back = np.asarray(one(Image.fromarray(arr)), dtype=np.float32) / 255
        outs.append(torch.from_numpy(back).permute(2, 0, 1))
    res = torch.stack(outs).to(img.device, img.dtype)
    return res if img.dim() == 4 else res[0]


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB between two tensors of the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return math.inf if mse == 0 else 10 * math.log10(data_range**2 / mse)
