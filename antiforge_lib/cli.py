"""The ``antiforge`` command line: prepare pair caches, train, evaluate and run the detector.

::

    antiforge prepare --sample                                  # the embedded mini FF++ and its pair cache
    antiforge prepare --root /data/FaceForensics++ --out /data/pairs_c23_c40 --frames 270 --size 299
    antiforge prepare --videos my_videos/ --out data/my_faces          # your own real videos, no FF++ needed
    antiforge train --pairs /data/pairs_c23_c40 --out runs/paper --preset paper
    antiforge train --pairs data/pairs/sample_c23_c40_16f_128px --out runs/demo --preset demo --set lr=3e-4
    antiforge evaluate --checkpoint runs/demo/detector.pth --pairs data/pairs/sample_c23_c40_16f_128px
    antiforge detect --checkpoint runs/demo/detector.pth face.jpg clip.mp4

(``python -m antiforge_lib ...`` is the same.) Every subcommand prints its resolved configuration first, shows
progress bars (``--quiet`` turns them off) and writes a results JSON (``--results PATH``; by default inside
``--out`` for ``train``, else ``antiforge_results/<command>-<timestamp>.json``) with ``command``, ``config``,
``commit``, ``torch``, ``device``, ``date`` and ``metrics`` (``detections`` for ``detect``).

Bad arguments, missing files and invalid values end with ONE line on stderr, ``antiforge: error: ...``, and exit
status 2.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import warnings
from datetime import datetime
from pathlib import Path

from ._io import FolderBusy, exclusive_lock, write_json

__all__ = ["main", "build_parser", "parse_set", "CLIError"]

PROG = "antiforge"

EPILOG = """\
Training on the CPU at 299 px: glibc's malloc returning memory to the OS can take 40-50 % of each step
(see the project's environment notes). Setting, before the command,

    export GLIBC_TUNABLES=glibc.malloc.mmap_threshold=2147483648:glibc.malloc.trim_threshold=17179869184

made batch-32 Xception steps 2-5x steadier there. antiforge never sets it for you.

Errors are reported in one line; set ANTIFORGE_DEBUG=1 to see the traceback of a library error instead.

Run 'antiforge <command> --help' for the options of each command."""

TRAIN_EPILOG = """\
--set takes any TrainConfig field (antiforge_lib.learner.TrainConfig), typed like its default: booleans as
true/false, 'none' for None. Precedence: --preset, then --set (in order), then --epochs.

--out DIR holds checkpoint.pth (every epoch), detector.pth (the weights with the config, for evaluate/detect:
with early stopping (--set patience=N, as the paper preset) the epoch of lowest validation loss, also kept in
models/best.pth; without it, as the demo preset, the last epoch), history.jsonl (one line per epoch) and the
results JSON. Running the same command again resumes after the last completed epoch; a larger --epochs trains on.
A run that early stopping ended is not trained further."""


class CLIError(Exception):
    """A user error: reported as one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage + message and exits; we want one line
        sub = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        raise CLIError(sub + message)


# ---------------------------------------------------------------------------------------------------------------
# Parser


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``antiforge`` (subcommands prepare, train, evaluate, detect)."""
    common = _Parser(add_help=False)
    common.add_argument("--results", metavar="PATH", help="results JSON (default: see 'antiforge --help')")
    common.add_argument("--quiet", action="store_true", help="no progress bars")

    dev = _Parser(add_help=False)
    dev.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available, else cpu)")
    dev.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default: torch's choice)")

    p = _Parser(
        prog=PROG,
        description="Metric learning for anti-compression facial forgery detection (Cao et al., ACM MM 2021).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sp = sub.add_parser(
        "prepare",
        parents=[common],
        help="build a pair cache (HQ/LQ/mask face crops) from FaceForensics++ or the embedded sample",
        description="Crop pixel-aligned HQ/LQ/mask face pairs (antiforge_lib.data.pairs.prepare_pairs).",
    )
    src = sp.add_mutually_exclusive_group(required=True)
    src.add_argument("--sample", action="store_true", help="build the embedded mini FaceForensics++ and use it")
    src.add_argument("--root", metavar="FFPP_ROOT", help="a FaceForensics++ tree")
    src.add_argument(
        "--videos",
        nargs="+",
        metavar="VIDEO",
        help="your own REAL videos (files, or one folder): a cache of real faces to train on with self-blended fakes",
    )
    sp.add_argument("--out", metavar="DIR", help="pair cache folder (default with --sample: data/pairs/sample_...)")
    sp.add_argument("--hq", default="c23", choices=["c0", "c23", "c40"], help="HQ level (default c23)")
    sp.add_argument("--lq", default="c40", choices=["c0", "c23", "c40"], help="LQ level (default c40)")
    sp.add_argument("--frames", type=int, metavar="N", help="frames per video (default 270; 16 with --sample)")
    sp.add_argument("--size", type=int, metavar="S", help="crop side in px (default 299; 128 with --sample)")
    sp.add_argument("--methods", nargs="+", metavar="METHOD", help="manipulation folders (default: all present)")
    sp.add_argument("--splits-dir", metavar="DIR", help="folder with FF++'s train/val/test.json")
    sp.add_argument("--allow-missing", action="store_true", help="skip videos the splits name but the tree lacks")
    sp.add_argument("--verify", action="store_true", help="decode every cached crop; redo videos with a damaged one")
    sp.add_argument("--sample-root", metavar="DIR", help="where --sample builds the dataset (default data/sample_ffpp)")
    sp.add_argument("--workers", type=int, metavar="N", help="parallel processes (default: all cores)")
    sp.add_argument(
        "--val",
        nargs="+",
        metavar="VIDEO",
        help="with --videos: the videos held out for validation (default: a fifth of them)",
    )

    tp = sub.add_parser(
        "train",
        parents=[common, dev],
        help="train a detector on a pair cache (resumable)",
        description="Train the two-branch detector (or a single-branch baseline) with fastai.",
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tp.add_argument("--pairs", required=True, metavar="DIR", help="pair cache folder (with index.csv)")
    tp.add_argument("--out", required=True, metavar="DIR", help="run folder: checkpoints, best weights, results")
    tp.add_argument("--preset", default="paper", choices=["paper", "demo"], help="TrainConfig preset (paper)")
    tp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a TrainConfig field")
    tp.add_argument(
        "--model",
        default="two-branch",
        choices=["two-branch", "single-ce", "single-metric"],
        help="the paper's two-branch net (default) or a single-branch baseline (cross-entropy or metric head)",
    )
    tp.add_argument("--attention", action="store_true", help="single-branch: add the attention layer")
    tp.add_argument("--train-on", default="lq", choices=["lq", "hq"], help="single-branch: which image (lq)")
    tp.add_argument("--epochs", type=int, metavar="N", help="epochs in all (overrides the preset and --set)")
    tp.add_argument("--workers", type=int, metavar="N", help="data-loader processes (default min(4, cores))")

    ep = sub.add_parser(
        "evaluate",
        parents=[common, dev],
        help="ACC, AUC, TAR@FAR, PBCA, video AUC of a checkpoint on a split of a pair cache",
        description="Evaluate a trained detector on the LQ images of a pair cache (antiforge_lib.metrics.evaluate).",
    )
    ep.add_argument("--checkpoint", required=True, metavar="PATH", help="detector.pth, checkpoint.pth or a run dir")
    ep.add_argument("--pairs", required=True, metavar="DIR", help="pair cache folder (with index.csv)")
    ep.add_argument("--split", default="test", choices=["train", "val", "test"], help="which split (test)")
    ep.add_argument("--threshold", type=float, help="ACC threshold (default: (r- + r+)/2, or 0.5 for CE heads)")
    ep.add_argument("--batch-size", type=int, metavar="N", help="default: the checkpoint's batch_size")
    ep.add_argument("--workers", type=int, default=0, metavar="N", help="data-loader processes (0)")

    rp = sub.add_parser(
        "robustness",
        parents=[common, dev],
        help="score detectors on the test split re-encoded with H.264, HEVC, VP9, AV1, JPEG at many strengths",
        description="Re-encode the test videos and score checkpoints on each point (robustness.robustness_curve).",
    )
    rp.add_argument("--checkpoint", required=True, nargs="+", metavar="RUN", help="run folders or detector.pth files")
    rp.add_argument("--pairs", required=True, metavar="DIR", help="pair cache folder (with index.csv)")
    rp.add_argument("--root", metavar="FFPP_ROOT", help="the tree the cache was cropped from (default: the sample)")
    rp.add_argument("--codecs", nargs="+", default=["h264", "hevc", "vp9", "av1", "jpeg"], metavar="CODEC")
    rp.add_argument("--strengths", nargs="+", type=int, metavar="N", help="CRF / JPEG quality (default: per codec)")
    rp.add_argument("--out", metavar="DIR", help="points, robustness.json, robustness.html (<pairs>/robustness)")

    dp = sub.add_parser(
        "detect",
        parents=[common, dev],
        help="score the faces in images or videos",
        description="Crop the face as in training and score it with the LQ branch (antiforge_lib.detect.detect).",
    )
    dp.add_argument("--checkpoint", required=True, metavar="PATH", help="detector.pth, checkpoint.pth or a run dir")
    dp.add_argument("inputs", nargs="+", metavar="INPUT", help="image or video files")
    dp.add_argument("--threshold", type=float, help="decision threshold (default as evaluate)")
    dp.add_argument("--frames", type=int, metavar="N", help="video frames sampled evenly (16)")
    dp.add_argument("--size", type=int, metavar="S", help="model input side (default: the checkpoint's size)")
    dp.add_argument("--scale", type=float, default=1.3, help="face-box enlargement (1.3, as the pair cache)")
    return p


# ---------------------------------------------------------------------------------------------------------------
# Small helpers


def _one_line(msg) -> str:
    return " ".join(str(msg).split())


# The library's hints name Python keywords; on the command line the same advice is a flag.
_CLI_WORDS = [
    (re.compile(r"pass splits_dir=\.\.\."), "pass --splits-dir DIR"),
    (re.compile(r"pass allow_missing=True"), "pass --allow-missing"),
    (re.compile(r"run prepare_pairs\(\.\.\., out_dir='([^']*)'\) first"), r"run antiforge prepare --out \1 first"),
    (re.compile(r"pass weights='([^']*)' \(and pretrained=False\)"), r"pass --set weights=\1"),
    (re.compile(r"\(workers=1\)"), "(--workers 1)"),
    (re.compile(r"use another run folder"), "use another --out"),
    (re.compile(r"\brun folder (\S+) is in use"), r"--out \1 is in use"),
]


def _exc_message(e: BaseException) -> str:
    if isinstance(e, KeyError) and len(e.args) == 1 and isinstance(e.args[0], str):
        text = e.args[0]  # str(KeyError) adds quotes
    else:
        text = str(e)
    if "Original Traceback (most recent call last):" in text:  # re-raised from a DataLoader worker: its last line
        text = [line for line in text.splitlines() if line.strip()][-1].split(": ", 1)[-1]
    for pattern, cli in _CLI_WORDS:
        text = pattern.sub(cli, text)
    return _one_line(text) or type(e).__name__


def _print_config(title: str, config: dict) -> None:
    print(f"{PROG} {title}")
    width = max((len(k) for k in config), default=0)
    for k, v in config.items():
        print(f"  {k:<{width}}  {v}")
    sys.stdout.flush()


def _print_metrics(metrics: dict) -> None:
    for k, v in metrics.items():
        print(f"  {k:<10} {v:.4f}" if isinstance(v, float) else f"  {k:<10} {v}")


def _device(name: str | None, threads: int | None = None) -> str:
    """Resolve --device (and apply --threads)."""
    import torch

    if threads is not None:
        _positive("--threads", threads)
        torch.set_num_threads(threads)

    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise CLIError(f"--device {name!r}: {_exc_message(e)}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {name}: CUDA is not available on this machine")
    return str(dev)


def _positive(name: str, value, minimum: int = 1) -> None:
    if value is not None and value < minimum:
        raise CLIError(f"{name} must be at least {minimum}, got {value}")


def _results_path(args, command: str, folder: Path | None = None) -> Path:
    if args.results:
        return Path(args.results)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = folder if folder is not None else Path("antiforge_results")
    path, k = folder / f"{command}-{stamp}.json", 1
    while path.exists():
        k += 1
        path = folder / f"{command}-{stamp}-{k}.json"
    return path


def _write_results(args, argv: list[str], config: dict, payload: dict, device, folder: Path | None = None) -> Path:
    from .provenance import provenance

    prov = provenance(command=_command_line(argv), device=device)
    record = {"command": prov.pop("command"), "argv": list(argv), "config": config, **prov, **payload}
    path = write_json(_results_path(args, args.command, folder), record)
    print(f"results: {path}")
    return path


def _command_line(argv: list[str]) -> str:
    return shlex.join([PROG, *argv])


def _checkpoint_exists(path: str) -> None:
    if not Path(path).exists():
        raise CLIError(f"--checkpoint {path}: no such file or folder (a run folder, detector.pth or checkpoint.pth)")


def _pairs_dir(path: str) -> Path:
    d = Path(path)
    if not d.is_dir():
        raise CLIError(f"--pairs {path}: no such directory")
    if not (d / "index.csv").is_file():
        raise CLIError(f"--pairs {path}: no index.csv here; build the cache with 'antiforge prepare' first")
    return d


# ---------------------------------------------------------------------------------------------------------------
# --set


def parse_set(items: list[str]) -> dict:
    """``["lr=3e-4", "gan=false"]`` -> typed TrainConfig overrides (``TrainConfig.parse_overrides``)."""
    from .config import TrainConfig

    try:
        return TrainConfig.parse_overrides(items)
    except ValueError as e:
        raise CLIError(f"--set {e}") from None


def _check_weights_file(cfg) -> None:
    """The config checks itself (TrainConfig.__post_init__); a local weights file is checked here, before any work."""
    if cfg.weights is not None and not Path(cfg.weights).is_file():
        raise CLIError(f"weights {cfg.weights}: no such file")


# ---------------------------------------------------------------------------------------------------------------
# prepare


def _cmd_prepare(args, argv) -> int:
    from .data.pairs import prepare_faces, prepare_pairs
    from .data.sample import build_sample_ffpp, default_sample_root
    from .samples import sample_pairs_dir

    frames = args.frames if args.frames is not None else (16 if args.sample else 48 if args.videos else 270)
    size = args.size if args.size is not None else (299 if args.root else 128)
    _positive("--frames", frames)
    _positive("--size", size, 16)
    _positive("--workers", args.workers)
    if args.hq == args.lq:
        raise CLIError(f"--hq and --lq must differ, both are {args.hq}")
    if args.val and not args.videos:
        raise CLIError("--val goes with --videos")
    if args.sample:
        root = Path(args.sample_root) if args.sample_root else default_sample_root()
        out = Path(args.out) if args.out else sample_pairs_dir(size, frames, args.hq, args.lq, root)
    else:
        if args.sample_root:
            raise CLIError("--sample-root goes with --sample")
        if not args.out:
            raise CLIError(f"--out is required with {'--videos' if args.videos else '--root'}")
        root, out = Path(args.root or "."), Path(args.out)
        if args.root and not root.is_dir():
            raise CLIError(f"--root {args.root}: no such directory")
    if args.videos:
        return _prepare_videos(args, argv, out, frames, size, prepare_faces)
    # The run's settings are prepare_pairs' own arguments: recorded as passed.
    opts = dict(methods=args.methods, hq=args.hq, lq=args.lq, frames_per_video=frames, size=size)
    opts.update(workers=args.workers, splits_dir=args.splits_dir, allow_missing=args.allow_missing)
    config = {"source": "sample" if args.sample else "ffpp", "root": str(root), "out": str(out), **opts}
    _print_config("prepare", config)
    if args.sample:
        try:
            root = build_sample_ffpp(root, progress=not args.quiet)
        except RuntimeError as e:  # the source media could not be fetched (offline)
            raise CLIError(_one_line(e)) from None
    index = prepare_pairs(root, out, **opts, progress=not args.quiet, verify=args.verify)
    report = index.attrs["report"]
    counts = ", ".join(f"{s} {c['real']} real / {c['fake']} fake" for s, c in report["splits"].items())
    print(f"{len(index)} pairs in {out}: {counts}")
    _write_results(args, argv, config, {"metrics": report}, device="cpu")
    return 0


def _prepare_videos(args, argv, out: Path, frames: int, size: int, prepare_faces) -> int:
    """``prepare --videos``: a cache of real faces only (prepare_faces)."""
    videos = Path(args.videos[0]) if len(args.videos) == 1 and Path(args.videos[0]).is_dir() else args.videos
    opts = dict(val=args.val or 0.2, frames_per_video=frames, size=size, workers=args.workers)
    config = {"source": "videos", "videos": args.videos, "out": str(out), **opts}
    _print_config("prepare", config)
    index = prepare_faces(videos, out, **opts, progress=not args.quiet, verify=args.verify)
    report = index.attrs["report"]
    counts = ", ".join(f"{s} {c['real']}" for s, c in report["splits"].items())
    print(f"{len(index)} real face crops in {out}: {counts}")
    print(f"train on them: antiforge train --pairs {out} --out runs/mine --preset demo")
    _write_results(args, argv, config, {"metrics": report}, "cpu")
    return 0


# ---------------------------------------------------------------------------------------------------------------
# train


def _train_config(args):
    """The run's TrainConfig: --preset, then --set, then the model flags and --epochs."""
    from .config import TrainConfig

    overrides = parse_set(args.set)
    extra = {"model": args.model, "train_on": args.train_on}
    if args.model == "two-branch":
        if args.train_on != "lq":
            raise CLIError("--train-on applies to the single-branch models only")
    elif args.attention or "attention" not in overrides:
        extra["attention"] = args.attention  # single-branch rows of Table 3: no attention unless asked
    if args.epochs is not None:
        extra["epochs"] = args.epochs
    try:  # through preset(), so that --set weights=FILE replaces the paper preset's download
        return TrainConfig.preset(args.preset, **{**overrides, **extra})
    except TypeError as e:
        raise CLIError(_one_line(e)) from None


def _cmd_train(args, argv) -> int:
    # The cheap checks first: a wrong path is reported before fastai and torch take seconds to import.
    _positive("--workers", args.workers, 0)
    pairs = _pairs_dir(args.pairs)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {args.out}: exists and is not a directory")
    cfg = _train_config(args)
    _check_weights_file(cfg)
    device = _device(args.device, args.threads)
    from .run import fit_run

    def started(start: int, stopped: bool) -> None:  # the folder is locked and checked: say what will happen
        _print_config("train", {**cfg.to_dict(), "pairs": str(pairs), "out": str(out), "device": device})
        if start:
            state = "early stopping had ended it" if stopped else f"{cfg.epochs - start} epoch(s) to go"
            print(f"resuming {out / 'checkpoint.pth'} after epoch {start - 1} ({state})", flush=True)

    result = fit_run(pairs, out, cfg, workers=args.workers, device=device, progress=not args.quiet, on_start=started)
    run = result["run"]
    print(f"validation ({'best' if cfg.patience is not None else 'last'} epoch {run['detector_epoch']}):")
    _print_metrics(result["metrics"])
    _write_results(args, argv, cfg.to_dict(), result, device=device, folder=out)
    return 0


# ---------------------------------------------------------------------------------------------------------------
# evaluate


def _cmd_evaluate(args, argv) -> int:
    _positive("--batch-size", args.batch_size)
    _positive("--workers", args.workers, 0)
    pairs = _pairs_dir(args.pairs)
    _checkpoint_exists(args.checkpoint)
    device = _device(args.device, args.threads)
    from .run import evaluate_checkpoint

    metrics, info = evaluate_checkpoint(
        args.checkpoint,
        pairs,
        args.split,
        threshold=args.threshold,
        batch_size=args.batch_size,
        workers=args.workers,
        device=device,
        progress=not args.quiet,
    )
    config = {**info, "checkpoint": args.checkpoint, "pairs": str(pairs)}
    _print_config("evaluate", {**config, "device": device})
    print(f"{args.split} ({info['n_pairs']} pairs):")
    _print_metrics(metrics)
    _write_results(args, argv, config, {"split": args.split, "metrics": metrics}, device=device)
    return 0


# ---------------------------------------------------------------------------------------------------------------
# robustness


def _cmd_robustness(args, argv) -> int:
    pairs = _pairs_dir(args.pairs)
    for ckpt in args.checkpoint:
        _checkpoint_exists(ckpt)
    device = _device(args.device, args.threads)
    from .data.sample import default_sample_root
    from .robustness import metric_table, robustness_curve, save_figure

    out = Path(args.out) if args.out else pairs / "robustness"
    df = robustness_curve(
        args.checkpoint,
        args.codecs,
        args.strengths,
        pairs=pairs,
        root=args.root or default_sample_root(),
        out_dir=out,
        results=args.results or out / "robustness.json",
        device=device,
        progress=not args.quiet,
        command=_command_line(argv),
    )
    print("AUC (%):\n" + metric_table(df, "AUC").round(4).to_string())
    figure = save_figure(df, out / "robustness.html")
    print(f"results: {df.attrs['results']}\nfigure: {figure}")
    return 0


# ---------------------------------------------------------------------------------------------------------------
# detect


def _cmd_detect(args, argv) -> int:
    _positive("--frames", args.frames)
    _positive("--size", args.size, 8)
    if not args.scale > 0:
        raise CLIError(f"--scale must be positive, got {args.scale}")
    folders = [p for p in args.inputs if Path(p).is_dir()]
    if folders:
        raise CLIError(f"{folders[0]} is a folder: give image or video files, e.g. {Path(folders[0]) / '*.jpg'}")
    missing = [p for p in args.inputs if not Path(p).is_file()]
    if missing:
        raise CLIError(f"no such file: {', '.join(missing)}")
    _checkpoint_exists(args.checkpoint)

    from tqdm import tqdm

    from .detect import DEFAULT_FRAMES, detect_files
    from .metrics import decision_threshold
    from .run import load_detector

    device = _device(args.device, args.threads)
    model, ckpt_config = load_detector(args.checkpoint, device=device)
    size = args.size or int(ckpt_config.get("size", 299))
    threshold = args.threshold if args.threshold is not None else decision_threshold(ckpt_config)
    config = {**ckpt_config, "checkpoint": args.checkpoint, "input_size": size, "threshold": threshold}
    config.update({"frames": args.frames or DEFAULT_FRAMES, "scale": args.scale})
    _print_config("detect", {**config, "device": device})

    def report(path, res, error) -> None:
        if error is not None:
            tqdm.write(f"{path}: error: {error}")
        else:
            where = f", {len(res.frames)} frames" if res.kind == "video" else ""
            verdict = "FAKE" if res.is_fake else "real"
            tqdm.write(f"{path}: {verdict} (score {res.score:.4f}, threshold {res.threshold:.4f}{where})")

    kw = dict(size=size, threshold=threshold, frames=args.frames, scale=args.scale)
    detections = detect_files(args.inputs, model, progress=not args.quiet, on_result=report, **kw)
    failed = [d["error"] for d in detections if "error" in d]
    _write_results(args, argv, config, {"detections": detections}, device=device)
    if failed:
        raise CLIError(f"{len(failed)} of {len(args.inputs)} input(s) failed; first: {failed[0]}")
    return 0


# ---------------------------------------------------------------------------------------------------------------
# main

_COMMANDS = {
    "prepare": _cmd_prepare,
    "train": _cmd_train,
    "evaluate": _cmd_evaluate,
    "robustness": _cmd_robustness,
    "detect": _cmd_detect,
}


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one clean line each (not Python's ``file:line: UserWarning`` and a source line)."""
    print(f"{PROG}: warning: {_one_line(message)}", file=file or sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run ``antiforge`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status (0, or 2 on errors)."""
    with warnings.catch_warnings():  # restores Python's own display afterwards (main may run in-process)
        warnings.showwarning = _show_warning
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = None
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:  # --help, or argparse exiting by itself
            return int(e.code or 0)
        results = getattr(args, "results", None)
        if not results:
            return _COMMANDS[args.command](args, argv)
        results = Path(results)
        if results.is_dir():  # before the work, not after it
            raise CLIError(f"--results {results} is a folder: give a file name, e.g. {results / 'run.json'}")
        results.parent.mkdir(parents=True, exist_ok=True)
        # Two commands writing one results file would each report the other's numbers: the second is refused.
        with exclusive_lock(results.with_name(f".{results.name}.lock"), wait=False, what=f"--results {results}"):
            return _COMMANDS[args.command](args, argv)
    except CLIError as e:
        msg = _one_line(e)
    except KeyboardInterrupt:
        again = {"train": "train resumes from the last completed epoch", "prepare": "prepare resumes where it was"}
        why = again.get(getattr(args, "command", None), "nothing was written")
        print(f"\n{PROG}: interrupted ({why})", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError, KeyError) as e:  # the library's messages name the culprit
        if os.environ.get("ANTIFORGE_DEBUG"):
            raise
        msg = _exc_message(e)
    except RuntimeError as e:
        from .checkpoint import TrainingDiverged
        from .data.pairs import WorkerDied
        from .models import PretrainedWeightsUnavailable

        hints = {
            PretrainedWeightsUnavailable: "Or --set pretrained=false to start from scratch.",
            TrainingDiverged: "On the command line: --set lr=... (rerunning resumes after the last sound epoch).",
            FolderBusy: "",
            WorkerDied: "",
        }
        hint = next((h for kind, h in hints.items() if isinstance(e, kind)), None)
        if hint is None or os.environ.get("ANTIFORGE_DEBUG"):
            raise
        msg = f"{_exc_message(e)} {hint}".strip()
    sys.stdout.flush()
    print(f"{PROG}: error: {msg}", file=sys.stderr)
    return 2
