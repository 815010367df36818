"""Training-step cost, side by side: two-branch vs single-branch, critic on vs off, and peak memory.

Run:  .venv/bin/python benchmarks/bench_train.py [--quick] [--json out.json] [--breakdown]

Every step is a real fastai training step: the learners come from ``anticompression_learner`` and
``single_branch_learner`` (paper settings: legacy_xception cut at block8, Adam, metric loss, attention), and
``learn.fit(1)`` runs over in-memory synthetic pairs; a callback times each training batch from
``before_batch`` to ``after_batch`` (forward, loss, the critic's callback, backward, optimizer step, zero_grad),
and skips validation. The learners take turns, a few steps each, the order rotated every round.

1. two-branch step (``gan=False``) / single-branch step (``head="metric", attention=True``); goal <= 2.15.
   The two-branch net runs two heads and the shared tail twice (once per branch), so the floor is about 2.0.
2. two-branch step with ``AdversarialAlignment`` (``n_critic=1``) / without; goal <= 1.10. Also, before/after:
   the critic scoring orders a and b in one call (current) vs one call each (as before).
3. Prototypes (reported, no goal): the shared tail run ONCE on ``cat(V'_H, V'_L)``, with BatchNorm statistics
   over the joint batch (changes training) or per branch (exactly the current computation).
4. Memory: peak RSS (VmHWM) of a fresh process doing two default training steps (critic on), batch 8, at 128 px
   and at 299 px; one subprocess per size.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict

import torch
from common import (
    common_args,
    fit_steps,
    interleaved,
    peak_rss_mib,
    print_table,
    quiet_timed,
    row,
    rss_mib,
    synthetic_dls,
)
from provenance import write_results
from torch import nn

from antiforge_lib.learner import TrainConfig, anticompression_learner, single_branch_learner
from antiforge_lib.models import TwoBranchNet, TwoBranchOutput

GOAL_TWO_VS_SINGLE = "<= 2.15"
GOAL_CRITIC = "<= 1.10"


# ---------------------------------------------------------------------------------------------------------------
# Benchmark-only prototype: the shared tail run once on both branches


class _PerHalfBatchNorm2d(nn.BatchNorm2d):
    """In training, normalise each half of the batch with its own statistics, HQ half first.

    Calling the same BatchNorm on ``x[:B]`` and then ``x[B:]`` is what two separate ``tail`` calls do, running
    statistics included; only the convolutions see the joint batch.
    """

    def forward(self, x):
        if not self.training:
            return super().forward(x)  # running statistics: per sample anyway
        a, b = x.chunk(2)
        return torch.cat([super().forward(a), super().forward(b)])


class TailOnceNet(TwoBranchNet):
    """:class:`TwoBranchNet` whose shared tail runs once on ``cat(V'_H, V'_L)`` (2B samples) instead of twice."""

    def forward(self, hq, lq):
        v_hq, v_lq = self.head_hq(hq), self.head_lq(lq)
        if self.attention_hq is None:
            m_hq = m_lq = None
            x = torch.cat([v_hq, v_lq])
        else:
            m_hq, m_lq = self.attention_hq(v_hq), self.attention_lq(v_lq)
            x = torch.cat([v_hq * m_hq, v_lq * m_lq])
        c_hq, c_lq = self.tail(x).chunk(2)
        return TwoBranchOutput(c_hq, c_lq, m_hq, m_lq, v_hq, v_lq)


def tail_once(model: TwoBranchNet, per_branch_bn: bool) -> TwoBranchNet:
    """Turn ``model`` into a :class:`TailOnceNet` in place (same parameters and state-dict keys)."""
    model.__class__ = TailOnceNet
    if per_branch_bn:
        for m in model.tail.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                if type(m) is not nn.BatchNorm2d:
                    raise TypeError(f"prototype handles nn.BatchNorm2d only, found {type(m).__name__}")
                m.__class__ = _PerHalfBatchNorm2d
    return model


def check_tail_once(size: int = 64, bs: int = 4) -> dict:
    """Max |difference| of embeddings and tail BN running means: tail-once variants vs the current forward."""
    torch.manual_seed(0)
    ref = TwoBranchNet().train()
    hq, lq = torch.randn(bs, 3, size, size), torch.randn(bs, 3, size, size)
    out = {}
    with torch.no_grad():
        base = copy.deepcopy(ref)
        o = base(hq, lq)
        for name, per_branch in (("joint_bn", False), ("per_branch_bn", True)):
            net = tail_once(copy.deepcopy(ref), per_branch)
            p = net(hq, lq)
            emb = max((p.c_hq - o.c_hq).abs().max().item(), (p.c_lq - o.c_lq).abs().max().item())
            stats = max(
                (a - b).abs().max().item()
                for a, b in zip(net.tail.state_dict().values(), base.tail.state_dict().values(), strict=True)
                if a.is_floating_point()
            )
            out[name] = {"max_abs_diff_embedding": emb, "max_abs_diff_tail_state": stats}
    return out


# ---------------------------------------------------------------------------------------------------------------
# Learners


def build_learners(size: int, bs: int, steps: int, prototypes: bool) -> dict:
    """name -> (learner, StepTimer); all start from the same seed, hence the same weights."""
    dls = synthetic_dls(size, bs, steps)
    cfg = TrainConfig(size=size, batch_size=bs, patience=None)  # paper defaults: legacy_xception, block8
    makers = {
        "single": lambda: single_branch_learner(dls, cfg, head="metric", attention=True),
        "two": lambda: anticompression_learner(dls, cfg, gan=False),
        "two+critic": lambda: anticompression_learner(dls, cfg, gan=True, n_critic=1),
        "two+critic separate calls": lambda: _separate_critic_calls(
            anticompression_learner(dls, cfg, gan=True, n_critic=1)
        ),
    }
    if prototypes:
        makers["two tail-once joint-BN"] = lambda: _with_model(anticompression_learner(dls, cfg, gan=False), False)
        makers["two tail-once per-branch-BN"] = lambda: _with_model(anticompression_learner(dls, cfg, gan=False), True)
    out = {}
    for name, make in makers.items():
        learn = make()
        out[name] = (learn, quiet_timed(learn))
    return out


def _separate_critic_calls(learn):
    """The critic as it was before the change: one call per order (a, then b) instead of one on both."""
    cb = learn.adversarial_alignment
    cb._scores = lambda a, b: (cb.critic(a), cb.critic(b))
    return learn


def _with_model(learn, per_branch_bn: bool):
    tail_once(learn.model, per_branch_bn)
    return learn


# ---------------------------------------------------------------------------------------------------------------
# Where the time goes: forward per top-level part, loss, backward, optimizer


def breakdown(learn, steps: int = 3) -> dict[str, float]:
    """Median seconds per component over ``steps`` manual steps mirroring fastai's (after a fit created opt)."""
    model, loss_func, opt = learn.model, learn.loss_func, learn.opt
    two = isinstance(model, TwoBranchNet)
    hq, lq, mask, label = next(iter(learn.dls.train))
    acc: dict[str, float] = defaultdict(float)
    starts: dict[str, float] = {}
    handles = []
    for name, mod in model.named_children():
        if mod is None:
            continue
        handles.append(mod.register_forward_pre_hook(lambda m, i, n=name: starts.__setitem__(n, time.perf_counter())))
        handles.append(
            mod.register_forward_hook(
                lambda m, i, o, n=name: acc.__setitem__(f"fwd {n}", acc[f"fwd {n}"] + time.perf_counter() - starts[n])
            )
        )
    rows = defaultdict(list)
    model.train()
    try:
        for _ in range(steps + 1):  # the first is a warm-up
            acc.clear()
            t0 = time.perf_counter()
            pred = model(hq, lq) if two else model(lq)
            t1 = time.perf_counter()
            loss = loss_func(pred, mask, label)
            t2 = time.perf_counter()
            loss.backward()
            t3 = time.perf_counter()
            opt.step()
            opt.zero_grad()
            t4 = time.perf_counter()
            sample = dict(acc)
            sample["fwd other"] = (t1 - t0) - sum(acc.values())
            sample |= {"loss": t2 - t1, "backward": t3 - t2, "opt step+zero_grad": t4 - t3, "total": t4 - t0}
            for k, v in sample.items():
                rows[k].append(v)
    finally:
        for h in handles:
            h.remove()
    return {k: statistics.median(v[1:]) for k, v in rows.items()}


