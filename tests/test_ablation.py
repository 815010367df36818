"""antiforge_lib.ablation: Table 3 as data, the rows' learners, and run_ablation on a tiny pair cache (32 px)."""

import math
import time
import warnings

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch
from PIL import Image
from test_learner import SIZE, demo, tiny_dls

from antiforge_lib import ablation as A
from antiforge_lib._io import read_json
from antiforge_lib.ablation import METRICS, TABLE3, AblationRow, paper_table, run_ablation
from antiforge_lib.callbacks import AdversarialAlignment, SelectInput
from antiforge_lib.data.pairs import INDEX_COLUMNS, load_index
from antiforge_lib.metrics import FewNegativesWarning
from antiforge_lib.models import PretrainedWeightsUnavailable, SingleBranchNet, TwoBranchNet

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=FutureWarning)
    from fastai.learner import Learner

pytestmark = pytest.mark.filterwarnings(f"ignore::{FewNegativesWarning.__module__}.FewNegativesWarning")


# ---------------------------------------------------------------------------------------------------------------
# Table 3 as data

# No.: (network, loss, attention, transfer, gan, train_data, test_data), read off the paper's Table 3
SWITCHES = {
    1: ("single", "ce", False, False, False, "c40", "c40"),
    2: ("single", "metric", False, False, False, "c40", "c40"),
    3: ("single", "metric", True, False, False, "c40", "c40"),
    4: ("single", "metric", True, False, False, "c23", "c23"),
    5: ("two-branch", "metric", False, False, False, "c23,c40", "c40"),
    6: ("two-branch", "metric", False, False, True, "c23,c40", "c40"),
    7: ("two-branch", "metric", True, False, False, "c23,c40", "c40"),
    8: ("two-branch", "metric", True, True, False, "c23,c40", "c40"),
    9: ("two-branch", "metric", True, True, True, "c23,c40", "c40"),
    10: ("two-branch", "metric", True, True, True, "c0,c40", "c40"),
    11: ("two-branch", "metric", True, True, True, "both", "c40"),
}


def test_table3_has_rows_1_to_11():
    assert list(TABLE3) == list(range(1, 12))
    assert all(isinstance(r, AblationRow) and r.number == n for n, r in TABLE3.items())
    with pytest.raises(TypeError):
        TABLE3[12] = TABLE3[1]  # read-only
    with pytest.raises(AttributeError):
        TABLE3[1].gan = True  # frozen


@pytest.mark.parametrize("number", sorted(SWITCHES))
def test_row_switches_match_the_paper(number):
    r = TABLE3[number]
    network, loss, attention, transfer, gan, train_data, test_data = SWITCHES[number]
    assert r.network == network
    assert r.loss == loss
    assert r.attention is attention
    assert r.transfer is transfer
    assert r.gan is gan
    assert r.train_data == train_data
    assert r.test_data == test_data
    assert (r.paper.PBCA is None) == (not attention)  # "—" exactly where there is no attention map


def test_paper_numbers():
    assert TABLE3[9].paper.ACC == 95.30 and TABLE3[9].paper.AUC == 98.76
    assert TABLE3[9].paper.by_metric() == {
        "ACC": 95.30,
        "AUC": 98.76,
        "TAR@0.1%": 97.64,
        "TAR@0.01%": 84.25,
        "PBCA": 93.77,
    }
    assert TABLE3[1].paper.PBCA is None and TABLE3[1].paper.TAR_0_01 == 79.32
    assert tuple(TABLE3[4].paper) == (98.93, 99.85, 99.82, 98.89, 96.34)
    assert tuple(TABLE3[11].paper) == (95.38, 98.68, 97.59, 83.85, 93.86)
    assert TABLE3[7].label == "Metric Loss+Attention" and TABLE3[8].label == "Metric Loss+Att.Tran."
    df = paper_table()
    assert df.shape == (11, 9) and list(df.index) == list(range(1, 12))
    assert df.loc[10, "TAR@0.01%"] == 81.96 and df.loc[6, "AUC"] == 98.47
    assert df["PBCA"].isna().sum() == 4 and "Table 3" in df.attrs["source"]


