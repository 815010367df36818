"""A whole training run as one call: build the learner a config names, fit it resumably, export the detector.

- :func:`build_learner` -- the one factory: dispatches on ``config.model`` (:data:`~antiforge_lib.models.MODELS`).
- :func:`fit_run` -- a run folder that survives being killed: checkpoints every epoch, refuses other settings or
  other data, keeps ``history.jsonl``, reloads the best epoch (with early stopping) and writes ``detector.pth``.
  ``antiforge train`` is this function behind a command line.
- :func:`export_detector` / :func:`load_detector` -- the one owner of the ``detector.pth`` format.
- :func:`evaluate_checkpoint` -- a trained detector scored on a split of a pair cache (``antiforge evaluate``).

Example
-------
>>> cfg = TrainConfig.preset("demo", epochs=2)
>>> result = fit_run("data/pairs/sample_c23_c40_16f_128px", "runs/demo", cfg)   # kill it, call again: it resumes
>>> result["metrics"]["AUC"], result["run"]["detector"]
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch

from ._io import atomic_write, exclusive_lock, json_safe, read_json, write_json
from .config import TrainConfig
from .data.index import load_index
from .data.loaders import PairedFaces
from .metrics import FewNegativesWarning, decision_threshold, evaluate, video_ids
from .models import SingleBranchNet, TwoBranchNet

__all__ = [
    "build_learner",
    "fit_run",
    "RunMismatch",
    "export_detector",
    "load_detector",
    "evaluate_checkpoint",
    "read_history",
]

CHECKPOINT, DETECTOR, HISTORY, DATA = "checkpoint.pth", "detector.pth", "history.jsonl", "data.json"


class RunMismatch(ValueError):
    """A run folder holds a run with other settings or on other data than the one asked for."""


def build_learner(dls, config: TrainConfig, **kwargs):
    """The fastai ``Learner`` of ``config.model``: the two-branch net or a single-branch baseline.

    ``"two-branch"`` -> :func:`~antiforge_lib.learner.anticompression_learner`; ``"single-ce"`` /
    ``"single-metric"`` -> :func:`~antiforge_lib.learner.single_branch_learner` with ``head`` from the kind, and
    ``attention`` and ``train_on`` from the config. ``kwargs`` (``cbs``, ``path``, ``checkpoint``, ``save_best``)
    go to the builder.
    """
    from .learner import anticompression_learner, single_branch_learner  # fastai: only when a learner is built

    if config.model == "two-branch":
        return anticompression_learner(dls, config, **kwargs)
    head = config.model.removeprefix("single-")
    return single_branch_learner(dls, config, head=head, attention=config.attention, train_on=config.train_on, **kwargs)


# ---------------------------------------------------------------------------------------------------------------
# detector.pth


def export_detector(model: torch.nn.Module, config, path, epoch: int | None = None) -> Path:
    """Write ``detector.pth``: the weights (on the CPU) and the config that rebuilds the net, for :func:`load_detector`.

    ``config`` is a :class:`~antiforge_lib.learner.TrainConfig` or its dict; ``epoch`` is the epoch the weights
    come from. Same layout as a checkpoint of :func:`antiforge_lib.callbacks.save_checkpoint`, without optimizer
    or callback state; written atomically.
    """
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    config = dict(config.to_dict() if hasattr(config, "to_dict") else config)
    payload = {"model": state, "opt": None, "callbacks": {}, "epoch": epoch, "config": config}
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def _kind_from_state(state: Mapping) -> tuple[str, bool]:
    """(model kind, attention) read from the weights' names: only for checkpoints older than ``config.model``."""
    keys = list(state)
    if any(k.startswith("head_lq.") for k in keys):
        return "two-branch", any(k.startswith("attention_lq.") for k in keys)
    if any(k.startswith("head.") for k in keys):
        kind = "single-ce" if any(k.startswith("classifier.") for k in keys) else "single-metric"
        return kind, any(k.startswith("attention.") for k in keys)
    raise ValueError("its weights are not those of a TwoBranchNet or SingleBranchNet")


