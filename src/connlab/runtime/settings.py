"""What every training run is given besides its recipe's details, declared once and torch-free.

``TrainConfig`` (``connlab.train``) is a ``RunSettings`` and a ``Speed``; the training commands'
flags (``connlab.experiments.common.TrainingSettings``) take their defaults from both, so
``connlab CMD --help`` shows them without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunSettings:
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"           # auto: cuda, then mps, then cpu (connlab.train.pick_device)
    checkpoint_every: int = 500    # steps; a checkpoint is also written at every epoch end