def test_row_variant_image_and_config():
    assert [TABLE3[n].variant for n in (1, 4, 9, 10, 11)] == ["c23,c40", "c23,c40", "c23,c40", "c0,c40", "both"]
    assert [r.image for r in TABLE3.values()].count("hq") == 1 and TABLE3[4].image == "hq"
    base = demo()
    c7 = TABLE3[7].config(base)
    assert (c7.metric, c7.attention, c7.transfer, c7.gan) == (True, True, False, False)
    c1 = TABLE3[1].config(base)
    assert (c1.metric, c1.attention, c1.transfer, c1.gan) == (False, False, False, False)
    assert c7.lr == base.lr and c7.backbone == base.backbone  # only the switches change
    assert TABLE3[9].config(TABLE3[9].config(base)) == TABLE3[9].config(base)


# ---------------------------------------------------------------------------------------------------------------
# The learner of each row


@pytest.fixture(scope="module")
def dls():
    return tiny_dls(n=8, bs=4)


@pytest.mark.parametrize("number", sorted(SWITCHES))
def test_row_learner_has_the_rows_parts(dls, number):
    r = TABLE3[number]
    learn = r.learner(dls, demo())
    cfg = learn.train_config
    assert (cfg.attention, cfg.transfer, cfg.gan) == (r.attention, r.transfer, r.gan)
    assert any(isinstance(cb, AdversarialAlignment) for cb in learn.cbs) == r.gan
    if r.network == "single":
        assert type(learn.model) is SingleBranchNet and learn.model.head_type == r.loss
        assert (learn.model.attention is not None) == r.attention
        assert (learn.model.classifier is not None) == (r.loss == "ce")
        select = next(cb for cb in learn.cbs if isinstance(cb, SelectInput))
        assert select.index == (0 if number == 4 else 1)  # row 4 sees the HQ (c23) image
    else:
        assert type(learn.model) is TwoBranchNet
        assert (learn.model.attention_lq is not None) == r.attention
        loss = learn.loss_func.loss
        assert (loss.use_metric, loss.use_attention, loss.use_transfer) == (True, r.attention, r.transfer)
        assert learn.train_config.lambda_at == 1.0  # the transfer term's weight
    assert any(type(m).__name__ == "PBCAMetric" for m in learn.metrics) == r.attention


def test_row4_sees_hq_in_training_and_evaluation(dls):
    learn = TABLE3[4].learner(dls, demo())
    seen = []
    learn.model.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    hq, lq = (torch.cat(t) for t in zip(*[(b[0], b[1]) for b in dls.valid], strict=True))
    TABLE3[4].evaluate(learn, dls.valid)
    assert torch.equal(torch.cat(seen), hq)
    seen.clear()
    TABLE3[3].evaluate(learn, dls.valid)  # a c40 row scores the LQ image
    assert torch.equal(torch.cat(seen), lq)


# ---------------------------------------------------------------------------------------------------------------
# run_ablation on a tiny pair cache

LAYOUT = [("train", 4, 4), ("val", 2, 2), ("test", 2, 2)]  # (split, fakes, reals)


def _write_cache(folder, seed=0, splits=LAYOUT):
    """PNG pairs: fakes carry a bright square (the mask), LQ = HQ + noise; returns the index (absolute paths)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for split, n_fake, n_real in splits:
        for k in range(n_fake + n_real):
            fake = k < n_fake
            base = rng.integers(0, 60, (SIZE, SIZE, 3))
            mask = np.zeros((SIZE, SIZE), np.uint8)
            if fake:
                base[8:24, 8:24] = 220
                mask[8:24, 8:24] = 255
            hq = np.clip(base + rng.integers(0, 10, base.shape), 0, 255).astype(np.uint8)
            lq = np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)
            video = f"{split}{k:03d}"
            paths = {}
            for kind, arr in (("hq", hq), ("lq", lq), ("mask", mask)):
                paths[kind] = str(folder / f"{video}_{kind}.png")
                Image.fromarray(arr).save(paths[kind])
            method = "Deepfakes" if fake else "original"
            rows.append(dict(split=split, method=method, video=video, frame=0, label=int(fake), **paths))
    index = pd.DataFrame(rows)
    for c in ("x0", "y0", "x1", "y1"):
        index[c] = 0
    index = index[INDEX_COLUMNS]
    index.to_csv(folder / "index.csv", index=False)  # absolute paths: load_index keeps them
    return index


OPTS = dict(preset=demo().replace(batch_size=4), epochs=1, progress=False, num_workers=0, device="cpu")


@pytest.fixture(scope="module")
def fits():
    """Count Learner.fit calls for the module's run_ablation runs."""
    calls = []
    fit = Learner.fit

    def counting_fit(self, *args, **kwargs):
        calls.append(type(self.model).__name__)
        return fit(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Learner, "fit", counting_fit)
        yield calls


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pairs_c23_c40")
    _write_cache(folder)
    return folder


