"""Diffusion math: schedules and the forward process, DDPM/DDIM samplers, EMA.

The network lives in ``connlab.models.diffusion_unet``; nothing here knows its layers.
"""

from connlab.diffusion.ema import EMA
from connlab.diffusion.samplers import (
    ddim_step,
    ddim_timesteps,
    ddim_x0_path,
    ddpm_step,
    guided,
    sample_ddim,
    sample_ddpm,
)
from connlab.diffusion.schedule import PREDICTIONS, NoiseSchedule, diffusion_loss

__all__ = [
    "EMA",
    "NoiseSchedule",
    "PREDICTIONS",
    "ddim_step",
    "ddim_timesteps",
    "ddim_x0_path",
    "ddpm_step",
    "diffusion_loss",
    "guided",
    "sample_ddim",
    "sample_ddpm",
]
