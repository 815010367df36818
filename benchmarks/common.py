"""Helpers shared by the benchmark scripts: interleaved timing, step timing inside ``learn.fit``, the table.

Every figure the scripts report is a ratio of two cases measured in the same process, in the same run:

- each case runs once untimed first (warm-up);
- then the cases take turns, one repetition each, the order rotated every round (A B, B A, ...), so that
  load from other processes and slow drift (thermal, page cache) hit every case alike;
- each case's figure is the median over its repetitions;
- the ratio is paired: the ratio of the two cases' medians within each round, then the median over rounds (on a
  small shared machine a step's time drifts by 10-20 % between rounds; within a round both sides see the same).

A result row is a dict: ``id``, ``case`` (what exactly is measured), ``a_label``/``a`` and ``b_label``/``b``
(the two medians, in ``unit``), ``ratio`` (as the case defines it, paired as above), ``round_ratios`` (one per
round), ``ratio_of_medians``, ``goal`` (e.g. ``"<= 2.15"`` or None), ``met`` (bool or None), ``reps`` and the raw
samples ``a_samples``/``b_samples``.
"""

from __future__ import annotations

import argparse
import operator
import statistics
import time
import warnings
from collections.abc import Callable

import torch

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=FutureWarning)
    from fastai.callback.core import Callback, CancelFitException, CancelValidException
    from fastai.data.core import DataLoaders

_OPS = {"<=": operator.le, ">=": operator.ge}


class RoundSamples(list):
    """A case's pooled samples; ``.rounds`` keeps them grouped by round, for paired per-round ratios."""

    def __init__(self):
        super().__init__()
        self.rounds: list[list[float]] = []


def interleaved(cases: dict[str, Callable[[], float | list[float]]], reps: int, warmup: int = 1) -> dict[str, list]:
    """Warm each case up, then run ``reps`` rounds; each round runs every case once, in a rotated order.

    A case returns one sample (float) or several (list, e.g. per-step times of one ``fit``); all samples of a
    case are pooled. Returns ``{name: samples}``; each ``samples.rounds`` holds them round by round.
    """
    names = list(cases)
    for name in names:
        for _ in range(warmup):
            cases[name]()
    samples: dict[str, RoundSamples] = {n: RoundSamples() for n in names}
    for r in range(reps):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            out = cases[name]()
            out = out if isinstance(out, list) else [out]
            samples[name].extend(out)
            samples[name].rounds.append(list(out))
    return samples


def timed(fn: Callable[[], object]) -> Callable[[], float]:
    """Wrap ``fn`` so that calling it returns its wall time in seconds."""

    def run() -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    return run


def row(
    id: str,
    case: str,
    a_label: str,
    a_samples: list[float],
    b_label: str | None,
    b_samples: list[float] | None,
    unit: str,
    ratio: Callable[[float, float], float] | None,
    goal: str | None = None,
    **extra,
) -> dict:
    """A result row from raw samples: medians of A and B, ``ratio(a, b)`` and whether ``goal`` is met."""
    a = statistics.median(a_samples)
    b = statistics.median(b_samples) if b_samples else None
    value = of_medians = ratio(a, b) if ratio is not None else None
    per_round = None
    ra, rb = getattr(a_samples, "rounds", None), getattr(b_samples, "rounds", None)
    if ratio is not None and ra and rb and len(ra) == len(rb):
        # Paired: both sides of a round ran back to back, so drift between rounds cancels in their ratio.
        per_round = [ratio(statistics.median(x), statistics.median(y)) for x, y in zip(ra, rb, strict=True)]
        value = statistics.median(per_round)
    return {
        "id": id,
        "case": case,
        "a_label": a_label,
        "a": a,
        "b_label": b_label,
        "b": b,
        "unit": unit,
        "ratio": value,
        "ratio_of_medians": of_medians,
        "round_ratios": per_round,
        "goal": goal,
        "met": meets(value, goal),
        "reps": len(a_samples),
        "a_samples": list(a_samples),
        "b_samples": list(b_samples or []),
        **extra,
    }


def meets(value: float | None, goal: str | None) -> bool | None:
    """``goal`` is ``"<= x"`` or ``">= x"``; None when there is no goal or no value."""
    if goal is None or value is None:
        return None
    op, x = goal.split()
    return _OPS[op](value, float(x))


def _fmt(x, unit="") -> str:
    if x is None:
        return "-"
    return f"{x:.3g} {unit}".strip() if abs(x) < 1000 else f"{x:.0f} {unit}".strip()


