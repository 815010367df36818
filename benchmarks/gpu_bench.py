"""GPU part of the benchmark suite (issue 7): precision, channels_last, torch.compile, memory and achieved TFLOP/s.

Run on a CUDA machine (the paper's config: legacy_xception cut at block8, 299 px, batch 32):

    python benchmarks/gpu_bench.py --json data/results/gpu_bench.json

Every variant is a real fastai training step from ``anticompression_learner`` / ``single_branch_learner`` (Adam,
metric loss + attention, the critic callback with n_critic = 1 unless said otherwise) over synthetic batches that
already sit on the GPU, so the loader is out of the picture (``gpu_check.py`` times the same config with the real
loader). Each variant runs in its own process (its own peak memory, its own compile cache): ``--warmup`` steps
untimed, then ``--steps`` steps timed between two ``cuda.synchronize()`` calls.

Variants: two-branch bf16 + channels_last (the default config), the same without the critic, single-branch
bf16 + channels_last, two-branch fp32 (no autocast, NCHW; cuDNN's default TF32 convolutions stay on, as a user
gets them) and two-branch bf16 + channels_last + ``torch.compile`` (``TrainConfig(compile=True)``).

FLOPs per step: 3 x the forward FLOPs counted by ``torch.utils.flop_counter.FlopCounterMode`` (see
:func:`training_flops` for why the backward is not counted directly). Achieved TFLOP/s = FLOPs per step / step
time; the fraction is against this card's measured bf16 matrix-product rate (an 8192^3 product, median of 10)
and, where the card is known, its datasheet dense bf16 peak.

``--recount FILE`` recomputes the FLOP columns of an earlier results file on the CPU (no GPU needed) and records
that it did.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings

import torch
from common import SpanTimer, peak_rss_mib

VARIANTS = {
    # name: (model, TrainConfig overrides)
    "two bf16+CL": ("two", dict(mixed_precision="bf16", channels_last=True)),
    "two bf16+CL, no critic": ("two", dict(mixed_precision="bf16", channels_last=True, gan=False)),
    "single bf16+CL": ("single", dict(mixed_precision="bf16", channels_last=True)),
    "two fp32": ("two", dict(mixed_precision=None, channels_last=False)),
    "two bf16+CL+compile": ("two", dict(mixed_precision="bf16", channels_last=True, compile=True)),
}
DATASHEET_BF16_TFLOPS = {"H100 80GB HBM3": 989.4, "H100 PCIe": 756.0, "H200": 989.4, "A100": 312.0}  # dense


def gpu_dls(size: int, bs: int, n_batches: int, distinct: int = 4, device: str = "cuda"):
    """``n_batches`` batches ``(hq, lq, mask, label)`` cycling over ``distinct`` random ones held on ``device``."""
    from fastai.data.core import DataLoaders

    g = torch.Generator(device=device).manual_seed(0)
    batches = []
    for _ in range(distinct):
        hq = torch.rand(bs, 3, size, size, device=device, generator=g) * 2 - 1
        lq = (hq + 0.1 * torch.randn(bs, 3, size, size, device=device, generator=g)).clamp(-1, 1)
        label = torch.arange(bs, device=device) % 2
        mask = torch.zeros(bs, 1, size, size, device=device)
        q = size // 4
        mask[label == 1, :, q : size - q, q : size - q] = 1
        batches.append((hq, lq, mask, label))

    class Cycle(torch.utils.data.Dataset):
        def __len__(self):
            return n_batches

        def __getitem__(self, i):
            return batches[i % distinct]

    train = torch.utils.data.DataLoader(Cycle(), batch_size=None)  # items are whole batches
    valid = torch.utils.data.DataLoader(Cycle(), batch_size=None)  # never run: validation is cancelled
    dls = DataLoaders(train, valid, device=device)
    dls._device = torch.device(device)
    return dls, batches[0]


def training_flops(kind: str, size: int, bs: int) -> int:
    """FLOPs of one training step: 3 x the forward FLOPs of ``bs`` images (pairs for the two-branch net).

    The forward pass is counted with ``FlopCounterMode`` (16.7 GFLOPs for legacy_xception at 299 px, timm's
    8.4 GMACs), on the CPU at batch 1 (the count is linear in the batch). The backward pass is taken as 2 x the
    forward (gradients of inputs and of weights): torch's counter charges a grouped convolution's backward as if
    it were dense, ~730x too much for Xception's depthwise layers, so counting it would inflate the rate.
    The loss and the critic (a few MFLOPs) are left out.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from antiforge_lib.models import SingleBranchNet, TwoBranchNet

    x = torch.randn(1, 3, size, size)
    model = TwoBranchNet() if kind == "two" else SingleBranchNet(head="metric", attention=True)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x, x) if kind == "two" else model(x)
    return 3 * bs * counter.get_total_flops()


