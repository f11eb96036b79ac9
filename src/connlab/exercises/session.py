"""What every exercise notebook sets up first: its size, device and output folder, and a way to show a figure."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import NamedTuple

import torch

from connlab.errors import UserError
from connlab.train import pick_device

SIZES = ("tiny", "small", "full")  # tiny: seconds (the tests); small: minutes on 2 CPU cores; full: a GPU


class Session(NamedTuple):
    size: str
    device: torch.device
    out: Path
    dataset: str


def start(name: str) -> Session:
    """The notebook's settings, from ``CONNLAB_NB_SIZE`` (default ``small``) and ``CONNLAB_NB_OUT``.

    Seeds torch's global generator (the networks' initial weights) so a rerun starts alike.
    """
    size = os.environ.get("CONNLAB_NB_SIZE", "small")
    if size not in SIZES:
        raise UserError(f"CONNLAB_NB_SIZE={size!r}: choose one of {', '.join(SIZES)}")
    device = pick_device()  # a GPU when there is one
    out = Path(os.environ.get("CONNLAB_NB_OUT", "runs/notebooks")) / f"{name}-{size}-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    dataset = "mnist" if size == "full" else "mnist-embedded"  # embedded: 10,000 real digits shipped with the lab
    torch.manual_seed(0)
    print(f"size {size}, device {device}, files under {out}")
    return Session(size, device, out, dataset)


def show(path: Path) -> None:
    """Show a saved figure in the notebook (outside Jupyter: print where it is)."""
    # lazy: IPython exists only inside a notebook kernel
    from IPython import get_ipython
    from IPython.display import Image, display

    if get_ipython() is None:
        print(f"figure: {path}")
        return
    display(Image(filename=str(path)))
