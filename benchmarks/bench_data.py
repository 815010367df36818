"""Data-pipeline throughput, side by side: prepare_pairs scaling, and the training loader vs the model.

Run:  .venv/bin/python benchmarks/bench_data.py [--quick] [--json out.json]   (needs `make data` first)

1. ``prepare_pairs`` frames/s with all cores / with one worker, on the embedded sample (SelfBlend + originals,
   8 frames per video, 128 px), each run into a fresh cache folder, timed inside a fresh lean process
   (``python -c``; see ``_PREPARE_CHILD``); goal >= 1.7 on 2 cores.
2. Training-loader pairs/s / the model's training pairs/s, both at 128 px, batch 16. Loader: one whole epoch of
   ``pair_dataloaders(...).train`` from the pair cache (PNG decode, shared augmentation, default workers), timed
   from ``iter()`` to the last batch. Model: the real default training step (``anticompression_learner``: two
   branches, critic on) inside ``learn.fit`` on in-memory pairs. The two take turns; the loader's workers are
   idle (their epoch is over) while the model is timed. Goal >= 1.5.
3. The self-blended stream (``SelfBlendedPairs``, the demo preset's training data) with its LQ image from libjpeg
   and from one x264 frame: items/s of each, and each against the demo preset's training step (two branches at
   128 px, batch 32, on in-memory pairs), taking turns in one process. The demo trains with the codec
   whose stream keeps ahead of the model (goal >= 1, with the loader in a worker process beside the model).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import common_args, fit_steps, interleaved, print_table, quiet_timed, row, synthetic_dls
from provenance import write_results

from antiforge_lib.data import SelfBlendedPairs, pair_dataloaders
from antiforge_lib.data.pairs import load_index
from antiforge_lib.data.sample import build_sample_ffpp
from antiforge_lib.learner import TrainConfig, anticompression_learner

GOAL_PREPARE = ">= 1.7"
GOAL_LOADER = ">= 1.5"


# Runs in a fresh `python -c` process: prepare_pairs' forkserver workers re-import the parent's __main__ *file*,
# so from inside this script every worker would first import torch and fastai (seconds each), as a user's own
# script would make them do; a notebook kernel, `python -c` or `python -m` with a light module do not.
_PREPARE_CHILD = """
import json, sys, time
from antiforge_lib.data.pairs import prepare_pairs
root, out, frames, workers, size, methods = sys.argv[1:7]
t0 = time.perf_counter()
index = prepare_pairs(root, out, methods=methods.split(",") if methods else None, frames_per_video=int(frames),
                      size=int(size), workers=int(workers), progress=False)