@pytest.fixture(scope="module")
def ran(cache, fits, tmp_path_factory):
    """Rows 1, 4, 9 with one seed (data given as a cache folder), and row 5 with two seeds, in one out_dir."""
    out = tmp_path_factory.mktemp("ablation")
    one = run_ablation([1, 4, 9], cache, seeds=(0,), out_dir=out, **OPTS)
    two = run_ablation([TABLE3[5]], {"c23,c40": cache}, seeds=(0, 1), out_dir=out, **OPTS)
    return out, one, two, len(fits)


def test_run_ablation_writes_one_json_per_row_and_seed(ran):
    out, _, _, n_fits = ran
    names = sorted(p.name for p in out.glob("*.json"))
    assert names == ["row01_seed0.json", "row04_seed0.json", "row05_seed0.json", "row05_seed1.json", "row09_seed0.json"]
    assert n_fits == 5 and not list(out.glob("*.tmp"))
    rec = read_json(out / "row04_seed0.json")
    assert rec["row"]["number"] == 4 and rec["eval_image"] == "hq" and rec["eval_split"] == "test"
    assert rec["config"]["attention"] and not rec["config"]["gan"] and rec["config"]["epochs"] == 1
    assert rec["paper"]["ACC"] == 98.93 and rec["data"] == {
        "variant": "c23,c40",
        "n_pairs": {"test": 4, "train": 8, "val": 4},
        "methods": ["Deepfakes"],
    }
    assert rec["metrics"]["n_real"] == rec["metrics"]["n_fake"] == 2
    assert rec["train_seconds"] > 0 and len(rec["history"]) == 1
    assert {"command", "commit", "torch", "device", "date"} <= set(rec["provenance"])
    assert read_json(out / "row01_seed0.json")["metrics"]["PBCA"] is None  # strict JSON: null, not NaN


def test_run_ablation_summary_is_complete(ran):
    _, one, two, _ = ran
    assert list(one.index) == [1, 4, 9] and list(two.index) == [5]
    assert list(one["row", "label"]) == ["Cross Entropy", "Metric Loss+Attention", "Metric Loss+Att.Tran.+GAN"]
    assert (one["row", "n_seeds"] == 1).all() and two.loc[5, ("row", "n_seeds")] == 2
    for m in ("ACC", "AUC", "TAR@0.1%", "TAR@0.01%"):
        assert one[m, "mean"].notna().all() and one[m, "mean"].between(0, 100).all(), m
        assert one[m, "std"].isna().all()  # one seed: no spread
        assert not math.isnan(two.loc[5, (m, "mean")]) and two.loc[5, (m, "std")] >= 0
    assert math.isnan(one.loc[1, ("PBCA", "mean")]) and one.loc[[4, 9], ("PBCA", "mean")].notna().all()
    assert math.isnan(two.loc[5, ("PBCA", "mean")])  # row 5 has no attention
    assert one.loc[9, ("ACC", "paper")] == 95.30 and math.isnan(one.loc[1, ("PBCA", "paper")])
    per_seed = A.load_ablation(ran[0], per_seed=True)
    acc5 = per_seed.loc[per_seed["No."] == 5, "ACC"]
    assert two.loc[5, ("ACC", "mean")] == pytest.approx(acc5.mean())
    assert two.loc[5, ("ACC", "std")] == pytest.approx(acc5.std(ddof=1), nan_ok=True)


