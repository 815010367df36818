"""The ablation study of Cao et al. 2021 (Sec. 4.4, Table 3): its 11 rows as data, and a resumable runner.

- :data:`TABLE3` -- the rows 1..11 of Table 3 as frozen :class:`AblationRow` objects: which network, loss and
  modules, which data, and the paper's numbers. ``row.config(base)`` turns the row's switches into a
  :class:`~antiforge_lib.learner.TrainConfig`, ``row.learner(dls, base)`` builds its fastai ``Learner``,
  ``row.evaluate(learn, dl)`` measures it on the row's test images.
- :func:`paper_table` -- Table 3 as a DataFrame (the paper's numbers, percent).
- :func:`run_ablation` -- train and evaluate rows x seeds, one results JSON per (row, seed); finished runs are
  skipped on a rerun. :func:`load_ablation` rebuilds the same summary from the JSON files alone (e.g. a GPU run's
  folder), :func:`format_ablation` renders it as "mean ± std" beside the paper, :func:`plot_ablation` draws it.

Data variants
-------------
Table 3 trains on three kinds of pair data; ``run_ablation(data=...)`` takes the pair caches of
:func:`antiforge_lib.data.pairs.prepare_pairs` as a dict ``{"c23,c40": index, "c0,c40": index}`` (DataFrames or cache
folders). A single index or folder means ``{"c23,c40": it}``. Rows use

- ``"c23,c40"`` -- rows 1-9. The single-branch rows 1-3 train on its LQ (c40) images, row 4 on its HQ (c23) images;
- ``"c0,c40"`` -- row 10 (train, validate and test on that cache);
- ``"both"`` -- row 11: the (c23,c40) cache plus the TRAINING pairs of the (c0,c40) cache. Validation and test
  pairs come from (c23,c40) only, so every c40 test face is counted once.

A row whose cache is not given is skipped with a warning, not an error.

Row 4 (trained and tested on c23)
---------------------------------
:func:`~antiforge_lib.metrics.evaluate` always scores the LQ slot of a batch ``(hq, lq, mask, label)``. Row 4
trains with ``SelectInput("hq")`` and is evaluated on a view of the test loader whose batches are
``(hq, hq, mask, label)``, so the model sees the c23 image in training, validation and test.

Reference: S. Cao, Q. Zou, X. Mao, Z. Wang. *Metric Learning for Anti-Compression Facial Forgery
Detection*, ACM MM 2021, Table 3 (FaceForensics++ Deepfakes).

Example
-------
>>> df = run_ablation([1, 2, 9], "data/pairs_c23_c40", preset="demo", seeds=(0, 1), out_dir="runs/ablation")
>>> format_ablation(df)
>>> plot_ablation(df).show()
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ._io import json_safe, read_json, write_json
from .checkpoint import EpochHistory, resume
from .data.index import load_index
from .data.layout import MANIPULATIONS
from .data.loaders import pair_dataloaders
from .learner import TrainConfig
from .metrics import decision_threshold, evaluate
from .provenance import provenance
from .run import CHECKPOINT, HISTORY, build_learner, read_history

__all__ = [
    "METRICS",
    "PaperScores",
    "AblationRow",
    "TABLE3",
    "TABLE3_METHODS",
    "paper_table",
    "run_ablation",
    "load_ablation",
    "format_ablation",
    "plot_ablation",
]

#: The five metrics of Table 3, named as the columns of :func:`antiforge_lib.metrics.evaluate`.
METRICS = ("ACC", "AUC", "TAR@0.1%", "TAR@0.01%", "PBCA")
#: Data variants (keys of ``run_ablation(data=...)``) and the caches each needs.
VARIANTS = {"c23,c40": ("c23,c40",), "c0,c40": ("c0,c40",), "both": ("c23,c40", "c0,c40")}
#: Table 3's data: the FaceForensics++ Deepfakes videos and the originals (Sec. 4.4), nothing else.
TABLE3_METHODS = ("Deepfakes",)
_FORMAT = 1  # version of the results JSON


class PaperScores(NamedTuple):
    """One row of the paper's numbers, in percent; None where Table 3 prints "—" (no attention map, no PBCA)."""

    ACC: float
    AUC: float
    TAR_0_1: float
    TAR_0_01: float
    PBCA: float | None

    def by_metric(self) -> dict:
        """``{"ACC": ..., "AUC": ..., "TAR@0.1%": ..., "TAR@0.01%": ..., "PBCA": ...}``."""
        return dict(zip(METRICS, self, strict=True))


