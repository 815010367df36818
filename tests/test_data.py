"""antiforge_lib.data on a tiny synthetic pair index: shapes, normalisation, shared augmentation, balancing."""

import pickle
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from antiforge_lib.data import XCEPTION_MEAN, XCEPTION_STD, PairedFaces, denormalize, pair_dataloaders

S = 32
SQUARE = (slice(2, 12), slice(3, 13))  # bright square in the top-left corner: asymmetric under flips

# (split, n_fake, n_real)
LAYOUT = [("train", 6, 2), ("val", 2, 1), ("test", 1, 1)]


def _write_pair(folder, name, fake, rng):
    """Dark textured face with a bright square; HQ and LQ differ by their noise only."""
    base = rng.integers(0, 50, (S, S, 3))
    base[SQUARE] = 235
    hq = np.clip(base + rng.integers(0, 15, base.shape), 0, 255).astype(np.uint8)
    lq = np.clip(base + rng.integers(-10, 10, base.shape), 0, 255).astype(np.uint8)
    mask = np.zeros((S, S), np.uint8)
    if fake:
        mask[SQUARE] = 255
    paths = {}
    for kind, arr in (("hq", hq), ("lq", lq), ("mask", mask)):
        paths[kind] = str(folder / f"{name}_{kind}.png")
        Image.fromarray(arr).save(paths[kind])
    return paths


@pytest.fixture
def index(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for split, n_fake, n_real in LAYOUT:
        for k in range(n_fake + n_real):
            fake = k < n_fake
            video = f"{split}{k:03d}"
            paths = _write_pair(tmp_path, video, fake, rng)
            method = "SelfBlend" if fake else "original"
            rows.append(dict(split=split, method=method, video=video, frame=k, label=int(fake), **paths))
    return pd.DataFrame(rows)


def _png(path):
    return torch.from_numpy(np.array(Image.open(path))).float() / 255


def test_item_shapes_dtypes_and_normalisation(index):
    ds = PairedFaces(index, "val", size=S)
    assert not ds.augment and not ds.balance
    for i, row in ds.items.iterrows():
        hq, lq, mask, label = ds[i]
        assert hq.shape == lq.shape == (3, S, S) and mask.shape == (1, S, S)
        assert hq.dtype == lq.dtype == mask.dtype == torch.float32
        assert label.dtype == torch.int64 and label.ndim == 0 and label.item() == row["label"]
        assert type(hq) is torch.Tensor  # plain tensors, not tv_tensors, so collation is ordinary
        for x, path in ((hq, row["hq"]), (lq, row["lq"])):
            ref = (_png(path).permute(2, 0, 1) - 0.5) / 0.5
            torch.testing.assert_close(x, ref, atol=1e-6, rtol=0)
            assert x.min() >= -1 and x.max() <= 1
            torch.testing.assert_close(denormalize(x, XCEPTION_MEAN, XCEPTION_STD), _png(path).permute(2, 0, 1))
        torch.testing.assert_close(mask[0], _png(row["mask"]))
        assert set(mask.unique().tolist()) == ({0.0, 1.0} if row["label"] else {0.0})
    assert not torch.equal(ds[0][0], ds[0][1])  # HQ and LQ are genuinely different files


def test_resize_without_augmentation_keeps_mask_binary(index):
    ds = PairedFaces(index, "val", size=16)
    hq, lq, mask, _ = ds[0]
    assert hq.shape == lq.shape == (3, 16, 16) and mask.shape == (1, 16, 16)
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    assert mask.sum() == 25  # the 10x10 square, halved by nearest neighbour


def _bright(x):
    """Boolean (S, S) map of the bright square in a normalised image."""
    return denormalize(x).mean(0) > 0.5


def _centroid(b):
    ys, xs = torch.nonzero(b, as_tuple=True)
    return torch.stack([ys.float().mean(), xs.float().mean()])


def test_augmentation_is_shared_by_hq_lq_and_mask(index):
    ds = PairedFaces(index, "train", size=S)
    assert ds.augment
    left = right = 0
    centroids = []
    for seed in range(40):
        torch.manual_seed(seed)
        i = seed % len(ds)
        hq, lq, mask, label = ds[i]
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        b_hq, b_lq = _bright(hq), _bright(lq)
        # Same crop box and flip: the square lands on the same pixels, up to a blurred edge.
        assert (b_hq ^ b_lq).sum() <= 4, f"seed {seed}: HQ and LQ squares disagree"
        if label == 1:
            # torchvision resizes masks with NEAREST (floor), images bilinearly: edges may differ by one pixel.
            m = mask[0].bool()
            iou = (m & b_hq).sum() / (m | b_hq).sum()
            shift = (_centroid(m) - _centroid(b_hq)).abs().max()
            assert iou > 0.6 and shift < 1.5, (
                f"seed {seed}: mask and HQ square disagree (IoU {iou:.2f}, {shift:.1f} px)"
            )
        else:
            assert mask.sum() == 0
        c = _centroid(b_hq)
        assert c[0] < S / 2, "the square never moves vertically, only crops shift it"
        left, right = left + (c[1] < S / 2), right + (c[1] > S / 2)
        centroids.append(c)
    # Both flip outcomes happened, and crops really vary.
    assert left >= 5 and right >= 5
    assert torch.stack(centroids).std(0).min() > 0.3


def test_augmentation_is_reproducible_with_manual_seed(index):
    ds = PairedFaces(index, "train", size=S)
    torch.manual_seed(3)
    a = ds[0]
    torch.manual_seed(3)
    b = ds[0]
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


@pytest.mark.parametrize(("size", "src", "augment"), [(32, 32, True), (48, 20, True), (32, 50, False)])
def test_pair_transform_is_torchvisions_v2_compose_bit_for_bit(size, src, augment):
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    from antiforge_lib.data import pair_transform

    geometry = (
        [v2.RandomResizedCrop(size, scale=(0.8, 1.0), ratio=(0.9, 1.1), antialias=True), v2.RandomHorizontalFlip()]
        if augment
        else [v2.Resize((size, size), antialias=True)]
    )
    to_float = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(XCEPTION_MEAN, XCEPTION_STD)]
    reference = v2.Compose([*geometry, *to_float])
    ours = pair_transform(size, augment)
    g = torch.Generator().manual_seed(0)
    for seed in range(12):
        hq, lq = (torch.randint(0, 256, (3, src, src), dtype=torch.uint8, generator=g) for _ in range(2))
        mask = (torch.rand(1, src, src, generator=g) > 0.5).to(torch.uint8) * 255
        torch.manual_seed(seed)
        got = ours(hq, lq, mask)
        after_ours = torch.rand(1)  # the generator was advanced exactly as much
        torch.manual_seed(seed)
        want = reference(tv_tensors.Image(hq), tv_tensors.Image(lq), tv_tensors.Mask(mask))
        after_reference = torch.rand(1)
        want = (want[0], want[1], (want[2].float() / 255 > 0.5).float())
        for x, y in zip(got, want, strict=True):
            assert torch.equal(x, y.as_subclass(torch.Tensor))
        assert torch.equal(after_ours, after_reference)


