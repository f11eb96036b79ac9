"""The experiments' one "train variants x seeds, collect mean ± spread" helper.

Every comparison in the lab trains several variants of a network (skip = none / concat / add,
plain vs residual at each depth, RNN vs GRU at each length, ...) with the same budget, some over
several seeds.  ``train_variant`` is one of them: seed, build, train with the one loop in
``out/variants/NAME`` (continuing its checkpoint under ``--resume``).  ``over_seeds`` repeats a
variant over the config's seeds, and ``mean_spread`` reduces the per-seed records to the mean
and sample standard deviation the verdict rules compare.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import torch.nn.functional as F

from connlab.data import load_dataset, to_unit
from connlab.metrics import mean_std
from connlab.runs import resumable
from connlab.train import fit, pick_device, seed_everything


def load_images(cfg):
    """The device a run trains on and its image data set (``DataSettings``), already on that device."""
    device = pick_device(cfg.device)
    return device, load_dataset(cfg.dataset, cfg.data_dir, cfg.limit).to(device)


def classification_loss(model, batch, generator):
    """Cross-entropy of a digit classifier on a batch (uint8 images, labels); the trainer's ``loss_fn``."""
    images, labels = batch
    return F.cross_entropy(model(to_unit(images)).float(), labels)


def train_variant(cfg, out: Path, name: str, build: Callable, loss_fn, data: tuple, device, *, model_config: dict,
                  seed: int | None = None, evaluate=None, resume: bool = False, label: str | None = None,
                  early_stopping=None, **recipe):
    """Seed (``seed``, default ``cfg.seed``), build the network with ``build()`` and train it with
    ``cfg.train_config(seed=..., **recipe)`` in ``out/variants/NAME`` (``early_stopping``: a
    ``connlab.train.EarlyStopping`` rule on one of ``evaluate``'s numbers); returns (model, fit's result)."""
    seed = cfg.seed if seed is None else seed
    seed_everything(seed)
    model = build().to(device)
    folder = Path(out) / "variants" / name
    result = fit(model, loss_fn, data, cfg.train_config(seed=seed, **recipe), folder, model_config=model_config,
                 evaluate=evaluate, resume=resumable(folder, resume), label=label or name,
                 early_stopping=early_stopping)
    return model, result


def over_seeds(names: Iterable[str], seeds: Iterable[int], train_one: Callable[[str, int], dict]) -> dict:
    """``train_one(name, seed) -> record`` for every variant and seed: {name: [record per seed]}."""
    seeds = list(seeds)
    return {name: [train_one(name, seed) for seed in seeds] for name in names}


def mean_spread(records: list[dict], keys: Iterable[str]) -> dict:
    """{key: mean, key_std: sample std (0 for one seed)} over the per-seed ``records``."""
    out = {}
    for key in keys:
        out[key], out[f"{key}_std"] = mean_std([r[key] for r in records])
    return out
