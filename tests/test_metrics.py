"""antiforge_lib.metrics against hand-computed cases, sklearn and an independent brute-force TAR@FAR."""

import math
import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from antiforge_lib import metrics as M
from antiforge_lib.losses import metric_loss, resize_mask
from antiforge_lib.models import BranchOutput, SingleBranchNet, TwoBranchNet, TwoBranchOutput

# ---------------------------------------------------------------------------------------------------------------
# accuracy, thresholds, auc


def test_threshold_is_halfway_between_the_radii():
    assert M.METRIC_THRESHOLD == pytest.approx(9.05)
    assert M.metric_threshold() == M.METRIC_THRESHOLD
    assert M.metric_threshold(1.0, 3.0) == 2.0
    with pytest.raises(ValueError, match="r_minus < r_plus"):
        M.metric_threshold(5.0, 1.0)


def test_decision_threshold_is_the_one_rule():
    assert M.decision_threshold() == pytest.approx((0.1 + 18.0) / 2)  # the paper's radii, Sec. 4.2
    assert M.decision_threshold({"r_minus": 0.01, "r_plus": 10.0}) == pytest.approx(5.005)
    assert M.decision_threshold(SimpleNamespace(to_dict=lambda: {"r_minus": 1.0, "r_plus": 3.0})) == 2.0
    assert M.decision_threshold({"r_minus": 1.0, "r_plus": 3.0}, ce=True) == 0.5
    assert M.decision_threshold({"model": "single-ce"}) == 0.5
    net = torch.nn.Linear(2, 2)
    assert M.decision_threshold(net) == pytest.approx(9.05)  # a model without a config: the paper's radii
    net.antiforge_config = {"r_minus": 0.0, "r_plus": 4.0}
    assert M.decision_threshold(net) == 2.0


def test_evaluate_defaults_to_the_models_own_threshold():
    """Norms 1 (real) and 3 (fake): right at the radii (0, 4)'s threshold 2, wrong at the paper's 9.05."""

    class Norms(torch.nn.Module):
        def forward(self, lq):
            return lq.flatten(1)[:, :2]

    net = Norms()
    lq = torch.tensor([[1.0, 0.0], [3.0, 0.0]]).reshape(2, 2, 1, 1)
    batch = (lq, lq, torch.zeros(2, 1, 1, 1), torch.tensor([0, 1]))
    assert M.evaluate(net, [batch])["ACC"].item() == 0.5
    net.antiforge_config = {"r_minus": 0.0, "r_plus": 4.0}
    assert M.evaluate(net, [batch])["ACC"].item() == 1.0


def test_accuracy_by_hand():
    scores = [0.5, 9.05, 9.06, 20.0, 3.0]
    is_fake = [0, 1, 1, 1, 0]
    # called fake (> 9.05): F F T T F -> correct: T F T T T. A score equal to the threshold counts as real.
    assert M.accuracy(scores, is_fake, M.METRIC_THRESHOLD) == pytest.approx(4 / 5)
    assert M.accuracy(torch.tensor(scores), torch.tensor(is_fake).bool(), 0.0) == pytest.approx(3 / 5)
    assert M.accuracy(np.array(scores), np.array(is_fake, float), 100.0) == pytest.approx(2 / 5)


def test_inputs_are_checked():
    with pytest.raises(ValueError, match="one label per score"):
        M.accuracy([1.0, 2.0], [0, 1, 1], 1.0)
    with pytest.raises(ValueError, match=r"labels in \{0, 1\}"):
        M.accuracy([1.0, 2.0], [0, 2], 1.0)
    with pytest.raises(ValueError, match="finite"):
        M.auc([1.0, float("nan")], [0, 1])
    with pytest.raises(ValueError, match="shape \\(N,\\)"):
        M.auc(np.zeros((2, 3)), [0, 1])


def test_auc_matches_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = rng.normal(size=300) + y  # fakes score higher on average
    assert M.auc(s, y) == pytest.approx(roc_auc_score(y, s))
    assert M.auc(torch.from_numpy(s), torch.from_numpy(y)) == pytest.approx(roc_auc_score(y, s))
    s_tied = np.round(s, 0)  # ties count half
    assert M.auc(s_tied, y) == pytest.approx(roc_auc_score(y, s_tied))


def test_auc_needs_both_classes():
    with pytest.raises(ValueError, match="both real .* only fakes"):
        M.auc([0.3, 0.7], [1, 1])
    with pytest.raises(ValueError, match="only reals"):
        M.auc([0.3, 0.7], [0, 0])


# ---------------------------------------------------------------------------------------------------------------
# TAR at FAR


