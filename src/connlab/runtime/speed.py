"""Speed settings, resolved once: the user's switches (auto / on / off) → what runs on this device.

The trainer (``connlab.train``: ``TrainConfig`` is a ``Speed``) and the samplers
(``connlab.sampling.generate``) take the same switches, declared once here (default, choices and
what ``auto`` means, ``HELP``), with the same flags and the same checks; each resolves them once,
for its device and its job, into a ``ResolvedSpeed`` of plain booleans the rest of the code reads.

| switch          | ``auto`` when training                      | ``auto`` when sampling            |
|-----------------|---------------------------------------------|-----------------------------------|
| precision       | bf16 autocast on CUDA, fp32 elsewhere       | the same                          |
| compile         | off (compile + capture cost more than a     | off (the same for sampling jobs)  |
|                 | lecture-sized run saves; ``on`` for long    |                                   |
|                 | runs — benchmarks/RESULTS.md, H200 rows)    |                                   |
| channels_last   | on (NHWC: oneDNN / cuDNN's fast kernels)    | on                                |
| cuda_graph      | on CUDA in one process                      | on CUDA                           |
| malloc_cache    | on CPU (``connlab.runtime.cpu_memory``)     | off (no step-after-step reuse)    |
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from connlab.errors import UserError

PRECISIONS = ("auto", "fp32", "bf16")
SWITCHES = ("compile", "channels_last", "cuda_graph", "malloc_cache")
SWITCH = ("auto", "on", "off")
PURPOSES = ("train", "sample")

# The flags' help: what ``auto`` resolves to (the table above; ``resolve`` below is its code).
HELP = {
    "precision": "auto: bf16 autocast on CUDA, fp32 elsewhere",
    "compile": "torch.compile the model (auto: off; its compile time pays only for long runs)",
    "channels_last": "NHWC memory format for convolutions (auto: on)",
    "cuda_graph": "replay each step (training) or each deterministic DDIM loop (sampling) as one CUDA graph "
                  "(auto: on CUDA, single process)",
    "malloc_cache": "keep memory freed by a training step for the next one instead of page-faulting it in again "
                    "(glibc; auto: on CPU when training)",
}


def check_speed_settings(cfg, switches: tuple[str, ...]) -> None:
    """A UserError unless ``cfg.precision`` is a precision and each named field is auto, on or off."""
    if cfg.precision not in PRECISIONS:
        raise UserError(f"--precision {cfg.precision!r} is not one of {', '.join(PRECISIONS)}")
    for name in switches:
        if getattr(cfg, name) not in ("auto", "on", "off"):
            raise UserError(f"--{name.replace('_', '-')} {getattr(cfg, name)!r} is not one of auto, on, off")


@dataclass(frozen=True)
class ResolvedSpeed:
    """What actually runs: each field is on or off, for one device and one job."""

    bf16: bool
    compile: bool
    channels_last: bool
    cuda_graph: bool
    malloc_cache: bool


@dataclass(frozen=True)
class Speed:
    """The speed switches as the user gave them (the fast path is the default; each turns one part off)."""

    precision: str = "auto"
    compile: str = "auto"
    channels_last: str = "auto"
    cuda_graph: str = "auto"
    malloc_cache: str = "auto"

    def __post_init__(self):
        check_speed_settings(self, SWITCHES)

    @classmethod
    def of(cls, cfg) -> "Speed":
        """The switches of any config that has these fields (``TrainConfig``, an experiment's config)."""
        return cls(**{name: getattr(cfg, name) for name in ("precision", *SWITCHES) if hasattr(cfg, name)})

    def resolve(self, device, purpose: str = "train", distributed: bool = False) -> ResolvedSpeed:
        """The switches for ``device`` (a torch.device or its name) and ``purpose`` (train or sample);
        a UserError for impossible ones."""
        assert purpose in PURPOSES, purpose
        device = torch.device(device)
        cuda = device.type == "cuda"
        if self.cuda_graph == "on" and not cuda:
            raise UserError(f"--cuda-graph on needs a CUDA device, not {device.type}")
        if self.cuda_graph == "on" and distributed:
            raise UserError("--cuda-graph on is for one process; under torchrun use --cuda-graph auto or off")
        # the ``auto`` of each switch, as HELP states it
        training = purpose == "train"
        return ResolvedSpeed(
            bf16=self.precision == "bf16" or (self.precision == "auto" and cuda),
            compile=self.compile == "on",  # auto = off for both jobs: see the table above
            channels_last=self.channels_last != "off",
            cuda_graph=cuda and not distributed and self.cuda_graph != "off",
            malloc_cache=self.malloc_cache == "on" or (self.malloc_cache == "auto" and training
                                                       and device.type == "cpu"),
        )
