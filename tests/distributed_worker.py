"""One rank of the 2-process CPU (gloo) training run of tests/test_distributed.py.

Started by ``python -m torch.distributed.run --nproc_per_node 2 tests/distributed_worker.py OUT``; each rank trains
the tiny two-branch learner for one epoch inside ``learn.distrib_ctx()`` and saves what the test compares.
"""

import faulthandler
import os
import sys
import warnings

import torch

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
if os.environ.get("ANTIFORGE_DDP_DEBUG"):  # seconds after which a hung rank prints its stack and exits
    faulthandler.dump_traceback_later(int(os.environ["ANTIFORGE_DDP_DEBUG"]), exit=True)

from test_learner import demo, quiet, tiny_dls  # noqa: E402

from antiforge_lib.callbacks import AdversarialAlignment  # noqa: E402
from antiforge_lib.learner import anticompression_learner  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import fastai.distributed  # noqa: E402, F401  (patches Learner.distrib_ctx)


def _broadcast_cpu(self, t, rank):
    # fastai's DistributedDL sends the shuffled order as a CUDA tensor (NCCL needs one); gloo takes CPU tensors.
    t = torch.as_tensor(t, dtype=torch.long)
    torch.distributed.broadcast(t, rank)
    return t.tolist()


fastai.distributed.DistributedDL._broadcast = _broadcast_cpu


def main(out: str) -> None:
    learn = quiet(anticompression_learner(tiny_dls(n=16, bs=4), demo()))
    critic = next(cb for cb in learn.cbs if isinstance(cb, AdversarialAlignment))
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    # SyncBatchNorm needs a GPU; on CPU the ranks' BatchNorm statistics stay local (their weights are synced by DDP).
    with learn.distrib_ctx(sync_bn=False, cpu=True):
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        learn.fit(1)
    torch.save(
        {
            "rank": rank,
            "world": world,
            "before": before,
            "model": learn.model.state_dict(),
            "critic": critic.critic.state_dict(),
            "metrics": dict(zip(learn.recorder.metric_names[1:-1], learn.recorder.values[-1], strict=True)),
            "n_valid_seen": sum(len(s) for s in learn.metrics[0].scores),
        },
        f"{out}/rank{rank}.pt",
    )


if __name__ == "__main__":
    main(sys.argv[1])
