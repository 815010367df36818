"""antiforge_lib.run: one resumable run from Python, the one model factory, and the detector.pth format."""

import subprocess
import sys
import textwrap

import pytest
import torch
from ffpp_fixture import write_tree

from antiforge_lib.config import TrainConfig
from antiforge_lib.data.pairs import prepare_pairs
from antiforge_lib.models import MODELS, TwoBranchNet, model_kind
from antiforge_lib.run import RunMismatch, build_learner, export_detector, fit_run, load_detector, read_history

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TINY = dict(size=32, batch_size=4, items_per_epoch=16)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    tree = tmp_path_factory.mktemp("ffpp")
    write_tree(tree)
    out = tmp_path_factory.mktemp("pairs") / "c0_c40"
    prepare_pairs(tree, out, hq="c0", lq="c40", frames_per_video=8, size=32, workers=1, progress=False)
    return out


def tiny(**overrides):
    return TrainConfig.preset("demo", **{**TINY, **overrides})


def test_a_killed_run_called_again_finishes_the_remaining_epochs(pairs, tmp_path):
    run_dir = tmp_path / "run"
    # A separate process dies (os._exit, no clean-up) right after epoch 0 is checkpointed and logged.
    killed = textwrap.dedent(f"""
        import os
        from antiforge_lib import callbacks
        from antiforge_lib.config import TrainConfig
        from antiforge_lib.run import fit_run
        after = callbacks.CheckpointEveryEpoch.after_epoch
        def die_after_first(self):
            after(self)
            if self.epoch == 0:
                os._exit(9)
        callbacks.CheckpointEveryEpoch.after_epoch = die_after_first
        fit_run({str(pairs)!r}, {str(run_dir)!r}, TrainConfig.preset("demo", epochs=3, **{TINY!r}),
                workers=0, progress=False)
    """)
    proc = subprocess.run([sys.executable, "-c", killed], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 9, proc.stderr[-2000:]
    assert torch.load(run_dir / "checkpoint.pth", weights_only=True)["epoch"] == 0
    assert not (run_dir / "detector.pth").exists()

    result = fit_run(pairs, run_dir, tiny(epochs=3), workers=0, progress=False)
    assert result["run"]["start_epoch"] == 1 and result["run"]["epochs_run"] == [1, 2]
    assert [r["epoch"] for r in read_history(run_dir / "history.jsonl")] == [0, 1, 2]
    assert result["run"]["detector_epoch"] == 2 and (run_dir / "detector.pth").is_file()
    assert {"ACC", "AUC", "n_real", "n_fake"} <= set(result["metrics"])
    model, config = load_detector(run_dir)
    assert config["epochs"] == 3 and model_kind(model) == "two-branch"

    # The same folder refuses other settings and other data, by name.
    with pytest.raises(RunMismatch, match="lr"):
        fit_run(pairs, run_dir, tiny(epochs=3, lr=1e-3), workers=0, progress=False)
    other = tmp_path / "other"
    other.mkdir()
    lines = (pairs / "index.csv").read_text().splitlines(keepends=True)
    (other / "index.csv").write_text("".join(lines[:-1]))
    with pytest.raises(RunMismatch, match="other data"):
        fit_run(other, run_dir, tiny(epochs=3), workers=0, progress=False)


@pytest.mark.parametrize("kind", MODELS)
def test_build_learner_builds_the_model_the_config_names(kind, pairs):
    from antiforge_lib.data.index import load_index
    from antiforge_lib.learner import make_dataloaders

    cfg = tiny(model=kind, attention=kind == "two-branch")
    learn = build_learner(make_dataloaders(load_index(pairs), cfg, num_workers=0, device="cpu"), cfg)
    assert model_kind(learn.model) == kind and learn.train_config == cfg


def test_detector_file_records_the_kind_and_old_checkpoints_still_load(tmp_path):
    cfg = TrainConfig(backbone="resnet18", cut="layer4", model="single-ce", attention=True, size=32)
    from antiforge_lib.models import SingleBranchNet

    net = SingleBranchNet("resnet18", "layer4", head="ce", attention=True)
    path = export_detector(net, cfg, tmp_path / "detector.pth", epoch=3)
    saved = torch.load(path, weights_only=True)
    assert saved["config"]["model"] == "single-ce" and saved["epoch"] == 3
    model, config = load_detector(path)
    assert model_kind(model) == "single-ce" and config["cut"] == "layer4"
    for k, v in net.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k

    # A checkpoint from before `model` and `cut`: the kind comes from the weights, `split` is read as `cut`.
    two = TwoBranchNet("resnet18", "layer4", attention=False)
    old_config = {k: v for k, v in cfg.to_dict().items() if k not in ("model", "train_on", "cut")}
    old = {
        "model": two.state_dict(),
        "opt": None,
        "callbacks": {},
        "epoch": 0,
        "config": {**old_config, "split": "layer4"},
    }
    torch.save(old, tmp_path / "old.pth")
    model, config = load_detector(tmp_path / "old.pth")
    assert model_kind(model) == config["model"] == "two-branch" and config["attention"] is False
    assert config["cut"] == "layer4" and "split" not in config

    # A config that names one kind over weights of another is refused, naming both.
    torch.save({**old, "config": {**cfg.to_dict(), "model": "single-metric"}}, tmp_path / "liar.pth")
    with pytest.raises(ValueError, match="single-metric"):
        load_detector(tmp_path / "liar.pth")
