"""How much memory a device has free, and the one-line refusal of work that cannot fit in it.

Used for work whose size the user picks directly (the ladder's stored N x (T+1) stack, the number of
samples to draw) and that would otherwise grow until the machine kills the process.
"""

from __future__ import annotations

import os

import torch

from connlab.errors import UserError


def available_bytes(device: torch.device | str) -> int | None:
    """Free memory on ``device`` (CUDA: the driver's free memory; CPU: MemAvailable), or None if unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "cpu":
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    return None


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_fits(needed: int, device: torch.device | str, what: str, fix: str, share: float = 0.8) -> None:
    """A ``UserError`` when ``needed`` bytes are more than ``share`` of what ``device`` has free."""
    free = available_bytes(device)
    if free is not None and needed > share * free:
        raise UserError(f"{what} needs about {gib(needed)}, but {torch.device(device)} has {gib(free)} free; {fix}")
