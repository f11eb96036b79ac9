"""``fit``: the one training loop of the lab, top to bottom; the pieces it calls live beside it.

Every experiment hands ``fit`` a model, a loss function and device-resident tensors; the loop
owns everything else: device and precision, the per-epoch shuffle, progress, metrics,
checkpoints, resume and the NaN guard.

- Shuffling: epoch ``e`` uses the permutation drawn from ``seed`` and ``e`` alone, so a run
  resumed mid-epoch sees the same batches in the same order.
- Noise for the loss (corruption, diffusion time steps) comes from one ``torch.Generator``
  on the device whose state is checkpointed, so resume is exact too.
- On CPU, N steps in one go and N/2 + resume give bitwise-identical weights (tested).
- Early stopping (``callbacks.EarlyStopping``, Keras' rule) reads each epoch's metrics line; what it
  has seen is in every checkpoint, so a resumed run stops at the same epoch. The line of the
  epoch it stopped after says so (``"stopped_early": true``) and the last weights are kept.
- Losses are summed on the device; the host reads them every ``sync_every`` steps only
  (on the CUDA-graph path only at epoch ends and checkpoints).
- Speed (``connlab.runtime.speed``, resolved once): on CPU channels-last convolutions and a heap
  that keeps freed memory for the next step; ``torch.compile`` off. On CUDA (each with a flag to
  turn it off): bf16 autocast, channels-last, ``torch.compile``, fused Adam, and every full-batch
  step — batch gather, noise, forward, backward, optimizer, loss sum — replayed as one CUDA graph
  (``connlab.runtime.fastpath``). A last, smaller batch of an epoch runs eagerly.
- Under torchrun (``connlab.runtime.distributed``): DDP over the whole loss, each rank on its rows
  of every global batch (``--batch-size`` stays global), noise drawn for the global batch,
  losses averaged over ranks when read; rank 0 alone writes. No CUDA graph there.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import torch

from connlab.checkpoint import atomic_write_text, model_signature, save_weights, write_checkpoint
from connlab.errors import UserError
from connlab.runtime import distributed as dp
from connlab.runtime.cpu_memory import keep_freed_memory
from connlab.runtime.fastpath import GraphedStep
from connlab.runtime.speed import ResolvedSpeed
from connlab.train import callbacks
from connlab.train.config import LossFn, TrainConfig, TrainResult, epoch_permutation, lr_factor
from connlab.train.state import Parts, TrainState, snapshot, start


def fit(
    model: torch.nn.Module,
    loss_fn: LossFn,
    data: tuple[torch.Tensor, ...],
    cfg: TrainConfig,
    out: Path,
    *,
    model_config: dict | None = None,
    evaluate: Callable[[torch.nn.Module], dict] | None = None,
    ema=None,
    resume: bool = False,
    label: str = "train",
    early_stopping: callbacks.EarlyStopping | None = None,
) -> TrainResult:
    """Train ``model`` on the rows of ``data`` (tensors already on the model's device).

    Writes ``out/metrics.jsonl`` (one line per epoch), ``out/checkpoints/`` and, at the end,
    ``out/model.safetensors`` (and ``out/ema.safetensors`` with ``ema``). With ``resume`` it
    continues from the newest readable checkpoint in ``out``; a finished run is loaded, not
    retrained. ``evaluate(model)`` runs at each epoch end (model in eval mode, no grad) and its
    numbers join that epoch's metrics line; ``early_stopping`` watches one of them.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device = data[0].device
    dp.init_from_env()  # under torchrun: join the job (the CLI has already); nothing in one process
    speed = cfg.speed.resolve(device, "train", distributed=dp.world_size() > 1)
    signature = model_signature(model, model_config)
    step_model = prepare_model(model, speed)
    total_steps = math.ceil(len(data[0]) / cfg.batch_size) * cfg.epochs
    parts = make_parts(model, cfg, speed, device, total_steps, ema)
    state = start(out / "checkpoints", out, resume, parts, signature, device, lr_on_device=speed.cuda_graph)
    state.stopping = early_stopping_state(early_stopping, state, out)
    loop = Loop(cfg, data, out, parts, signature, speed, Stepper(step_model, loss_fn, data, cfg, speed, parts, state),
                callbacks.step_hooks(), label)

    model.train()
    while state.step < loop.total_steps and not state.stopped:
        epoch, first = divmod(state.step, loop.steps_per_epoch)
        loop.train_epoch(state, epoch, first)
        loop.end_epoch(state, epoch, evaluate, early_stopping)
    return loop.finish(state)


def early_stopping_state(rule: callbacks.EarlyStopping | None, state: TrainState, out: Path) -> dict | None:
    """The early-stopping state to go on with: fresh, or the checkpoint's when it was kept with the same rule."""
    if rule is None:
        if state.stopping is not None:
            raise UserError(f"{out}: the run was started with early stopping ({state.stopping['rule']}); "
                            "resume it with the same rule")
        return None
    if state.stopping is None:
        if state.step > 0:
            raise UserError(f"{out}: the run was started without early stopping; resume it without")
        return rule.fresh_state()
    if state.stopping.get("rule") != rule.fresh_state()["rule"]:
        raise UserError(f"{out}: the run was started with early stopping {state.stopping.get('rule')}, "
                        f"not {rule.fresh_state()['rule']}")
    return state.stopping


def prepare_model(model: torch.nn.Module, speed: ResolvedSpeed) -> torch.nn.Module:
    """Apply the resolved speed settings to ``model``; the module the steps call (compiled or not)."""
    if speed.malloc_cache:
        keep_freed_memory()  # no page faults for activations freed and reallocated every step
    if speed.channels_last:
        # NHWC lets oneDNN / cuDNN pick their fast convolution kernels; other layers are unaffected
        model.to(memory_format=torch.channels_last)
    return torch.compile(model, dynamic=False) if speed.compile else model


def make_parts(model: torch.nn.Module, cfg: TrainConfig, speed: ResolvedSpeed, device: torch.device,
               total_steps: int, ema=None) -> Parts:
    """Optimizer, LR schedule and noise generator of a fresh run."""
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    opt_kwargs = {"fused": True} if device.type == "cuda" else {}
    lr = cfg.lr
    if speed.cuda_graph:  # a graph replays the optimizer too: its step count and lr must live on the device
        opt_kwargs["capturable"] = True
        lr = torch.tensor(cfg.lr, device=device)
    optimizer = opt_cls(model.parameters(), lr=lr, weight_decay=cfg.weight_decay, **opt_kwargs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg, total_steps))
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    return Parts(model, optimizer, scheduler, generator, ema)


