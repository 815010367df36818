"""Train the demo recipe with several seeds and record how validation and test AUC move (``make learning``).

For each seed: ``TrainConfig.preset("demo", seed=s)`` on the embedded sample's pair cache (self-blended training pairs
made from the training split's real faces; the cached "val" and "test" pairs to score), through the same
``make_dataloaders`` / ``anticompression_learner`` / ``fit`` as ``antiforge train``. :class:`ScoreEachEpoch` scores
the LQ branch on validation and test before training and after every epoch; nothing is selected on them.

Writes ``data/results/cpu/learning.json``: the recipe, one record per seed (the rows, training seconds, the AUC of
each test method), the means over seeds, and provenance (command, commit, torch, device, date).

    .venv/bin/python scripts/learning.py [--seeds 0 1 2] [--epochs N] [--set KEY=VALUE ...] [--json PATH]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from antiforge_lib._io import write_json
from antiforge_lib.callbacks import ScoreEachEpoch
from antiforge_lib.cli import parse_set
from antiforge_lib.learner import TrainConfig, anticompression_learner, fit, make_dataloaders
from antiforge_lib.metrics import FewNegativesWarning, evaluate
from antiforge_lib.provenance import provenance
from antiforge_lib.run import export_detector
from antiforge_lib.samples import sample_pairs, sample_pairs_dir

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_FRAMES, SAMPLE_SIZE = 16, 128  # the cache `antiforge prepare --sample` builds


def per_method_auc(model, dl) -> dict:
    """Test AUC of each manipulation against all reals of the split (LQ branch)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewNegativesWarning)
        _, sc = evaluate(model, dl, return_scores=True)
    methods = dl.dataset.items["method"].to_numpy()
    out = {}
    for m in sorted(set(methods) - {"original"}):
        sel = (methods == m) | (methods == "original")
        out[m] = float(roc_auc_score(sc["is_fake"][sel], sc["score"][sel]))
    return out


def run_seed(index, seed: int, epochs: int | None, workers: int | None, overrides: dict, out: Path | None) -> dict:
    cfg = TrainConfig.preset("demo", **overrides, seed=seed)
    dls = make_dataloaders(index, cfg, num_workers=workers, device="cpu")
    test = torch.utils.data.DataLoader(dls.test.dataset, batch_size=64, shuffle=False)
    score = ScoreEachEpoch({"val": dls.valid, "test": test})
    learn = anticompression_learner(dls, cfg, cbs=[score])
    t0 = time.perf_counter()
    with learn.no_bar(), learn.no_logging():
        fit(learn, epochs)
    seconds = time.perf_counter() - t0
    if out is not None:
        export_detector(learn.model, cfg, out / f"seed{seed}" / "detector.pth", epoch=len(score.rows) - 2)
    first, last = score.rows[0], score.rows[-1]
    record = {
        "seed": seed,
        "rows": score.rows,
        "train_seconds": round(seconds, 1),
        "val_AUC_gain": last["val_AUC"] - first["val_AUC"],
        "test_AUC": last["test_AUC"],
        "test_AUC_per_method": per_method_auc(learn.model, test),
    }
    print(
        f"seed {seed}: val AUC {first['val_AUC']:.3f} -> {last['val_AUC']:.3f} ({record['val_AUC_gain']:+.3f}), "
        f"test AUC {first['test_AUC']:.3f} -> {last['test_AUC']:.3f}, {seconds:.0f} s",
        flush=True,
    )
    return record


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, help="epochs per seed (default: the demo preset's)")
    ap.add_argument("--workers", type=int, help="loader processes (default: as antiforge train)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (2)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a TrainConfig field")
    ap.add_argument("--json", default=str(ROOT / "data/results/cpu/learning.json"))
    ap.add_argument("--out", type=Path, help="also keep each seed's detector, as OUT/seed<S>/detector.pth")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=FewNegativesWarning)  # the learner's TAR on a few dozen reals
    cache = sample_pairs_dir(SAMPLE_SIZE, SAMPLE_FRAMES)
    index = sample_pairs(SAMPLE_SIZE, SAMPLE_FRAMES)
    overrides = parse_set(args.set)
    records = [run_seed(index, s, args.epochs, args.workers, overrides, args.out) for s in args.seeds]
    gains = [r["val_AUC_gain"] for r in records]
    tests = [r["test_AUC"] for r in records]
    summary = {
        "val_AUC_gain_mean": float(np.mean(gains)),
        "val_AUC_gain_min": float(np.min(gains)),
        "test_AUC_mean": float(np.mean(tests)),
        "test_AUC_min": float(np.min(tests)),
    }
    cfg = TrainConfig.preset("demo", **overrides)
    payload = {
        "what": "demo recipe, several seeds: validation and test AUC (LQ branch) before training and after each epoch",
        "pairs": str(cache.relative_to(ROOT)) if cache.is_relative_to(ROOT) else str(cache),
        "config": {k: v for k, v in cfg.to_dict().items() if k != "seed"},
        "epochs": args.epochs or cfg.epochs,
        "seeds": records,
        "summary": summary,
        "provenance": provenance(device="cpu") | {"torch_threads": torch.get_num_threads()},
    }
    path = write_json(args.json, payload)
    print(
        f"mean val AUC gain {summary['val_AUC_gain_mean']:+.3f} (min {summary['val_AUC_gain_min']:+.3f}), "
        f"mean test AUC {summary['test_AUC_mean']:.3f} (min {summary['test_AUC_min']:.3f}); wrote {path}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
