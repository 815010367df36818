"""antiforge_lib.jpeg against independent references: scipy's DCT and libjpeg (Pillow)."""

import io
import struct

import numpy as np
import pytest
import scipy.fft
import torch
from PIL import Image

from antiforge_lib import jpeg
from antiforge_lib.samples import face_tensor


def _blocks(x: np.ndarray) -> np.ndarray:
    *lead, h, w = x.shape
    return x.reshape(*lead, h // 8, 8, w // 8, 8).swapaxes(-3, -2)


def test_block_dct_matches_scipy_per_block():
    x = torch.rand(2, 3, 24, 40, dtype=torch.float64) * 255 - 128
    ours = _blocks(jpeg.block_dct(x).numpy())
    ref = scipy.fft.dctn(_blocks(x.numpy()), axes=(-2, -1), norm="ortho")
    np.testing.assert_allclose(ours, ref, atol=1e-9)


def test_block_idct_inverts_block_dct_and_matches_scipy():
    y = torch.randn(3, 16, 16, dtype=torch.float64) * 50
    back = jpeg.block_idct(y)
    ref = scipy.fft.idctn(_blocks(y.numpy()), axes=(-2, -1), norm="ortho")
    np.testing.assert_allclose(_blocks(back.numpy()), ref, atol=1e-9)
    np.testing.assert_allclose(jpeg.block_dct(back).numpy(), y.numpy(), atol=1e-9)


def test_block_dct_float32_close_and_dc_is_scaled_mean():
    x = torch.rand(1, 8, 8)
    y = jpeg.block_dct(x)
    assert y.dtype == torch.float32
    # Orthonormal DCT-II: DC = 8 * mean for an 8x8 block (hand-computed scale).
    assert y[0, 0, 0].item() == pytest.approx(8 * x.mean().item(), rel=1e-5)


@pytest.mark.parametrize("shape", [(3, 10, 16), (16, 12), (8,)])
def test_block_dct_rejects_non_multiple_of_8(shape):
    with pytest.raises(ValueError, match="multiples of 8|at least 2"):
        jpeg.block_dct(torch.zeros(shape))


def test_block_dct_rejects_integer_tensor():
    with pytest.raises(TypeError, match="floating-point"):
        jpeg.block_dct(torch.zeros(8, 8, dtype=torch.int64))


def _pillow_tables(quality: int) -> dict:
    img = Image.fromarray(np.zeros((8, 8, 3), np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, subsampling=0)
    buf.seek(0)
    return Image.open(buf), buf.getvalue()


@pytest.mark.parametrize("quality", range(1, 101))
def test_quant_table_equals_pillow_for_every_quality(quality):
    im, _ = _pillow_tables(quality)
    assert im.quantization[0] == jpeg.quant_table(quality, "luma").flatten().tolist()
    assert im.quantization[1] == jpeg.quant_table(quality, "chroma").flatten().tolist()


def _dqt_from_bytes(data: bytes) -> dict:
    """Parse the DQT segments of a JPEG file ourselves: tables in file (zig-zag) order."""
    tables, i = {}, 2
    while i < len(data):
        marker, length = struct.unpack(">HH", data[i : i + 4])
        if marker == 0xFFDB:
            seg = data[i + 4 : i + 2 + length]
            j = 0
            while j < len(seg):
                tables[seg[j] & 15] = list(seg[j + 1 : j + 65])
                j += 65
        if marker == 0xFFDA:
            break
        i += 2 + length
    return tables


@pytest.mark.parametrize("quality", [5, 50, 95])
def test_zigzag_matches_the_order_libjpeg_writes(quality):
    _, raw = _pillow_tables(quality)
    dqt = _dqt_from_bytes(raw)
    zz = jpeg.zigzag()
    assert sorted(zz.tolist()) == list(range(64))
    assert dqt[0] == jpeg.quant_table(quality, "luma").flatten()[zz].tolist()
    assert dqt[1] == jpeg.quant_table(quality, "chroma").flatten()[zz].tolist()


@pytest.mark.parametrize("bad", [0, 101, -3, 50.0, True, "75"])
def test_quality_out_of_range_is_an_error(bad):
    with pytest.raises((ValueError, TypeError), match="quality"):
        jpeg.quant_table(bad)


def test_quant_table_rejects_unknown_kind():
    with pytest.raises(ValueError, match="luma"):
        jpeg.quant_table(50, "blue")


def test_band_masks_partition_the_block_by_diagonal():
    masks = jpeg.band_masks()
    total = sum(m.int() for m in masks.values())
    assert torch.equal(total, torch.ones(8, 8, dtype=torch.int64))
    assert [int(m.sum()) for m in masks.values()] == [6, 30, 28]
    assert masks["low"][0, 0] and masks["high"][7, 7]


@pytest.mark.parametrize("quality", [20, 35, 50, 75, 90])
def test_jpeg_simulate_matches_pillow_444(quality):
    x = face_tensor(crop=False)  # 512x512 real photo
    ours = jpeg.jpeg_simulate(x, quality, "444")
    ref = jpeg.jpeg_roundtrip(x, quality, "444")
    assert jpeg.psnr(ours, ref) >= 43.0  # the issue asks for >= 40; we reach ~50
    # and the simulation is a real loss: it differs from the input
    assert jpeg.psnr(ours, x) < 45.0


def test_jpeg_simulate_odd_size_and_420_close_to_pillow():
    x = face_tensor(size=150)  # not a multiple of 8
    ours = jpeg.jpeg_simulate(x, 75, "420")
    assert ours.shape == x.shape
    assert jpeg.psnr(ours, jpeg.jpeg_roundtrip(x, 75, "420")) >= 30.0
    assert jpeg.psnr(jpeg.jpeg_simulate(x, 75, "444"), jpeg.jpeg_roundtrip(x, 75, "444")) >= 40.0


def test_jpeg_simulate_validates_input():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        jpeg.jpeg_simulate(torch.rand(3, 16, 16), 50)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        jpeg.jpeg_simulate(torch.rand(1, 3, 16, 16) * 255, 50)
    with pytest.raises(ValueError, match="subsampling"):
        jpeg.jpeg_simulate(torch.rand(1, 3, 16, 16), 50, "422")


def test_jpeg_roundtrip_pil_and_tensor_agree():
    x = face_tensor(size=64)
    t = jpeg.jpeg_roundtrip(x[0], 60)
    arr = (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    p = jpeg.jpeg_roundtrip(Image.fromarray(arr), 60)
    assert isinstance(p, Image.Image)
    np.testing.assert_array_equal((t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), np.asarray(p))


def test_high_band_zero_fraction_rises_as_quality_falls():
    x = face_tensor(size=128)
    fractions = [jpeg.coefficient_stats(x, q)["high"] for q in (95, 75, 50, 25, 10, 2)]
    assert all(a <= b for a, b in zip(fractions, fractions[1:], strict=False))
    assert fractions[-1] > fractions[0]
    stats = jpeg.coefficient_stats(x, 50)
    assert stats["low"] <= stats["mid"] <= stats["high"]


def test_coefficient_stats_hand_computed_flat_image():
    # A flat mid-grey image: every AC coefficient is exactly 0, DC is 0 after the level shift.
    x = torch.full((1, 1, 16, 16), 128 / 255)
    assert jpeg.coefficient_stats(x, 50) == {"low": 1.0, "mid": 1.0, "high": 1.0, "all": 1.0}


def test_quantize_blocks_rounds_halves_away_from_zero():
    t = torch.full((8, 8), 2, dtype=torch.int64)
    c = torch.zeros(8, 8)
    c[0, 0], c[0, 1], c[1, 0] = 3.0, -3.0, 2.9
    q = jpeg.quantize_blocks(c, t)
    assert (q[0, 0].item(), q[0, 1].item(), q[1, 0].item()) == (2.0, -2.0, 1.0)


def test_block_dct_gradient_path_and_chunked_path_agree():
    x = torch.rand(5, 3, 32, 48, dtype=torch.float64)  # 15 planes: several chunks when chunks are small
    chunked = jpeg.block_dct(x)
    plain = jpeg.block_dct(x.clone().requires_grad_(True))
    np.testing.assert_allclose(chunked.numpy(), plain.detach().numpy(), atol=1e-12)
    plain.sum().backward()  # the autograd path stays differentiable


def test_block_dct_many_chunks(monkeypatch):
    monkeypatch.setattr(jpeg, "_CHUNK_VALUES", 2 * 16 * 16)  # two planes per chunk, odd remainder
    x = torch.rand(7, 16, 16, dtype=torch.float64)
    ref = scipy.fft.dctn(_blocks(x.numpy()), axes=(-2, -1), norm="ortho")
    np.testing.assert_allclose(_blocks(jpeg.block_dct(x).numpy()), ref, atol=1e-9)
    np.testing.assert_allclose(jpeg.block_idct(jpeg.block_dct(x)).numpy(), x.numpy(), atol=1e-9)