def _tar_brute_force(s, y, far):
    """Independent reference: try every threshold t (each distinct score, and +inf), call fake when s >= t."""
    s, y = np.asarray(s, float), np.asarray(y, bool)
    best = 0.0
    for t in [*np.unique(s), np.inf]:
        pred = s >= t
        fpr = (pred & ~y).sum() / (~y).sum()
        tpr = (pred & y).sum() / y.sum()
        if fpr <= far:
            best = max(best, tpr)
    return best


@pytest.mark.filterwarnings("ignore::antiforge_lib.metrics.FewNegativesWarning")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tar_at_far_matches_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 400)
    s = np.round(rng.normal(size=400) + 1.5 * y, 1)  # rounding to 0.1 makes many ties across classes
    assert len(np.unique(s)) < len(s) / 3
    for far in (1e-3, 5e-3, 0.01, 0.02, 0.05, 0.1, 0.3, 0.5, 1.0):
        assert M.tar_at_far(s, y, far) == pytest.approx(_tar_brute_force(s, y, far)), far


@pytest.mark.filterwarnings("ignore::antiforge_lib.metrics.FewNegativesWarning")
def test_tar_at_far_by_hand_four_and_four():
    real = [0.1, 0.2, 0.3, 0.8]
    fake = [0.4, 0.5, 0.9, 1.0]
    s, y = real + fake, [0] * 4 + [1] * 4
    # t = 0.9: no real accepted, 2/4 fakes; one false accept (0.8) is FAR 1/4 and lets t drop to 0.4: all fakes.
    assert M.tar_at_far(s, y, 0.2) == 0.5
    assert M.tar_at_far(s, y, 0.25) == 1.0
    # A fake tied with the 0.8 real: no threshold separates them, so at FAR < 1/4 only 3 fakes are reachable.
    fake_tied = [0.8, 0.85, 0.9, 1.0]
    assert M.tar_at_far(real + fake_tied, y, 0.2) == 0.75
    assert M.tar_at_far(real + fake_tied, y, 0.25) == 1.0
    # Perfectly separated: TAR 1 at any FAR; inverted: TAR 0 until FAR 1.
    assert M.tar_at_far([0, 0, 1, 1], [0, 0, 1, 1], 1e-4) == 1.0
    assert M.tar_at_far([1, 1, 0, 0], [0, 0, 1, 1], 0.5) == 0.0
    assert M.tar_at_far([1, 1, 0, 0], [0, 0, 1, 1], 1.0) == 1.0


def test_tar_at_far_warns_when_too_few_reals():
    with pytest.warns(M.FewNegativesWarning, match=r"only 4 real .* 1/4"):
        M.tar_at_far([0.1, 0.2, 0.3, 0.8, 0.9], [0, 0, 0, 0, 1], 0.1)
    with pytest.warns(M.FewNegativesWarning):  # the boundary: FAR 0.2 < 1/4
        M.tar_at_far([0.1, 0.2, 0.3, 0.8, 0.9], [0, 0, 0, 0, 1], 0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # FAR 1/4 is resolved by 4 reals
        M.tar_at_far([0.1, 0.2, 0.3, 0.8, 0.9], [0, 0, 0, 0, 1], 0.25)
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(1000, int), np.ones(50, int)]
    s = rng.normal(size=len(y)) + 3 * y
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 1000 reals resolve FAR 1e-3: no warning
        M.tar_at_far(s, y, 1e-3)
    with pytest.warns(M.FewNegativesWarning, match="1000 real"):
        M.tar_at_far(s, y, 1e-4)


def test_tar_at_far_checks_far():
    with pytest.raises(ValueError, match="far is a fraction"):
        M.tar_at_far([0.1, 0.9], [0, 1], 0.0)
    with pytest.raises(ValueError, match="far is a fraction"):
        M.tar_at_far([0.1, 0.9], [0, 1], 10)


# ---------------------------------------------------------------------------------------------------------------
# PBCA


def test_pbca_by_hand_one_real_one_fake():
    maps = torch.tensor(
        [
            [[[0.1, 0.2], [0.3, 0.5]]],  # real: only the 0.5 pixel is called manipulated (>= 0.5)
            [[[0.9, 0.2], [0.7, 0.3]]],  # fake
        ]
    )
    masks = torch.tensor([[[[0, 0], [0, 0]]], [[[1, 1], [0, 0]]]], dtype=torch.float32)
    # real: 3/4 right; fake: pred [[1, 0], [1, 0]] vs [[1, 1], [0, 0]] -> 2/4 right.
    assert M.pbca(maps, masks) == pytest.approx(5 / 8)
    assert M.pbca(maps[:1], masks[:1]) == pytest.approx(3 / 4)
    assert M.pbca(maps, masks, threshold=0.8) == pytest.approx((4 + 3) / 8)


