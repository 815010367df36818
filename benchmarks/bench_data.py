"""Data-pipeline throughput, side by side: prepare_pairs scaling and loader vs model.

Run:  .venv/bin/python benchmarks/bench_data.py [--json out.json]   (needs `make data` first)

1. prepare_pairs frames/s with all cores vs one worker, on the embedded sample.
2. Training-loader pairs/s (PNG decode + identical augmentation of HQ, LQ and
   mask, default workers) vs the pairs/s a two-branch model consumes: two
   legacy_xception forward+backward passes per pair, the compute of the
   paper's two heads and shared tail (a stand-in until the model module lands).
Each case warms up before it is timed; only ratios compare across machines.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from provenance import write_results

from antiforge_lib.data import pair_dataloaders
from antiforge_lib.pairs import prepare_pairs
from antiforge_lib.sample_ffpp import build_sample_ffpp


def bench_prepare(root: Path, tmp: Path, frames: int = 8) -> dict:
    rates = {}
    for workers in (1, os.cpu_count() or 1):
        out = tmp / f"pairs_w{workers}"
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        index = prepare_pairs(
            root, out, methods=["SelfBlend"], frames_per_video=frames, size=128, workers=workers, progress=False
        )
        rates[workers] = (len(index) + index.attrs["report"]["no_face_frames"]) / (time.perf_counter() - t0)
    one, many = rates[1], rates[max(rates)]
    return {"case": f"prepare_pairs frames/s, {max(rates)} workers vs 1", "ours": many, "ref": one, "ratio": many / one}


def bench_loader_vs_model(root: Path, tmp: Path, size: int = 128, bs: int = 16, batches: int = 8) -> dict:
    import timm

    index = prepare_pairs(
        root, tmp / "pairs_loader", frames_per_video=16, size=size, workers=os.cpu_count(), progress=False
    )
    dls = pair_dataloaders(index, size=size, bs=bs, device="cpu")
    it = iter(dls.train)
    next(it)  # warm-up: workers start
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        hq, lq, mask, label = next(it)
        n += len(hq)
    loader = n / (time.perf_counter() - t0)
    del it, dls  # stop the loader's workers so they do not compete with the model

    model = timm.create_model("legacy_xception", pretrained=False, num_classes=0)
    opt = torch.optim.Adam(model.parameters(), 1e-4)

    def step():
        loss = model(hq).pow(2).mean() + model(lq).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    step()
    t0 = time.perf_counter()
    for _ in range(3):
        step()
    model_rate = 3 * len(hq) / (time.perf_counter() - t0)
    return {
        "case": f"loader pairs/s vs two-branch model pairs/s ({size} px, batch {bs})",
        "ours": loader,
        "ref": model_rate,
        "ratio": loader / model_rate,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args()
    root = build_sample_ffpp(progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [bench_prepare(root, Path(tmp)), bench_loader_vs_model(root, Path(tmp))]
    print(f"{'case':<66} {'ours':>9} {'ref':>9} {'ratio':>7}")
    for r in rows:
        print(f"{r['case']:<66} {r['ours']:9.1f} {r['ref']:9.1f} {r['ratio']:7.2f}")
    if args.json:
        write_results(args.json, rows)


if __name__ == "__main__":
    main()