def add_flops(rows: list[dict], size: int, bs: int, ceiling: float, datasheet: float | None) -> None:
    """Add FLOPs per step, achieved TFLOP/s and fractions of the ceilings to each row, in place."""
    flops = {kind: training_flops(kind, size, bs) for kind in {r["model"] for r in rows}}
    for r in rows:
        r["flops_per_step"] = flops[r["model"]]
        r["achieved_tflops"] = flops[r["model"]] / r["step_s"] / 1e12
        r["fraction_of_measured_matmul"] = r["achieved_tflops"] / ceiling
        r["fraction_of_datasheet_bf16"] = r["achieved_tflops"] / datasheet if datasheet else None


def child(name: str, size: int, bs: int, warmup: int, steps: int, device: str = "cuda") -> dict:
    warnings.filterwarnings("ignore")

    from antiforge_lib.learner import TrainConfig, anticompression_learner, single_branch_learner

    kind, overrides = VARIANTS[name]
    cfg = TrainConfig.preset("paper", size=size, batch_size=bs, patience=None, **overrides)
    dls, _ = gpu_dls(size, bs, warmup + steps + 1, device=device)

    timer = SpanTimer(warmup, steps)
    if kind == "two":
        learn = anticompression_learner(dls, cfg, cbs=[timer])
    else:
        learn = single_branch_learner(dls, cfg, head="metric", attention=True, cbs=[timer])
    learn.remove_cbs([cb for cb in learn.cbs if type(cb).__name__ == "ProgressCallback"])
    with learn.no_logging():
        learn.fit(1)
    step_s = timer.span_s / steps
    out = {
        "variant": name,
        "model": kind,
        "config": {k: getattr(cfg, k) for k in ("backbone", "split", "size", "batch_size", "gan", "n_critic")}
        | overrides,
        "step_s": step_s,
        "images_per_s": bs * (2 if kind == "two" else 1) / step_s,
        "pairs_per_s": bs / step_s if kind == "two" else None,
        "first_step_s": timer.first_step_s,
    }
    if device == "cuda":
        out |= {
            "peak_allocated_mib": torch.cuda.max_memory_allocated() / 2**20,
            "peak_reserved_mib": torch.cuda.max_memory_reserved() / 2**20,
        }
    else:  # smoke runs only: the process's peak RSS
        out["peak_allocated_mib"] = peak_rss_mib()
    return out


def matmul_tflops(n: int = 8192, reps: int = 10) -> float:
    """Median bf16 rate of an n x n x n matrix product on random data (after 3 warm-ups)."""
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        a @ b
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return 2 * n**3 / statistics.median(times) / 1e12