def test_pbca_counts_reals():
    zeros = torch.zeros(1, 1, 3, 3)
    assert M.pbca(zeros, zeros) == 1.0  # a real whose map is all 0 is 100% right
    fake_all_wrong = torch.ones(1, 1, 3, 3), torch.zeros(1, 1, 3, 3)
    assert M.pbca(*fake_all_wrong) == 0.0
    maps = torch.cat([zeros, fake_all_wrong[0]])
    assert M.pbca(maps, torch.zeros(2, 1, 3, 3)) == 0.5
    # A map sitting exactly at the threshold counts as manipulated.
    assert M.pbca(torch.full((1, 1, 2, 2), 0.5), torch.zeros(1, 1, 2, 2)) == 0.0


def test_pbca_resizes_masks_like_resize_mask():
    # 4x4 mask to a 2x2 map: windows covered 4/4, 2/4 (-> 1, at least half), 1/4 (-> 0) and 0/4.
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], dtype=torch.float32)[None, None]
    assert resize_mask(mask, 2).flatten().tolist() == [1, 1, 0, 0]
    assert M.pbca(torch.tensor([[[[0.9, 0.9], [0.1, 0.1]]]]), mask) == 1.0
    assert M.pbca(torch.tensor([[[[0.9, 0.1], [0.1, 0.1]]]]), mask) == 0.75
    g = torch.Generator().manual_seed(0)
    masks = (torch.rand(3, 1, 4, 4, generator=g) > 0.5).float().repeat_interleave(4, 2).repeat_interleave(4, 3)
    masks = masks + (torch.rand(3, 1, 16, 16, generator=g) > 0.8).float()  # speckle so resizing matters
    masks = masks.clamp(max=1)
    maps = torch.rand(3, 1, 5, 5, generator=g)
    assert M.pbca(maps, masks) == M.pbca(maps, resize_mask(masks, 5))


def test_pbca_checks_inputs():
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        M.pbca(torch.full((1, 1, 2, 2), 2.0), torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"\(B, 1, h, w\)"):
        M.pbca(torch.zeros(1, 2, 2), torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match="same B"):
        M.pbca(torch.zeros(2, 1, 2, 2), torch.zeros(1, 1, 2, 2))


# ---------------------------------------------------------------------------------------------------------------
# video AUC


def test_video_auc_averages_per_video_then_matches_sklearn():
    rng = np.random.default_rng(0)
    vid_label = {f"v{i}": int(i % 2) for i in range(12)}
    videos = rng.choice(list(vid_label), size=200)
    y = np.array([vid_label[v] for v in videos])
    s = rng.normal(size=200) + 0.3 * y
    means = {v: s[videos == v].mean() for v in vid_label}
    expected = roc_auc_score([vid_label[v] for v in vid_label], [means[v] for v in vid_label])
    assert M.video_auc(s, y, videos) == pytest.approx(expected)
    assert M.video_auc(s, y, videos) != pytest.approx(M.auc(s, y))  # frame AUC differs: averaging happened


def test_video_auc_rejects_mixed_videos():
    with pytest.raises(ValueError, match="mix real and fake.*'b'"):
        M.video_auc([0.1, 0.2, 0.3, 0.9], [0, 0, 0, 1], ["a", "b", "b", "b"])
    with pytest.raises(ValueError, match="one id per score"):
        M.video_auc([0.1, 0.9], [0, 1], ["a"])


# ---------------------------------------------------------------------------------------------------------------
# scores_from_output


def test_scores_from_output():
    c = torch.tensor([[3.0, 4.0], [0.0, 0.1]])
    v = torch.zeros(2, 1, 1, 1)
    assert torch.allclose(M.scores_from_output(BranchOutput(c, None, None, v)), torch.tensor([5.0, 0.1]))
    logits = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)]])
    got = M.scores_from_output(BranchOutput(c, logits, None, v))
    assert torch.allclose(got, torch.tensor([0.5, 0.75]))  # P(fake) = softmax(logits)[:, 1]
    two = TwoBranchOutput(c * 10, c, None, None, v, v)
    assert torch.allclose(M.scores_from_output(two), torch.tensor([5.0, 0.1]))  # the LQ branch
    with pytest.raises(TypeError, match="BranchOutput"):
        M.scores_from_output("nope")