def print_table(rows: list[dict], title: str | None = None) -> None:
    """One line per row (id, A, B, ratio, goal, met), then the case descriptions."""
    if title:
        print(f"\n== {title}")
    head = f"{'id':<30} {'A':>16} {'B':>16} {'ratio':>7} {'rounds min-max':>15} {'goal':>8}  met"
    print(head)
    print("-" * len(head))
    for r in rows:
        met = {True: "yes", False: "NO", None: "-"}[r.get("met")]
        rr = r.get("round_ratios")
        spread = f"{_fmt(min(rr))}-{_fmt(max(rr))}" if rr and len(rr) > 1 else "-"
        print(
            f"{r['id']:<30} {_fmt(r.get('a'), r.get('unit', '')):>16} {_fmt(r.get('b'), r.get('unit', '')):>16} "
            f"{_fmt(r.get('ratio')):>7} {spread:>15} {r.get('goal') or '-':>8}  {met}"
        )
    print()
    for r in rows:
        b = f"; B = {r['b_label']}" if r.get("b_label") else ""
        reps = f"; median of {r['reps']} samples" if r.get("reps") else ""
        print(f"{r['id']}: {r['case']}\n    A = {r['a_label']}{b}{reps}")


def common_args(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--json", help="also write the results (with provenance) to this JSON file")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, smaller sizes: checks that it runs")
    ap.add_argument(
        "--threads", type=int, help="torch threads (default: torch's, one per core); 1 helps on a busy machine"
    )
    return ap


# ---------------------------------------------------------------------------------------------------------------
# Training steps inside a real learn.fit


class StepTimer(Callback):
    """Record the wall time of every training batch of ``learn.fit`` and skip validation.

    The clock starts in ``before_batch`` (this callback runs first) and stops in ``after_batch``, which fastai
    fires after forward, loss, every callback's ``after_loss`` (the critic), backward, ``opt.step`` and
    ``zero_grad``. Fetching the batch from the loader is outside the interval.
    """

    order = -100

    def __init__(self):
        self.times: list[float] = []

    def before_batch(self):
        if self.training:
            self._t0 = time.perf_counter()

    def after_batch(self):
        if self.training:
            self.times.append(time.perf_counter() - self._t0)

    def before_validate(self):
        raise CancelValidException  # the benchmarks time training steps only


class SpanTimer(Callback):
    """Time ``steps`` training batches after ``warmup`` untimed ones, then stop the fit; skips validation.

    On CUDA the device is synchronised at both ends of the span (and its peak-memory counter reset at the start),
    so ``span_s`` is the wall time of the work, not of the launches. ``first_step_s``: from ``before_fit`` to the
    end of the first batch (includes ``torch.compile``'s compiling, when on).
    """

    order = 99

    def __init__(self, warmup: int, steps: int):
        if warmup < 1 or steps < 1:
            raise ValueError(f"warmup and steps must be >= 1, got {warmup}, {steps}")
        self.warmup, self.steps = warmup, steps
        self.n, self.t0, self.first_step_s, self.span_s = 0, None, None, None

    def _now(self) -> float:
        if self._cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def before_fit(self):
        self._cuda = next(self.learn.model.parameters()).is_cuda
        self.n, self.start = 0, self._now()

    def before_validate(self):
        raise CancelValidException

    def after_batch(self):
        if not self.training:
            return
        self.n += 1
        if self.n not in (1, self.warmup, self.warmup + self.steps):
            return
        now = self._now()
        if self.n == 1:
            self.first_step_s = now - self.start
        if self.n == self.warmup:
            self.t0 = now
            if self._cuda:
                torch.cuda.reset_peak_memory_stats()
        if self.n == self.warmup + self.steps:
            self.span_s = now - self.t0
            raise CancelFitException


def synthetic_dls(size: int, bs: int, steps: int, seed: int = 0) -> DataLoaders:
    """``steps`` batches of in-memory pairs ``(hq, lq, mask, label)``, half of them fake with a square mask."""
    g = torch.Generator().manual_seed(seed)
    n = bs * steps
    hq = torch.rand(n, 3, size, size, generator=g) * 2 - 1  # Xception's [-1, 1] input range
    lq = (hq + 0.1 * torch.randn(n, 3, size, size, generator=g)).clamp(-1, 1)
    label = torch.arange(n) % 2
    mask = torch.zeros(n, 1, size, size)
    q = size // 4
    mask[label == 1, :, q : size - q, q : size - q] = 1
    ds = torch.utils.data.TensorDataset(hq, lq, mask, label)
    train = torch.utils.data.DataLoader(ds, batch_size=bs, shuffle=False, drop_last=True)
    valid = torch.utils.data.DataLoader(ds, batch_size=bs)  # never run: StepTimer cancels validation
    dls = DataLoaders(train, valid, device="cpu")
    dls._device = torch.device("cpu")
    return dls


def quiet_timed(learn) -> StepTimer:
    """Drop the progress bar and add a :class:`StepTimer`; returns the timer."""
    learn.remove_cbs([cb for cb in learn.cbs if type(cb).__name__ == "ProgressCallback"])
    timer = StepTimer()
    learn.add_cb(timer)
    return timer


def fit_steps(learn, timer: StepTimer) -> list[float]:
    """One ``learn.fit(1)`` over the learner's training loader; the per-step times."""
    timer.times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # metrics on a skipped validation, few negatives ...
        with learn.no_logging():
            learn.fit(1)
    return list(timer.times)


def peak_rss_mib() -> float:
    """This process's peak resident set size (VmHWM) in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")