def test_train_is_balanced_by_oversampling_reals_and_val_is_not(index):
    train = PairedFaces(index, "train", size=S)
    assert train.counts == {"real": 2, "fake": 6}
    assert len(train) == 12
    assert (train.items["label"] == 0).sum() == 6 and (train.items["label"] == 1).sum() == 6
    # Round-robin: each of the two reals is served three times.
    assert train.items.loc[train.items["label"] == 0, "video"].value_counts().tolist() == [3, 3]
    assert sorted(int(train[i][3]) for i in range(len(train))) == [0] * 6 + [1] * 6

    val = PairedFaces(index, "val", size=S)
    assert val.counts == {"real": 1, "fake": 2} and len(val) == 3
    assert len(PairedFaces(index, "train", size=S, balance=False)) == 8


def test_balancing_with_one_class_absent_does_not_crash(index):
    only_fakes = index[(index["split"] != "train") | (index["label"] == 1)]
    ds = PairedFaces(only_fakes, "train", size=S)
    assert ds.counts == {"real": 0, "fake": 6} and len(ds) == 6


def test_missing_and_corrupt_png_name_the_file(index, tmp_path):
    ds = PairedFaces(index, "val", size=S)
    missing = ds.items.loc[0, "lq"]
    (tmp_path / missing.rsplit("/", 1)[-1]).unlink()
    with pytest.raises(FileNotFoundError, match=missing.rsplit("/", 1)[-1]):
        ds[0]
    corrupt = ds.items.loc[1, "mask"]
    with open(corrupt, "wb") as f:
        f.write(b"not a png")
    with pytest.raises(ValueError, match=corrupt.rsplit("/", 1)[-1]):
        ds[1]


def test_unknown_split_and_missing_columns_are_explained(index):
    with pytest.raises(ValueError, match=r"'valid'.*available splits: \['test', 'train', 'val'\]"):
        PairedFaces(index, "valid")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['mask'\]"):
        PairedFaces(index.drop(columns="mask"), "train")