# ---------------------------------------------------------------------------------------------------------------
# evaluate on tiny untrained nets

S = 32


class _Pairs(torch.utils.data.Dataset):
    """8 random (hq, lq, mask, label) items, 4 real then 4 fake, from 4 videos; ``items`` like PairedFaces."""

    def __init__(self, n=8, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.label = torch.tensor([0] * (n // 2) + [1] * (n // 2))
        self.hq = torch.randn(n, 3, S, S, generator=g)
        self.lq = self.hq + 0.1 * torch.randn(n, 3, S, S, generator=g)
        self.mask = torch.zeros(n, 1, S, S)
        self.mask[self.label == 1, :, 8:24, 8:24] = 1
        self.items = pd.DataFrame(
            {"method": ["original"] * (n // 2) + ["Deepfakes"] * (n // 2), "video": [f"{i // 2:03d}" for i in range(n)]}
        )

    def __len__(self):
        return len(self.label)

    def __getitem__(self, i):
        return self.hq[i], self.lq[i], self.mask[i], self.label[i]


def _loader(ds, **kw):
    return torch.utils.data.DataLoader(ds, batch_size=3, shuffle=False, **kw)


@pytest.fixture(scope="module")
def two_branch():
    torch.manual_seed(0)
    return TwoBranchNet("resnet18", cut="layer3")


COLUMNS = ["ACC", "AUC", "TAR@0.1%", "TAR@0.01%", "PBCA", "video_AUC", "n_real", "n_fake"]


@pytest.mark.filterwarnings("ignore::antiforge_lib.metrics.FewNegativesWarning")
def test_evaluate_two_branch(two_branch):
    ds = _Pairs()
    two_branch.train()
    df, sc = M.evaluate(two_branch, _loader(ds), return_scores=True)
    assert two_branch.training  # mode restored
    assert list(df.columns) == COLUMNS and len(df) == 1
    row = df.iloc[0]
    assert (row.n_real, row.n_fake) == (4, 4)
    assert np.isfinite([row.ACC, row.AUC, row.PBCA, row.video_AUC]).all()
    assert all(0 <= row[c] <= 1 for c in COLUMNS[:6])

    # The scores are ||c_lq|| of the LQ branch in eval mode, in loader order ...
    two_branch.eval()
    with torch.no_grad():
        out = two_branch.forward_lq(ds.lq)
    two_branch.train()
    np.testing.assert_allclose(sc["score"], out.c.norm(dim=1).numpy(), rtol=1e-5)
    np.testing.assert_array_equal(sc["is_fake"], ds.label.numpy() == 1)
    assert sc["video"][0] == "original/000" and sc["video"][-1] == "Deepfakes/003"
    # ... and the row is the library's metrics on them, at the default embedding threshold.
    assert row.ACC == M.accuracy(sc["score"], sc["is_fake"], M.METRIC_THRESHOLD)
    assert row.AUC == M.auc(sc["score"], sc["is_fake"])
    assert row["TAR@0.1%"] == M.tar_at_far(sc["score"], sc["is_fake"], 1e-3)
    assert row.video_AUC == M.video_auc(sc["score"], sc["is_fake"], sc["video"])
    assert row.PBCA == pytest.approx(M.pbca(out.m, ds.mask))


@pytest.mark.filterwarnings("ignore::antiforge_lib.metrics.FewNegativesWarning")
def test_evaluate_takes_the_image_and_the_video_ids_as_arguments(two_branch):
    ds = _Pairs()
    _, derived = M.evaluate(two_branch, _loader(ds), return_scores=True)
    # A plain iterable of batches (no dataset to read ids from), with the ids given: the same video AUC.
    batches = list(_loader(ds))
    row, sc = M.evaluate(two_branch, batches, return_scores=True, video_ids=M.video_ids(ds.items))
    np.testing.assert_array_equal(sc["video"], derived["video"])
    assert row.video_AUC.item() == M.video_auc(sc["score"], sc["is_fake"], sc["video"])
    assert np.isnan(M.evaluate(two_branch, batches)["video_AUC"].item())  # no ids, none derived
    # image="hq" scores the HQ slot: the same as swapping the images by hand.
    swapped = [(hq, hq, mask, label) for hq, _, mask, label in batches]
    _, by_hand = M.evaluate(two_branch, swapped, return_scores=True)
    _, hq = M.evaluate(two_branch, batches, return_scores=True, image="hq")
    np.testing.assert_allclose(hq["score"], by_hand["score"])
    assert not np.allclose(hq["score"], sc["score"])
    with pytest.raises(ValueError, match="one id per pair"):
        M.evaluate(two_branch, batches, video_ids=["a"])
    with pytest.raises(ValueError, match="image"):
        M.evaluate(two_branch, batches, image="c23")


def test_evaluate_warns_about_few_reals(two_branch):
    with pytest.warns(M.FewNegativesWarning):
        M.evaluate(two_branch, _loader(_Pairs()))


@pytest.mark.filterwarnings("ignore::antiforge_lib.metrics.FewNegativesWarning")
def test_evaluate_single_branch_ce():
    torch.manual_seed(0)
    net = SingleBranchNet("resnet18", cut="layer3", head="ce")
    ds = _Pairs()
    df, sc = M.evaluate(net, _loader(ds), return_scores=True)
    row = df.iloc[0]
    assert list(df.columns) == COLUMNS
    assert np.isfinite([row.ACC, row.AUC]).all() and math.isnan(row.PBCA)  # no attention: no PBCA
    assert ((sc["score"] >= 0) & (sc["score"] <= 1)).all()  # probabilities, thresholded at 0.5
    assert row.ACC == M.accuracy(sc["score"], sc["is_fake"], 0.5)
    # A shuffled loader cannot be matched to the video ids: video_AUC is skipped with a warning.
    with pytest.warns(UserWarning, match="video_AUC skipped"):
        shuffled = torch.utils.data.DataLoader(ds, batch_size=3, shuffle=True, generator=torch.Generator())
        df = M.evaluate(net, shuffled)
    assert math.isnan(df.iloc[0].video_AUC)


# ---------------------------------------------------------------------------------------------------------------
# fastai metrics


def test_fastai_metrics_accumulate_batches():
    g = torch.Generator().manual_seed(0)
    c = torch.randn(10, 4, generator=g) * torch.linspace(1, 20, 10)[:, None]
    y = torch.tensor([0, 1, 0, 1, 1, 0, 1, 0, 1, 1])
    m = torch.rand(10, 1, 2, 2, generator=g)
    mask = torch.zeros(10, 1, 4, 4)
    mask[y == 1, :, :2] = 1
    v = torch.zeros(10, 1, 1, 1)
    mets = [M.AUCMetric(), M.AccuracyAtThreshold(), M.TARatFAR(0.25), M.PBCAMetric()]
    assert [x.name for x in mets] == ["auc", "acc", "tar@25%", "pbca"]
    assert M.TARatFAR(1e-3).name == "tar@0.1%" and M.TARatFAR(1e-4).name == "tar@0.01%"
    for x in mets:
        x.reset()
    for sl in (slice(0, 4), slice(4, 10)):  # two batches; yb = (mask, label) as with dls.n_inp = 2
        pred = TwoBranchOutput(c[sl] * 0, c[sl], m[sl] * 0, m[sl], v[sl], v[sl])
        learn = SimpleNamespace(pred=pred, yb=(mask[sl], y[sl]))
        for x in mets:
            x.accumulate(learn)
    s = c.norm(dim=1)
    assert mets[0].value == pytest.approx(roc_auc_score(y, s))
    assert mets[1].value == M.accuracy(s, y, 9.05)
    assert mets[2].value == M.tar_at_far(s, y, 0.25)
    assert mets[3].value == pytest.approx(M.pbca(m, mask))
    mets[0].reset()
    assert mets[0].value is None


@pytest.mark.filterwarnings("ignore::antiforge_lib.metrics.FewNegativesWarning")
def test_fastai_learner_validate(two_branch):
    from fastai.callback.progress import ProgressCallback  # noqa: F401  (adds Learner.no_bar)
    from fastai.data.core import DataLoaders
    from fastai.learner import Learner

    dls = DataLoaders(_loader(_Pairs(seed=1)), _loader(_Pairs(seed=2)))
    dls.n_inp = 2  # xb = (hq, lq), yb = (mask, label)

    def loss_func(out, mask, label):
        return metric_loss(out.c_hq, label) + metric_loss(out.c_lq, label)

    mets = [M.AUCMetric(), M.AccuracyAtThreshold(), M.TARatFAR(1e-3), M.PBCAMetric()]
    learn = Learner(dls, two_branch, loss_func=loss_func, metrics=mets)
    with learn.no_bar(), learn.no_logging():
        res = learn.validate()
    assert len(res) == 5 and np.isfinite(res).all()
    row = M.evaluate(two_branch, dls.valid)  # same LQ scores, same numbers
    assert list(res[1:]) == pytest.approx([row.AUC[0], row.ACC[0], row["TAR@0.1%"][0], row.PBCA[0]])