def _read_checkpoint(path: Path) -> dict:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors come in many types; all mean "not a checkpoint"
        raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__}: {str(e).splitlines()[0]})") from e
    if not isinstance(ckpt, Mapping) or "model" not in ckpt:
        raise ValueError(
            f"{path}: holds no 'model' and 'config' (a bare state dict, e.g. fastai's models/best.pth?); "
            "pass the run's detector.pth or checkpoint.pth"
        )
    return ckpt


def load_detector(checkpoint_path, device=None) -> tuple[torch.nn.Module, dict]:
    """Rebuild a trained detector from ``detector.pth`` or a checkpoint (``checkpoint.pth``) of a run.

    Parameters
    ----------
    checkpoint_path : path
        A checkpoint file (``checkpoint.pth`` written every epoch, or ``detector.pth`` with the kept epoch's
        weights), or a run folder holding one of them (``detector.pth`` preferred). Read with
        ``torch.load(weights_only=True)``.
    device : torch.device or str, optional
        Where to put the model (default CPU).

    Returns
    -------
    model : TwoBranchNet or SingleBranchNet
        In eval mode; ``model.antiforge_config`` holds the config, so :func:`~antiforge_lib.detect.detect` finds
        its size and threshold.
    config : dict
        The checkpoint's :meth:`TrainConfig.to_dict` (an old one read through :meth:`TrainConfig.from_dict`).

    The net's kind is the config's ``model``; a checkpoint written before configs recorded it is recognised by
    the names of its weights. No pretrained weights are downloaded.
    """
    path = Path(checkpoint_path)
    if path.is_dir():
        found = [path / n for n in (DETECTOR, CHECKPOINT) if (path / n).is_file()]
        if not found:
            raise FileNotFoundError(f"{path}: a folder without {DETECTOR} or {CHECKPOINT}")
        path = found[0]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    ckpt = _read_checkpoint(path)
    saved = dict(ckpt.get("config") or {})
    missing = [k for k in ("backbone",) if k not in saved] + ([] if {"cut", "split"} & set(saved) else ["cut"])
    if missing:
        raise ValueError(f"{path}: its config lacks {missing}; cannot rebuild the network")
    state = ckpt["model"]
    if "model" not in saved:  # written before the config named the model
        try:
            saved["model"], saved["attention"] = _kind_from_state(state)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from e
    try:
        cfg = TrainConfig.from_dict({**saved, "pretrained": False, "weights": None})
    except ValueError as e:
        raise ValueError(f"{path}: its config is not valid today: {e}") from e
    args = dict(pretrained=False, attention=cfg.attention, stem=cfg.stem)
    try:
        if cfg.model == "two-branch":
            model = TwoBranchNet(cfg.backbone, cfg.cut, **args)
        else:
            model = SingleBranchNet(cfg.backbone, cfg.cut, head=cfg.model.removeprefix("single-"), **args)
    except ValueError as e:
        raise ValueError(f"{path}: cannot rebuild its network: {e}") from e
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(
            f"{path}: weights do not fit a {cfg.model} {cfg.backbone}/{cfg.cut} net: {str(e).splitlines()[0]}"
        ) from e
    model.eval()
    if device is not None:
        model.to(device)
    config = {**cfg.to_dict(), "pretrained": saved.get("pretrained", False), "weights": saved.get("weights")}
    model.antiforge_config = config
    return model, config


# ---------------------------------------------------------------------------------------------------------------
# A resumable run folder


