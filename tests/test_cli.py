"""The antiforge command line: prepare -> train (and resume) -> evaluate -> detect, results JSON, one-line errors."""

import json
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from conftest import lock_held_elsewhere
from ffpp_fixture import write_tree

from antiforge_lib import cli, models
from antiforge_lib.data import PairedFaces
from antiforge_lib.data.pairs import load_index
from antiforge_lib.detect import detect, load_detector
from antiforge_lib.metrics import evaluate
from antiforge_lib.samples import sample_path

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PROVENANCE = {"command", "config", "commit", "torch", "device", "date"}
METRICS = {"ACC", "AUC", "TAR@0.1%", "TAR@0.01%", "PBCA", "video_AUC", "n_real", "n_fake"}
TINY = [
    "--preset",
    "demo",
    "--set",
    "size=32",
    "--set",
    "batch_size=4",
    "--set",
    "items_per_epoch=16",
    "--workers",
    "0",
]
TINY += ["--quiet"]


def run(argv, capsys):
    """main(argv) in-process: (exit status, stdout, stderr)."""
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def results(path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A tiny pair cache built by `antiforge prepare --root` from the test FF++ tree (8 frames, 32 px)."""
    tree = tmp_path_factory.mktemp("ffpp")
    write_tree(tree)
    base = tmp_path_factory.mktemp("cli")
    out, res = base / "pairs", base / "prepare.json"
    rc = cli.main(
        ["prepare", "--root", str(tree), "--out", str(out), "--hq", "c0", "--lq", "c40", "--frames", "8"]
        + ["--size", "32", "--workers", "1", "--quiet", "--results", str(res)]
    )
    assert rc == 0
    return out, results(res)


@pytest.fixture(scope="module")
def trained(cache, tmp_path_factory):
    """train --epochs 1, then the same command with --epochs 2 (a resume); both results JSONs."""
    pairs, _ = cache
    base = tmp_path_factory.mktemp("run")
    out = base / "run"
    argv = ["train", "--pairs", str(pairs), "--out", str(out), *TINY, "--set", "patience=5"]
    assert cli.main([*argv, "--epochs", "1", "--results", str(base / "r1.json")]) == 0
    first_ckpt = torch.load(out / "checkpoint.pth", weights_only=True)
    assert cli.main([*argv, "--epochs", "2", "--results", str(base / "r2.json")]) == 0
    return out, pairs, first_ckpt, results(base / "r1.json"), results(base / "r2.json")


def test_help_runs_as_a_module():
    proc = subprocess.run([sys.executable, "-m", "antiforge_lib", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for word in ("prepare", "train", "evaluate", "detect", "GLIBC_TUNABLES"):
        assert word in proc.stdout


def test_prepare_writes_the_cache_and_its_results(cache):
    out, res = cache
    index = load_index(out)
    assert len(index) > 0 and set(index["split"]) == {"train", "val", "test"}
    assert PROVENANCE <= set(res) and res["command"].startswith("antiforge prepare --root")
    assert res["config"]["frames_per_video"] == 8 and res["config"]["size"] == 32 and res["config"]["hq"] == "c0"
    assert res["metrics"]["pairs"] == len(index) and res["metrics"]["no_face_frames"] > 0  # video 005 hides it
    assert sum(c["real"] + c["fake"] for c in res["metrics"]["splits"].values()) == len(index)


def test_prepare_sample_wires_the_defaults(monkeypatch, tmp_path, capsys):
    calls = {}
    monkeypatch.setattr(
        "antiforge_lib.data.sample.build_sample_ffpp", lambda root, progress: calls.setdefault("root", root)
    )

    def fake_prepare(root, out, **kw):
        calls.update(out=out, **kw)
        raise ValueError("stop here")

    monkeypatch.setattr("antiforge_lib.data.pairs.prepare_pairs", fake_prepare)
    rc, _, err = run(["prepare", "--sample", "--sample-root", tmp_path / "s", "--quiet"], capsys)
    assert rc == 2 and err == "antiforge: error: stop here\n"
    assert calls["root"] == tmp_path / "s" and calls["out"] == tmp_path / "pairs" / "sample_c23_c40_16f_128px"
    assert (calls["hq"], calls["lq"], calls["frames_per_video"], calls["size"]) == ("c23", "c40", 16, 128)


def test_prepare_videos_then_train_on_real_faces_alone(tmp_path, capsys):
    # A class's own real videos: crop them, train the demo recipe on self-blends of them, detect with the result.
    from ffpp_fixture import real_clip

    from antiforge_lib.data.video import encode_video

    videos = tmp_path / "videos"
    for k in range(3):
        encode_video(real_clip(k), videos / f"student{k}.mp4", "c23")
    cache = tmp_path / "faces"
    argv = ["prepare", "--videos", videos, "--out", cache, "--frames", "4", "--size", "32", "--val", "student2.mp4"]
    rc, out, err = run([*argv, "--workers", "1", "--quiet", "--results", tmp_path / "p.json"], capsys)
    assert rc == 0, err
    index = load_index(cache)
    assert set(index.split) == {"train", "val"} and (index.label == 0).all()
    assert set(index[index.split == "val"].video) == {"student2"}
    assert "antiforge train --pairs" in out and results(tmp_path / "p.json")["config"]["source"] == "videos"
    run_dir = tmp_path / "run"
    rc, out, err = run(["train", "--pairs", cache, "--out", run_dir, *TINY, "--epochs", "1"], capsys)
    assert rc == 0, err
    res = results(next(run_dir.glob("train-*.json")))
    # Validation on a real-only cache: each held-out crop once as it is, once self-blended.
    assert res["metrics"]["n_real"] == res["metrics"]["n_fake"] == (index.split == "val").sum()
    model, config = load_detector(run_dir)
    assert config["stem"] == "highpass" and model.head_lq[0].__class__.__name__ == "HighPass"
    rc, _, err = run(["prepare", "--videos", videos, "--out", tmp_path / "x", "--val", "nobody.mp4"], capsys)
    assert rc == 2 and "nobody" in err and len(err.strip().splitlines()) == 1
    rc, _, err = run(["prepare", "--sample", "--val", "a.mp4"], capsys)
    assert rc == 2 and "--val goes with --videos" in err


def test_train_results_json(trained):
    out, _, _, first, _ = trained
    assert PROVENANCE <= set(first) and "metrics" in first
    assert first["command"].startswith("antiforge train --pairs")
    cfg = first["config"]
    assert (cfg["size"], cfg["batch_size"], cfg["epochs"], cfg["backbone"]) == (32, 4, 1, "regnetx_002")
    assert cfg["self_blend"] and cfg["stem"] == "highpass" and cfg["schedule"] == "one_cycle"
    assert cfg["model"] == "two-branch"
    assert METRICS <= set(first["metrics"]) and 0 <= first["metrics"]["AUC"] <= 1
    assert first["run"]["epochs_run"] == [0] and first["run"]["best_epoch"] == 0
    assert [r["epoch"] for r in first["history"]] == [0] and "valid_loss" in first["history"][0]
    assert (out / "detector.pth").is_file() and (out / "models" / "best.pth").is_file()


def test_second_train_resumes_instead_of_restarting(trained):
    out, _, first_ckpt, first, second = trained
    assert first_ckpt["epoch"] == 0
    assert torch.load(out / "checkpoint.pth", weights_only=True)["epoch"] == 1
    assert second["run"]["start_epoch"] == 1 and second["run"]["epochs_run"] == [1]  # only epoch index 1 ran
    assert [r["epoch"] for r in second["history"]] == [0, 1]
    assert second["history"][0] == first["history"][0]
    assert second["config"]["epochs"] == 2
    lines = (out / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [0, 1]


def test_detector_holds_the_best_epoch(trained):
    out, _, _, _, second = trained
    ckpt = torch.load(out / "detector.pth", weights_only=True)
    losses = {r["epoch"]: r["valid_loss"] for r in second["history"]}
    assert (
        ckpt["epoch"] == min(losses, key=losses.get) == second["run"]["best_epoch"] == second["run"]["detector_epoch"]
    )
    best = torch.load(out / "models" / "best.pth", weights_only=True)
    assert all(torch.equal(best[k], v) for k, v in ckpt["model"].items())
    assert ckpt["config"]["model"] == "two-branch" and ckpt["config"]["size"] == 32


def test_without_early_stopping_the_detector_is_the_last_epoch(cache, tmp_path, capsys):
    # The demo preset trains a fixed one-cycle schedule: its result is the last epoch, whatever the valid loss.
    pairs, _ = cache
    out = tmp_path / "run"
    rc, _, err = run(["train", "--pairs", pairs, "--out", out, *TINY, "--epochs", "2"], capsys)
    assert rc == 0, err
    res = results(next(out.glob("train-*.json")))
    ckpt, det = (torch.load(out / f, weights_only=True) for f in ("checkpoint.pth", "detector.pth"))
    assert res["config"]["patience"] is None and res["run"]["detector_epoch"] == det["epoch"] == ckpt["epoch"] == 1
    assert all(torch.equal(ckpt["model"][k], v) for k, v in det["model"].items())
    assert not (out / "models" / "best.pth").exists()


def test_evaluate_matches_metrics_evaluate(trained, tmp_path, capsys):
    out, pairs, _, _, _ = trained
    res_path = tmp_path / "eval.json"
    rc, stdout, _ = run(
        ["evaluate", "--checkpoint", out / "detector.pth", "--pairs", pairs, "--quiet"] + ["--results", res_path],
        capsys,
    )
    assert rc == 0 and "AUC" in stdout
    res = results(res_path)
    assert PROVENANCE <= set(res) and METRICS <= set(res["metrics"]) and res["config"]["split"] == "test"
    model, config = load_detector(out / "detector.pth")
    dl = torch.utils.data.DataLoader(PairedFaces(load_index(pairs), "test", size=32), batch_size=4)
    direct = evaluate(model, dl, threshold=config["r_minus"] / 2 + config["r_plus"] / 2).iloc[0]
    assert res["metrics"]["AUC"] == pytest.approx(direct["AUC"])
    assert res["metrics"]["ACC"] == pytest.approx(direct["ACC"])
    assert res["metrics"]["n_fake"] == direct["n_fake"]


def test_detect_on_the_astronaut(trained, tmp_path, capsys, monkeypatch):
    out, *_ = trained
    monkeypatch.chdir(tmp_path)  # default results path: ./antiforge_results/detect-<timestamp>.json
    rc, stdout, _ = run(["detect", "--checkpoint", out, sample_path(), "--quiet"], capsys)
    assert rc == 0 and str(sample_path()) in stdout
    (path,) = (tmp_path / "antiforge_results").glob("detect-*.json")
    res = results(path)
    assert PROVENANCE <= set(res)
    (d,) = res["detections"]
    model, _ = load_detector(out / "detector.pth")
    direct = detect(sample_path(), model)
    assert d["score"] == pytest.approx(direct.score, rel=1e-5) and d["is_fake"] == direct.is_fake
    assert d["box"] == list(direct.box) and d["threshold"] == pytest.approx(9.05)


def test_detect_reports_a_faceless_input(trained, tmp_path, capsys):
    out, *_ = trained
    from PIL import Image

    gray = tmp_path / "gray.png"
    Image.new("RGB", (120, 120), (128, 128, 128)).save(gray)
    rc, stdout, err = run(
        ["detect", "--checkpoint", out, gray, sample_path(), "--quiet"] + ["--results", tmp_path / "d.json"], capsys
    )
    assert rc == 2 and err.count("\n") == 1 and "1 of 2 input(s) failed" in err and "no face found" in err
    res = results(tmp_path / "d.json")
    assert "error" in res["detections"][0] and "score" in res["detections"][1]


def test_bad_inputs_fail_before_the_work_with_one_line(trained, cache, tmp_path, capsys, monkeypatch):
    out, pairs, *_ = trained
    # A folder where a file belongs: named, before any work.
    one_line_error(*run(["detect", "--checkpoint", out, tmp_path], capsys)[::2], "is a folder", "*.jpg")
    rc, _, err = run(["evaluate", "--checkpoint", out, "--pairs", pairs, "--results", tmp_path], capsys)
    one_line_error(rc, err, f"--results {tmp_path} is a folder")
    assert not list(tmp_path.glob("*.tmp"))
    # A weights file that is not a state dict.
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a pickle at all")
    argv = ["train", "--pairs", cache[0], "--out", tmp_path / "w", *TINY, "--set", f"weights={junk}"]
    one_line_error(*run(argv, capsys)[::2], "junk.pth", "not a readable torch state dict")
    # An image over Pillow's decompression-bomb limit: that input fails by name, the others still run.
    from PIL import Image

    big = tmp_path / "big.png"
    Image.new("RGB", (700, 700)).save(big)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200_000)  # an error beyond twice the limit; the face is 512 x 512
    res = tmp_path / "d.json"
    rc, _, err = run(["detect", "--checkpoint", out, big, sample_path(), "--quiet", "--results", res], capsys)
    assert rc == 2 and "1 of 2 input(s) failed" in err and "Traceback" not in err
    detections = results(res)["detections"]
    assert "decompression bomb" in detections[0]["error"] and "score" in detections[1]


def test_a_missing_crop_read_by_a_loader_worker_is_one_line(cache, tmp_path, capsys):
    pairs, _ = cache
    broken = tmp_path / "pairs"
    shutil.copytree(pairs, broken)
    index = (broken / "index.csv").read_text().splitlines()
    header, rows = index[0].split(","), [r.split(",") for r in index[1:]]
    lost = next(r for r in rows if r[0] == "train")[header.index("hq")]
    (broken / lost).unlink()
    argv = ["train", "--pairs", broken, "--out", tmp_path / "run", *TINY, "--set", "self_blend=false"]
    rc, _, err = run([*argv, "--workers", "1", "--epochs", "1"], capsys)  # the last --workers counts
    one_line_error(rc, err, Path(lost).name)
    assert len(err) < 400, err  # the worker's traceback is not flattened into the line


def test_warnings_are_one_clean_line(tmp_path, capsys):
    tree = tmp_path / "ffpp"
    write_tree(tree)
    (tree / "original_sequences/youtube/c40/videos/002.mp4").write_bytes(b"not a video at all")
    argv = ["prepare", "--root", tree, "--out", tmp_path / "p", "--hq", "c0", "--lq", "c40", "--frames", "2"]
    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)  # this module ignores them; the CLI must show them, cleanly
        rc, _, err = run([*argv, "--size", "32", "--workers", "1", "--quiet", "--results", tmp_path / "p.json"], capsys)
    assert rc == 0, err
    (line,) = [x for x in err.splitlines() if "skipped" in x]
    assert line.startswith("antiforge: warning: skipped 1 video(s)") and "UserWarning" not in err


def test_single_branch_ce_train_and_detect(cache, tmp_path, capsys):
    pairs, _ = cache
    out = tmp_path / "ce"
    rc, _, _ = run(
        ["train", "--pairs", pairs, "--out", out, "--model", "single-ce", "--epochs", "1", *TINY]
        + ["--results", tmp_path / "r.json"],
        capsys,
    )
    assert rc == 0
    res = results(tmp_path / "r.json")
    assert res["config"]["model"] == "single-ce" and res["config"]["attention"] is False
    assert res["metrics"]["PBCA"] is None  # no attention maps: NaN written as null
    model, config = load_detector(out)
    assert config["model"] == "single-ce" and model.classifier is not None
    rc, stdout, _ = run(
        ["detect", "--checkpoint", out, sample_path(), "--quiet", "--results", tmp_path / "d.json"], capsys
    )
    (d,) = results(tmp_path / "d.json")["detections"]
    assert rc == 0 and d["score_type"] == "probability" and d["threshold"] == 0.5 and 0 <= d["score"] <= 1


# ---------------------------------------------------------------------------------------------------------------
# --set parsing and errors


def test_parse_set_types():
    got = cli.parse_set(["lr=3e-4", "gan=false", "patience=none", "size=32", "weights=none", "backbone=resnet18"])
    assert got == {"lr": 3e-4, "gan": False, "patience": None, "size": 32, "weights": None, "backbone": "resnet18"}
    assert cli.parse_set(["mixed_precision=None", "wd=0", "attention=1"]) == {
        "mixed_precision": None,
        "wd": 0.0,
        "attention": True,
    }
    assert isinstance(cli.parse_set(["wd=0"])["wd"], float)
    for bad, msg in [
        ("size=1.5", "integer"),
        ("gan=maybe", "true or false"),
        ("lr", "KEY=VALUE"),
        ("size=none", "cannot be None"),
        ("lr=fast", "number"),
    ]:
        with pytest.raises(cli.CLIError, match=msg):
            cli.parse_set([bad])


def one_line_error(rc, err, *words):
    assert rc == 2, err
    assert err.startswith("antiforge: error: ") and err.count("\n") == 1 and "Traceback" not in err
    for w in words:
        assert w in err, (w, err)


def test_bad_arguments_exit_2_with_one_line(cache, tmp_path, capsys):
    pairs, _ = cache
    out = tmp_path / "run"
    base = ["train", "--pairs", pairs, "--out", out, *TINY]
    one_line_error(*run([*base, "--set", "no_such=1"], capsys)[::2], "no_such", "valid fields:", "backbone", "lr")
    one_line_error(*run(["train", "--pairs", tmp_path / "nowhere", "--out", out], capsys)[::2], "nowhere")
    one_line_error(*run(["train", "--pairs", pairs, "--out", out, "--preset", "huge"], capsys)[::2], "huge", "demo")
    one_line_error(*run([*base, "--set", "lr=-1"], capsys)[::2], "lr must be a positive")
    one_line_error(*run([*base, "--set", "backbone=nonet"], capsys)[::2], "nonet")
    one_line_error(*run([*base, "--set", "r_minus=5", "--set", "r_plus=1"], capsys)[::2], "r_minus")
    one_line_error(*run([*base, "--device", "cuda:7"], capsys)[::2], "cuda")
    one_line_error(*run(["train", "--out", out], capsys)[::2], "train:", "--pairs")
    one_line_error(*run(["evaluate", "--checkpoint", tmp_path / "x.pth", "--pairs", pairs], capsys)[::2], "x.pth")
    one_line_error(*run(["detect", "--checkpoint", tmp_path, tmp_path / "a.png"], capsys)[::2], "a.png")
    one_line_error(*run(["frobnicate"], capsys)[::2], "frobnicate")
    one_line_error(*run([], capsys)[::2], "required")
    assert not out.exists()  # nothing was written by the failed commands


def test_paper_preset_needs_imagenet_weights_and_says_how_to_go_without(cache, offline, tmp_path, capsys):
    pairs, _ = cache
    start = time.perf_counter()
    argv = ["train", "--pairs", pairs, "--out", tmp_path / "paper", "--workers", "0", "--quiet"]
    hints = ("pass --set weights=path/to/legacy_xception.pth", "--set pretrained=false")
    one_line_error(*run(argv, capsys)[::2], "no network?", *hints)
    assert time.perf_counter() - start < 15
    # --set weights= replaces the preset's download with a local state dict: the run needs no network.
    state = tmp_path / "resnet18.pth"
    torch.save(models.timm.create_model("resnet18", num_classes=0).state_dict(), state)
    small = ["--set", "backbone=resnet18", "--set", "cut=layer4", "--set", "size=32", "--set", "batch_size=4"]
    rc, out, err = run([*argv[:4], tmp_path / "local", *argv[5:], *small, "--set", f"weights={state}",
                        "--epochs", "1", "--results", tmp_path / "local.json"], capsys)  # fmt: skip
    assert rc == 0, err
    config = results(tmp_path / "local.json")["config"]
    assert config["weights"] == str(state) and not config["pretrained"] and config["lr"] == 1e-4


def test_divergence_is_one_line_and_saves_nothing(cache, tmp_path, capsys):
    pairs, _ = cache
    out = tmp_path / "run"
    argv = ["train", "--pairs", pairs, "--out", out, *TINY, "--set", "lr=1e30", "--set", "schedule=constant"]
    one_line_error(*run([*argv, "--epochs", "2"], capsys)[::2], "diverged at epoch 0", "--set lr=")
    assert not (out / "checkpoint.pth").exists() and not (out / "detector.pth").exists()


def test_a_second_run_into_a_busy_folder_is_refused_by_name(cache, tmp_path, capsys):
    pairs, _ = cache
    out = tmp_path / "run"
    out.mkdir()
    with lock_held_elsewhere(out / ".lock") as holder:  # as a running `train` holds it
        start = time.perf_counter()
        rc, _, err = run(["train", "--pairs", pairs, "--out", out, *TINY, "--epochs", "1"], capsys)
        one_line_error(rc, err, f"--out {out} is in use by process {holder.pid}")
        assert time.perf_counter() - start < 20 and not (out / "checkpoint.pth").exists()
    assert run(["train", "--pairs", pairs, "--out", out, *TINY, "--epochs", "1"], capsys)[0] == 0  # lock released


def test_a_results_file_in_use_is_refused(trained, tmp_path, capsys):
    out, pairs, *_ = trained
    res = tmp_path / "eval.json"
    with lock_held_elsewhere(tmp_path / ".eval.json.lock") as holder:  # as a running evaluate holds it
        rc, _, err = run(["evaluate", "--checkpoint", out, "--pairs", pairs, "--results", res], capsys)
        one_line_error(rc, err, f"--results {res} is in use by process {holder.pid}")
    assert not res.exists()


def test_a_dead_prepare_worker_and_ctrl_c_say_what_to_do(tmp_path, monkeypatch, capsys):
    from concurrent.futures.process import BrokenProcessPool

    from antiforge_lib.data import pairs as P

    class DyingPool:  # what the pool does when the OOM killer takes a worker
        def __init__(self, *args, **kw):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def map(self, fn, jobs):
            raise BrokenProcessPool("A process in the process pool was terminated abruptly")

    monkeypatch.setattr(P, "ProcessPoolExecutor", DyingPool)
    write_tree(tmp_path / "ffpp")
    argv = ["prepare", "--root", tmp_path / "ffpp", "--out", tmp_path / "p", "--hq", "c0", "--lq", "c40"]
    rc, _, err = run([*argv, "--frames", "2", "--size", "32", "--workers", "2", "--quiet"], capsys)
    one_line_error(rc, err, "worker", "died", "(--workers 1)")

    def interrupted(args, argv):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli._COMMANDS, "prepare", interrupted)
    rc, _, err = run(["prepare", "--sample"], capsys)
    assert rc == 130 and "prepare resumes where it was" in err and "train" not in err


def test_resume_on_other_data_is_refused(trained, tmp_path, capsys):
    out, pairs, *_ = trained
    other = tmp_path / "other_pairs"
    shutil.copytree(pairs, other)
    lines = (other / "index.csv").read_text().splitlines(keepends=True)
    (other / "index.csv").write_text("".join(lines[:-1]))  # one pair fewer: another dataset, same settings
    argv = ["train", "--pairs", other, "--out", out, *TINY, "--set", "patience=5", "--epochs", "3"]
    one_line_error(*run(argv, capsys)[::2], "other data", str(pairs), "delete")


def test_resume_with_other_settings_is_refused(trained, capsys):
    out, pairs, *_ = trained
    argv = ["train", "--pairs", pairs, "--out", out, *TINY, "--set", "lr=0.5", "--epochs", "3"]
    one_line_error(*run(argv, capsys)[::2], "other settings", "lr", "delete")


def test_bad_preset_in_a_real_process():
    proc = subprocess.run(
        [sys.executable, "-m", "antiforge_lib", "train", "--pairs", "p", "--out", "o", "--preset", "huge"],
        capture_output=True,
        text=True,
    )
    one_line_error(proc.returncode, proc.stderr, "invalid choice: 'huge'")


def test_cli_model_choices_are_the_one_model_vocabulary():
    import argparse

    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    choices = next(a.choices for a in sub.choices["train"]._actions if a.dest == "model")
    assert tuple(choices) == models.MODELS