def test_rerun_skips_finished_runs(ran, cache, fits):
    out, one, _, _ = ran
    before, mtimes = len(fits), {p: p.stat().st_mtime_ns for p in out.glob("*.json")}
    again = run_ablation([1, 4, 9], cache, seeds=(0,), out_dir=out, **OPTS)
    assert len(fits) == before  # nothing trained
    pd.testing.assert_frame_equal(again, one)
    assert {p: p.stat().st_mtime_ns for p in out.glob("*.json")} == mtimes


def test_changed_config_retrains(ran, cache, fits, tmp_path):
    out, _, _, _ = ran
    target = tmp_path / "row01_seed0.json"
    target.write_bytes((out / "row01_seed0.json").read_bytes())
    before = len(fits)
    with pytest.warns(UserWarning, match="another config"):
        # patience also switches on early stopping with the best epoch's weights restored (SaveModelCallback)
        run_ablation([1], cache, seeds=(0,), out_dir=tmp_path, overrides={"lr": 5e-4, "patience": 1}, **OPTS)
    assert len(fits) == before + 1
    rec = read_json(target)
    assert rec["config"]["lr"] == 5e-4 and rec["config"]["patience"] == 1 and rec["metrics"]["ACC"] is not None
    assert not list(tmp_path.rglob("*.pth"))  # the best-epoch weights lived in a temporary folder


def test_load_ablation_round_trips(ran):
    out, one, two, _ = ran
    loaded = A.load_ablation(out)
    pd.testing.assert_frame_equal(loaded, pd.concat([one, two]).sort_index())
    with pytest.raises(FileNotFoundError):
        A.load_ablation(out / "nothing")


def test_format_and_plot(ran):
    out = A.load_ablation(ran[0])
    table = A.format_ablation(out)
    assert table.loc[5, ("ACC", "ours")].count("±") == 1 and "±" not in table.loc[9, ("ACC", "ours")]
    assert table.loc[9, ("ACC", "paper")] == "95.30" and table.loc[1, ("PBCA", "paper")] == "—"
    assert table.loc[1, ("PBCA", "ours")] == "—" and table.loc[4, ("", "Training data")] == "c23"
    fig = A.plot_ablation(out)
    assert isinstance(fig, go.Figure) and len(fig.data) == 2 * len(METRICS)
    assert [t.name for t in fig.data] == ["ours", "paper"] * len(METRICS)
    assert sum(t.showlegend for t in fig.data) == 2
    assert list(fig.data[0].x) == ["1", "4", "5", "9"]
    assert fig.data[1].y[-1] == 95.30 and fig.data[0].error_y.array[2] >= 0  # row 5 has an error bar


def test_rows_without_their_cache_are_skipped(cache, fits, tmp_path):
    before = len(fits)
    with pytest.warns(UserWarning) as caught:
        df = run_ablation([10, 11], cache, out_dir=tmp_path, **OPTS)
    messages = [str(w.message) for w in caught]
    assert any("row 10 skipped" in m and "'c0,c40'" in m for m in messages)
    assert any("row 11 skipped" in m for m in messages)
    assert df.empty and len(fits) == before and not list(tmp_path.glob("*.json"))
    with pytest.raises(ValueError, match="data keys"):
        run_ablation([1], {"c23": cache}, out_dir=tmp_path, **OPTS)


def test_both_variant_adds_only_the_c0_training_pairs(cache, tmp_path):
    c23 = load_index(cache)
    c0 = _write_cache(tmp_path / "c0", seed=1)
    both = A._variant_index(A._caches({"c23,c40": cache, "c0,c40": c0}), "both")
    assert A._split_counts(both) == {"test": 4, "train": 16, "val": 4}
    pd.testing.assert_frame_equal(both[both["split"] != "train"].reset_index(drop=True),
                                  c23[c23["split"] != "train"].reset_index(drop=True))  # fmt: skip