@dataclass(frozen=True)
class AblationRow:
    """One row of Table 3.

    Attributes
    ----------
    number : int
        1..11, the paper's "No.".
    network : {"single", "two-branch"}
        Single XceptionNet (:func:`single_branch_learner`) or the two-branch net (:func:`anticompression_learner`).
    loss : {"ce", "metric"}
        Cross-entropy (row 1 only) or the metric loss (eq. 6; for two branches also the pair term, eq. 1).
    attention, transfer, gan : bool
        Attention layers (and their cross-entropy terms), the attention-transfer term, the adversarial term.
    train_data : {"c40", "c23", "c23,c40", "c0,c40", "both"}
        What the paper trains on; "both" is (c0,c40) + (c23,c40).
    test_data : {"c40", "c23"}
        What the paper tests on.
    label : str
        The paper's "Losses or Modules" text, e.g. "Metric Loss+Att.Tran.+GAN".
    paper : PaperScores
        The paper's ACC, AUC, TAR@0.1%, TAR@0.01%, PBCA in percent.
    """

    number: int
    network: str
    loss: str
    attention: bool
    transfer: bool
    gan: bool
    train_data: str
    test_data: str
    label: str
    paper: PaperScores

    @property
    def variant(self) -> str:
        """The pair data the row needs: "c23,c40" (rows 1-9), "c0,c40" (row 10) or "both" (row 11)."""
        return {"c0,c40": "c0,c40", "both": "both"}.get(self.train_data, "c23,c40")

    @property
    def image(self) -> str:
        """Which image of each pair a single-branch row sees, "lq" (c40) or "hq" (c23); "lq" for two branches."""
        return "hq" if self.test_data == "c23" else "lq"

    @property
    def title(self) -> str:
        """Short description, e.g. ``"9. two-branch: Metric Loss+Att.Tran.+GAN, (c23,c40) -> c40"``."""
        train = f"({self.train_data})" if "," in self.train_data else self.train_data
        train = "(c0,c40)+(c23,c40)" if self.train_data == "both" else train
        return f"{self.number}. {self.network}: {self.label}, {train} -> {self.test_data}"

    def config(self, base: TrainConfig) -> TrainConfig:
        """``base`` with this row's switches: ``metric``, ``attention``, ``transfer``, ``gan``.

        Single-branch rows get ``transfer = gan = False`` (the single net has neither); their ``attention`` and
        ``metric`` record what :meth:`learner` passes to :func:`single_branch_learner`; ``model`` and ``train_on``
        name the row's net and the image it sees. Idempotent.
        """
        model = "two-branch" if self.network == "two-branch" else f"single-{self.loss}"
        return base.replace(
            model=model,
            train_on=self.image,
            metric=self.loss == "metric",
            attention=self.attention,
            transfer=self.transfer,
            gan=self.gan,
        )

    def learner(self, dls, base: TrainConfig | None = None, **kwargs):
        """The row's fastai ``Learner`` on ``dls`` (batches ``(hq, lq, mask, label)``), with :meth:`config` applied.

        :func:`~antiforge_lib.run.build_learner` of :meth:`config`: single rows get
        ``single_branch_learner(head=loss, attention=attention, train_on=image)``, two-branch rows
        ``anticompression_learner`` with the row's switches. ``kwargs`` go to the builder (``cbs``, ``path``,
        ``save_best``, ...).
        """
        return build_learner(dls, self.config(base or TrainConfig()), **kwargs)

    def evaluate(self, learn, dl) -> pd.DataFrame:
        """:func:`~antiforge_lib.metrics.evaluate` of ``learn.model`` on the row's test images of ``dl``.

        The threshold is fixed by the training: 0.5 on the fake probability (cross-entropy), else
        ``(r- + r+) / 2`` of ``learn.train_config``. Row 4 (``image == "hq"``) is scored on the HQ images
        (``evaluate(..., image="hq")``). Returns one row of fractions (see ``evaluate``).
        """
        threshold = decision_threshold(learn.train_config)
        return evaluate(learn.model, dl, threshold=threshold, image=self.image)


