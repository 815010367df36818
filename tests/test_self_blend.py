"""antiforge_lib.self_blend: exact blends, LQ from a real codec, reproducible items, the loader contract."""

import io

import av
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from antiforge_lib import self_blend as sb
from antiforge_lib.data import PairedFaces, SelfBlendedPairs, StreamSampler, self_blend_dataloaders
from antiforge_lib.samples import face_image

S = 64


@pytest.fixture(scope="module")
def crops(tmp_path_factory):
    """Square face crops (the embedded portrait, shifted and zoomed), as a real-only pair index would list them."""
    folder = tmp_path_factory.mktemp("crops")
    photo = face_image(crop=False).convert("RGB").resize((160, 160))
    paths = []
    for k in range(6):
        box = (10 + 3 * k, 8 + 2 * k, 10 + 3 * k + 120 - 4 * k, 8 + 2 * k + 120 - 4 * k)
        path = folder / f"{k}.png"
        photo.crop(box).resize((S, S), Image.Resampling.BICUBIC).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def index(crops, tmp_path_factory):
    """A pair index: real crops for train and val (val also with a cached fake), a test split."""
    folder = tmp_path_factory.mktemp("cache")
    zero = folder / "zero.png"
    Image.new("L", (S, S), 0).save(zero)
    full = folder / "full.png"
    Image.new("L", (S, S), 255).save(full)
    rows = []
    for k, p in enumerate(crops):
        split = "train" if k < 4 else "val" if k == 4 else "test"
        rows.append(
            dict(split=split, method="original", video=f"{k:03d}", frame=0, label=0, hq=p, lq=p, mask=str(zero))
        )
        if split != "train":
            rows.append(
                dict(split=split, method="SelfBlend", video=f"{k:03d}_x", frame=0, label=1, hq=p, lq=p, mask=str(full))
            )
    return pd.DataFrame(rows)


