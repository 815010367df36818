"""Resuming a killed run: checkpoints, and the callbacks whose state they carry (Sec. 4.2's stopping rule included).

- :func:`save_checkpoint`, :func:`load_checkpoint` -- model, optimizer, the state of every callback that has one
  (the critic and its optimizer, the trackers), the last completed epoch and the config; written atomically
  (:func:`~antiforge_lib._io.atomic_write`) and read with ``torch.load(weights_only=True)``.
- :class:`CheckpointEveryEpoch` -- a checkpoint after every epoch; :func:`resume` continues from it.
- :class:`EarlyStopping`, :class:`SaveBestModel` -- fastai's trackers on the validation loss (the paper's stopping
  rule), with their state in the checkpoints so that a resumed run stops and keeps the best epoch as an unbroken one
  would; the best weights are written atomically and reloaded with ``weights_only=True``.
- :class:`StopOnDivergence` -- a NaN or infinite loss (or weight) stops the fit before its epoch is saved.
- :class:`EpochHistory` -- one JSON line per completed epoch, appended across resumes.
- :func:`epoch_skipped` -- the epochs that a resumed fit skips, which per-epoch callbacks must ignore.

All are re-exported by :mod:`antiforge_lib.callbacks`, where they used to live.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ._fastai import quiet_import
from ._io import atomic_write, json_safe

with quiet_import():
    from fastai.callback.core import Callback, CancelFitException
    from fastai.callback.tracker import EarlyStoppingCallback, SaveModelCallback
    from fastai.learner import SkipToEpoch
    from fastcore.foundation import L

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "CheckpointEveryEpoch",
    "resume",
    "epoch_skipped",
    "EarlyStopping",
    "SaveBestModel",
    "StopOnDivergence",
    "TrainingDiverged",
    "EpochHistory",
]


def epoch_skipped(learn) -> bool:
    """True in the ``after_epoch`` of an epoch that ``fit(start_epoch=...)`` skips (fastai's ``SkipToEpoch``).

    fastai still fires ``after_epoch`` for those epochs, with no losses recorded; callbacks that save or compare
    per-epoch values must ignore them.
    """
    return any(isinstance(cb, SkipToEpoch) and learn.epoch < cb._skip_to for cb in learn.cbs)


def _stateful_callbacks(learn) -> dict:
    # Look at the class, not the instance: fastai callbacks forward unknown attributes to the learner.
    return {cb.name: cb for cb in learn.cbs if callable(getattr(type(cb), "checkpoint_state", None))}


def _plain_opt_state(opt) -> dict:
    # fastai keeps hypers in a fastcore L, and its schedulers (fit_one_cycle) set them to numpy scalars: both are
    # refused by weights_only=True. Store plain lists, dicts and Python numbers.
    sd = opt.state_dict()
    hypers = [{k: v.item() if isinstance(v, np.generic) else v for k, v in h.items()} for h in sd["hypers"]]
    return {"state": [dict(s) for s in sd["state"]], "hypers": hypers}


def save_checkpoint(learn, path, epoch: int | None = None, config: dict | None = None, stopped: bool = False) -> Path:
    """Write model, optimizer, callback states (critic), ``epoch`` and ``config`` to ``path``, atomically.

    The file is written through :func:`~antiforge_lib._io.atomic_write`, so a run killed while saving leaves
    the previous checkpoint intact. ``config`` defaults to ``learn.config.to_dict()`` if present.
    """
    if config is None and hasattr(learn, "train_config"):
        config = learn.train_config.to_dict()
    state = {
        "model": learn.model.state_dict(),
        "opt": _plain_opt_state(learn.opt) if learn.opt is not None else None,
        "callbacks": {name: cb.checkpoint_state() for name, cb in _stateful_callbacks(learn).items()},
        "epoch": -1 if epoch is None else int(epoch),
        "config": config or {},
        "stopped": bool(stopped),
    }
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(learn, path, with_opt: bool = True) -> dict:
    """Load a :func:`save_checkpoint` file into ``learn`` (``weights_only=True``); returns the raw checkpoint.

    Creates ``learn.opt`` first if needed, so the optimizer state has somewhere to go.
    """
    device = next(learn.model.parameters()).device
    state = torch.load(path, map_location=device, weights_only=True)
    learn.model.load_state_dict(state["model"])
    if with_opt and state["opt"] is not None:
        if learn.opt is None:
            learn.create_opt()
        learn.opt.load_state_dict({"state": state["opt"]["state"], "hypers": L(state["opt"]["hypers"])})
    cbs = _stateful_callbacks(learn)
    for name, cb_state in state["callbacks"].items():
        if name not in cbs:
            raise KeyError(f"checkpoint holds state for callback {name!r}, which this learner lacks")
        cbs[name].load_checkpoint_state(cb_state)
    return state


class CheckpointEveryEpoch(Callback):
    """Save a checkpoint (:func:`save_checkpoint`) after every completed epoch, for :func:`resume`.

    It runs after the trackers (order 65 > 60-63), so the checkpoint holds their state for the epoch just finished.
    When :class:`EarlyStopping` ends the fit, the final checkpoint is written from ``after_cancel_fit`` and marked
    ``stopped``, so :func:`resume` does not train on past the paper's stopping point.
    """

    order = 65

    def __init__(self, path):
        self.path = Path(path)

    def after_epoch(self):
        if not epoch_skipped(self.learn):
            save_checkpoint(self.learn, self.path, epoch=self.epoch)

    def after_cancel_fit(self):
        stoppers = [cb for cb in self.learn.cbs if isinstance(cb, EarlyStopping) and cb.stopped]
        if stoppers:  # the epoch completed; only the early stop skipped our after_epoch
            save_checkpoint(self.learn, self.path, epoch=self.epoch, stopped=True)


class EpochHistory(Callback):
    """Append one JSON line per completed epoch to ``path``: the epoch, the train and valid losses and the metrics.

    A resumed run appends to the same file; ``epochs_run`` lists the epochs this fit completed. With ``echo`` each
    line is also printed (the CLI's ``--quiet`` mode, which has no progress table).
    """

    order = 52  # after the Recorder (50) has stored the epoch, before the trackers (60+) that may end the fit

    def __init__(self, path, echo: bool = False):
        self.path, self.echo, self.epochs_run = Path(path), echo, []

    def after_epoch(self):
        values = self.recorder.values[-1] if self.recorder.values else []
        if len(values) < 2:  # an epoch that resume() skipped
            return
        row = json_safe({"epoch": int(self.epoch), **dict(zip(self.recorder.metric_names[1:], values, strict=False))})
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        self.epochs_run.append(int(self.epoch))
        if self.echo:
            print(", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)


class TrainingDiverged(RuntimeError):
    """The training loss or the weights became NaN or infinite; nothing of the epoch was saved."""


class StopOnDivergence(Callback):
    """Stop the fit with :class:`TrainingDiverged` when the loss or the weights stop being finite.

    Each training batch's loss is checked on its device, without waiting for it (no host sync per batch); the
    verdict is read once, at the end of the epoch's training phase. That is before validation and before
    ``after_epoch``, where :class:`CheckpointEveryEpoch` and :class:`SaveBestModel` write: a diverged epoch is never
    saved, nor kept as the best, so a rerun resumes from the last sound epoch. The message names the epoch, the
    first bad batch and the learning rate to lower.
    """

    def before_epoch(self):
        self.first_bad = None

    def after_batch(self):
        if not self.training:
            return
        bad = ~torch.isfinite(self.learn.loss.detach()).all()
        first = self.first_bad if self.first_bad is not None else torch.full((), -1, device=bad.device)
        self.first_bad = torch.where(bad & (first < 0), torch.full_like(first, self.iter), first)

    def after_train(self):
        batch = -1 if self.first_bad is None else int(self.first_bad)
        params = [p for p in self.learn.model.parameters() if p.is_floating_point()]
        weights_ok = bool(torch.stack([torch.isfinite(p).all() for p in params]).all()) if params else True
        if batch < 0 and weights_ok:
            return
        what = f"batch {batch} (its loss is not finite)" if batch >= 0 else "the end of training (weights not finite)"
        lr = self.learn.opt.hypers[-1]["lr"] if self.learn.opt is not None else self.learn.lr
        raise TrainingDiverged(
            f"training diverged at epoch {self.epoch}, {what}; nothing of this epoch was saved. "
            f"Lower the learning rate (now {lr:.3g})."
        )


class EarlyStopping(EarlyStoppingCallback):
    """Stop when the validation loss has not fallen for ``patience`` epochs (the paper's rule, Sec. 4.2).

    fastai's ``EarlyStoppingCallback`` whose ``best``, ``wait`` and ``stopped`` are saved in checkpoints: after
    :func:`resume` it counts on from where the killed run was instead of starting afresh.
    """

    def __init__(self, monitor: str = "valid_loss", patience: int = 3, min_delta: float = 0.0):
        super().__init__(monitor=monitor, patience=patience, min_delta=min_delta)
        self.stopped, self._restored = False, None

    def before_fit(self):
        super().before_fit()  # resets best and wait
        if self._restored is not None:
            self.best, self.wait, self.stopped = self._restored
            self._restored = None
        else:
            self.stopped = False

    def after_epoch(self):
        if epoch_skipped(self.learn):
            return
        try:
            super().after_epoch()  # fastai's rule; it ends the fit with CancelFitException
        except CancelFitException:
            self.stopped = True  # for CheckpointEveryEpoch, whose after_cancel_fit comes next
            raise

    def checkpoint_state(self) -> dict:
        return {"best": float(self.best), "wait": int(self.wait), "stopped": bool(self.stopped)}

    def load_checkpoint_state(self, state: dict) -> None:
        self._restored = (state["best"], state["wait"], state["stopped"])


class SaveBestModel(SaveModelCallback):
    """Keep the weights of the epoch with the lowest validation loss and load them when the fit ends.

    fastai's ``SaveModelCallback`` (file ``learn.path/models/{fname}.pth``), but the file is written atomically
    (temp file + ``os.replace``), reloaded with ``weights_only=True``, and the best value so far is saved in
    checkpoints, so a resumed run only replaces the file with a truly better epoch.
    """

    def __init__(self, monitor: str = "valid_loss", fname: str = "best"):
        super().__init__(monitor=monitor, fname=fname)
        self._restored = None

    def before_fit(self):
        super().before_fit()
        if self._restored is not None:
            self.best, self._restored = self._restored, None

    def after_epoch(self):
        if not epoch_skipped(self.learn):
            super().after_epoch()

    def _save(self, name):
        from fastai.learner import save_model

        final = Path(self.learn.path) / self.learn.model_dir / f"{name}.pth"
        self.last_saved_path = atomic_write(final, lambda tmp: save_model(tmp, self.learn.model, None, with_opt=False))

    @property
    def best_path(self) -> Path:
        return self.learn.path / self.learn.model_dir / f"{self.fname}.pth"

    def load_best(self) -> None:
        """Load the best epoch's weights (if any epoch has been saved)."""
        if self.best_path.exists():
            self.learn.load(self.fname, with_opt=False, weights_only=True)

    def after_fit(self, **kwargs):
        self.load_best()

    def checkpoint_state(self) -> dict:
        return {"best": float(self.best)}

    def load_checkpoint_state(self, state: dict) -> None:
        self._restored = state["best"]


def resume(learn, path, n_epoch: int, **fit_kwargs):
    """Continue a killed run from the last completed epoch in ``path``, up to ``n_epoch`` epochs in all.

    Loads the checkpoint (model, optimizer, critic, early-stopping and best-model state), then
    :func:`antiforge_lib.learner.fit` ``(learn, n_epoch, start_epoch=last + 1)``: fastai skips the done epochs, and
    sets a one-cycle schedule to where it was. A run that early stopping had ended is not trained further; its
    best weights are loaded. Without a checkpoint file it simply starts at epoch 0.
    """
    start, stopped = 0, False
    if Path(path).exists():
        state = load_checkpoint(learn, path)
        start, stopped = state["epoch"] + 1, state.get("stopped", False)
    if start < n_epoch and not stopped:
        from .learner import fit  # the learner module builds on this one

        fit(learn, n_epoch, start_epoch=start, **fit_kwargs)
    elif stopped:
        for cb in learn.cbs:
            if isinstance(cb, SaveBestModel):
                cb.load_best()
    return learn
