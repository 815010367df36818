"""antiforge_lib.viz on a tiny untrained two-branch net (resnet18 cut at layer3, 32 px) and hand-made arrays."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

from antiforge_lib import viz
from antiforge_lib.data import denormalize
from antiforge_lib.metrics import METRIC_THRESHOLD
from antiforge_lib.models import SingleBranchNet, TwoBranchNet

S, N = 32, 12


class _Pairs(torch.utils.data.Dataset):
    """N random (hq, lq, mask, label) items, reals then fakes, with ``items`` like PairedFaces."""

    def __init__(self, n=N, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.label = torch.tensor([0] * (n // 2) + [1] * (n - n // 2))
        self.hq = torch.randn(n, 3, S, S, generator=g).clamp(-1, 1)
        self.lq = (self.hq + 0.1 * torch.randn(n, 3, S, S, generator=g)).clamp(-1, 1)
        self.mask = torch.zeros(n, 1, S, S)
        self.mask[self.label == 1, :, 8:24, 8:24] = 1
        self.items = pd.DataFrame(
            {"method": ["original"] * (n // 2) + ["Deepfakes"] * (n - n // 2), "video": [f"{i:03d}" for i in range(n)]}
        )

    def __len__(self):
        return len(self.label)

    def __getitem__(self, i):
        return self.hq[i], self.lq[i], self.mask[i], self.label[i]


@pytest.fixture(scope="module")
def ds():
    return _Pairs()


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return TwoBranchNet("resnet18", cut="layer3")


@pytest.fixture(scope="module")
def emb(net, ds):
    net.train()
    out = viz.collect_embeddings(net, torch.utils.data.DataLoader(ds, batch_size=5), keep_images=True)
    assert net.training  # mode restored
    return out


# ---------------------------------------------------------------------------------------------------------------
# collect_embeddings, pair_distance


def test_collect_embeddings_shapes_and_values(net, ds, emb):
    d = net.embed_dim
    assert emb["c_hq"].shape == emb["c_lq"].shape == (N, d)
    for key in ("norm_hq", "norm_lq", "score", "label"):
        assert emb[key].shape == (N,)
    assert emb["m_hq"].shape == emb["m_lq"].shape == (N, 4, 4)  # head = stages before layer3: stride 8
    assert emb["mask"].shape == (N, S, S) and emb["mask"].dtype == np.uint8
    assert emb["hq"].shape == emb["lq"].shape == (N, S, S, 3) and emb["lq"].dtype == np.uint8
    assert emb["threshold"] == METRIC_THRESHOLD

    # norms: an independent numpy computation; the score of a metric net is the LQ norm
    np.testing.assert_allclose(emb["norm_hq"], np.linalg.norm(emb["c_hq"].astype(np.float64), axis=1), rtol=1e-5)
    np.testing.assert_allclose(emb["norm_lq"], np.linalg.norm(emb["c_lq"].astype(np.float64), axis=1), rtol=1e-5)
    np.testing.assert_allclose(emb["score"], emb["norm_lq"], rtol=1e-6)

    # the embeddings are those of the eval-mode net, branch by branch, in loader order
    net.eval()
    with torch.no_grad():
        lq_only = net.forward_lq(ds.lq)
        both = net(ds.hq, ds.lq)
    net.train()
    np.testing.assert_allclose(emb["c_lq"], lq_only.c.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(emb["c_hq"], both.c_hq.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(emb["m_lq"], lq_only.m[:, 0].numpy(), rtol=1e-4, atol=1e-6)

    np.testing.assert_array_equal(emb["label"], ds.label.numpy())
    np.testing.assert_array_equal(emb["mask"], ds.mask[:, 0].numpy().astype(np.uint8))
    expected = (denormalize(ds.lq) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(emb["lq"], expected)
    assert emb["method"][0] == "original" and emb["method"][-1] == "Deepfakes"
    assert list(emb["video"]) == list(ds.items["video"])


def test_collect_embeddings_max_items_and_no_images(net, ds, emb):
    part = viz.collect_embeddings(net, torch.utils.data.DataLoader(ds, batch_size=5), max_items=7)
    assert part["c_lq"].shape[0] == 7 and len(part["video"]) == 7
    np.testing.assert_allclose(part["c_lq"], emb["c_lq"][:7], rtol=1e-4, atol=1e-5)
    assert not {"hq", "lq", "mask"} & set(part)
    # a Subset is followed to its dataset's rows
    sub = torch.utils.data.Subset(ds, [11, 0, 5])
    part = viz.collect_embeddings(net, torch.utils.data.DataLoader(sub, batch_size=2))
    assert list(part["video"]) == ["011", "000", "005"]
    np.testing.assert_array_equal(part["label"], [1, 0, 0])
    # a shuffled loader: no method/video, with a warning
    with pytest.warns(UserWarning, match="in order"):
        part = viz.collect_embeddings(net, torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True))
    assert part["video"] is None and part["method"] is None


def test_collect_embeddings_single_branch(ds):
    torch.manual_seed(0)
    single = SingleBranchNet("resnet18", cut="layer3", head="ce", attention=True)
    out = viz.collect_embeddings(single, torch.utils.data.DataLoader(ds, batch_size=6), keep_images=True)
    assert not {"c_hq", "norm_hq", "m_hq", "hq"} & set(out)
    assert out["c_lq"].shape == (N, single.embed_dim) and out["m_lq"].shape == (N, 4, 4)
    np.testing.assert_allclose(out["norm_lq"], np.linalg.norm(out["c_lq"], axis=1), rtol=1e-5)
    assert out["threshold"] == 0.5 and ((out["score"] >= 0) & (out["score"] <= 1)).all()  # fake probabilities
    with pytest.raises(ValueError, match="c_hq and c_lq"):
        viz.pair_distance(out)


def test_pair_distance(emb):
    expected = np.sqrt(((emb["c_lq"].astype(np.float64) - emb["c_hq"]) ** 2).sum(axis=1))
    np.testing.assert_allclose(viz.pair_distance(emb), expected, rtol=1e-6)
    assert (viz.pair_distance({"c_hq": emb["c_hq"], "c_lq": emb["c_hq"]}) == 0).all()


# ---------------------------------------------------------------------------------------------------------------
# Fig. 5a


def _vlines(fig):
    return sorted({round(s.x0, 6) for s in fig.layout.shapes if s.x0 == s.x1})


def test_distance_histogram_traces_data_and_lines(emb):
    fig = viz.plot_distance_histogram(emb)
    assert isinstance(fig, go.Figure) and all(isinstance(t, go.Histogram) for t in fig.data)
    assert [(t.meta["branch"], t.meta["label"]) for t in fig.data] == [("hq", 0), ("hq", 1), ("lq", 0), ("lq", 1)]
    assert [t.name for t in fig.data] == ["real", "fake", "real", "fake"]
    y = emb["label"]
    for t in fig.data:
        expected = emb[f"norm_{t.meta['branch']}"][y == t.meta["label"]]
        np.testing.assert_allclose(np.asarray(t.x), expected, rtol=1e-6)
    assert fig.data[0].xaxis == "x" and fig.data[2].xaxis == "x2"  # one panel per branch
    assert _vlines(fig) == [0.1, 9.05, 18.0]
    assert sum(s.x0 == pytest.approx(9.05) for s in fig.layout.shapes) == 2  # the threshold in both panels


def test_distance_histogram_from_plain_arrays():
    norms, y = np.array([0.05, 0.2, 17.0, 19.5, 25.0]), np.array([0, 0, 1, 1, 1])
    fig = viz.plot_distance_histogram({"norm_lq": norms, "label": y}, threshold=5.0, r_minus=None, nbins=10)
    assert [t.meta for t in fig.data] == [{"branch": "lq", "label": 0}, {"branch": "lq", "label": 1}]
    np.testing.assert_array_equal(fig.data[1].x, [17.0, 19.5, 25.0])
    assert _vlines(fig) == [5.0, 18.0]
    with pytest.raises(ValueError, match="norm_hq"):
        viz.plot_distance_histogram({"label": y})


# ---------------------------------------------------------------------------------------------------------------
# Fig. 5b


def test_embed_2d_tsne_deterministic_and_umap(emb):
    x = emb["c_lq"]
    a = viz.embed_2d(x, "tsne", seed=0, max_iter=250)
    b = viz.embed_2d(x, "tsne", seed=0, max_iter=250)
    assert a.shape == (N, 2) and np.isfinite(a).all()
    np.testing.assert_allclose(a, b)
    assert viz.embed_2d(x[:4], "tsne", max_iter=250).shape == (4, 2)  # perplexity clipped below N
    u = viz.embed_2d(x, "umap", seed=0, n_epochs=50)
    assert u.shape == (N, 2) and np.isfinite(u).all()
    with pytest.raises(ValueError, match="tsne"):
        viz.embed_2d(x, "pca")


def test_plot_embedding_2d_traces(emb):
    fig = viz.plot_embedding_2d(emb, "tsne", seed=0, link_pairs=True, max_iter=250)
    link, *points = fig.data
    assert link.name == "HQ–LQ pair" and link.mode == "lines"
    assert len(link.x) == 3 * N and np.isnan(np.asarray(link.x, float)[2::3]).all()  # one segment per pair
    assert [(t.meta["label"], t.meta["branch"]) for t in points] == [(0, "hq"), (0, "lq"), (1, "hq"), (1, "lq")]
    y = emb["label"]
    for t in points:
        assert len(t.x) == len(t.y) == (y == t.meta["label"]).sum()
        assert t.marker.symbol == viz.BRANCH_SYMBOLS[t.meta["branch"]]
    # the HQ and LQ points come from ONE joint embedding of the stacked features
    xy = viz.embed_2d(np.concatenate([emb["c_hq"], emb["c_lq"]]), "tsne", seed=0, max_iter=250)
    np.testing.assert_allclose(points[3].x, xy[N:][y == 1, 0], rtol=1e-6)
    np.testing.assert_allclose(link.x[:2], [xy[0, 0], xy[N, 0]], rtol=1e-6)
    # LQ only (single-branch output): two traces
    fig = viz.plot_embedding_2d({"c_lq": emb["c_lq"], "label": y}, max_iter=250)
    assert [t.name for t in fig.data] == ["real, LQ branch", "fake, LQ branch"]
    with pytest.raises(ValueError, match="link_pairs"):
        viz.plot_embedding_2d({"c_lq": emb["c_lq"], "label": y}, link_pairs=True)


# ---------------------------------------------------------------------------------------------------------------
# Fig. 3


def test_upsample_maps_shapes_and_values():
    maps = np.random.default_rng(0).random((5, 2, 2)).astype(np.float32)
    up = viz.upsample_maps(maps, 32)
    assert up.shape == (5, 32, 32) and up.min() >= maps.min() - 1e-6 and up.max() <= maps.max() + 1e-6
    assert viz.upsample_maps(maps[:, None], (8, 6)).shape == (5, 8, 6)
    # bilinear, half-pixel centres: a [0, 1] ramp of 2 pixels becomes [0, 0.25, 0.75, 1] at 4 pixels
    ramp = np.array([[[0.0, 1.0], [0.0, 1.0]]])
    np.testing.assert_allclose(viz.upsample_maps(ramp, 4)[0, 0], [0, 0.25, 0.75, 1])
    with pytest.raises(ValueError, match="shape"):
        viz.upsample_maps(np.zeros((2, 3, 4, 4)), 8)


def _fake_emb(scores, labels, h=4):
    """A hand-made emb dict: random crops and maps, given scores and labels."""
    n, rng = len(scores), np.random.default_rng(0)
    return {
        "lq": rng.integers(0, 256, (n, S, S, 3), dtype=np.uint8),
        "mask": np.zeros((n, S, S), np.uint8),
        "m_hq": rng.random((n, h, h), dtype=np.float32),
        "m_lq": rng.random((n, h, h), dtype=np.float32),
        "score": np.asarray(scores, float),
        "label": np.asarray(labels),
    }


def _rows(fig):
    """Row titles (the kinds) of a gallery, top to bottom."""
    return [a.text for a in fig.layout.annotations if a.textangle == 90]


def test_attention_gallery_four_kinds():
    # TP: fakes above 9.05 (15 is the most confident), TN: reals below, FN: a fake below, FP: a real above
    e = _fake_emb([15.0, 12.0, 1.0, 3.0, 2.0, 10.0], [1, 1, 0, 0, 1, 0])
    fig = viz.plot_attention_gallery(e, n_per_kind=2)
    assert _rows(fig) == ["true positive"] * 2 + ["true negative"] * 2 + ["false negative", "false positive"]
    images = [t for t in fig.data if isinstance(t, go.Image)]
    heatmaps = [t for t in fig.data if isinstance(t, go.Heatmap)]
    assert len(images) == 6 and len(heatmaps) == 3 * 6
    np.testing.assert_array_equal(images[0].z, e["lq"][0])  # the most confident TP first
    np.testing.assert_array_equal(images[1].z, e["lq"][1])
    assert all(t.zmin == 0 and t.zmax == 1 for t in heatmaps)
    assert sum(bool(t.showscale) for t in heatmaps) == 1
    # maps shown at the crop size, equal to upsample_maps of the picked case
    hq_map = np.asarray(heatmaps[1].z)
    assert hq_map.shape == (S, S)
    np.testing.assert_allclose(hq_map, viz.upsample_maps(e["m_hq"][:1], S)[0], rtol=1e-6)
    assert [a.text for a in fig.layout.annotations if "no example" in a.text] == []
    # a threshold can be given: at 20, nothing is called fake
    fig = viz.plot_attention_gallery(e, threshold=20.0)
    assert _rows(fig) == ["true positive", "true negative", "false negative", "false positive"]
    assert len([t for t in fig.data if isinstance(t, go.Image)]) == 2


def test_attention_gallery_no_example_rows(emb):
    # the untrained net scores every face near 1, far below 9.05: no positives at all
    assert (emb["score"] < METRIC_THRESHOLD).all()
    fig = viz.plot_attention_gallery(emb, n_per_kind=1)
    assert _rows(fig) == ["true positive", "true negative", "false negative", "false positive"]
    missing = [a.text for a in fig.layout.annotations if a.text.startswith("no example")]
    assert missing == ["no example of a true positive: fake, detected", "no example of a false positive: real, flagged"]
    assert len([t for t in fig.data if isinstance(t, go.Image)]) == 2  # TN and FN rows
    # without the HQ branch (single-branch net) the column is left out
    lq_only = {k: v for k, v in emb.items() if not k.endswith("hq")}
    fig = viz.plot_attention_gallery(lq_only)
    assert [a.text for a in fig.layout.annotations if a.y == 1.0] == ["LQ crop", "mask", "LQ attention"]
    with pytest.raises(ValueError, match="attention"):
        viz.plot_attention_gallery({k: v for k, v in lq_only.items() if k != "m_lq"})