def print_breakdown(parts: dict[str, dict[str, float]]) -> None:
    names = list(parts)
    order = ["head", "attention", "tail", "other", "loss", "backward", "opt", "total"]
    keys = sorted(
        dict.fromkeys(k for p in parts.values() for k in p),
        key=lambda k: next(i for i, w in enumerate(order + [k]) if w in k),
    )
    print("\nwhere the time goes (ms per step, median; forward per top-level part, the tail's calls summed)")
    print(f"{'component':<24}" + "".join(f"{n:>28}" for n in names))
    for k in keys:
        print(f"{k:<24}" + "".join(f"{1e3 * parts[n][k]:28.1f}" if k in parts[n] else f"{'-':>28}" for n in names))


# ---------------------------------------------------------------------------------------------------------------
# Memory, one fresh process per size


def memory_child(size: int, bs: int) -> None:
    """Two default training steps (critic on) at ``size`` px; prints one JSON line."""
    cfg = TrainConfig(size=size, batch_size=bs, patience=None)
    learn = anticompression_learner(synthetic_dls(size, bs, steps=2), cfg)
    timer = quiet_timed(learn)
    before = rss_mib()
    times = fit_steps(learn, timer)
    print(json.dumps({"peak_rss_mib": peak_rss_mib(), "rss_before_mib": before, "step_s": times}))


