"""Data-parallel training with fastai's ``distrib_ctx`` on 2 CPU processes (gloo), as users do on several GPUs."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("accelerate")

HERE = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "ANTIFORGE_DDP_DEBUG": "400",  # a hang dumps the stacks and fails instead of blocking the suite
        "CUDA_VISIBLE_DEVICES": "",
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        str(HERE / "distributed_worker.py"),
        str(out),
    ]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_two_ranks_ran(ranks):
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world"] == 2 for r in ranks)


def test_model_weights_stay_in_sync_and_change(ranks):
    trainable = [k for k in ranks[0]["model"] if "running" not in k and "num_batches" not in k]
    r0, r1 = ({k: r["model"][k] for k in trainable} for r in ranks)
    assert _equal(r0, r1)  # DDP averaged the gradients
    assert not _equal(r0, {k: ranks[0]["before"][k] for k in trainable})  # and training did something


def test_critic_stays_in_sync(ranks):
    # The critic lives outside learn.model (so outside DDP); AdversarialAlignment averages its gradients itself.
    assert _equal(ranks[0]["critic"], ranks[1]["critic"])


def test_validation_metrics_cover_the_whole_set_on_every_rank(ranks):
    # Each rank validates half of the 16 pairs; the metrics gather the scores, so both see all 16 and agree.
    assert [r["n_valid_seen"] for r in ranks] == [16, 16]
    assert ranks[0]["metrics"] == ranks[1]["metrics"]
