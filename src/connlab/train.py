"""The one training loop of the lab.

Every experiment hands ``fit`` a model, a loss function and device-resident tensors; the
loop owns everything else: device and precision, the per-epoch shuffle, progress, metrics,
checkpoints, resume and the NaN guard.

- Shuffling: epoch ``e`` uses the permutation drawn from ``seed`` and ``e`` alone, so a run
  resumed mid-epoch sees the same batches in the same order.
- Noise for the loss (corruption, diffusion time steps) comes from one ``torch.Generator``
  on the device whose state is checkpointed, so resume is exact too.
- On CPU, N steps in one go and N/2 + resume give bitwise-identical weights (tested).
- Losses are summed on the device; the host reads them every ``sync_every`` steps only
  (on the CUDA-graph path only at epoch ends and checkpoints).
- CPU path: channels-last convolutions and a heap that keeps freed memory for the next step
  (``connlab.cpu_memory``); ``torch.compile`` stays off (measured slower to pay off here).
- GPU path (the defaults on CUDA, each with a flag to turn it off): bf16 autocast,
  channels-last, ``torch.compile``, fused Adam, and every full-batch step — batch gather,
  noise, forward, backward, optimizer, loss sum — replayed as one CUDA graph
  (``connlab.fastpath``). A last, smaller batch of an epoch runs eagerly.
- Under torchrun (``connlab.distributed``): DDP over the whole loss, each rank on its rows
  of every global batch (``--batch-size`` stays global), noise drawn for the global batch,
  losses averaged over ranks when read; rank 0 alone writes. No CUDA graph there.
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import torch

from connlab import distributed as dp
from connlab.checkpoint import (
    atomic_write_text, list_checkpoints, model_signature, read_checkpoint, save_weights, write_checkpoint,
)
from connlab.cpu_memory import keep_freed_memory
from connlab.errors import UserError
from connlab.fastpath import GraphedStep

PRECISIONS = ("auto", "fp32", "bf16")


def check_speed_settings(cfg, switches: tuple[str, ...]) -> None:
    """A UserError unless ``cfg.precision`` is a precision and each named field is auto, on or off."""
    if cfg.precision not in PRECISIONS:
        raise UserError(f"--precision {cfg.precision!r} is not one of {', '.join(PRECISIONS)}")
    for name in switches:
        if getattr(cfg, name) not in ("auto", "on", "off"):
            raise UserError(f"--{name.replace('_', '-')} {getattr(cfg, name)!r} is not one of auto, on, off")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"        # auto: bf16 autocast on CUDA, fp32 elsewhere
    compile: str = "auto"          # auto: torch.compile on CUDA only; "on" / "off"
    channels_last: str = "auto"    # auto: on (measured faster for the lab's conv nets on CPU); "on" / "off"
    cuda_graph: str = "auto"       # auto: the whole step as one CUDA graph on CUDA (single process); "on" / "off"
    malloc_cache: str = "auto"     # auto: on CPU, keep freed memory for reuse (connlab.cpu_memory); "on" / "off"
    optimizer: str = "adam"        # adam | adamw
    lr_schedule: str = "constant"  # constant | cosine (with linear warm-up)
    warmup_steps: int = 0
    grad_clip: float = 0.0         # 0 = off
    checkpoint_every: int = 500    # steps; a checkpoint is also written at every epoch end
    sync_every: int = 20           # steps between host reads of the loss

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise UserError(f"--lr must be > 0, got {self.lr}")
        check_speed_settings(self, ("compile", "channels_last", "cuda_graph", "malloc_cache"))
        if self.optimizer not in ("adam", "adamw"):
            raise UserError(f"optimizer {self.optimizer!r} is not one of adam, adamw")
        if self.lr_schedule not in ("constant", "cosine"):
            raise UserError(f"lr schedule {self.lr_schedule!r} is not one of constant, cosine")


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; anything else must exist here."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device name (auto, cpu, cuda, cuda:N, mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {name}: MPS is not available on this machine")
    return device


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)


class LossFn(Protocol):
    def __call__(self, model: torch.nn.Module, batch: tuple[torch.Tensor, ...],
                 generator: torch.Generator) -> torch.Tensor: ...


@dataclass
class TrainResult:
    epochs: int
    steps: int
    train_seconds: float
    train_images_per_second: float
    final_train_loss: float
    history: list[dict] = field(default_factory=list)
    resumed_from: str | None = None


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffle of epoch ``epoch``: a function of (seed, epoch) only."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def _lr_lambda(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.lr_schedule == "cosine":
            progress = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
            return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        return 1.0
    return factor


def _progress(total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False, dynamic_ncols=True,
                disable=not sys.stderr.isatty() or not dp.is_main())


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
) -> TrainResult:
    """Train ``model`` on the rows of ``data`` (tensors already on the model's device).

    Writes ``out/metrics.jsonl`` (one line per epoch), ``out/checkpoints/`` and, at the end,
    ``out/model.safetensors`` (and ``out/ema.safetensors`` with ``ema``). With ``resume`` it
    continues from the newest checkpoint in ``out``; a finished run is loaded, not retrained.
    ``evaluate(model)`` runs at each epoch end (model in eval mode, no grad) and its numbers
    join that epoch's metrics line.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device = data[0].device
    n = len(data[0])
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    signature = model_signature(model, model_config)
    ckpt_dir = out / "checkpoints"

    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    use_compile = cfg.compile == "on" or (cfg.compile == "auto" and device.type == "cuda")
    if cfg.cuda_graph == "on" and device.type != "cuda":
        raise UserError(f"--cuda-graph on needs a CUDA device, not {device.type}")
    dp.init_from_env()  # under torchrun: join the job (the CLI has already); nothing in one process
    distributed = dp.world_size() > 1
    if cfg.cuda_graph == "on" and distributed:
        raise UserError("--cuda-graph on is for one process; under torchrun use --cuda-graph auto or off")
    use_graph = device.type == "cuda" and (cfg.cuda_graph == "on" or (cfg.cuda_graph == "auto" and not distributed))
    if cfg.malloc_cache == "on" or (cfg.malloc_cache == "auto" and device.type == "cpu"):
        keep_freed_memory()  # no page faults for activations freed and reallocated every step
    if cfg.channels_last != "off":
        # NHWC lets oneDNN / cuDNN pick their fast convolution kernels; other layers are unaffected
        model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model, dynamic=False) if use_compile else model
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    opt_kwargs = {"fused": True} if device.type == "cuda" else {}
    lr = cfg.lr
    if use_graph:  # a graph replays the optimizer too: its step count and lr must live on the device
        opt_kwargs["capturable"] = True
        lr = torch.tensor(cfg.lr, device=device)
    optimizer = opt_cls(model.parameters(), lr=lr, weight_decay=cfg.weight_decay, **opt_kwargs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg, total_steps))
    generator = torch.Generator(device=device).manual_seed(cfg.seed)

    state = {"step": 0, "history": [], "epoch_loss_sum": 0.0, "epoch_seconds": 0.0, "train_seconds": 0.0}
    resumed_from = None
    existing = list_checkpoints(ckpt_dir)
    if existing and not resume:
        raise UserError(f"{out} already holds checkpoints of a run; pass --resume to continue it or choose another --out")
    if resume:
        if not existing:
            raise UserError(f"--resume: no checkpoint in {ckpt_dir}")
        for stale in ckpt_dir.glob(".tmp-step-*") if dp.is_main() else ():  # writes cut short by a kill
            shutil.rmtree(stale, ignore_errors=True)
        latest = existing[-1]
        state = read_checkpoint(latest, model, signature)
        optimizer.load_state_dict(state["optimizer"])
        if use_graph:
            for group in optimizer.param_groups:  # a loaded lr may be a float or a CPU tensor
                group["lr"] = torch.tensor(float(group["lr"]), device=device)
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"].to("cpu") if device.type == "cpu" else state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if ema is not None and "ema" in state:
            ema.load_state_dict(state["ema"])
        resumed_from = str(latest)

    def snapshot() -> dict:
        return {
            "step": step, "history": history, "epoch_loss_sum": float(dp.mean_over_ranks(loss_sum).item()),
            "epoch_seconds": epoch_seconds, "train_seconds": train_seconds,
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
            **({"ema": ema.state_dict()} if ema is not None else {}),
        }

    step = state["step"]
    history: list[dict] = list(state["history"])
    train_seconds = state["train_seconds"]
    epoch_seconds = state["epoch_seconds"]
    loss_sum = torch.tensor(state["epoch_loss_sum"], device=device)
    ddp_loss = None
    if distributed:
        dp.seed_rank_rng(cfg.seed, step)  # each rank its own dropout masks
        ddp_loss = dp.data_parallel_loss(step_model, loss_fn, device)

    def train_step(batch: tuple[torch.Tensor, ...], shard: dp.BatchShard | None = None, weight: float = 1.0) -> None:
        """Forward, backward, optimizer, loss sum: device work only (the graph records exactly this).

        Under DDP ``batch`` holds this rank's ``shard`` of the global batch and ``weight`` makes
        the ranks' mean of the gradients that of the global batch's mean loss.
        """
        with dp.batch_shard(shard), torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16,
                                                    cache_enabled=False):
            loss = loss_fn(step_model, batch, generator) if ddp_loss is None else ddp_loss(batch, generator) * weight
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip, foreach=device.type != "cpu" or None)
        optimizer.step()
        loss_sum.add_(loss.detach().float())

    graphed = GraphedStep(train_step, data, cfg.batch_size, generator, optimizer.zero_grad) if use_graph else None
    sync_every = cfg.sync_every if graphed is None else 0  # 0: no host reads inside an epoch

    model.train()
    while step < total_steps:
        epoch, first = divmod(step, steps_per_epoch)
        perm = epoch_permutation(n, cfg.seed, epoch).to(device)
        if graphed is not None:
            graphed.start_epoch(perm, first)
        bar = _progress(steps_per_epoch, f"{label} epoch {epoch + 1}/{cfg.epochs}")
        bar.update(first)
        t0 = time.perf_counter()
        images_seen = 0
        for i in range(first, steps_per_epoch):
            rows = min(cfg.batch_size, n - i * cfg.batch_size)
            if graphed is not None and rows == cfg.batch_size:
                graphed.run(i)
            else:
                idx = perm[i * cfg.batch_size:(i + 1) * cfg.batch_size]
                shard, weight = dp.local_shard(len(idx)) if distributed else (None, 1.0)
                if shard is not None:
                    idx = idx[shard.start:shard.stop]
                # once a graph holds the gradient tensors, keep them (zero them instead of freeing)
                optimizer.zero_grad(set_to_none=graphed is None or not graphed.captured)
                train_step(tuple(t[idx] for t in data), shard, weight)
            scheduler.step()
            if ema is not None:
                ema.update()
            step += 1
            dp.kill_hook(step)
            images_seen += rows
            last_of_epoch = i == steps_per_epoch - 1
            if (sync_every and step % sync_every == 0) or last_of_epoch or step % cfg.checkpoint_every == 0:
                mean = dp.mean_over_ranks(loss_sum).item() / (i + 1)
                if not math.isfinite(mean):
                    bar.close()
                    kept = list_checkpoints(ckpt_dir)
                    raise TrainingDiverged(
                        f"training diverged: loss is {mean} by step {step} (epoch {epoch + 1}); "
                        f"last good checkpoint: {kept[-1] if kept else 'none'}"
                    )
                elapsed = time.perf_counter() - t0
                bar.set_postfix(loss=f"{mean:.4f}", img_s=f"{images_seen / max(elapsed, 1e-9):.0f}")
            bar.update(1)
            if step % cfg.checkpoint_every == 0 and not last_of_epoch:
                now = time.perf_counter() - t0
                epoch_seconds += now
                train_seconds += now
                t0, images_seen = time.perf_counter(), 0
                write_checkpoint(ckpt_dir, step, model, snapshot(), signature)
        bar.close()
        now = time.perf_counter() - t0
        epoch_seconds += now
        train_seconds += now
        dp.sync_buffers(model, *([ema.module] if ema is not None else []))  # rank 0's BatchNorm statistics
        line = {"epoch": epoch + 1, "step": step, "train_loss": dp.mean_over_ranks(loss_sum).item() / steps_per_epoch,
                "seconds": round(epoch_seconds, 3),
                "images_per_second": round(n / max(epoch_seconds, 1e-9), 1),
                "lr": float(scheduler.get_last_lr()[0])}
        if evaluate is not None:
            line.update(_evaluate(model, evaluate, use_bf16, device, ema))
        history.append(line)
        if dp.is_main():
            print(f"{label} epoch {epoch + 1}/{cfg.epochs}: " + ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in line.items() if k != "epoch"),
                file=sys.stderr)
        loss_sum.zero_()
        epoch_seconds = 0.0
        write_checkpoint(ckpt_dir, step, model, snapshot(), signature)
        atomic_write_text(out / "metrics.jsonl", "".join(_json_line(h) for h in history))

    save_weights(model, out / "model.safetensors", {"signature": signature})
    if ema is not None:
        save_weights(ema.module, out / "ema.safetensors", {"signature": signature})
    dp.barrier()  # the other ranks may now read what rank 0 wrote
    model.eval()
    images = n * cfg.epochs
    return TrainResult(
        epochs=cfg.epochs, steps=step, train_seconds=round(train_seconds, 3),
        train_images_per_second=round(images / max(train_seconds, 1e-9), 1),
        final_train_loss=history[-1]["train_loss"] if history else float("nan"),
        history=history, resumed_from=resumed_from,
    )


def _evaluate(model, evaluate, use_bf16, device, ema) -> dict:
    model.eval()
    try:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            return evaluate(model)
    finally:
        model.train()


def _json_line(obj: dict) -> str:
    import json

    return json.dumps(obj) + "\n"


def config_dict(cfg) -> dict:
    return asdict(cfg)
