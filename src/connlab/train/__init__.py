"""The one trainer of the lab: ``fit`` (``loop.py``) and the small pieces it calls.

- ``config``: ``TrainConfig``, ``TrainResult``, devices, seeds, the per-epoch shuffle, the LR schedule;
- ``state``: what a checkpoint holds (snapshot / restore) and where a resumed run picks up;
- ``callbacks``: progress bar, NaN guard, epoch evaluation and log, early stopping, test-only step hooks;
- ``loop``: ``fit``, the step (eager, DDP or CUDA graph) and the epoch.
"""

from connlab.runtime.speed import PRECISIONS, check_speed_settings
from connlab.train.callbacks import EarlyStopping
from connlab.train.config import (
    LossFn, TrainConfig, TrainingDiverged, TrainResult, epoch_permutation, pick_device, seed_everything,
)
from connlab.train.loop import fit

__all__ = [
    "PRECISIONS", "EarlyStopping", "LossFn", "TrainConfig", "TrainResult", "TrainingDiverged", "check_speed_settings",
    "epoch_permutation", "fit", "pick_device", "seed_everything",
]