class Stepper:
    """One optimizer step on batch ``i`` of an epoch: a CUDA-graph replay, or eager (under DDP, this rank's rows)."""

    def __init__(self, step_model: torch.nn.Module, loss_fn: LossFn, data: tuple[torch.Tensor, ...],
                 cfg: TrainConfig, speed: ResolvedSpeed, parts: Parts, state: TrainState):
        self.step_model, self.loss_fn, self.data, self.cfg, self.speed = step_model, loss_fn, data, cfg, speed
        self.parts, self.loss_sum = parts, state.loss_sum  # the graph records this very tensor: zeroed in place
        self.device = data[0].device
        self.distributed = dp.world_size() > 1
        self.ddp_loss = None
        if self.distributed:
            dp.seed_rank_rng(cfg.seed, state.step)  # each rank its own dropout masks
            self.ddp_loss = dp.data_parallel_loss(step_model, loss_fn, self.device)
        self.graphed = (GraphedStep(self.device_step, data, cfg.batch_size, parts.generator,
                                    parts.optimizer.zero_grad) if speed.cuda_graph else None)
        self.perm: torch.Tensor | None = None

    def start_epoch(self, perm: torch.Tensor, first: int) -> None:
        self.perm = perm
        if self.graphed is not None:
            self.graphed.start_epoch(perm, first)

    def run(self, i: int, rows: int) -> None:
        if self.graphed is not None and rows == self.cfg.batch_size:
            self.graphed.run(i)
            return
        idx = self.perm[i * self.cfg.batch_size:(i + 1) * self.cfg.batch_size]
        shard, weight = dp.local_shard(len(idx)) if self.distributed else (None, 1.0)
        if shard is not None:
            idx = idx[shard.start:shard.stop]
        # once a graph holds the gradient tensors, keep them (zero them instead of freeing)
        self.parts.optimizer.zero_grad(set_to_none=self.graphed is None or not self.graphed.captured)
        self.device_step(tuple(t[idx] for t in self.data), shard, weight)

    def device_step(self, batch: tuple[torch.Tensor, ...], shard: dp.BatchShard | None = None,
                    weight: float = 1.0) -> None:
        """Forward, backward, optimizer, loss sum: device work only (the graph records exactly this).

        Under DDP ``batch`` holds this rank's ``shard`` of the global batch and ``weight`` makes
        the ranks' mean of the gradients that of the global batch's mean loss.
        """
        generator = self.parts.generator
        with dp.batch_shard(shard), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.speed.bf16,
                                                    cache_enabled=False):
            if self.ddp_loss is None:
                loss = self.loss_fn(self.step_model, batch, generator)
            else:
                loss = self.ddp_loss(batch, generator) * weight
        loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.parts.model.parameters(), self.cfg.grad_clip,
                                           foreach=self.device.type != "cpu" or None)
        self.parts.optimizer.step()
        self.loss_sum.add_(loss.detach().float())

    @property
    def sync_every(self) -> int:
        return self.cfg.sync_every if self.graphed is None else 0  # 0: no host reads inside an epoch