_S, _T = "single", "two-branch"
# fmt: off
_ROWS = [  # attention, transfer, GAN as 0/1; the paper's numbers in percent
    # No. net loss  att tran gan train      test   "Losses or Modules"          ACC    AUC    TAR@0.1 TAR@0.01 PBCA
    (1,  _S, "ce",     0, 0, 0, "c40",     "c40", "Cross Entropy",             94.36, 97.90, 94.74, 79.32, None),
    (2,  _S, "metric", 0, 0, 0, "c40",     "c40", "Metric Loss",               94.33, 97.70, 95.87, 84.71, None),
    (3,  _S, "metric", 1, 0, 0, "c40",     "c40", "Metric Loss+Attention",     94.46, 97.86, 96.18, 85.67, 93.33),
    (4,  _S, "metric", 1, 0, 0, "c23",     "c23", "Metric Loss+Attention",     98.93, 99.85, 99.82, 98.89, 96.34),
    (5,  _T, "metric", 0, 0, 0, "c23,c40", "c40", "Metric Loss",               94.71, 97.91, 96.69, 86.67, None),
    (6,  _T, "metric", 0, 0, 1, "c23,c40", "c40", "Metric Loss+GAN",           94.85, 98.47, 96.71, 84.27, None),
    (7,  _T, "metric", 1, 0, 0, "c23,c40", "c40", "Metric Loss+Attention",     95.04, 98.05, 97.16, 86.53, 93.51),
    (8,  _T, "metric", 1, 1, 0, "c23,c40", "c40", "Metric Loss+Att.Tran.",     95.16, 98.18, 97.28, 86.78, 93.64),
    (9,  _T, "metric", 1, 1, 1, "c23,c40", "c40", "Metric Loss+Att.Tran.+GAN", 95.30, 98.76, 97.64, 84.25, 93.77),
    (10, _T, "metric", 1, 1, 1, "c0,c40",  "c40", "Metric Loss+Att.Tran.+GAN", 95.21, 98.25, 96.93, 81.96, 93.65),
    (11, _T, "metric", 1, 1, 1, "both",    "c40", "Metric Loss+Att.Tran.+GAN", 95.38, 98.68, 97.59, 83.85, 93.86),
]
# fmt: on

#: Table 3 of Cao et al. 2021 (FaceForensics++ Deepfakes), rows keyed by their number 1..11 (read-only mapping).
TABLE3: Mapping[int, AblationRow] = MappingProxyType(
    {
        n: AblationRow(n, net, loss, bool(att), bool(tran), bool(gan), train, test, label, PaperScores(*paper))
        for n, net, loss, att, tran, gan, train, test, label, *paper in _ROWS
    }
)


def paper_table() -> pd.DataFrame:
    """Table 3 of Cao et al. 2021 (ACM MM), FaceForensics++ Deepfakes, as printed.

    Returns
    -------
    DataFrame, 11 rows, index "No." 1..11
        ``network, label, train_data, test_data`` and the metrics :data:`METRICS` in percent (NaN for "—").
    """
    df = pd.DataFrame(
        [
            {
                "No.": r.number,
                "network": r.network,
                "label": r.label,
                "train_data": r.train_data,
                "test_data": r.test_data,
                **r.paper.by_metric(),
            }
            for r in TABLE3.values()
        ]
    ).set_index("No.")
    df[list(METRICS)] = df[list(METRICS)].astype(float)
    df.attrs["source"] = "Cao et al., ACM MM 2021, Table 3 (FaceForensics++ Deepfakes)"
    return df


# ---------------------------------------------------------------------------------------------------------------
# Data variants


def _as_index(x) -> pd.DataFrame:
    return x if isinstance(x, pd.DataFrame) else load_index(x)


def _caches(data, methods=None) -> dict[str, pd.DataFrame]:
    """``data`` (an index, a cache folder, or a dict of them) -> {"c23,c40": df, "c0,c40": df} (given ones),
    each restricted to ``methods`` (see :func:`run_ablation`)."""
    if isinstance(data, (pd.DataFrame, str, os.PathLike)):
        data = {"c23,c40": data}
    unknown = set(data) - {"c23,c40", "c0,c40"}
    if unknown:
        raise ValueError(f"data keys must be 'c23,c40' and/or 'c0,c40'; got {sorted(unknown)}")
    return {k: _restrict_methods(_as_index(v), methods, k) for k, v in data.items()}


