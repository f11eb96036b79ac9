"""Noise for a global batch split over ranks: each rank draws the whole batch's noise, keeps its rows.

Under data-parallel training (``connlab.runtime.distributed``) every rank trains on a shard of
each global batch. A loss function draws its noise through ``batch_randn`` / ``batch_rand`` /
``batch_randint``: inside ``batch_shard(shard)`` they draw the noise of the *whole* global batch
from the shared generator and keep the shard's rows, so every rank's generator stays in step and
the run is the single-process run. Outside a shard they are exactly ``torch.randn`` /
``torch.rand`` / ``torch.randint``.

This module knows no process group: the trainer says which rows are this rank's (``BatchShard``),
so data and model code (``connlab.data.noise``, the latent autoencoder) may use it.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class BatchShard:
    """Rows ``[start, stop)`` of a global batch of ``rows`` rows."""

    rows: int
    start: int
    stop: int


_SHARD: ContextVar[BatchShard | None] = ContextVar("connlab_batch_shard", default=None)


def shard_rows(global_rows: int, r: int, w: int) -> tuple[int, int]:
    """Rank r's contiguous slice ``[start, stop)`` of a global batch: sizes differ by at most one."""
    return global_rows * r // w, global_rows * (r + 1) // w


@contextlib.contextmanager
def batch_shard(shard: BatchShard | None):
    """Within this block, ``batch_rand*`` draw a global batch's noise and keep ``shard``'s rows.

    ``None`` (one process) changes nothing.
    """
    if shard is None:
        yield None
        return
    token = _SHARD.set(shard)
    try:
        yield shard
    finally:
        _SHARD.reset(token)


def batch_rows(local_rows: int) -> int:
    """Rows of the global batch whose local part has ``local_rows`` rows (``local_rows`` outside a shard)."""
    shard = _SHARD.get()
    if shard is None:
        return local_rows
    assert local_rows == shard.stop - shard.start, (
        f"noise for {local_rows} rows drawn inside a batch shard of {shard.stop - shard.start} rows")
    return shard.rows


def own_rows(x: torch.Tensor) -> torch.Tensor:
    """This rank's rows of a tensor drawn for the whole global batch (``x`` itself outside a shard)."""
    shard = _SHARD.get()
    return x if shard is None else x[shard.start:shard.stop]


def batch_randn(shape, *, generator=None, device=None, dtype=None) -> torch.Tensor:
    """``torch.randn(shape)`` for this rank's rows of a global batch; ``shape[0]`` is the local batch."""
    full = (batch_rows(shape[0]), *shape[1:])
    return own_rows(torch.randn(full, generator=generator, device=device, dtype=dtype))


def batch_rand(shape, *, generator=None, device=None, dtype=None) -> torch.Tensor:
    """``torch.rand(shape)`` for this rank's rows of a global batch; ``shape[0]`` is the local batch."""
    full = (batch_rows(shape[0]), *shape[1:])
    return own_rows(torch.rand(full, generator=generator, device=device, dtype=dtype))


def batch_randint(low: int, high: int, shape, *, generator=None, device=None) -> torch.Tensor:
    """``torch.randint(low, high, shape)`` for this rank's rows of a global batch."""
    full = (batch_rows(shape[0]), *shape[1:])
    return own_rows(torch.randint(low, high, full, generator=generator, device=device))
