"""GPU check of issue 5: the paper's full configuration on the embedded data, two-branch vs single-branch.

Run on a GPU (defaults: legacy_xception, 299 px, batch 32, bf16 + channels_last through the learner's config):

    .venv/bin/python benchmarks/gpu_check.py --json benchmarks/results/gpu_check.json

Without a GPU the same script runs on the CPU; use a small size there, e.g. ``--size 128 --batch 8 --steps 6``.
Each model trains in its own subprocess (so peak memory is its own): ``anticompression_learner`` with the critic
(n_critic = 1) and ``single_branch_learner(head="metric", attention=True)``, both from the paper preset, on the
training pairs of the embedded sample, through the real fastai loop (data loading included, validation skipped).
``--warmup`` batches are run first and not timed; then ``--steps`` batches are timed. Reported: pairs/s (one pair =
HQ + LQ image for the two-branch net, one image for the single-branch net), peak memory (CUDA: max allocated;
CPU: the process's peak RSS) and the two-branch / single-branch ratios, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import warnings

import torch
from common import SpanTimer, peak_rss_mib


def _one(args) -> dict:
    """Train one model for warmup + steps batches and return its figures (runs in a subprocess)."""
    warnings.filterwarnings("ignore")
    from antiforge_lib.data import pair_dataloaders
    from antiforge_lib.data.index import load_index
    from antiforge_lib.learner import TrainConfig, anticompression_learner, single_branch_learner

    cuda = torch.cuda.is_available()
    if args.index:  # a finished cache: no PyAV or dlib needed (e.g. shipped to a GPU box)
        index = load_index(args.index)
    else:
        from antiforge_lib.samples import sample_pairs

        index = sample_pairs(size=128, frames=16)
    cfg = TrainConfig.preset("paper", size=args.size, batch_size=args.batch, backbone=args.backbone, patience=None)
    dls = pair_dataloaders(index, size=cfg.size, bs=cfg.batch_size, num_workers=args.workers)

    timer = SpanTimer(args.warmup, args.steps)
    if args.only == "two":
        learn = anticompression_learner(dls, cfg, cbs=[timer])
    else:
        learn = single_branch_learner(dls, cfg, head="metric", attention=True, cbs=[timer])
    with learn.no_bar(), learn.no_logging():
        learn.fit(10_000)
    dt = timer.span_s
    return {
        "model": "two-branch" if args.only == "two" else "single-branch",
        "pairs_per_s": args.steps * args.batch / dt,
        "step_s": dt / args.steps,
        "peak_mem_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else peak_rss_mib(),
        "peak_mem_kind": "cuda max allocated" if cuda else "process peak RSS",
        "precision": cfg.mixed_precision if cuda else "fp32 (CPU)",
        "channels_last": bool(cfg.channels_last and cuda),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=299)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20, help="timed training batches")
    ap.add_argument("--warmup", type=int, default=3, help="untimed batches first")
    ap.add_argument("--backbone", default="legacy_xception")
    ap.add_argument("--workers", type=int, default=None, help="loader processes (default: the loaders' own)")
    ap.add_argument("--index", help="a finished pair cache to train on (default: build the embedded sample's)")
    ap.add_argument("--json", default=None, help="write the results here (with provenance)")
    ap.add_argument("--only", choices=["two", "single"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.only:
        print("RESULT " + json.dumps(_one(args)), flush=True)
        return
    rows = []
    for which in ("two", "single"):
        cmd = [sys.executable, __file__, "--only", which, *(argv if argv is not None else sys.argv[1:])]
        out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
        if out.returncode != 0 or not lines:
            sys.exit(f"{which}-branch run failed:\n{out.stderr[-3000:]}")
        rows.append(json.loads(lines[-1][len("RESULT ") :]))
    two, one = rows
    ratios = {
        "throughput two/single (pairs/s)": two["pairs_per_s"] / one["pairs_per_s"],
        "step time two/single": two["step_s"] / one["step_s"],
        "peak memory two/single": two["peak_mem_mib"] / one["peak_mem_mib"],
    }
    from antiforge_lib._io import write_json
    from antiforge_lib.provenance import device_name, provenance

    print(f"device: {device_name()}; {args.backbone} at {args.size} px, batch {args.batch}, {args.steps} timed steps")
    for r in rows:
        print(
            f"  {r['model']:>13}: {r['pairs_per_s']:8.2f} pairs/s  {r['step_s'] * 1000:8.1f} ms/step  "
            f"peak {r['peak_mem_mib']:8.0f} MiB ({r['peak_mem_kind']}, {r['precision']})"
        )
    for k, v in ratios.items():
        print(f"  {k}: {v:.2f}")
    if args.json:
        write_json(args.json, {"results": rows, "ratios": ratios, "args": vars(args), "provenance": provenance()})


if __name__ == "__main__":
    main()
