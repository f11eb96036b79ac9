"""Data-parallel training under ``torchrun``: the process group, who writes, and each rank's rows.

The same ``connlab`` command runs in W processes (ranks), one per GPU or CPU slot, on one
node or many; ``torch.nn.parallel.DistributedDataParallel`` averages the gradients.

- **The process group** comes from torchrun's environment (``WORLD_SIZE``, ``RANK``,
  ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``): gloo for CPU tensors, NCCL for CUDA
  tensors, one GPU per process. ``init_from_env`` does nothing in a plain single process.
- **Batches.** ``--batch-size`` stays the *global* batch B. Every rank walks the same epoch
  permutation; rank r trains on rows ``[r·b/W, (r+1)·b/W)`` of each global batch of b rows
  (b = B except maybe the last), and its mean loss is weighted by ``W·b_r/b`` so that DDP's
  average of the gradients is the gradient of the global batch's mean loss. Hence no
  learning-rate scaling: ``--lr`` means what it means in one process.
- **Noise.** A loss function draws its noise through ``batch_randn`` / ``batch_rand`` /
  ``batch_randint``: each rank draws the noise of the *whole* global batch from the shared
  generator and keeps its own rows, so every rank's generator stays in step and the run is
  the single-process run, up to float summation order. In one process they are exactly
  ``torch.randn`` / ``torch.rand`` / ``torch.randint``.
- **Writes.** Only rank 0 writes (run folder, metrics, checkpoints, weights, figures,
  summaries); the writers in ``connlab.checkpoint`` and ``connlab.plots`` check ``is_main``.
  Every rank still runs the whole command, evaluation included, so all ranks take the same
  branches. The run folder must be on a file system every node sees (``--resume`` reads it).
- **Failures.** Collectives time out after ``CONNLAB_DIST_TIMEOUT`` seconds (default 600),
  so a rank whose peer died does not hang; torchrun then stops the job with a non-zero exit.

The batch shard is a ``ContextVar`` (``connlab.data.global_batch``) that ``connlab.train.fit`` sets
around each loss call, so the loss functions keep their ``(model, batch, generator)`` signature.
"""

from __future__ import annotations

import datetime
import os
import re
import signal
import sys
import threading

import torch
from torch.nn.parallel import DistributedDataParallel

from connlab.data.global_batch import (  # noqa: F401 - re-exported: the trainer's and the losses' import path
    BatchShard, batch_rand, batch_randint, batch_randn, batch_rows, batch_shard, own_rows, shard_rows,
)
from connlab.errors import UserError

DEFAULT_TIMEOUT_S = 600
KILL_HOOK = "CONNLAB_TEST_KILL_RANK_AT_STEP"  # "RANK:STEP", test only: that rank SIGKILLs itself


def _env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _dist():
    # lazy: torch.distributed is loaded only under torchrun
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def init_from_env() -> bool:
    """Join the torchrun job that the environment describes; False (and nothing done) in one process.

    Safe to call more than once. With at least one GPU per process on the node, the group has
    both backends ("cpu:gloo,cuda:nccl") and this process's GPU is ``cuda:LOCAL_RANK``; with
    more processes than GPUs it is gloo alone (CPU training; CUDA would share GPUs, slowly).
    """
    if _env_world_size() <= 1:
        return False

    # lazy: torch.distributed is loaded only under torchrun
    import torch.distributed as dist

    if dist.is_initialized():
        return True
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", str(_env_world_size())))
    # every rank must pick the same backend: decide from the node's process count, not the rank
    backend = "cpu:gloo,cuda:nccl" if 0 < per_node <= gpus else "gloo"
    if gpus:
        torch.cuda.set_device(local_rank() % gpus)
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s()))
    if gpus and per_node > gpus and is_main():
        print(f"connlab: {per_node} processes per node but {gpus} GPU(s): gloo carries the gradients and CUDA "
              "training shares GPUs (slow); start one process per GPU, or train with --device cpu", file=sys.stderr)
    if threading.current_thread() is threading.main_thread():
        # torchrun stops the surviving ranks with SIGTERM when one fails: say so, in one line
        signal.signal(signal.SIGTERM, _stopped_by_launcher)
    return True


class StoppedByLauncher(RuntimeError):
    """torchrun sent SIGTERM: another rank failed (or the job was cancelled)."""


def _stopped_by_launcher(signum, frame):
    raise StoppedByLauncher("stopped by torchrun (SIGTERM): another rank of the job failed or the job was cancelled")


def timeout_s() -> int:
    text = os.environ.get("CONNLAB_DIST_TIMEOUT", str(DEFAULT_TIMEOUT_S))
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UserError(f"CONNLAB_DIST_TIMEOUT must be a whole number of seconds >= 1, got {text!r}")
    return value


def rank() -> int:
    dist = _dist()
    return dist.get_rank() if dist else 0


def world_size() -> int:
    dist = _dist()
    return dist.get_world_size() if dist else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """True on rank 0, the one process that writes; always True outside torchrun."""
    return rank() == 0


def barrier() -> None:
    dist = _dist()
    if dist:
        dist.barrier()


def cleanup() -> None:
    dist = _dist()
    if dist:
        dist.destroy_process_group()


