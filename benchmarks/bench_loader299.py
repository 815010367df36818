"""The 299 px pair cache: which storage decodes fastest, and can two loader workers keep a GPU fed (issue 17)?

Run:  .venv/bin/python benchmarks/bench_loader299.py [--quick] [--json out.json]   (needs `make data` first)

Both parts read a real 299 px cache of the embedded sample (``prepare_pairs``, 16 frames per video, all methods),
built into a temporary folder, plus its packed copy (:mod:`antiforge_lib.data.packed`).

1. ``data/decode_<storage>_vs_png``: pairs/s of one core decoding HQ + LQ + mask from each candidate storage,
   held in memory, / the same from the PNGs ``prepare_pairs`` writes (Pillow, zlib level 6). Every candidate is
   checked lossless against those PNGs first; bytes per pair are in the row. QOI comes from Pillow (no new
   dependency), which decodes it in pure Python; QOI has no grey mode, so its mask stays PNG.
2. ``data/loader299_vs_gpu_step``: pairs/s of ``pair_dataloaders(...).train`` with 2 workers, batch 32, one whole
   epoch from ``iter()`` to the last batch, as the training pipeline for a GPU runs it: the workers read the packed
   copy and the training augmentation is the batch transform on the device (``augment_on="device"``) / the
   two-branch step rate recorded on an H100 (``data/results/gpu``, variant "two bf16+CL", batches already on the
   GPU). Goal >= 1.5. In the same run, taking turns with it: the packed copy with the augmentation in the workers
   (``data/loader299_packed_aug_in_workers_vs_gpu_step``) and the PNGs with the augmentation in the workers
   (``data/loader299_png_vs_gpu_step``, the path before issue 17: the baseline).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_data import prepare_in_child
from common import common_args, interleaved, print_table, row
from PIL import Image
from provenance import write_results
from torchvision.io import ImageReadMode, decode_png

from antiforge_lib.data import pair_dataloaders
from antiforge_lib.data.packed import pack_cache
from antiforge_lib.data.pairs import load_index
from antiforge_lib.data.sample import build_sample_ffpp

ROOT = Path(__file__).resolve().parent.parent
GPU_RECORD = ROOT / "data" / "results" / "gpu" / "gpu_bench_run2.json"
GPU_VARIANT = "two bf16+CL"
GOAL = ">= 1.5"
SIZE, BS, WORKERS = 299, 32, 2


def recorded_gpu_rate() -> float:
    """Pairs/s of the two-branch paper-config step on the H100, as ``data/results/gpu`` records it."""
    rows = json.loads(GPU_RECORD.read_text())["results"]
    return float(next(r["pairs_per_s"] for r in rows if r["variant"] == GPU_VARIANT))


# ---------------------------------------------------------------------------------------------------------------
# 1. Storages


def _encode(a: np.ndarray, fmt: str, **opts) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format=fmt, **opts)
    return buf.getvalue()


def _pil(blob: bytes, mode: str) -> np.ndarray:
    with Image.open(io.BytesIO(blob)) as im:
        return np.asarray(im.convert(mode))


def _tv(blob: bytes, mode: str) -> np.ndarray:
    read_mode = ImageReadMode.RGB if mode == "RGB" else ImageReadMode.GRAY
    out = decode_png(torch.frombuffer(bytearray(blob), dtype=torch.uint8), read_mode)
    return out.permute(1, 2, 0).numpy().squeeze(-1) if mode == "L" else out.permute(1, 2, 0).numpy()


MODES = ("RGB", "RGB", "L")  # HQ, LQ, mask


def bench_storages(cache: Path, reps: int, n: int) -> list[dict]:
    rows = load_index(cache)
    rows = rows[rows["split"] == "train"].head(n)
    pngs = [[Path(p).read_bytes() for p in (r.hq, r.lq, r.mask)] for r in rows.itertuples()]
    pixels = [[_pil(b, m) for b, m in zip(blobs, MODES, strict=True)] for blobs in pngs]
    packed = np.load(cache / "packed" / "train.npy", mmap_mode="r")
    keys = json.loads((cache / "packed" / "train.json").read_text())["keys"]
    where = [keys.index(str(Path(r.hq).relative_to(cache))) for r in rows.itertuples()]

    def blobs_of(fmt, n_pairs=None, **opts):
        return [
            [_encode(a, "PNG" if (fmt == "QOI" and a.ndim == 2) else fmt, **opts) for a in pix]
            for pix in pixels[:n_pairs]
        ]

    storages = {  # name: (blobs per pair, decoder)
        "png6_pil": (pngs, _pil),
        "png6_torchvision": (pngs, _tv),
        "png1_pil": (blobs_of("PNG", compress_level=1), _pil),
        "png1_torchvision": (None, _tv),
        "png0_torchvision": (blobs_of("PNG", compress_level=0), _tv),
        "qoi_pil": (blobs_of("QOI", n_pairs=4), _pil),  # Pillow's QOI decoder is pure Python: a few pairs
    }
    storages["png1_torchvision"] = (storages["png1_pil"][0], _tv)
    for name, (blobs, dec) in storages.items():  # lossless, or no row
        for pair, pix in zip(blobs, pixels, strict=False):
            for b, m, a in zip(pair, MODES, pix, strict=True):
                assert np.array_equal(dec(b, m), a), f"{name} is not lossless"
    for j, pix in zip(where, pixels, strict=True):
        assert np.array_equal(packed[j, :3].transpose(1, 2, 0), pix[0]) and np.array_equal(packed[j, 6], pix[2])

    def rate(blobs, dec):
        def run() -> float:
            t0 = time.perf_counter()
            for pair in blobs:
                for b, m in zip(pair, MODES, strict=True):
                    dec(b, m)
            return len(blobs) / (time.perf_counter() - t0)

        return run

    def raw() -> float:
        t0 = time.perf_counter()
        for j in where:
            torch.from_numpy(np.array(packed[j]))  # what PairedFaces does: a copy out of the mapped file
        return len(where) / (time.perf_counter() - t0)

    cases = {name: rate(*s) for name, s in storages.items()} | {"raw_memmap": raw}
    s = interleaved(cases, reps=reps)
    size = {name: sum(len(b) for pair in blobs for b in pair) / len(blobs) for name, (blobs, _) in storages.items()}
    size["raw_memmap"] = float(packed[0].nbytes)
    out = []
    for name in cases:
        if name == "png6_pil":
            continue
        out.append(
            row(f"data/decode_{name}_vs_png", f"one core decodes HQ + LQ + mask ({SIZE} px, {len(pixels)} pairs of "
                f"the sample's train split, in memory) from {name} / from the cache's PNGs with Pillow",
                f"{name} pairs/s", s[name], "png6_pil pairs/s", s["png6_pil"], "pairs/s", lambda a, b: a / b,
                bytes_per_pair=size[name], png_bytes_per_pair=size["png6_pil"])
        )  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------------------------------
# 2. The loader against the recorded GPU step


def bench_loader(cache: Path, reps: int) -> list[dict]:
    index = load_index(cache)
    gpu = recorded_gpu_rate()
    ways = {  # name: pair_dataloaders options
        "device": dict(packed=True, augment_on="device"),  # workers read only; AugmentOnDevice does the rest
        "packed": dict(packed=True),  # workers read the packed copy and augment
        "png": dict(packed=False),  # workers decode the PNGs and augment: the path before issue 17
    }
    loaders = {
        name: pair_dataloaders(index, size=SIZE, bs=BS, num_workers=WORKERS, device="cpu", **opts).train
        for name, opts in ways.items()
    }
    assert loaders["device"].dataset.decode_only and loaders["png"].dataset.packed is None

    def epoch(dl):
        def run() -> float:
            n, t0 = 0, time.perf_counter()
            for hq, *_ in dl:
                n += len(hq)
            return n / (time.perf_counter() - t0)

        return run

    s = interleaved({name: epoch(dl) for name, dl in loaders.items()}, reps=reps)
    # Other work on the machine takes cores from the workers, and the goal is against a fixed figure: say how busy.
    extra = {"loader_workers": WORKERS, "load_average_1_5_15_min_after": os.getloadavg(), "cpu_count": os.cpu_count()}
    gpu_samples = [gpu] * len(s["device"])  # one recorded figure: the ratio is of the loader's median
    n = len(loaders["png"].dataset)
    what = (
        f"pair_dataloaders(...).train, {WORKERS} workers, batch {BS}, {SIZE} px, a whole epoch ({n} pairs, "
        f"balanced) of the sample's real {SIZE} px cache"
    )
    gpu_label = f"H100 two-branch step pairs/s ({GPU_RECORD.relative_to(ROOT)}, {GPU_VARIANT})"
    cases = {
        "data/loader299_vs_gpu_step": (
            "device",
            "the packed copy, augment_on='device': the workers only read uint8 "
            "pairs; the training augmentation is AugmentOnDevice's batch transform, on the "
            "GPU's time, not timed here",
            GOAL,
        ),
        "data/loader299_packed_aug_in_workers_vs_gpu_step": (
            "packed",
            "the packed copy, training augmentation and float conversion in the workers",
            None,
        ),
        "data/loader299_png_vs_gpu_step": (
            "png",
            "decoding the PNGs, training augmentation in the workers (the path before issue 17, the baseline)",
            None,
        ),
    }
    return [
        row(id_, f"{what}: {how} / {gpu_label}", "loader pairs/s", s[name], "recorded GPU pairs/s", gpu_samples,
            "pairs/s", lambda a, b: a / b, goal, **extra)
        for id_, (name, how, goal) in cases.items()
    ]  # fmt: skip


def main():
    ap = common_args(__doc__.splitlines()[0])
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    reps, n = (1, 16) if args.quick else (5, 96)
    root = build_sample_ffpp(progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / f"pairs_{SIZE}"
        prepare_in_child(root, cache, 4 if args.quick else 16, 2, SIZE, methods=None)  # all methods
        pack_cache(cache, progress=False)
        rows = [*bench_storages(cache, reps, n), *bench_loader(cache, reps)]
    print_table(rows, f"{SIZE} px pair cache: storages and the loader (bench_loader299.py)")
    if args.json:
        write_results(args.json, rows)


if __name__ == "__main__":
    main()