def test_pair_dataloaders(index):
    from fastai.data.core import DataLoaders

    dls = pair_dataloaders(index, size=S, bs=4, num_workers=0, device="cpu")
    assert isinstance(dls, DataLoaders)
    assert isinstance(dls.train, torch.utils.data.DataLoader) and isinstance(dls.valid, torch.utils.data.DataLoader)
    assert dls.device == torch.device("cpu")
    assert len(dls.train.dataset) == 12 and len(dls.valid.dataset) == 3 and len(dls.test.dataset) == 2
    assert dls.train.dataset.augment and not dls.valid.dataset.augment and not dls.test.dataset.augment
    hq, lq, mask, label = next(iter(dls.train))
    assert hq.shape == lq.shape == (4, 3, S, S) and mask.shape == (4, 1, S, S) and label.shape == (4,)
    assert label.dtype == torch.int64
    assert [len(b[3]) for b in dls.valid] == [3]  # no drop_last, no shuffle
    assert torch.equal(next(iter(dls.valid))[3], torch.tensor([1, 1, 0]))

    # The training shuffle is seeded: same seed, same order; another seed, another order.
    def order(seed):
        return list(pair_dataloaders(index, size=S, bs=4, num_workers=0, seed=seed).train.sampler)

    assert order(7) == order(7) != order(8)
    assert sorted(order(7)) == list(range(12))

    no_test = pair_dataloaders(index[index["split"] != "test"], size=S, bs=4, num_workers=0)
    assert no_test.test is None


# ---------------------------------------------------------------------------------------------------------------
# The packed copy of a cache (antiforge_lib.data.packed): raw uint8 per split, read instead of the PNGs


@pytest.fixture
def cache(tmp_path):
    """A pair cache as prepare_pairs lays it out: <method>/<video>/<frame>_{hq,lq,mask}.png and index.csv."""
    from antiforge_lib.data.index import INDEX_COLUMNS

    root, rng, rows = tmp_path / "cache", np.random.default_rng(1), []
    for split, n_fake, n_real in LAYOUT:
        for k in range(n_fake + n_real):
            fake, video = k < n_fake, f"{split}{k:03d}"
            method = "SelfBlend" if fake else "original"
            (root / method / video).mkdir(parents=True)
            paths = _write_pair(root / method / video, "0000", fake, rng)
            rel = {key: str(Path(p).relative_to(root)) for key, p in paths.items()}
            rows.append(dict(split=split, method=method, video=video, frame=0, label=int(fake), **rel))
    frame = pd.DataFrame(rows).assign(x0=0, y0=0, x1=S, y1=S)[INDEX_COLUMNS]
    frame.to_csv(root / "index.csv", index=False)
    return root


