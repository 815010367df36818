"""Side-by-side throughput of antiforge_lib.jpeg against scipy and Pillow.

Run:  .venv/bin/python benchmarks/bench_jpeg.py [--quick] [--json out.json]   (or all benchmarks: make bench)

Each pair of cases runs on the same data in the same process: both warm up, then
they take turns (A B, B A, ...) and each reports the median of its repeats. Only
the ratios are meant to be compared across machines.

1. ``jpeg.block_dct`` vs ``scipy.fft.dctn(norm="ortho")`` over 8x8 blocks; ratio =
   scipy time / ours, goal >= 1.
2. ``jpeg.jpeg_simulate`` vs Pillow (libjpeg) encode + decode; reported only.
"""

from __future__ import annotations

import io

import numpy as np
import scipy.fft
import torch
from common import common_args, interleaved, print_table, row, timed
from PIL import Image
from provenance import write_results

from antiforge_lib import jpeg
from antiforge_lib.samples import face_tensor


def bench_block_dct(batch=64, size=299, reps=9):
    # 299 is not a multiple of 8: both sides work on the 296x296 whole-block region.
    s = size - size % 8
    x = torch.rand(batch, 3, size, size)[..., :s, :s].contiguous()
    xn = x.numpy()

    def ours():
        jpeg.block_dct(x)

    def scipy_ref():
        b = xn.reshape(batch, 3, s // 8, 8, s // 8, 8)
        scipy.fft.dctn(b, axes=(3, 5), norm="ortho")

    t = interleaved({"ours": timed(ours), "ref": timed(scipy_ref)}, reps=reps, warmup=2)
    return row(
        "jpeg/block_dct_vs_scipy",
        f"8x8 block DCT of {batch}x3x{s}x{s} float32 (299 px cropped to whole blocks), images/s; "
        "ratio = scipy time / ours",
        "jpeg.block_dct img/s",
        [batch / dt for dt in t["ours"]],
        "scipy.fft.dctn img/s",
        [batch / dt for dt in t["ref"]],
        "img/s",
        lambda a, b: a / b,
        ">= 1",
    )


def bench_jpeg_simulate(batch=16, size=256, quality=50, reps=9):
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

    t = interleaved({"ours": timed(ours), "ref": timed(pillow)}, reps=reps, warmup=2)
    return row(
        "jpeg/simulate_vs_pillow",
        f"jpeg_simulate vs Pillow encode+decode, {batch}x3x{size}x{size}, quality {quality}, 4:4:4, images/s; "
        "ratio = Pillow time / ours (reported only)",
        "jpeg.jpeg_simulate img/s",
        [batch / dt for dt in t["ours"]],
        "Pillow img/s",
        [batch / dt for dt in t["ref"]],
        "img/s",
        lambda a, b: a / b,
    )


def main():
    ap = common_args(__doc__.splitlines()[0])
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    reps = 3 if args.quick else 9
    rows = [bench_block_dct(reps=reps), bench_jpeg_simulate(reps=reps)]
    print_table(rows, "JPEG (bench_jpeg.py)")
    if args.json:
        write_results(args.json, rows)


if __name__ == "__main__":
    main()