seconds = time.perf_counter() - t0
print(json.dumps({"frames": len(index) + index.attrs["report"]["no_face_frames"], "seconds": seconds}))
"""


def prepare_in_child(root: Path, out: Path, frames: int, workers: int, size: int = 128, methods=("SelfBlend",)):
    """Run ``prepare_pairs`` in a fresh lean process; returns (frames incl. faceless ones, seconds of the call)."""
    args = [str(root), str(out), str(frames), str(workers), str(size), ",".join(methods or ())]
    res = subprocess.run([sys.executable, "-c", _PREPARE_CHILD, *args], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"prepare_pairs with {workers} workers failed:\n{res.stderr[-3000:]}")
    r = json.loads(res.stdout.strip().splitlines()[-1])
    return r["frames"], r["seconds"]


def bench_prepare(root: Path, tmp: Path, frames: int, reps: int) -> dict:
    cores = os.cpu_count() or 1
    runs = 0

    def rate(workers: int):
        def run() -> float:
            nonlocal runs
            runs += 1
            out = tmp / f"pairs_{runs}_w{workers}"  # a fresh cache each time: prepare_pairs resumes otherwise
            n, seconds = prepare_in_child(root, out, frames, workers)
            shutil.rmtree(out, ignore_errors=True)
            return n / seconds

        return run

    s = interleaved({"all": rate(cores), "one": rate(1)}, reps=reps)
    return row(
        "data/prepare_all_vs_one",
        f"prepare_pairs frames/s, {cores} workers / 1 worker (sample: SelfBlend + originals, {frames} frames per "
        f"video, 128 px, fresh cache and fresh `python -c` process each run; timed around the call)",
        f"{cores} workers frames/s",
        s["all"],
        "1 worker frames/s",
        s["one"],
        "frames/s",
        lambda a, b: a / b,
        GOAL_PREPARE,
    )


def bench_loader_vs_model(root: Path, tmp: Path, frames: int, reps: int, size: int = 128, bs: int = 16) -> dict:
    prepare_in_child(root, tmp / "pairs_loader", frames, os.cpu_count() or 1, size, methods=None)  # all methods
    index = load_index(tmp / "pairs_loader")
    dls = pair_dataloaders(index, size=size, bs=bs, device="cpu")  # default workers: min(4, cores)
    workers = dls.train.num_workers

    def loader_epoch() -> float:
        n, t0 = 0, time.perf_counter()
        for hq, *_ in dls.train:
            n += len(hq)
        return n / (time.perf_counter() - t0)

    learn = anticompression_learner(
        synthetic_dls(size, bs, steps=3), TrainConfig(size=size, batch_size=bs, patience=None)
    )
    timer = quiet_timed(learn)

    def model_rate() -> list[float]:
        return [bs / t for t in fit_steps(learn, timer)]

    s = interleaved({"loader": loader_epoch, "model": model_rate}, reps=reps)
    return row(
        "data/loader_vs_model",
        f"training loader pairs/s ({workers} workers, whole epoch of {len(index[index.split == 'train'])}+ pairs "
        f"from the PNG cache, augmented) / default two-branch training step pairs/s (critic on); {size} px, "
        f"batch {bs}",
        "loader pairs/s",
        s["loader"],
        "model pairs/s",
        s["model"],
        "pairs/s",
        lambda a, b: a / b,
        GOAL_LOADER,
        loader_workers=workers,
    )


def bench_stream_codecs(root: Path, tmp: Path, frames: int, reps: int, items: int = 64) -> list[dict]:
    prepare_in_child(root, tmp / "pairs_stream", frames, os.cpu_count() or 1, 128, methods=("SelfBlend",))
    index = load_index(tmp / "pairs_stream")
    cfg = TrainConfig.preset("demo")
    streams = {
        codec: SelfBlendedPairs.from_index(index, "train", size=cfg.size, length=items, codec=codec)
        for codec in ("jpeg", "h264")
    }
    epoch = {"jpeg": 0, "h264": 0}

    def stream_rate(codec: str):
        def run() -> float:
            epoch[codec] += 1  # new keys every time, as in training
            t0 = time.perf_counter()
            for i in range(epoch[codec] * items, (epoch[codec] + 1) * items):
                streams[codec][i]
            return items / (time.perf_counter() - t0)

        return run

    learn = anticompression_learner(synthetic_dls(cfg.size, cfg.batch_size, steps=3), cfg)
    timer = quiet_timed(learn)

    def model_rate() -> list[float]:
        return [cfg.batch_size / t for t in fit_steps(learn, timer)]

    s = interleaved({"jpeg": stream_rate("jpeg"), "h264": stream_rate("h264"), "model": model_rate}, reps=reps)
    what = f"SelfBlendedPairs items/s at {cfg.size} px (blend + LQ codec + shared crop/flip, one process)"
    model = f"demo two-branch training step pairs/s ({cfg.backbone} cut at {cfg.cut}, batch {cfg.batch_size})"
    rows = [
        row("data/stream_jpeg_vs_h264", f"{what}: LQ by libjpeg / LQ by one x264 frame", "jpeg items/s", s["jpeg"],
            "h264 items/s", s["h264"], "items/s", lambda a, b: a / b),
    ]  # fmt: skip
    for codec in ("jpeg", "h264"):
        rows.append(
            row(f"data/stream_{codec}_vs_model", f"{what}, LQ by {codec} / {model}", f"{codec} items/s", s[codec],
                "model pairs/s", s["model"], "pairs/s", lambda a, b: a / b, ">= 1")
        )  # fmt: skip
    return rows


def main():
    ap = common_args(__doc__.splitlines()[0])
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    # prepare_pairs: all 48 frames of each sample video, the most per-video work the sample offers (FF++: 270).
    # With 8-16 frames each worker's start-up (imports + dlib's detector, ~1.3 s) is a large share of its work
    # and the ratio measures process start-up rather than scaling.
    prep_frames, loader_frames, reps = (4, 8, 1) if args.quick else (48, 16, 3)
    root = build_sample_ffpp(progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [
            bench_prepare(root, Path(tmp), prep_frames, max(1, reps - 1)),  # ~75 s a round
            bench_loader_vs_model(root, Path(tmp), loader_frames, reps + 2),
            *bench_stream_codecs(root, Path(tmp), loader_frames, reps + 2),
        ]
    print_table(rows, "data pipeline (bench_data.py)")
    if args.json:
        write_results(args.json, rows)


if __name__ == "__main__":
    main()