def read_history(path) -> list[dict]:
    """The rows of ``history.jsonl``, one per epoch in order (a redone epoch replaces the earlier line)."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = {}
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a killed run
            rows[row["epoch"]] = row
    return [rows[e] for e in sorted(rows)]


def _keep_history(path: Path, before: int) -> None:
    rows = [r for r in read_history(path) if r["epoch"] < before]
    atomic_write(path, lambda tmp: tmp.write_text("".join(json.dumps(r) + "\n" for r in rows)))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def _check_same_run(out: Path, saved: dict, config: TrainConfig, data: dict) -> None:
    """A resume must continue the same run: same settings (but ``epochs``) and the same data, by content."""
    ckpt = out / CHECKPOINT
    old, new = TrainConfig.from_dict(saved.get("config") or {}).to_dict(), config.to_dict()
    diff = [k for k in new if k != "epochs" and old.get(k) != new.get(k)]
    if diff:
        shown = "; ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in diff[:6])
        raise RunMismatch(
            f"{out} holds a run with other settings ({shown}); use another run folder, or delete {ckpt} to start over"
        )
    data_file = out / DATA
    if data_file.is_file():
        before = read_json(data_file)
        if before.get("index_sha256") != data["index_sha256"]:
            was = f"{before.get('pairs')}, index.csv sha256 {str(before.get('index_sha256'))[:12]}"
            raise RunMismatch(
                f"{out} holds a run on other data ({was}); use another run folder, or delete {ckpt} to start over"
            )


def fit_run(
    pairs,
    out,
    config: TrainConfig,
    *,
    workers: int | None = None,
    device=None,
    progress: bool = True,
    on_start=None,
) -> dict:
    """Train ``config`` on a pair cache into the run folder ``out``; calling it again resumes.

    Parameters
    ----------
    pairs : path
        A pair cache of :func:`~antiforge_lib.pairs.prepare_pairs` (a folder with ``index.csv``).
    out : path
        The run folder: ``checkpoint.pth`` (every epoch), ``history.jsonl`` (one line per epoch), ``data.json``
        (the cache and the sha256 of its index), ``models/best.pth`` (with early stopping) and ``detector.pth``
        (the kept epoch's weights with the config: with ``config.patience``, the epoch of lowest validation loss,
        else the last). Locked while the run lives: a second run into it fails at once (``FolderBusy``).
    config : TrainConfig
        The whole run; ``config.model`` names the net (:func:`build_learner`). A larger ``epochs`` than a finished
        run's trains on; any other difference from the folder's run raises :class:`RunMismatch`, as does other data.
    workers : int, optional
        Loader processes (default as :func:`~antiforge_lib.data.pair_dataloaders`).
    device : str or torch.device, optional
        Default CUDA if available.
    progress : bool, default True
        fastai's progress bars and table; without them each epoch is printed as one line.
    on_start : callable, optional
        Called with ``(start_epoch, stopped)`` once the folder is checked and before the data load (the CLI prints
        its "resuming" line there).

    Returns
    -------
    dict
        ``run`` (paths, ``start_epoch``, ``epochs_run``, ``last_epoch``, ``best_epoch``, ``detector_epoch``,
        ``stopped_early``), ``history`` (rows of ``history.jsonl``), ``split`` ("val") and ``metrics`` (one row of
        :func:`~antiforge_lib.metrics.evaluate` on the validation split, fractions).
    """
    pairs, out = Path(pairs), Path(out)
    if not (pairs / "index.csv").is_file():
        raise FileNotFoundError(f"{pairs}: no index.csv here; build the cache with prepare_pairs first")
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    # One run per folder: a second run (or a resume) into it while this one lives is refused at once, by name.
    with exclusive_lock(out / ".lock", wait=False, what=f"run folder {out}"):
        return _fit_locked(pairs, out, config, workers, device, progress, on_start)


def _fit_locked(pairs: Path, out: Path, config: TrainConfig, workers, device, progress: bool, on_start) -> dict:
    ckpt_path, history_path = out / CHECKPOINT, out / HISTORY
    start, saved = 0, None
    data = {"pairs": str(pairs), "index_sha256": _sha256(pairs / "index.csv")}
    if ckpt_path.is_file():
        try:
            saved = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ValueError(f"{ckpt_path}: unreadable checkpoint ({e}); delete it to start over") from None
        _check_same_run(out, saved, config, data)
        start = int(saved["epoch"]) + 1
    write_json(out / DATA, data)
    if on_start is not None:
        on_start(start, bool(saved and saved.get("stopped")))

    from .checkpoint import EpochHistory, resume
    from .learner import make_dataloaders

    if start == 0:
        history_path.unlink(missing_ok=True)
    elif history_path.exists():
        _keep_history(history_path, start)
    dls = make_dataloaders(load_index(pairs), config, num_workers=workers, device=device)
    history = EpochHistory(history_path, echo=not progress)
    keep_best = config.patience is not None  # the paper's rule; a fixed-length run (one-cycle) keeps its last epoch
    learn = build_learner(dls, config, cbs=[history], path=out, checkpoint=ckpt_path, save_best=keep_best)
    with contextlib.ExitStack() as quiet:
        if not progress:  # fastai's own switches (EpochHistory prints one line per epoch instead)
            import fastai.callback.progress  # noqa: F401  (adds Learner.no_bar)

            quiet.enter_context(learn.no_bar())
            quiet.enter_context(learn.no_logging())
        resume(learn, ckpt_path, n_epoch=config.epochs)

    best_file = out / learn.model_dir / "best.pth"
    if keep_best and best_file.is_file():
        learn.model.load_state_dict(torch.load(best_file, map_location=learn.dls.device, weights_only=True))
    rows = read_history(history_path)
    finite = [r for r in rows if isinstance(r.get("valid_loss"), (int, float))]
    best_epoch = min(finite, key=lambda r: r["valid_loss"])["epoch"] if finite else None
    last = torch.load(ckpt_path, map_location="cpu", weights_only=True) if ckpt_path.is_file() else {"epoch": -1}
    kept = best_epoch if keep_best else int(last["epoch"])
    detector = export_detector(learn.model, config, out / DETECTOR, epoch=kept)

    val = torch.utils.data.DataLoader(
        dls.valid.dataset, batch_size=config.batch_size, shuffle=False, num_workers=workers or 0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewNegativesWarning)  # training has said so already, once per epoch
        metrics = evaluate(
            learn.model, _bar(val, "validation", progress), image=config.train_on, video_ids=_video_ids(val.dataset)
        )
    run = {
        "pairs": str(pairs),
        "out": str(out),
        "checkpoint": str(ckpt_path),
        "detector": str(detector),
        "start_epoch": start,
        "epochs_run": history.epochs_run,
        "last_epoch": int(last["epoch"]),
        "best_epoch": best_epoch,
        "detector_epoch": kept,
        "stopped_early": bool(last.get("stopped", False)),
    }
    return {"run": run, "history": rows, "split": "val", "metrics": json_safe(metrics.to_dict("records")[0])}


def _video_ids(dataset):
    """Video ids of a dataset of cached pairs (``PairedFaces``); None for made-up pairs (self-blends)."""
    items = getattr(dataset, "items", None)
    return video_ids(items) if getattr(items, "columns", None) is not None and "video" in items.columns else None


def _bar(dl, desc: str, progress: bool):
    from tqdm import tqdm

    return tqdm(dl, desc=desc, unit="batch", disable=not progress, leave=False)


def evaluate_checkpoint(
    checkpoint,
    pairs,
    split: str = "test",
    *,
    threshold: float | None = None,
    batch_size: int | None = None,
    workers: int = 0,
    device=None,
    progress: bool = True,
) -> tuple[dict, dict]:
    """Score a trained detector on one split of a pair cache, as at test time (the LQ branch).

    ``checkpoint``: a run folder, ``detector.pth`` or ``checkpoint.pth``; ``threshold`` defaults to the one the
    model was trained for (:func:`~antiforge_lib.metrics.decision_threshold`); ``batch_size`` to the config's.
    A single-branch model trained on the HQ images is scored on the HQ images (Table 3, row 4).

    Returns ``(metrics, config)``: one row of :func:`~antiforge_lib.metrics.evaluate` (fractions, plain types) and
    the checkpoint's config with ``threshold``, ``split`` and ``n_pairs`` added.
    """
    model, config = load_detector(checkpoint, device=device)
    threshold = decision_threshold(config) if threshold is None else float(threshold)
    ds = PairedFaces(load_index(pairs), split, size=int(config["size"]))
    bs = batch_size or int(config["batch_size"])
    dl = torch.utils.data.DataLoader(ds, batch_size=bs, shuffle=False, num_workers=workers)
    scored = evaluate(
        model, _bar(dl, split, progress), threshold=threshold, image=config["train_on"], video_ids=_video_ids(ds)
    )
    return json_safe(scored.to_dict("records")[0]), {
        **config,
        "threshold": threshold,
        "split": split,
        "n_pairs": len(ds),
    }