def test_packed_copy_holds_the_pngs_pixels_and_gives_the_same_items(cache):
    from antiforge_lib.data.packed import PackedPairs, pack_cache
    from antiforge_lib.data.pairs import load_index

    index = load_index(cache)
    assert PairedFaces(index, "train", size=S).packed is None  # nothing packed yet: the PNGs
    written = pack_cache(cache, progress=False)
    assert sorted(written) == ["test", "train", "val"]
    arr = np.load(written["val"])
    assert arr.dtype == np.uint8 and arr.shape == (3, 7, S, S)
    for j, row in enumerate(index[index.split == "val"].itertuples()):  # channels against Pillow's decode
        assert np.array_equal(arr[j, :3].transpose(1, 2, 0), np.array(Image.open(row.hq)))
        assert np.array_equal(arr[j, 3:6].transpose(1, 2, 0), np.array(Image.open(row.lq)))
        assert np.array_equal(arr[j, 6], np.array(Image.open(row.mask)))
    for split in ("train", "val"):
        fast, slow = PairedFaces(index, split, size=S), PairedFaces(index, split, size=S, packed=False)
        assert isinstance(fast.packed, PackedPairs) and slow.packed is None
        fast[0]
        fast.packed = pickle.loads(pickle.dumps(fast.packed))  # as a spawned worker gets it: mapped anew
        assert fast.packed._arrays == {}
        for i in range(len(fast)):  # balanced train repeats reals: every row still finds its pixels
            torch.manual_seed(i)
            a = fast[i]
            torch.manual_seed(i)
            b = slow[i]
            assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_a_stale_packed_copy_is_not_read(cache):
    from antiforge_lib.data.packed import pack_cache
    from antiforge_lib.data.pairs import load_index

    pack_cache(cache, progress=False)
    text = (cache / "index.csv").read_text()
    (cache / "index.csv").write_text(text.replace(",0,0,", ",1,0,", 1))  # the cache was prepared again
    index = load_index(cache)
    with pytest.warns(UserWarning, match="Pack it again: python -m antiforge_lib.data.packed"):
        assert PairedFaces(index, "val", size=S).packed is None
    with pytest.raises(ValueError, match="no current packed copy"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        PairedFaces(index, "val", size=S, packed=True)


# ---------------------------------------------------------------------------------------------------------------
# Augmentation as a batch transform on the device (pair_dataloaders(augment_on="device"))


def _uint8_batch(index, n=8):
    ds = PairedFaces(index, "train", size=S, decode_only=True)
    items = [ds[i] for i in range(n)]
    assert items[0][0].dtype == torch.uint8 and items[0][2].dtype == torch.uint8  # the workers only read
    return ds, [torch.stack(t) for t in zip(*items, strict=True)]


def test_batch_augmentation_is_the_per_pair_transform_pair_by_pair(index):
    from antiforge_lib.data import augment_pair_batch, pair_transform

    ds, (hq, lq, mask, label) = _uint8_batch(index)
    torch.manual_seed(5)
    got = augment_pair_batch(ds.transform, hq, lq, mask)
    torch.manual_seed(5)
    reference = pair_transform(S, augment=True)  # a fresh one: the transform holds no state between pairs
    want = [reference(hq[b], lq[b], mask[b]) for b in range(len(hq))]
    for k in range(3):
        assert torch.equal(got[k], torch.stack([w[k] for w in want]))
    assert got[0].shape == (8, 3, S, S) and got[2].shape == (8, 1, S, S) and got[0].dtype == torch.float32


def test_batch_augmentation_moves_hq_lq_and_mask_together_and_repeats_with_the_seed(index):
    from antiforge_lib.data import augment_pair_batch

    ds, (hq, lq, mask, label) = _uint8_batch(index)
    centroids = []
    for seed in range(6):
        torch.manual_seed(seed)
        a = augment_pair_batch(ds.transform, hq, lq, mask)
        torch.manual_seed(seed)
        b = augment_pair_batch(ds.transform, hq, lq, mask)
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))  # the same seed, the same batch
        for i in range(len(hq)):
            b_hq, b_lq = _bright(a[0][i]), _bright(a[1][i])
            # The square lands on the same pixels in HQ and LQ, up to their noise at its blurred edge.
            assert (b_hq & b_lq).sum() / (b_hq | b_lq).sum() > 0.85
            assert (_centroid(b_hq) - _centroid(b_lq)).abs().max() < 0.5
            if label[i] == 1:  # and under the mask (nearest neighbour: edges may differ by a pixel)
                m = a[2][i, 0].bool()
                assert set(a[2][i].unique().tolist()) <= {0.0, 1.0}
                assert (m & b_hq).sum() / (m | b_hq).sum() > 0.6
                assert (_centroid(m) - _centroid(b_hq)).abs().max() < 1.5
            centroids.append(_centroid(b_hq))
    assert torch.stack(centroids).std(0).min() > 0.3  # crops and flips really vary


def test_augment_on_device_trains_on_float_batches_the_callback_makes(cache):
    import warnings as w

    from antiforge_lib.callbacks import AugmentOnDevice
    from antiforge_lib.data.pairs import load_index
    from antiforge_lib.learner import TrainConfig, anticompression_learner

    with w.catch_warnings():
        w.simplefilter("ignore", FutureWarning)
        from fastai.callback.core import Callback

    class Seen(Callback):
        order = 50

        def __init__(self):
            self.batches = []

        def after_pred(self):
            self.batches.append((self.training, self.learn.xb[0].dtype, tuple(self.learn.xb[0].shape[1:])))

    dls = pair_dataloaders(load_index(cache), size=24, bs=4, num_workers=0, device="cpu", augment_on="device")
    assert [type(cb) for cb in dls.batch_callbacks] == [AugmentOnDevice]
    assert next(iter(dls.train))[0].dtype == torch.uint8
    config = TrainConfig(backbone="resnet18", cut="layer3", size=24, batch_size=4, patience=None)
    seen = Seen()
    learn = anticompression_learner(dls, config, cbs=[seen])
    learn.remove_cbs([cb for cb in learn.cbs if type(cb).__name__ == "ProgressCallback"])
    with w.catch_warnings():
        w.simplefilter("ignore")
        learn.fit(1)
    assert seen.batches and {b[1:] for b in seen.batches} == {(torch.float32, (3, 24, 24))}
    assert {b[0] for b in seen.batches} == {True, False}
    with pytest.raises(ValueError, match="augment_on"):
        pair_dataloaders(load_index(cache), augment_on="gpu")