def test_no_test_split_falls_back_to_val(tmp_path, fits):
    index = _write_cache(tmp_path / "pairs", splits=LAYOUT[:2])
    with pytest.warns(UserWarning, match="no 'test' split"):
        df = run_ablation([2], index, out_dir=tmp_path / "out", **OPTS)
    assert df.loc[2, ("row", "eval_split")] == "val"
    assert read_json(tmp_path / "out" / "row02_seed0.json")["eval_split"] == "val"


def test_table3_data_is_deepfakes_and_the_originals(tmp_path):
    index = _write_cache(tmp_path / "mixed")
    moved = index.index[index["label"] == 1][::2]
    mixed = index.copy()
    mixed.loc[moved, "method"] = "Face2Face"  # a FaceForensics++ cache of two methods
    kept = A._caches(mixed)["c23,c40"]
    assert set(kept["method"]) == {"Deepfakes", "original"}
    assert (kept["label"] == 0).sum() == (index["label"] == 0).sum() and len(kept) == len(index) - len(moved)
    assert set(A._caches(mixed, ["Face2Face"])["c23,c40"]["method"]) == {"Face2Face", "original"}
    with pytest.raises(ValueError, match=r"no \['Deepfakes'\] pairs.*--methods Deepfakes"):
        A._caches(mixed.replace({"method": {"Deepfakes": "FaceSwap"}}))
    sample = index.replace({"method": {"Deepfakes": "SelfBlend"}})  # not FaceForensics++: used whole
    pd.testing.assert_frame_equal(A._caches(sample)["c23,c40"], sample)


def test_paper_preset_starts_from_imagenet_and_fails_fast_offline(cache, offline, tmp_path):
    start = time.perf_counter()
    with pytest.raises(PretrainedWeightsUnavailable, match=r"no network\?.*weights="):
        run_ablation([2], cache, preset="paper", epochs=1, progress=False, num_workers=0, out_dir=tmp_path)
    assert time.perf_counter() - start < 10 and not list(tmp_path.glob("*.json"))


def test_a_killed_sweep_resumes_the_run_from_its_checkpoint(cache, tmp_path, monkeypatch):
    from antiforge_lib import checkpoint

    save, starts = checkpoint.save_checkpoint, []

    def save_then_die(learn, path, epoch=None, **kw):
        out = save(learn, path, epoch=epoch, **kw)
        if epoch == 0:
            raise KeyboardInterrupt  # killed right after epoch 0 was checkpointed
        return out

    fit = Learner.fit

    def recording_fit(self, n_epoch, *args, start_epoch=0, **kwargs):
        starts.append(start_epoch)
        return fit(self, n_epoch, *args, start_epoch=start_epoch, **kwargs)

    monkeypatch.setattr(Learner, "fit", recording_fit)
    opts = {**OPTS, "epochs": 2}
    with monkeypatch.context() as m:
        m.setattr(checkpoint, "save_checkpoint", save_then_die)
        with pytest.raises(KeyboardInterrupt):
            run_ablation([2], cache, out_dir=tmp_path, **opts)
    work = tmp_path / "row02_seed0"
    assert (work / "checkpoint.pth").is_file() and not (tmp_path / "row02_seed0.json").exists()
    assert [r["epoch"] for r in A.read_history(work / "history.jsonl")] == [0]

    run_ablation([2], cache, out_dir=tmp_path, **opts)
    assert starts == [0, 1]  # the second call trained only epoch 1
    rec = read_json(tmp_path / "row02_seed0.json")
    assert [r["epoch"] for r in rec["history"]] == [0, 1] and rec["config"]["epochs"] == 2
    assert not work.exists()  # the record holds the run; its checkpoints are gone


def test_a_checkpoint_of_another_config_is_not_resumed(cache, tmp_path):
    work = tmp_path / "row02_seed0"
    work.mkdir()
    torch.save({"config": {"lr": 0.5}, "epoch": 0}, work / "checkpoint.pth")
    with pytest.warns(UserWarning, match="another config"):
        run_ablation([2], cache, out_dir=tmp_path, **OPTS)
    assert len(read_json(tmp_path / "row02_seed0.json")["history"]) == 1 and not work.exists()
