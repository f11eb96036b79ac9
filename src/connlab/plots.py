"""Figures. matplotlib is imported lazily (Agg backend), so the CLI starts fast.

``save_figure`` is the one way a figure reaches the disk: under torchrun only rank 0 writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from connlab.checkpoint import atomic_write

if TYPE_CHECKING:
    import torch


def pyplot():
    """``matplotlib.pyplot`` with the file-only Agg backend, imported on first use."""
    # lazy: matplotlib costs ~0.5 s
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


_plt = pyplot  # the old private name


def save_figure(fig, path: Path, dpi: int) -> Path:
    """Write ``fig`` to ``path`` (rank 0 only, through ``atomic_write``: never through a link) and close it."""
    path = Path(path)
    try:
        atomic_write(path, lambda f: fig.savefig(f, dpi=dpi, format=path.suffix.lstrip(".") or "png"))
    finally:
        pyplot().close(fig)
    return path


def image_rows(rows: list[tuple[str, torch.Tensor]], path: Path, title: str | None = None) -> Path:
    """A grid of 28x28 images, one labelled row per entry; images (N, 1, H, W) in [0, 1]."""
    plt = pyplot()
    n = max(len(images) for _, images in rows)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.0 * n + 1.6, 1.05 * len(rows) + (0.4 if title else 0)),
                             squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(n):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(images):
                ax.imshow(images[c, 0].detach().float().cpu().numpy(), cmap="gray", vmin=0, vmax=1)
        axes[r][0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=80)


# connlab.metrics.psnr_per_image's PSNR of an image identical to its target (its MSE is clamped at 1e-10)
IDENTICAL_PSNR = 100.0


def curves(series: dict[str, tuple[list[float], list[float]]], path: Path, xlabel: str, ylabel: str,
           title: str | None = None, logy: bool = False, styles: dict[str, str] | None = None,
           ycap: float | None = None) -> Path:
    """Line plot of named (x, y) series on one axis.

    ``ycap``: a value that stands for "identical" rather than a measurement (a PSNR axis gets
    ``IDENTICAL_PSNR`` by default); points at it would flatten every curve, so the axis stops just above the
    largest value below it and those points sit on the top edge, marked and labelled.
    """
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, (styles or {}).get(name, "-o"), label=name, markersize=3)
    if ycap is None and ylabel.startswith("PSNR"):
        ycap = IDENTICAL_PSNR
    if ycap is not None:
        cap_axis(ax, series, ycap)
    if title:
        ax.set_title(title, fontsize=10)
    finish_axes(ax, xlabel, ylabel, logy=logy)
    fig.tight_layout()
    return save_figure(fig, path, dpi=90)


def finish_axes(ax, xlabel: str | None, ylabel: str | None, *, logy: bool = False, legend: int | None = 8) -> None:
    """The lab's plot style for one axis: labels, optional log y, a light grid, a legend of font size ``legend``."""
    if xlabel:
        ax.set_xlabel(xlabel)
    if ylabel:
        ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=legend)


def cap_axis(ax, series: dict[str, tuple[list[float], list[float]]], cap: float) -> None:
    """Stop the y axis just above the largest finite value below ``cap``; points at or above it go on the top
    edge as open triangles, with a note saying what they are. Nothing changes when no point reaches ``cap``."""
    import math

    ys = [y for _, values in series.values() for y in values if isinstance(y, (int, float)) and math.isfinite(y)]
    below = [y for y in ys if y < cap]
    if not below or len(below) == len(ys):
        return
    low, high = min(below), max(below)
    margin = 0.08 * ((high - low) or 1.0)
    top = high + margin
    ax.set_ylim(low - margin, top)
    for xs, values in series.values():
        edge = [x for x, y in zip(xs, values) if isinstance(y, (int, float)) and y >= cap]
        if edge:
            ax.plot(edge, [top] * len(edge), "^", mfc="none", color="gray", markersize=7, clip_on=False)
    ax.annotate(f"△ on the top edge: {cap:g}, an identical image (off this axis)", xy=(0.99, 0.02),
                xycoords="axes fraction", ha="right", va="bottom", fontsize=7, color="gray")