def _restrict_methods(index: pd.DataFrame, methods, name: str) -> pd.DataFrame:
    """The pairs of ``methods`` and the real ones; by default Table 3's Deepfakes for a FaceForensics++ cache."""
    present = sorted(set(index["method"]) - {"original"})
    if methods is None:
        if not set(present) & set(MANIPULATIONS):
            return index  # not FaceForensics++ (the embedded sample, a class's own videos): all its methods
        methods = TABLE3_METHODS
    missing = sorted(set(methods) - set(present))
    if missing:
        raise ValueError(
            f"the {name} pair cache has no {missing} pairs (it has {present}); Table 3 is FaceForensics++ "
            "Deepfakes: build that cache with `antiforge prepare --root FFPP_ROOT --methods Deepfakes`, or pass "
            "methods=[...] to ablate on other methods"
        )
    return index[index["method"].isin([*methods, "original"])].reset_index(drop=True)


def _variant_index(caches: dict[str, pd.DataFrame], variant: str) -> pd.DataFrame:
    """The pair index a variant trains on ("both": (c23,c40) plus the training pairs of (c0,c40))."""
    if variant != "both":
        return caches[variant]
    extra = caches["c0,c40"]
    return pd.concat([caches["c23,c40"], extra[extra["split"] == "train"]], ignore_index=True)


def _methods_of(index: pd.DataFrame) -> list[str]:
    return sorted(set(index["method"]) - {"original"})


def _split_counts(index: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in index["split"].value_counts().sort_index().items()}


# ---------------------------------------------------------------------------------------------------------------
# Running


def _result_path(out_dir: Path, number: int, seed: int) -> Path:
    return out_dir / f"row{number:02d}_seed{seed}.json"


def _finished(path: Path, config: TrainConfig, counts: dict) -> dict | None:
    """The stored record if it was made with this config and data, else None."""
    if not path.is_file():
        return None
    try:
        rec = read_json(path)
    except ValueError as e:
        warnings.warn(f"{e}; retraining", stacklevel=3)
        return None
    try:  # a record written before a setting existed ran at its default
        same = TrainConfig.from_dict(rec.get("config") or {}) == config
    except (TypeError, ValueError):
        same = False
    if same and rec.get("data", {}).get("n_pairs") == counts:
        return rec
    warnings.warn(f"{path.name} was made with another config or data; retraining and overwriting", stacklevel=3)
    return None


@contextlib.contextmanager
def _quiet(learn):
    """fastai's own switches: no progress bar, no per-epoch table."""
    import fastai.callback.progress  # noqa: F401  (adds Learner.no_bar)

    with learn.no_bar(), learn.no_logging():
        yield


def _run_dir(out_dir: Path, number: int, seed: int) -> Path:
    return out_dir / f"row{number:02d}_seed{seed}"


def _resumable_checkpoint(work: Path, config: TrainConfig) -> Path:
    """``work/checkpoint.pth``, kept only if a killed run of this very config left it; else the folder is cleared."""
    ckpt = work / CHECKPOINT
    if ckpt.is_file():
        try:
            saved = torch.load(ckpt, map_location="cpu", weights_only=True).get("config") or {}
            same = TrainConfig.from_dict(saved) == config
        except Exception:  # unreadable or from another version: start the run again
            same = False
        if not same:
            warnings.warn(
                f"{ckpt} is from another config or unreadable; training this run from the start", stacklevel=4
            )
            shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    if not ckpt.is_file():
        (work / HISTORY).unlink(missing_ok=True)
    return ckpt