class Loop:
    """The fixed parts of one ``fit`` call and the epoch it runs, end and finishes with."""

    def __init__(self, cfg: TrainConfig, data: tuple[torch.Tensor, ...], out: Path, parts: Parts, signature: dict,
                 speed: ResolvedSpeed, stepper: Stepper, hooks: list, label: str):
        self.cfg, self.out, self.parts, self.signature, self.speed = cfg, out, parts, signature, speed
        self.stepper, self.hooks, self.label = stepper, hooks, label
        self.device, self.n = data[0].device, len(data[0])
        self.ckpt_dir = out / "checkpoints"
        self.steps_per_epoch = math.ceil(self.n / cfg.batch_size)
        self.total_steps = self.steps_per_epoch * cfg.epochs

    def checkpoint(self, state: TrainState) -> None:
        write_checkpoint(self.ckpt_dir, state.step, self.parts.model, snapshot(state, self.parts), self.signature)

    def train_epoch(self, state: TrainState, epoch: int, first: int) -> None:
        """Steps ``first`` .. end of epoch ``epoch``, with progress, the NaN guard and checkpoints inside."""
        cfg, bs = self.cfg, self.cfg.batch_size
        self.stepper.start_epoch(epoch_permutation(self.n, cfg.seed, epoch).to(self.device), first)
        sync_every = self.stepper.sync_every
        bar = callbacks.Progress(self.steps_per_epoch, first, f"{self.label} epoch {epoch + 1}/{cfg.epochs}")
        t0, images = time.perf_counter(), 0
        try:
            for i in range(first, self.steps_per_epoch):
                rows = min(bs, self.n - i * bs)
                self.stepper.run(i, rows)
                self.parts.scheduler.step()
                if self.parts.ema is not None:
                    self.parts.ema.update()
                state.step += 1
                for hook in self.hooks:
                    hook(state.step)
                images += rows
                last_of_epoch = i == self.steps_per_epoch - 1
                due = state.step % cfg.checkpoint_every == 0
                if (sync_every and state.step % sync_every == 0) or last_of_epoch or due:
                    mean = dp.mean_over_ranks(state.loss_sum).item() / (i + 1)
                    callbacks.check_finite(mean, state.step, epoch, self.ckpt_dir)
                    bar.show(mean, images, time.perf_counter() - t0)
                bar.advance()
                if due and not last_of_epoch:  # the write is not training time
                    state.lap(time.perf_counter() - t0)
                    self.checkpoint(state)
                    t0, images = time.perf_counter(), 0
        finally:
            bar.close()
        state.lap(time.perf_counter() - t0)

    def end_epoch(self, state: TrainState, epoch: int, evaluate: Callable | None,
                  early_stopping: callbacks.EarlyStopping | None = None) -> None:
        """The epoch's metrics line (evaluation included), early stopping, a checkpoint, ``metrics.jsonl``."""
        ema = self.parts.ema
        dp.sync_buffers(self.parts.model, *([ema.module] if ema is not None else []))  # rank 0's BatchNorm stats
        line = {"epoch": epoch + 1, "step": state.step,
                "train_loss": dp.mean_over_ranks(state.loss_sum).item() / self.steps_per_epoch,
                "seconds": round(state.epoch_seconds, 3),
                "images_per_second": round(self.n / max(state.epoch_seconds, 1e-9), 1),
                "lr": float(self.parts.scheduler.get_last_lr()[0])}
        if evaluate is not None:
            line.update(callbacks.evaluate_epoch(self.parts.model, evaluate, self.speed.bf16, self.device))
        if early_stopping is not None and early_stopping.update(state.stopping, line):
            line["stopped_early"] = True  # the last epoch: no `patience` epochs improved on the best
        state.history.append(line)
        callbacks.log_epoch(self.label, self.cfg.epochs, line)
        state.loss_sum.zero_()
        state.epoch_seconds = 0.0
        self.checkpoint(state)
        atomic_write_text(self.out / "metrics.jsonl", callbacks.metrics_text(state.history))

    def finish(self, state: TrainState) -> TrainResult:
        """Final weights (and EMA weights); every rank waits until rank 0 has written them."""
        signature = {"signature": self.signature}
        save_weights(self.parts.model, self.out / "model.safetensors", signature)
        if self.parts.ema is not None:
            save_weights(self.parts.ema.module, self.out / "ema.safetensors", signature)
        dp.barrier()  # the other ranks may now read what rank 0 wrote
        self.parts.model.eval()
        epochs = math.ceil(state.step / self.steps_per_epoch)  # fewer than cfg.epochs when stopped early
        images = self.n * epochs
        return TrainResult(
            epochs=epochs, steps=state.step, train_seconds=round(state.train_seconds, 3),
            train_images_per_second=round(images / max(state.train_seconds, 1e-9), 1),
            final_train_loss=state.history[-1]["train_loss"] if state.history else float("nan"),
            history=state.history, resumed_from=state.resumed_from,
            stopped_epoch=state.stopping.get("stopped_epoch") if state.stopping is not None else None,
        )