def _jpeg_reference(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def test_the_mask_is_exactly_the_blend_weight():
    img = np.asarray(face_image(crop=False).convert("RGB").resize((96, 96)))
    box = (20.0, 14.0, 76.0, 84.0)
    for seed in range(5):
        params = sb.draw_blend(np.random.default_rng(seed))
        fake, mask, donor = sb.self_blend(img, box, params)
        assert mask.dtype == np.float32 and mask.shape == img.shape[:2]
        assert 0 <= mask.min() and mask.max() == pytest.approx(params.opacity, abs=1e-6)
        expected = mask[..., None] * donor.astype(np.float64) + (1 - mask[..., None]) * img
        assert np.abs(fake - expected).max() <= 0.5 + 1e-4  # the blend, up to rounding to uint8
        assert np.array_equal(fake[mask == 0], img[mask == 0])  # untouched outside the mask
        assert np.abs(fake.astype(int) - img)[mask > 0.5].mean() > 1  # and visibly changed inside


def test_blend_mask_matches_a_hand_computed_ellipse():
    # No rotation or ripple: an ellipse with semi-axes 0.4 x 0.5 of a 100 px box at (0.5, 0.5), ramp 20 %.
    p = sb.BlendParams(
        gain=(1, 1, 1), offset=(0, 0, 0), blur=0, sharpen=0, zoom=1, dx=0, dy=0, center=(0.5, 0.5),
        axes=(0.4, 0.5), angle=0.0, ripple=(), phase=(), soft=0.2, opacity=0.8,
    )  # fmt: skip
    m = sb.blend_mask(100, 100, (0, 0, 100, 100), p)
    # Pixel centres (x + 0.5, y + 0.5); the centre pixel sits at radius ~0: full opacity.
    assert m[49, 49] == pytest.approx(0.8, abs=1e-6)
    # Pixel (x=85, y=49) has its centre 35.5 px right of and 0.5 px above the ellipse's centre: r = hypot(35.5 / 40,
    # 0.5 / 50) = 0.8876, inside the ramp from 0.8 to 1, where the weight falls linearly from 0.8 to 0.
    r = np.hypot(35.5 / 40, 0.5 / 50)
    assert m[49, 85] == pytest.approx(0.8 * (1 - r) / 0.2, abs=1e-5)
    assert m[49, 95] == 0 and m[0, 0] == 0  # outside the ellipse
    assert m[49, 70] == pytest.approx(0.8)  # r = 20.5 / 40 < 0.8: inside the plateau


def test_compress_is_libjpeg_and_x264():
    img = np.asarray(face_image(crop=False).convert("RGB").resize((64, 64)))
    assert np.array_equal(sb.compress(img, "jpeg", 30), _jpeg_reference(img, 30))
    out = sb.compress(img, "h264", 40)
    # Independent reference: one frame through PyAV's libx264 at CRF 40 and back.
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as c:
        st = c.add_stream("libx264", rate=30, options={"crf": "40"})
        st.width, st.height, st.pix_fmt = 64, 64, "yuv420p"
        c.mux(st.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(st.encode())
    buf.seek(0)
    with av.open(buf) as c:
        ref = next(c.decode(video=0)).to_ndarray(format="rgb24")
    assert np.array_equal(out, ref)
    assert np.abs(out.astype(int) - img).mean() > 1  # CRF 40 is lossy
    with pytest.raises(ValueError, match="codec must be one of"):
        sb.compress(img, "webp", 40)


@pytest.mark.parametrize("codec", ["jpeg", "h264"])
def test_lq_is_the_codec_output_of_hq(crops, codec):
    ds = SelfBlendedPairs(crops, size=S, codec=codec, augment=False)
    for i in range(6):
        item = ds.make(i)
        lo, hi = sb.CODECS[codec]
        assert lo <= item["strength"] <= hi
        assert np.array_equal(item["lq"], sb.compress(item["hq"], codec, item["strength"]))
    if codec == "jpeg":
        item = ds.make(0)
        assert np.array_equal(item["lq"], _jpeg_reference(item["hq"], item["strength"]))


def test_real_items_are_the_crop_unchanged_and_fakes_carry_their_mask(crops):
    ds = SelfBlendedPairs(crops, size=S, augment=False)
    labels, others = [], 0
    for i in range(60):
        item = ds.make(i)
        labels.append(item["label"])
        source = np.asarray(Image.open(item["source"]).convert("RGB"))
        if item["label"] == 0:
            assert np.array_equal(item["hq"], source) and not item["weight"].any() and item["params"] is None
        else:
            params = sb.BlendParams(**{k: tuple(v) if isinstance(v, list) else v for k, v in item["params"].items()})
            donor = np.asarray(Image.open(item["donor"]).convert("RGB"))
            others += item["donor"] != item["source"]
            again = sb.self_blend(source, tuple(f * S for f in sb.FACE_BOX), params, source=donor)
            assert np.array_equal(item["hq"], again.fake) and np.array_equal(item["weight"], again.mask)
    assert 0 < sum(labels) < 60 and others > 0  # some fakes blend in another crop (p_other)


def test_items_are_deterministic_per_seed_and_key(crops):
    a = SelfBlendedPairs(crops, size=32, seed=7)
    b = SelfBlendedPairs(crops, size=32, seed=7)
    c = SelfBlendedPairs(crops, size=32, seed=8)
    for i in (0, 5, 1000):
        for x, y in zip(a[i], b[i], strict=True):
            assert torch.equal(x, y)
    assert any(not torch.equal(a[i][0], c[i][0]) for i in range(4))
    # The same in worker processes as in the main process.
    main = next(iter(torch.utils.data.DataLoader(a, batch_size=8, sampler=range(8))))
    workers = next(iter(torch.utils.data.DataLoader(a, batch_size=8, sampler=range(8), num_workers=2)))
    for x, y in zip(main, workers, strict=True):
        assert torch.equal(x, y)


def test_fake_fraction_is_p_fake(crops):
    ds = SelfBlendedPairs(crops, size=16, augment=False)
    n = 400
    fakes = sum(ds.make(i)["label"] for i in range(n))
    assert abs(fakes - n / 2) < 4 * (n * 0.25) ** 0.5  # four binomial standard deviations
    assert sum(SelfBlendedPairs(crops, size=16, p_fake=0.0).make(i)["label"] for i in range(50)) == 0


def test_stream_sampler_gives_new_keys_each_epoch_and_obeys_set_epoch():
    s = StreamSampler(4)
    assert list(s) == [0, 1, 2, 3] and list(s) == [4, 5, 6, 7]
    s.set_epoch(5)
    assert list(s) == [20, 21, 22, 23] and list(s) == [24, 25, 26, 27] and len(s) == 4


def test_loader_contract_matches_pair_dataloaders(index):
    dls = self_blend_dataloaders(index, size=32, bs=4, num_workers=0, length=8, device="cpu")
    assert len(dls.train.dataset) == 8 and isinstance(dls.train.dataset, SelfBlendedPairs)
    assert isinstance(dls.valid.dataset, PairedFaces) and dls.valid.dataset.split == "val"
    assert dls.test is not None and dls.test.dataset.split == "test"
    for dl in (dls.train, dls.valid):
        hq, lq, mask, label = next(iter(dl))
        assert hq.shape[1:] == lq.shape[1:] == (3, 32, 32) and mask.shape[1:] == (1, 32, 32)
        assert hq.dtype == lq.dtype == mask.dtype == torch.float32 and label.dtype == torch.int64
        assert set(mask.unique().tolist()) <= {0.0, 1.0} and -1 <= hq.min() and hq.max() <= 1
    # The training keys move on with the epoch the learner sets.
    dls.train.sampler.set_epoch(0)
    first = [b[0].clone() for b in dls.train]
    dls.train.sampler.set_epoch(1)
    second = [b[0].clone() for b in dls.train]
    assert not all(torch.equal(x, y) for x, y in zip(first, second, strict=True))


def test_a_real_only_cache_validates_on_fixed_self_blends(index):
    reals = index[index.label == 0]
    dls = self_blend_dataloaders(reals, size=32, bs=4, num_workers=0, length=8, device="cpu")
    val = dls.valid.dataset
    assert isinstance(val, SelfBlendedPairs) and not val.augment
    once = [b[3] for b in dls.valid]
    again = [b[3] for b in dls.valid]
    assert all(torch.equal(x, y) for x, y in zip(once, again, strict=True))  # the same items every epoch
    labels = torch.cat(once)
    assert labels.tolist() == [0, 1] * (len(labels) // 2) and len(labels) == 2 * (reals.split == "val").sum()


def test_bad_input_is_explained(crops, tmp_path):
    with pytest.raises(ValueError, match="at least one real face crop"):
        SelfBlendedPairs([])
    with pytest.raises(ValueError, match="codec must be one of"):
        SelfBlendedPairs(crops, codec="webp")
    with pytest.raises(ValueError, match="strength must be a range"):
        SelfBlendedPairs(crops, strength=(60, 20))
    wide = tmp_path / "wide.png"
    Image.new("RGB", (40, 30)).save(wide)
    with pytest.raises(ValueError, match="wide.png.*square"):
        SelfBlendedPairs([str(wide)]).make(0)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png"):
        SelfBlendedPairs([str(broken)]).make(0)
    with pytest.raises(ValueError, match="uint8 RGB"):
        sb.self_blend(np.zeros((8, 8), np.uint8), (0, 0, 8, 8), sb.draw_blend(np.random.default_rng(0)))
    with pytest.raises(ValueError, match="no real faces in split 'test'"):
        SelfBlendedPairs.from_index(pd.DataFrame({"split": ["train"], "label": [0], "hq": crops[:1]}), "test")