def recount(path: str) -> None:
    """Rewrite the FLOP columns of a results file with :func:`training_flops`; the timings stay as measured."""
    from antiforge_lib._io import read_json, write_json
    from antiforge_lib.provenance import provenance

    res = read_json(path)
    a = res["args"]
    add_flops(res["results"], a["size"], a["batch"], res["matmul_bf16_tflops_measured"], res["datasheet_bf16_tflops"])
    res.setdefault("recounted", []).append(
        {"what": "flops_per_step, achieved_tflops, fractions (training_flops)", "provenance": provenance(device="cpu")}
    )
    write_json(path, res)
    for r in res["results"]:
        print(f"{r['variant']:<24} {r['flops_per_step'] / 1e12:6.2f} TFLOP/step {r['achieved_tflops']:7.1f} TFLOP/s")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=299)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=30, help="timed steps per variant")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (compiling happens here)")
    ap.add_argument("--only", action="append", choices=list(VARIANTS), help="run only these variants")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per variant before it is given up")
    ap.add_argument("--json", help="write the results (with provenance) here")
    ap.add_argument("--device", default="cuda", help="cuda; 'cpu' only to smoke-test the script at a tiny size")
    ap.add_argument("--recount", metavar="FILE", help="recompute the FLOP columns of an earlier results file")
    ap.add_argument("--child", choices=list(VARIANTS), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.recount:
        recount(args.recount)
        return
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_bench.py needs a CUDA GPU; on the CPU use benchmarks/run_all.py (make bench)")
    if args.child:
        res = child(args.child, args.size, args.batch, args.warmup, args.steps, args.device)
        print("RESULT " + json.dumps(res), flush=True)
        return

    from antiforge_lib._io import write_json
    from antiforge_lib.provenance import device_name, provenance

    rows, failed = [], {}
    for name in args.only or VARIANTS:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "--size", str(args.size)]
        cmd += ["--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup)]
        cmd += ["--device", args.device]
        t = time.perf_counter()
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            failed[name] = f"gave up after {args.timeout:.0f} s"
            print(f"{name}: {failed[name]}", flush=True)
            continue
        lines = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
        if res.returncode != 0 or not lines:
            failed[name] = res.stderr[-3000:]
            print(f"{name}: FAILED\n{failed[name]}", flush=True)
            continue
        rows.append(json.loads(lines[-1][len("RESULT ") :]))
        print(f"{name}: {rows[-1]['step_s'] * 1e3:.1f} ms/step ({time.perf_counter() - t:.0f} s)", flush=True)

    cuda = args.device == "cuda"
    ceiling = matmul_tflops() if cuda else float("nan")
    card = torch.cuda.get_device_name() if cuda else "cpu"
    datasheet = next((v for k, v in DATASHEET_BF16_TFLOPS.items() if k in card), None)
    by = {r["variant"]: r for r in rows}
    add_flops(rows, args.size, args.batch, ceiling, datasheet)

    def ratio(a, b, key="step_s"):
        return by[a][key] / by[b][key] if a in by and b in by else None

    ratios = {
        "two-branch step / single-branch step (bf16+CL)": ratio("two bf16+CL", "single bf16+CL"),
        "speedup bf16+CL over fp32 (two-branch)": ratio("two fp32", "two bf16+CL"),
        "speedup torch.compile (two-branch bf16+CL)": ratio("two bf16+CL", "two bf16+CL+compile"),
        "critic on / off step (two-branch bf16+CL)": ratio("two bf16+CL", "two bf16+CL, no critic"),
        "peak memory two / single (bf16+CL)": ratio("two bf16+CL", "single bf16+CL", "peak_allocated_mib"),
    }

    print(
        f"\ndevice: {device_name(args.device)}; {args.size} px, batch {args.batch}, {args.steps} timed steps after "
        f"{args.warmup} warm-up; measured bf16 matmul {ceiling:.0f} TFLOP/s, datasheet {datasheet} TFLOP/s"
    )
    print(
        f"{'variant':<24} {'ms/step':>8} {'pairs/s':>8} {'img/s':>8} {'peak MiB':>9} {'TFLOP/s':>8} "
        f"{'% matmul':>8} {'1st step s':>10}"
    )
    for r in rows:
        tf = r.get("achieved_tflops")
        pairs = f"{r['pairs_per_s']:8.0f}" if r["pairs_per_s"] else f"{'-':>8}"
        print(
            f"{r['variant']:<24} {r['step_s'] * 1e3:8.1f} {pairs} {r['images_per_s']:8.0f} "
            f"{r['peak_allocated_mib']:9.0f} {tf if tf is not None else float('nan'):8.1f} "
            f"{100 * r.get('fraction_of_measured_matmul', float('nan')):8.1f} {r['first_step_s']:10.1f}"
        )
    for k, v in ratios.items():
        print(f"  {k}: {'-' if v is None else f'{v:.2f}'}")
    for name, why in failed.items():
        print(f"  {name}: not measured ({why.strip().splitlines()[-1] if why.strip() else 'no output'})")
    if args.json:
        write_json(
            args.json,
            {
                "results": rows,
                "ratios": ratios,
                "failed": failed,
                "matmul_bf16_tflops_measured": ceiling,
                "datasheet_bf16_tflops": datasheet,
                "args": vars(args),
                "provenance": provenance(device=args.device),
            },
        )


if __name__ == "__main__":
    main()
