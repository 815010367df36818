"""Side-by-side throughput of antiforge_lib.jpeg against scipy and Pillow.

Run:  make bench   (or  .venv/bin/python benchmarks/bench_jpeg.py [--json out.json])

Each pair of cases runs on the same data in the same process, after a warm-up,
taking the median of several repeats. Only the ratios are meant to be compared
across machines.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import numpy as np
import scipy.fft
import torch
from PIL import Image
from provenance import write_results

from antiforge_lib import jpeg
from antiforge_lib.samples import face_tensor


def timeit(fn, repeats=9, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_block_dct(batch=64, size=299):
    # 299 is not a multiple of 8: both sides work on the 296x296 whole-block region.
    s = size - size % 8
    x = torch.rand(batch, 3, size, size)[..., :s, :s].contiguous()
    xn = x.numpy()

    def ours():
        jpeg.block_dct(x)

    def scipy_ref():
        b = xn.reshape(batch, 3, s // 8, 8, s // 8, 8)
        scipy.fft.dctn(b, axes=(3, 5), norm="ortho")

    t_ours, t_ref = timeit(ours), timeit(scipy_ref)
    images = batch
    return {
        "case": f"block_dct vs scipy.fft.dctn ({batch}x3x{s}x{s} float32)",
        "ours_img_s": images / t_ours,
        "ref_img_s": images / t_ref,
        "ratio": t_ref / t_ours,
    }


def bench_jpeg_simulate(batch=16, size=256, quality=50):
    x = face_tensor(size=size).repeat(batch, 1, 1, 1)
    arrs = [(t.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for t in x]

    def ours():
        jpeg.jpeg_simulate(x, quality)

    def pillow():
        for a in arrs:
            buf = io.BytesIO()
            Image.fromarray(a).save(buf, format="JPEG", quality=quality, subsampling=0)
            buf.seek(0)
            np.asarray(Image.open(buf))

    t_ours, t_ref = timeit(ours), timeit(pillow)
    return {
        "case": f"jpeg_simulate vs Pillow encode+decode ({batch}x3x{size}x{size}, q={quality}, 4:4:4)",
        "ours_img_s": batch / t_ours,
        "ref_img_s": batch / t_ref,
        "ratio": t_ref / t_ours,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="also write the results to this JSON file")
    args = ap.parse_args()
    rows = [bench_block_dct(), bench_jpeg_simulate()]
    print(f"{'case':<72} {'ours img/s':>11} {'ref img/s':>10} {'ratio':>7}")
    for r in rows:
        print(f"{r['case']:<72} {r['ours_img_s']:11.1f} {r['ref_img_s']:10.1f} {r['ratio']:7.2f}")
    print("ratio = reference time / our time (> 1: ours is faster)")
    if args.json:
        write_results(args.json, rows)


if __name__ == "__main__":
    main()