def bench_memory(size: int, bs: int, threads: int | None) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", str(size), "--bs", str(bs)]
    if threads:
        cmd += ["--threads", str(threads)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"memory child at {size} px failed:\n{res.stderr[-3000:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    return row(
        f"memory/{size}px",
        f"peak RSS (VmHWM) of a fresh process: two default training steps (two-branch legacy_xception + critic), "
        f"batch {bs}, {size} px, CPU",
        "peak RSS",
        [out["peak_rss_mib"]],
        "RSS after imports and model build, before the first step",
        [out["rss_before_mib"]],
        "MiB",
        None,
        step_s=out["step_s"],
        glibc_tunables=os.environ.get("GLIBC_TUNABLES"),
    )


# ---------------------------------------------------------------------------------------------------------------


def main():
    ap = common_args(__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128, help="input size of the timed steps (default 128)")
    ap.add_argument("--bs", type=int, default=8, help="batch size (default 8)")
    ap.add_argument("--breakdown", action="store_true", help="always print where the time goes")
    ap.add_argument(
        "--skip", action="append", default=[], choices=["train", "proto", "memory"], help="leave out a part"
    )
    ap.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)  # internal: one size, in a fresh process
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(args.memory_child, args.bs)
        return

    rows = []
    if "train" not in args.skip:
        rows += bench_steps(args)
    if "memory" not in args.skip:
        rows += [bench_memory(size, 8, args.threads) for size in (128, 299)]
    print_table(rows, "training steps (bench_train.py)")
    for r in rows:
        if "vs_two_branch" in r:
            print(f"{r['id']}: tail-once / current two-branch step = {r['vs_two_branch']:.3f}")
    if rows and "breakdown_s" in rows[0]:
        print_breakdown(rows[0]["breakdown_s"])
    if args.json:
        write_results(args.json, rows)


def bench_steps(args) -> list[dict]:
    """Cases 1 and 2 (and the prototypes), all learners interleaved in one loop."""
    reps, steps = (2, 2) if args.quick else (7, 3)
    prototypes = "proto" not in args.skip
    learners = build_learners(args.size, args.bs, steps, prototypes)
    cases = {name: (lambda lt=lt: fit_steps(*lt)) for name, lt in learners.items()}
    s = interleaved(cases, reps=reps, warmup=1)

    what = f"legacy_xception/block8, {args.size} px, batch {args.bs}, CPU, metric loss + attention"
    rows = [
        row(
            "train/two_vs_single",
            f"training step, two-branch (gan=False) / single-branch (head=metric, attention=True); {what}",
            "two-branch s/step",
            s["two"],
            "single-branch s/step",
            s["single"],
            "s",
            lambda a, b: a / b,
            GOAL_TWO_VS_SINGLE,
        ),
        row(
            "train/critic_on_vs_off",
            f"two-branch training step with AdversarialAlignment (n_critic=1) / without; {what}",
            "with critic s/step",
            s["two+critic"],
            "without s/step",
            s["two"],
            "s",
            lambda a, b: a / b,
            GOAL_CRITIC,
        ),
        row(
            "train/critic_one_call_vs_two",
            "two-branch step with the critic scoring both orders in one call (current) / one call per order "
            f"(before); {what}",
            "one call s/step",
            s["two+critic"],
            "two calls s/step",
            s["two+critic separate calls"],
            "s",
            lambda a, b: a / b,
            None,  # before/after of the change, no goal of its own
        ),
    ]
    if prototypes:
        check = check_tail_once()
        for key, label in (("joint", "joint-BN"), ("per_branch", "per-branch-BN")):
            name = f"two tail-once {label}"
            diff = check[f"{key}_bn"]
            rows.append(
                row(
                    f"proto/tail_once_{key}_bn",
                    f"PROTOTYPE: two-branch with the tail run once on cat(V'_H, V'_L), BatchNorm statistics "
                    f"{'over the joint batch (changes training)' if key == 'joint' else 'per branch (same result)'}"
                    f" / single-branch; max |diff| of embeddings vs current: {diff['max_abs_diff_embedding']:.2g}; "
                    f"{what}",
                    "tail-once s/step",
                    s[name],
                    "single-branch s/step",
                    s["single"],
                    "s",
                    lambda a, b: a / b,
                    None,  # a prototype: compare its ratio with train/two_vs_single's
                    vs_two_branch=statistics.median(s[name]) / statistics.median(s["two"]),
                    equivalence=diff,
                )
            )
    if args.breakdown or rows[0]["met"] is False:
        rows[0]["breakdown_s"] = {name: breakdown(learners[name][0]) for name in learners if "critic" not in name}
    return rows


if __name__ == "__main__":
    main()