def _train_one(
    row: AblationRow, dls, config: TrainConfig, progress: bool, work: Path
) -> tuple[pd.DataFrame, float, list, str]:
    """Fit one (row, seed) in the run folder ``work`` and evaluate it; returns (metrics row, seconds, history, split).

    As :func:`~antiforge_lib.run.fit_run`: a checkpoint after every epoch and ``history.jsonl``, so a killed sweep
    resumes this run after its last completed epoch (``seconds`` then counts this call's training only).
    """
    gen = getattr(dls.train, "generator", None)
    if gen is not None:
        gen.manual_seed(config.seed)  # the shuffle of shared loaders restarts per run
    ckpt = _resumable_checkpoint(work, config)
    history = EpochHistory(work / HISTORY)
    # With early stopping, keep and reload the best epoch's weights (SaveModelCallback writes under work/models).
    learn = row.learner(dls, config, cbs=[history], path=work, checkpoint=ckpt, save_best=config.patience is not None)
    start = time.perf_counter()
    quiet = contextlib.ExitStack() if progress else _quiet(learn)
    with quiet, warnings.catch_warnings():
        # fastai's reload of a best epoch may touch numpy.core; nothing a reader can act on
        warnings.filterwarnings("ignore", message=r"numpy\.core is deprecated", category=DeprecationWarning)
        resume(learn, ckpt, n_epoch=config.epochs)  # as the config says: constant Adam, or one-cycle for the demo
    seconds = time.perf_counter() - start
    split, dl = ("test", dls.test) if getattr(dls, "test", None) is not None else ("val", dls.valid)
    if split == "val":
        warnings.warn(f"row {row.number}: the pair index has no 'test' split; evaluating on 'val'", stacklevel=3)
    metrics = row.evaluate(learn, dl)
    del learn
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return metrics, seconds, read_history(work / HISTORY), split