def broadcast_object(obj):
    """Rank 0's ``obj`` on every rank (picklable objects)."""
    dist = _dist()
    if not dist:
        return obj
    box = [obj if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean_over_ranks(t: torch.Tensor) -> torch.Tensor:
    """The mean of ``t`` over all ranks (a new tensor); ``t`` itself in one process."""
    dist = _dist()
    if not dist:
        return t
    total = t.detach().clone()
    dist.all_reduce(total)
    return total / dist.get_world_size()


def sync_buffers(*modules: torch.nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank."""
    dist = _dist()
    if not dist:
        return
    for module in modules:
        for buf in module.buffers():
            dist.broadcast(buf, src=0)


def describe(batch_size: int | None) -> dict:
    """How the run is spread over processes, for config.json."""
    w = _env_world_size()
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", str(w)))
    info = {"world_size": w, "nodes": max(1, w // max(per_node, 1)), "processes_per_node": per_node}
    if batch_size is not None:
        sizes = [shard_rows(batch_size, r, w)[1] - shard_rows(batch_size, r, w)[0] for r in range(w)]
        info.update({
            "global_batch_size": batch_size,
            "per_rank_batch_size": sizes[0] if len(set(sizes)) == 1 else sizes,
            "lr_scaling": "none: --batch-size is the global batch, split over the ranks, so --lr means "
                          "what it means in one process",
        })
    return info


# --- the rows of a global batch that this rank trains on ------------------------------------
# The shard and the batch noise helpers live in connlab.data.global_batch (they know no process
# group, so data and model code may use them); they are re-exported here for the trainer.

def local_shard(global_rows: int) -> tuple[BatchShard, float]:
    """This rank's shard of a global batch and the weight of its mean loss, ``W·b_r/b``.

    A rank left without rows (a last batch smaller than W) borrows row 0 with weight 0:
    it must still run forward and backward, since DDP's gradient averaging is collective.
    """
    w = world_size()
    start, stop = shard_rows(global_rows, rank(), w)
    if start == stop:
        return BatchShard(global_rows, 0, 1), 0.0
    return BatchShard(global_rows, start, stop), w * (stop - start) / global_rows


# --- the model under DDP -------------------------------------------------------------------

class LossModule(torch.nn.Module):
    """``loss_fn(model, batch, generator)`` as one module.

    DDP must see the whole loss as its forward: a loss function may call any method of the
    model (``model.loss(...)``), not only ``model(...)``, and DDP's gradient hooks are set
    up in its forward.
    """

    def __init__(self, model: torch.nn.Module, loss_fn):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, batch: tuple[torch.Tensor, ...], generator: torch.Generator) -> torch.Tensor:
        return self.loss_fn(self.model, batch, generator)


def data_parallel_loss(model: torch.nn.Module, loss_fn, device: torch.device) -> torch.nn.Module:
    """The loss of ``model`` wrapped in DDP; its parameters start as rank 0's (DDP broadcasts them)."""
    ids = None
    if device.type == "cuda":
        ids = [torch.cuda.current_device() if device.index is None else device.index]
    return DistributedDataParallel(LossModule(model, loss_fn), device_ids=ids)


# --- per-rank randomness and the test-only kill hook -----------------------------------------

def seed_rank_rng(seed: int, step: int) -> None:
    """Give each rank its own global RNG stream (dropout masks) from (seed, rank, step).

    Without it every rank would draw the same dropout masks for its own, different rows.
    Called by ``fit`` only with W > 1; one process keeps its checkpointed RNG state.
    """
    torch.manual_seed(((seed * 1_000_003 + step) * 65_537 + rank()) % 2**63)


def kill_hook_from_env():
    """Test only: with ``CONNLAB_TEST_KILL_RANK_AT_STEP=R:S`` a function of the step that makes rank R
    SIGKILL itself after step S; None (nothing to call per step) when the variable is not set."""
    spec = os.environ.get(KILL_HOOK)
    if not spec:
        return None
    r, s = (int(v) for v in spec.split(":"))

    def hook(step: int) -> None:
        if step == s and rank() == r:
            print(f"{KILL_HOOK}: rank {r} kills itself after step {s}", file=sys.__stderr__, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def kill_hook(step: int) -> None:
    """``kill_hook_from_env()`` applied to one step (reads the environment at each call)."""
    hook = kill_hook_from_env()
    if hook is not None:
        hook(step)


# --- the command line: quiet followers, one-line failures ------------------------------------

def quiet_followers() -> None:
    """Ranks other than 0 print nothing to stdout (tables, summaries would repeat W times)."""
    if not is_main():
        sys.stdout = open(os.devnull, "w")


def failure_message(err: BaseException) -> str | None:
    """A one-line description of a distributed failure (a peer died, a timeout), or None."""
    if _env_world_size() <= 1:
        return None
    if isinstance(err, StoppedByLauncher):
        text = str(err)
    else:
        # lazy: torch.distributed is loaded only under torchrun
        import torch.distributed as dist

        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        first = re.sub(r"^\[[^\]]*\]\s*", "", first).split(". ")[0][:160]  # drop gloo's "[file.cc:537] "
        markers = ("gloo", "nccl", "connection", "timed out", "timeout", "peer", "socket", "store")
        if not (isinstance(err, getattr(dist, "DistError", ())) or any(m in first.lower() for m in markers)):
            return None
        text = f"lost contact with another rank ({first})"
    return f"rank {int(os.environ.get('RANK', '0'))} of {_env_world_size()}: {text}"
