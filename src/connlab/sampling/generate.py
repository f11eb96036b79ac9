"""A trained ``connlab diffusion`` run, ready to sample: its EMA U-Net, its process and (latent space) its decoder.

| code name     | symbol              | meaning                                                          |
|---------------|---------------------|------------------------------------------------------------------|
| ``x_T``       | x_T ~ N(0, I)       | the sampler's start: pure noise in the space the U-Net denoises  |
| ``shape``     | (C, H, W)           | that space: (1, 28, 28) pixels in [−1, 1], or (4, 7, 7) latents  |
| ``trajectory``| x_T, …, x_0         | every state the sampler visits, mapped to images                 |
| ``guidance``  | w (Ho & Salimans)   | classifier-free guidance weight, class-conditional runs only;    |
|               |                     | None: the run's own default (``cfg.guidance``, set by its preset) |

The sampler states live in the U-Net's space; ``to_images`` is the one place they become
[0, 1] images: ``signed_to_unit`` for pixels, the autoencoder's decoder for latents (Rombach
et al. 2022). DDPM and DDIM are the step rules of ``connlab.diffusion.samplers``; this
class only loads the weights, checks the user's settings, runs the samplers fast
(``connlab.runtime.speed.Speed``) and draws figures.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict
from pathlib import Path

import torch

from connlab import plots
from connlab.checkpoint import load_weights, model_signature
from connlab.data import signed_to_unit
from connlab.diffusion import guided, sample_ddim, sample_ddpm
from connlab.errors import UserError
from connlab.models.diffusion_unet import DiffusionUNet
from connlab.models.latent_ae import LatentAEConfig, LatentAutoencoder
from connlab.runs import read_run
from connlab.runtime.fastpath import GraphedCall
from connlab.runtime.speed import Speed

TRAJECTORY_SAMPLES = 6
TRAJECTORY_COLUMNS = 10


def plain_config(config) -> dict:
    """A config dataclass as JSON would give it back (tuples → lists), for weight signatures."""
    return json.loads(json.dumps(asdict(config)))


class Generator:
    """A trained run's EMA U-Net (and decoder, in latent space), ready to sample digits."""

    def __init__(self, cfg, model, decoder, device, speed: Speed = Speed()):
        device = torch.device(device)
        fast = speed.resolve(device, "sample")
        self.cfg, self.model, self.decoder, self.device = cfg, model, decoder, device
        self.schedule = cfg.noise_schedule().to(device)
        self.shape = (1, 28, 28) if cfg.space == "pixel" else (cfg.latent_channels, 7, 7)
        self.bf16 = fast.bf16
        if fast.channels_last:
            model.to(memory_format=torch.channels_last)  # oneDNN / cuDNN pick their NHWC kernels
        self.net = torch.compile(model, dynamic=False) if fast.compile else model
        self.use_graph = fast.cuda_graph
        self.graphed: dict[tuple, object] = {}  # (steps, n, guidance) -> GraphedCall of that DDIM loop

    @classmethod
    def from_run(cls, run: Path, device, speed: Speed, config_type) -> "Generator":
        """The run folder's EMA U-Net (and decoder); ``config_type`` is its experiment's config dataclass
        (passed in by the caller: this module sits below the experiments)."""
        cfg = read_run(run, "diffusion", config_type).config
        weights = Path(run) / "ema.safetensors"
        if not weights.is_file():
            raise UserError(f"{run}: no ema.safetensors — training did not finish (continue with --resume)")
        unet_cfg = cfg.unet_config()
        model = DiffusionUNet(unet_cfg)
        load_weights(model, weights, model_signature(model, plain_config(unet_cfg)))
        decoder = None
        if cfg.space == "latent":
            ae_cfg = LatentAEConfig(latent_channels=cfg.latent_channels)
            decoder = LatentAutoencoder(ae_cfg)
            load_weights(decoder, Path(run) / "autoencoder" / "autoencoder.safetensors",
                         model_signature(decoder, asdict(ae_cfg)))
            decoder = decoder.to(device).eval()
        return cls(cfg, model.to(device).eval(), decoder, device, speed)

    def check(self, sampler: str, steps: int | None, guidance: float | None) -> int:
        """The number of steps to run, or a UserError for settings this run cannot sample."""
        T = self.cfg.timesteps
        if steps is not None and not 1 <= steps <= T:
            raise UserError(f"--steps must be in [1, {T}] (the run's T), got {steps}")
        if sampler == "ddpm":
            if steps is not None and steps != T:
                raise UserError(f"DDPM runs all T = {T} steps; use --sampler ddim for --steps {steps}")
            steps = T
        if guidance is not None and not self.cfg.class_cond:
            raise UserError("--guidance needs a class-conditional run (train with --class-cond)")
        return min(50, T) if steps is None else steps

    def guidance(self, guidance: float | None) -> float | None:
        """The w to sample with: the one asked for, else the run's default (None for unconditional runs)."""
        return self.cfg.guidance if guidance is None else guidance

    def model_fn(self, n: int, guidance: float | None):
        def net(x, t, y=None):  # fp32 out, also under bf16 autocast: the sampler's update stays fp32
            return self.net(x, t, y).float()

        if not self.cfg.class_cond:
            return lambda x, t: net(x, t)
        y = torch.arange(n, device=self.device) % 10  # a balanced set of labels
        if not guidance:  # w = 0 is the conditional model alone: skip guided's second, unconditional pass
            return lambda x, t: net(x, t, y)
        return guided(net, y, guidance)

    def to_images(self, x: torch.Tensor) -> torch.Tensor:
        """Sampler states (B, *shape) → images in [0, 1], (B, 1, 28, 28)."""
        if self.decoder is None:
            return signed_to_unit(x.float())
        return torch.cat([self.decoder.decode(part) for part in x.split(1000)])

    def sample(self, sampler: str, steps: int | None, num: int, eta: float = 0.0, guidance: float | None = None,
               seed: int = 0, trajectory: bool = False, x_T: torch.Tensor | None = None, chunk: int = 500):
        """``num`` digits in [0, 1] (num, 1, 28, 28); with ``trajectory`` the states
        (steps + 1, num, 1, 28, 28) from x_T to x_0 (decoded in latent space).
        ``x_T`` (num, *shape), when given, is the start instead of a draw from ``seed``."""
        steps = self.check(sampler, steps, guidance)
        guidance = self.guidance(guidance)
        g = torch.Generator(device=self.device).manual_seed(seed)
        parts = []
        for start in range(0, num, chunk):
            n = min(chunk, num - start)
            shape = (n, *self.shape)
            # x_T drawn here, as the samplers would draw it: the same numbers with and without a graph
            xT = torch.randn(shape, generator=g, device=self.device) if x_T is None else x_T[start:start + n]
            parts.append(self._loop(sampler, steps, n, eta, guidance, g, trajectory)(xT))
        x = torch.cat(parts, dim=1 if trajectory else 0)
        with torch.no_grad():
            if trajectory:
                return torch.stack([self.to_images(state) for state in x])
            return self.to_images(x)

    def _loop(self, sampler: str, steps: int, n: int, eta: float, guidance: float | None,
              g: torch.Generator, trajectory: bool):
        """x_T (n, *shape) -> x_0, or the trajectory; on CUDA a deterministic DDIM loop is a graph replay."""
        key = (steps, n, guidance)
        graphable = self.use_graph and sampler == "ddim" and eta == 0 and not trajectory  # no draws inside
        if graphable and key in self.graphed:
            return self.graphed[key]
        fn = self.model_fn(n, guidance)
        clip = self.cfg.space == "pixel"  # x̂_0 ∈ [−1, 1] holds for pixels, not for standardised latents

        def loop(x_T: torch.Tensor) -> torch.Tensor:
            bf16 = (torch.autocast(self.device.type, dtype=torch.bfloat16, cache_enabled=False) if self.bf16
                    else contextlib.nullcontext())
            with torch.no_grad(), bf16:
                shape = tuple(x_T.shape)
                if sampler == "ddpm":
                    return sample_ddpm(fn, self.schedule, shape, g, self.cfg.prediction, clip, self.device,
                                       return_trajectory=trajectory, x_T=x_T)
                return sample_ddim(fn, self.schedule, shape, steps, eta, g, self.cfg.prediction, clip, self.device,
                                   return_trajectory=trajectory, x_T=x_T)

        if graphable:
            self.graphed[key] = GraphedCall(loop)  # replays need no generator: x_T is the only noise
            return self.graphed[key]
        return loop

    def figures(self, out: Path, images: torch.Tensor, sampler: str = "ddim", steps: int | None = None,
                seed: int = 0) -> None:
        """samples.png (a grid of ``images``) and trajectory.png (x_T → x_0 for a few samples)."""
        steps = self.check(sampler, steps, None)
        per_row = 10
        rows = [("", images[i:i + per_row]) for i in range(0, min(len(images), 60), per_row)]
        w = self.guidance(None)
        plots.image_rows(rows, out / "samples.png", f"{self.cfg.space} DDPM, {sampler.upper()}-{steps} (EMA weights"
                         + (f", guidance w = {w:g})" if w is not None else ")"))
        traj = self.sample(sampler, steps, TRAJECTORY_SAMPLES, seed=seed, trajectory=True)  # (S+1, n, 1, 28, 28)
        picks = evenly_spaced(len(traj), TRAJECTORY_COLUMNS)
        names = [f"{len(traj) - 1 - p}" for p in picks]
        rows = [(f"sample {k}", traj[picks, k]) for k in range(TRAJECTORY_SAMPLES)]
        plots.image_rows(rows, out / "trajectory.png",
                         f"x_T → x_0, {sampler.upper()}-{steps}; columns = steps left: {', '.join(names)}"
                         " — structure first, detail later")


def evenly_spaced(length: int, count: int) -> list[int]:
    """Up to ``count`` indices into a sequence of ``length`` states, first and last included."""
    if length <= 1:
        return [0]
    return sorted({round(i * (length - 1) / (count - 1)) for i in range(count)})