def run_ablation(
    rows: Iterable[int | AblationRow],
    data,
    preset: str | TrainConfig = "demo",
    seeds: Iterable[int] = (0,),
    out_dir: str | os.PathLike = "runs/ablation",
    epochs: int | None = None,
    overrides: Mapping | None = None,
    progress: bool = True,
    num_workers: int | None = None,
    device=None,
    methods: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Train and evaluate rows of Table 3, one results JSON per (row, seed); resumable.

    For every seed, then every row: the config is ``preset`` with ``self_blend=False`` (Table 3 trains on the
    cached pairs of each row's variant) (+ ``overrides``, ``epochs``), the row's switches
    (:meth:`AblationRow.config`) and ``seed``; the row's learner is fitted for ``config.epochs`` epochs and
    evaluated on the test split (the val split, with a warning and ``"eval_split": "val"`` in the record, if the
    index has no test split). Loaders are built once per data variant and shared by its rows (the training shuffle
    is reseeded per run; the images are read from the pair cache, never re-cropped).

    Parameters
    ----------
    rows : iterable of int or AblationRow
        Row numbers 1..11 (or rows of :data:`TABLE3`).
    data : DataFrame, cache folder, or dict
        Pair caches of :func:`~antiforge_lib.data.pairs.prepare_pairs`: ``{"c23,c40": index_or_folder,
        "c0,c40": index_or_folder}``; a bare index or folder is the (c23,c40) one. Rows whose cache is missing
        (10 and 11 need (c0,c40)) are skipped with a warning and left out of the result.
    preset : {"demo", "paper"} or TrainConfig, default "demo"
        Base settings (see :meth:`TrainConfig.preset`); loaders use its ``size`` and ``batch_size``.
    seeds : iterable of int, default (0,)
    out_dir : path
        Where ``row{NN}_seed{S}.json`` go (written atomically). A file whose config and data sizes (pairs per split)
        match the run's is loaded instead of retrained; one that does not match is retrained and overwritten.
        While a (row, seed) trains, its folder ``row{NN}_seed{S}/`` holds ``checkpoint.pth`` (every epoch) and
        ``history.jsonl``, as a :func:`~antiforge_lib.run.fit_run` folder: a sweep killed mid-run resumes that run
        after its last completed epoch. The folder is removed once the JSON is written.
    epochs : int, optional
        Overrides the preset's ``epochs``.
    overrides : mapping, optional
        Other ``TrainConfig`` fields, e.g. ``{"lr": 3e-4}``.
    progress : bool, default True
        fastai progress bars and one line per finished run.
    num_workers, device
        Passed to :func:`~antiforge_lib.data.pair_dataloaders`.
    methods : iterable of str, optional
        Manipulations to keep, with the real pairs. By default a FaceForensics++ cache is restricted to
        :data:`TABLE3_METHODS` (Deepfakes, Table 3's setting), and a cache without Deepfakes is refused; a cache of
        other methods (the embedded sample) is used whole.

    Returns
    -------
    DataFrame
        The summary of :func:`load_ablation`, for the rows run (in the order given) and these seeds only.

    Notes
    -----
    Each JSON holds ``row`` (the :class:`AblationRow` fields but ``paper``), ``seed``, ``config``, ``data``
    (variant, pairs per split), ``eval_split`` ("test"/"val"), ``eval_image`` ("lq"; "hq" for row 4), ``metrics``
    (fractions, as :func:`~antiforge_lib.metrics.evaluate`; null for NaN), ``paper`` (percent), ``train_seconds``,
    ``history`` (fastai's recorder per epoch) and ``provenance`` (:func:`~antiforge_lib.provenance.provenance`).

    With early stopping (``patience`` set, as in the "paper" preset) the best epoch's weights (lowest validation
    loss) are restored before the evaluation. Shared loaders restart their shuffle per run, but with
    ``num_workers > 0`` the workers' augmentation draws continue from run to run, so a single (row, seed) rerun
    alone can differ slightly from the same run inside a sweep.
    """
    # Table 3 trains every row on the cached pairs of its variant, so the demo preset's self-blended stream is off.
    extra = {"self_blend": False, **dict(overrides or {}), **({} if epochs is None else {"epochs": int(epochs)})}
    # Through preset(), so that overrides={"weights": FILE} replaces the paper preset's ImageNet download.
    base = preset.replace(**extra) if isinstance(preset, TrainConfig) else TrainConfig.preset(preset, **extra)
    preset_name = "custom" if isinstance(preset, TrainConfig) else preset
    chosen = [r if isinstance(r, AblationRow) else TABLE3[int(r)] for r in rows]
    seeds = [int(s) for s in seeds]
    out_dir = Path(out_dir)
    caches = _caches(data, methods)

    runnable = []
    for row in chosen:
        lacking = [k for k in VARIANTS[row.variant] if k not in caches]
        if lacking:
            warnings.warn(
                f"row {row.number} skipped: it trains on {row.variant!r} and needs the pair cache(s) {lacking}; "
                "pass data={'c23,c40': ..., 'c0,c40': ...}",
                stacklevel=2,
            )
        else:
            runnable.append(row)
    indexes = {v: _variant_index(caches, v) for v in {r.variant for r in runnable}}
    loaders = {}  # built on first need, shared by the variant's rows and seeds

    records = []
    for seed in seeds:
        for row in runnable:
            config = row.config(base).replace(seed=seed)
            counts = _split_counts(indexes[row.variant])
            path = _result_path(out_dir, row.number, seed)
            rec = _finished(path, config, counts)
            if rec is None:
                if row.variant not in loaders:
                    loaders[row.variant] = pair_dataloaders(
                        indexes[row.variant], base.size, base.batch_size, num_workers, seed=seed, device=device
                    )
                work = _run_dir(out_dir, row.number, seed)
                metrics, seconds, history, split = _train_one(row, loaders[row.variant], config, progress, work)
                rec = {
                    "format": _FORMAT,
                    "row": {k: v for k, v in asdict(row).items() if k != "paper"},
                    "seed": seed,
                    "preset": preset_name,
                    "config": config.to_dict(),
                    "data": {"variant": row.variant, "n_pairs": counts, "methods": _methods_of(indexes[row.variant])},
                    "eval_split": split,
                    "eval_image": row.image,
                    "metrics": metrics.to_dict("records")[0],
                    "paper": row.paper.by_metric(),
                    "units": {"metrics": "fraction in [0, 1]", "paper": "percent"},
                    "train_seconds": seconds,
                    "history": history,
                    "provenance": provenance(device=device),
                }
                write_json(path, rec)
                shutil.rmtree(work)  # the record holds the run now; its checkpoints were only for a resume
                if progress:
                    print(f"{row.title} (seed {seed}): ACC {100 * rec['metrics']['ACC']:.2f}%, {seconds:.1f} s")
            elif progress:
                print(f"{row.title} (seed {seed}): done before, loaded {path}")
            records.append(json_safe(rec))
    return _summarize(records, order=[r.number for r in runnable])


# ---------------------------------------------------------------------------------------------------------------
# Results


def _records_frame(records: list[dict]) -> pd.DataFrame:
    """One row per (row, seed): ``No., seed, eval_split``, metrics in percent (NaN for null), train_seconds."""
    rows = []
    for rec in records:
        m = rec["metrics"]
        ours = {k: (np.nan if m.get(k) is None else 100 * m[k]) for k in METRICS}
        rows.append(
            {
                "No.": rec["row"]["number"],
                "seed": rec["seed"],
                "eval_split": rec["eval_split"],
                **ours,
                "train_seconds": rec["train_seconds"],
            }
        )
    cols = ["No.", "seed", "eval_split", *METRICS, "train_seconds"]
    return pd.DataFrame(rows, columns=cols).sort_values(["No.", "seed"], kind="stable").reset_index(drop=True)


_ROW_SWITCHES = ("seed", "model", "train_on", "metric", "attention", "transfer", "gan")


def _warn_if_mixed(records: list[dict]) -> None:
    """Warn when the records were not all made with one base config (rows and seeds aside)."""
    bases = {tuple(sorted((k, str(v)) for k, v in r["config"].items() if k not in _ROW_SWITCHES)) for r in records}
    if len(bases) > 1:
        warnings.warn(
            f"the results mix {len(bases)} different base configs (e.g. another preset or epochs); "
            "compare rows with care, or keep each run in its own out_dir",
            stacklevel=3,
        )


def _summarize(records: list[dict], order: list[int] | None = None) -> pd.DataFrame:
    """The summary frame (see :func:`load_ablation`) of a list of result records."""
    per_seed = _records_frame(records)
    _warn_if_mixed(records)
    numbers = order if order is not None else sorted(per_seed["No."].unique())
    numbers = [n for n in dict.fromkeys(numbers) if n in set(per_seed["No."])]
    described = {rec["row"]["number"]: rec for rec in records}  # the files describe their rows themselves
    out = {}
    for n in numbers:
        runs, row, paper = per_seed[per_seed["No."] == n], described[n]["row"], described[n]["paper"]
        entry = {
            ("row", "label"): row["label"],
            ("row", "network"): row["network"],
            ("row", "train_data"): row["train_data"],
            ("row", "test_data"): row["test_data"],
            ("row", "n_seeds"): len(runs),
            ("row", "eval_split"): ",".join(sorted(set(runs["eval_split"]))),
        }
        for metric in METRICS:
            values = runs[metric].dropna()
            entry[(metric, "mean")] = values.mean() if len(values) else np.nan
            entry[(metric, "std")] = values.std(ddof=1) if len(values) > 1 else np.nan
            entry[(metric, "paper")] = np.nan if paper.get(metric) is None else paper[metric]
        out[n] = entry
    columns = pd.MultiIndex.from_tuples(
        [("row", c) for c in ("label", "network", "train_data", "test_data", "n_seeds", "eval_split")]
        + [(m, s) for m in METRICS for s in ("mean", "std", "paper")]
    )
    df = pd.DataFrame.from_dict(out, orient="index").reindex(columns=columns)
    df.index.name = "No."
    for m in METRICS:
        df[m] = df[m].astype(float)
    df[("row", "n_seeds")] = df[("row", "n_seeds")].astype(int)
    return df


def load_ablation(out_dir: str | os.PathLike, per_seed: bool = False) -> pd.DataFrame:
    """Rebuild the ablation summary from the ``row{NN}_seed{S}.json`` files in ``out_dir``.

    Parameters
    ----------
    out_dir : path
        A :func:`run_ablation` output folder (e.g. copied from a GPU run).
    per_seed : bool, default False
        Return one row per (row, seed) instead: ``No., seed, eval_split``, the metrics in percent,
        ``train_seconds``.

    Returns
    -------
    DataFrame, index "No." (the Table 3 rows found, ascending)
        Columns are a two-level MultiIndex. ``("row", ...)``: ``label, network, train_data, test_data, n_seeds,
        eval_split``. Per metric of :data:`METRICS`: ``(metric, "mean")`` and ``(metric, "std")`` over seeds
        (percent; std with ddof=1, NaN for a single seed; NaN mean where the metric does not apply, e.g. PBCA
        without attention) and ``(metric, "paper")`` (percent, NaN for "—"). So ``df["AUC"]`` is a
        (mean, std, paper) frame and ``df["row"]`` describes the rows.
    """
    files = sorted(Path(out_dir).glob("row*_seed*.json"))
    if not files:
        raise FileNotFoundError(f"no row*_seed*.json results in {out_dir}; run run_ablation(..., out_dir=...) first")
    records = [read_json(f) for f in files]
    return _records_frame(records) if per_seed else _summarize(records)


def _fmt(mean: float, std: float, digits: int) -> str:
    if math.isnan(mean):
        return "—"
    return f"{mean:.{digits}f}" if math.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def format_ablation(df: pd.DataFrame, digits: int = 2) -> pd.DataFrame:
    """Table 3 layout as strings: our "mean ± std" (just "mean" for one seed) beside the paper's number.

    Parameters
    ----------
    df : DataFrame
        From :func:`run_ablation` or :func:`load_ablation`.
    digits : int, default 2

    Returns
    -------
    DataFrame of str, index "No."
        Columns ``("", "Losses or Modules")``, ``("", "Training data")``, ``("", "Test data")``, ``("", "seeds")``,
        then ``(metric, "ours")`` and ``(metric, "paper")`` per metric; "—" where there is no value.
    """
    out = pd.DataFrame(index=df.index)
    out[("", "Losses or Modules")] = [
        f"{lab} ({net})" for lab, net in zip(df["row", "label"], df["row", "network"], strict=True)
    ]
    out[("", "Training data")] = df["row", "train_data"].to_numpy()
    out[("", "Test data")] = df["row", "test_data"].to_numpy()
    out[("", "seeds")] = df["row", "n_seeds"].astype(str).to_numpy()
    for m in METRICS:
        out[(m, "ours")] = [_fmt(a, b, digits) for a, b in zip(df[m, "mean"], df[m, "std"], strict=True)]
        out[(m, "paper")] = [_fmt(p, math.nan, digits) for p in df[m, "paper"]]
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    return out


def plot_ablation(df: pd.DataFrame, metrics: Iterable[str] = METRICS, title: str | None = None) -> go.Figure:
    """Grouped bars per metric: ours (mean, error bar = std over seeds) beside the paper, one panel per metric.

    Parameters
    ----------
    df : DataFrame
        From :func:`run_ablation` or :func:`load_ablation`.
    metrics : iterable of str, default :data:`METRICS`

    Returns
    -------
    go.Figure
        Two bar traces per metric, named "ours" and "paper" (legend shown once), x = row numbers, y in percent;
        the hover text gives each row's label and training data.
    """
    metrics = list(metrics)
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=metrics, shared_yaxes=False)
    x = [str(n) for n in df.index]
    hover = [
        f"{n}. {lab} ({net}, {tr})"
        for n, lab, net, tr in zip(
            df.index, df["row", "label"], df["row", "network"], df["row", "train_data"], strict=True
        )
    ]
    for i, m in enumerate(metrics, start=1):
        std = df[m, "std"].fillna(0).to_numpy()
        for name, y, color, err in (
            ("ours", df[m, "mean"], "#1f77b4", std),
            ("paper", df[m, "paper"], "#aaaaaa", None),
        ):
            fig.add_trace(
                go.Bar(
                    x=x,
                    y=y.to_numpy(),
                    name=name,
                    marker_color=color,
                    legendgroup=name,
                    showlegend=i == 1,
                    error_y=None if err is None else dict(type="data", array=err, visible=True),
                    hovertext=hover,
                    hovertemplate="%{hovertext}<br>" + f"{m} {name}: " + "%{y:.2f}%<extra></extra>",
                ),
                row=1,
                col=i,
            )
        fig.update_xaxes(title_text="Table 3 row", type="category", row=1, col=i)
    fig.update_yaxes(title_text="percent", row=1, col=1)
    fig.update_layout(
        barmode="group",
        title=title or "Ablation (Table 3): ours vs. Cao et al. 2021",
        height=380,
        width=max(600, 260 * len(metrics)),
    )
    return fig
