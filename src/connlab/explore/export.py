"""The lab's trained networks as ONNX files for the explorer page, each with a recorded test case.

Every model is exported with ``torch.onnx.export(..., dynamo=True)`` into one self-contained
file (weights inside, no external data).  The page runs them with onnxruntime-web; nothing
of the networks is written again in JavaScript.  The page's loops (the ladder's chain, the
DDIM steps, feeding an output back) call these models over and over.

Export-only wrappers (never trained, never saved) add what the page needs and the training
code does not return:

| wrapper         | inputs                                   | outputs                                      |
|-----------------|------------------------------------------|----------------------------------------------|
| ``AutoencoderPage``| x (1,1,28,28) in [0,1], keep (2,)     | image (1,1,28,28) in [0,1]                   |
| ``LadderStep``  | x (1,1,28,28), t (1,) int64              | x̂_{t−1} (1,1,28,28) in [0,1]                 |
| ``LadderUp``    | x0 (1,1,28,28), z (T,1,1,28,28) unit noise | x_T (1,1,28,28): the run's forward process |
| ``DDIMStep``    | x_t, t, t_prev (1,) int64 [, y (1,) int64, w (1,)] | x_prev, x0_hat (the U-Net's space)  |
| ``ToImage``     | z (1,C,H,W) in the U-Net's space         | image (1,1,28,28) in [0,1]                   |
| ``ViTPage``     | x (1,1,28,28)                            | probs (1,10), attention (L,1,heads,T,T), rollout (1,T,T) |
| ``SequencePage``| tokens (1,L) int64                       | probs (1,L,vocab), attention (depth,1,heads,L,L) |
| ``ToyHeadPage`` | tokens (1,5) int64                       | probs (1,5,7) = softmax(z), attention (1,5,5) |

``keep`` multiplies the U-Net's two skip tensors (conv_1, conv_2): 0 feeds zeros instead of
the encoder's map, the lecture's "which detail disappears without this skip".

Each ``ExportedModel`` keeps the inputs it was traced with and PyTorch's outputs for them;
the page re-runs those at load (its self-test) and the tests run them under Python
onnxruntime.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from connlab.checkpoint import load_weights
from connlab.data import signed_to_unit
from connlab.data.noise import draw_noise
from connlab.diffusion import guided
from connlab.diffusion.ladder import LadderSchedule, ladder_step
from connlab.diffusion.samplers import ddim_timesteps
from connlab.errors import UserError
from connlab.experiments.attention import AttentionExperiment, SequenceTransformer
from connlab.experiments.autoencoder import AutoencoderExperiment
from connlab.experiments.diffusion import DiffusionExperiment
from connlab.experiments.ladder import LadderExperiment
from connlab.experiments.vit import ViTExperiment
from connlab.models.autoencoder import DenoisingAutoencoder
from connlab.models.step_conditioned import StepConditionedUNet
from connlab.models.toy_attention import SENTENCES, TOKENS, ToyAttentionModel, ToyHeadConfig, corpus
from connlab.models.vit import ViT, attention_rollout
from connlab.runs import read_run
from connlab.runtime.speed import Speed
from connlab.sampling.generate import Generator


@dataclass
class ExportedModel:
    name: str
    onnx: bytes
    inputs: dict[str, np.ndarray]     # the test case, in the model's input order
    outputs: dict[str, np.ndarray]    # PyTorch's outputs for it, in the model's output order
    info: dict = field(default_factory=dict)


def export_model(name: str, module: nn.Module, inputs: dict[str, torch.Tensor], output_names: list[str],
                 info: dict | None = None) -> ExportedModel:
    """Trace ``module`` on ``inputs`` with the dynamo exporter; the file holds its weights."""
    import onnx

    module = module.eval()
    args = tuple(inputs.values())
    with torch.no_grad():
        expected = module(*args)
    expected = expected if isinstance(expected, tuple) else (expected,)
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "torchvision is not installed" and similar notes are not for the user
    try:
        with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(module, args, input_names=list(inputs), output_names=output_names,
                                        dynamo=True, external_data=False, verbose=False, report=False)
    finally:
        quiet.setLevel(level)
    buffer = io.BytesIO()
    onnx.save_model(program.model_proto, buffer)  # one file: weights inside, no external data
    return ExportedModel(name, buffer.getvalue(),
                         {k: v.detach().cpu().numpy() for k, v in inputs.items()},
                         {k: v.detach().cpu().numpy() for k, v in zip(output_names, expected)}, info or {})


# --- wrappers ---------------------------------------------------------------------------------

class AutoencoderPage(nn.Module):
    """The lecture's autoencoder with its two skips switchable: (x, keep) -> image in [0, 1]."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        z, c1, c2 = self.model.encoder(x)
        if self.model.bottleneck is not None:   # the course's network: a 3x3 conv at 7x7 before the decoder
            z = self.model.bottleneck(z)
        # keep[0] gates the 28x28 skip (conv_1), keep[1] the 14x14 one (conv_2); 0 = zeros instead
        return torch.sigmoid(self.model.decoder(z, c1 * keep[0], c2 * keep[1]))


class LadderStep(nn.Module):
    """One rung down the ladder: x̂_{t−1} = sigmoid(net(x̂_t, t))."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(x, t))


class LadderUp(nn.Module):
    """Up the run's ladder from a clean digit to x_T, with the unit-scale noise z the page draws.

    ``interpolate``: the course's end point x_T = clip(x_0 + round(mag · z_1), 0, 1)
    (``data.noise.rounded_endpoint`` with the draw given); a walk: ``diffusion.ladder.ladder_step``
    for t = 1 … T with z_t, clipping as the schedule says.  The page loops over nothing here.
    """

    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule

    def forward(self, x0: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if self.schedule.interpolates:
            return (x0 + torch.round(self.schedule.mag * z[0])).clamp(0.0, 1.0)
        x = x0
        for t in range(1, self.schedule.T + 1):
            x = ladder_step(x, t, self.schedule, z[t - 1])
        return x


class DDIMStep(nn.Module):
    """One deterministic DDIM step (η = 0, Song et al. 2021 eq. 12) over the trained U-Net.

    x_prev = √ᾱ_{t_prev} x̂_0 + √(1 − ᾱ_{t_prev}) ε̂, with ᾱ at t_prev < 0 equal to 1 — the same
    rule as ``diffusion.samplers.ddim_step(eta=0)``, here with t as a tensor so that one file
    serves every step and the page only loops over the schedule.  Class-conditional runs take
    the label y and the guidance weight w (``diffusion.guided``: (1+w) ε(y) − w ε(∅)).
    """

    def __init__(self, unet, schedule, prediction: str, clip: bool, class_cond: bool):
        super().__init__()
        self.unet, self.schedule, self.prediction, self.clip = unet, schedule, prediction, clip
        self.class_cond = class_cond
        self.register_buffer("alpha_bar", schedule.alpha_bar.clone())

    def forward(self, x: torch.Tensor, t: torch.Tensor, t_prev: torch.Tensor,
                y: torch.Tensor | None = None, w: torch.Tensor | None = None):

        out = guided(self.unet, y, w)(x, t) if self.class_cond else self.unet(x, t)
        x0_hat = self.schedule.predict_x0(x, t, out, self.prediction)
        eps_hat = self.schedule.predict_eps(x, t, out, self.prediction)
        if self.clip:
            x0_hat = x0_hat.clamp(-1.0, 1.0)
        ab_prev = torch.where(t_prev >= 0, self.alpha_bar[t_prev.clamp(min=0)], torch.ones_like(self.alpha_bar[:1]))
        ab_prev = ab_prev.view(-1, 1, 1, 1)  # (B, 1, 1, 1)
        return ab_prev.sqrt() * x0_hat + (1 - ab_prev).sqrt() * eps_hat, x0_hat


class ToImage(nn.Module):
    """The sampler's space -> images in [0, 1]: the latent decoder, or signed_to_unit for pixels."""

    def __init__(self, decoder=None):
        super().__init__()
        self.decoder = decoder

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.decoder is None:
            return signed_to_unit(z).clamp(0.0, 1.0)
        return self.decoder.decode(z)


class ViTPage(nn.Module):
    """The ViT with its internals as outputs: class probabilities, per-layer attention, rollout."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        probs = torch.softmax(self.model(x), dim=-1)
        maps = self.model.attention_maps()  # L x (B, heads, T, T), set by the forward pass above
        return probs, torch.stack(maps), attention_rollout(maps)


class SequencePage(nn.Module):
    """The attention task's transformer: tokens -> per-position probabilities and attention."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor):
        probs = torch.softmax(self.model(tokens), dim=-1)
        return probs, torch.stack(self.model.attention_maps())


class ToyHeadPage(nn.Module):
    """The course's toy head: tokens -> next-token probabilities softmax(z) and the head's weights."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor):
        z = self.model(tokens)
        return torch.softmax(z, dim=-1), self.model.last_attention


# --- run folders -> exported models -------------------------------------------------------------

def experiment_config(run: Path, cls):
    """The experiment dataclass saved in ``run/config.json`` (unknown keys dropped; ``connlab.runs.read_run``)."""
    return read_run(run, cls=cls).config


def load(model: nn.Module, path: Path) -> nn.Module:
    load_weights(model, path)  # load_state_dict checks every name and shape
    return model.eval()


def sample_digit(seed: int = 0) -> torch.Tensor:
    """Uniform random pixels in [0, 1], (1, 1, 28, 28): the traced input of the image models' test cases."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 1, 28, 28, generator=g)


def export_autoencoders(run: Path) -> list[ExportedModel]:
    """none / concat / add from ``run/variants/<skip>-seed<s>/``, s the run's first seed."""
    cfg = experiment_config(run, AutoencoderExperiment)
    # what the page says of the setting (the course's network and noise differ from the lab's)
    trained_on = {"preset": cfg.preset, "noise": cfg.noise, "noise_dist": cfg.noise_dist, "bottleneck": cfg.bottleneck,
                  "init": cfg.init, "dataset": cfg.dataset}
    models = []
    for skip in ("none", "concat", "add"):
        path = run / "variants" / f"{skip}-seed{cfg.seed}" / "model.safetensors"
        if not path.is_file():
            continue
        model = load(DenoisingAutoencoder(cfg.model_config(skip)), path)
        x, keep = sample_digit(1), torch.tensor([1.0, 0.0])
        models.append(export_model(f"ae_{skip}", AutoencoderPage(model), {"x": x, "keep": keep}, ["image"],
                                   {"skip": skip, "weights": str(path.relative_to(run)), **trained_on}))
    return models


def export_ladder(run: Path) -> list[ExportedModel]:
    """The shown variant's step network (``variants/T<T>-<condition>[-seed<s>]``) and how its ladder is made."""
    cfg = experiment_config(run, LadderExperiment)
    T = cfg.shown_steps
    for condition in cfg.conditions:
        path = run / "variants" / cfg.variant_name(T, condition, cfg.seed) / "model.safetensors"
        if path.is_file():
            break
    else:
        return []
    model = load(StepConditionedUNet(cfg.model_config(T, condition)), path)
    schedule = LadderSchedule(cfg.schedule, T, cfg.mag, cfg.dist)
    info = {"T": T, "condition": condition, "schedule": schedule.name, "mag": cfg.mag, "dist": cfg.dist,
            "preset": cfg.preset, "bottleneck": cfg.bottleneck, "init": cfg.init}
    z = draw_noise(torch.zeros(T, 1, 1, 28, 28), cfg.dist, torch.Generator().manual_seed(6))
    return [export_model("ladder_step", LadderStep(model), {"x": sample_digit(2), "t": torch.tensor([T])},
                         ["x_prev"], info),
            # the way up, so that the page draws only the noise (its dist is info["dist"])
            export_model("ladder_up", LadderUp(schedule), {"x0": sample_digit(5), "z": z}, ["x_T"],
                         {"T": T, "schedule": schedule.name, "dist": cfg.dist})]


def ddim_steps_range(T: int) -> dict[str, int]:
    """The page's DDIM-steps slider: 5 … 100 steps (at most T), 20 at first."""
    return {"min": min(5, T), "max": min(100, T), "default": min(20, T)}


def export_diffusion(run: Path) -> list[ExportedModel]:
    """The EMA U-Net as one DDIM step (with guidance for class-conditional runs) and its decoder."""
    # fp32, contiguous: the exported graph must not carry autocast or a memory-format choice
    gen = Generator.from_run(run, "cpu", Speed(precision="fp32", channels_last="off"), DiffusionExperiment)
    cfg = gen.cfg
    unet = gen.model.to(memory_format=torch.contiguous_format)
    step = DDIMStep(unet, gen.schedule, cfg.prediction, cfg.space == "pixel", bool(cfg.class_cond))
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, *gen.shape, generator=g)
    inputs = {"x": x, "t": torch.tensor([cfg.timesteps // 2]), "t_prev": torch.tensor([cfg.timesteps // 4])}
    if cfg.class_cond:
        inputs |= {"y": torch.tensor([3]), "w": torch.tensor([float(cfg.guidance or 0.0)])}
    steps = ddim_steps_range(cfg.timesteps)
    info = {"T": cfg.timesteps, "space": cfg.space, "shape": list(gen.shape), "class_cond": bool(cfg.class_cond),
            "guidance": cfg.guidance, "prediction": cfg.prediction, "schedule": cfg.schedule,
            "alpha_bar": [round(v, 7) for v in gen.schedule.alpha_bar.tolist()],  # for the page's numbers only
            "steps": steps,
            # the sampler's own time steps τ for every K the page offers: the page loops, it never re-derives them
            "timesteps": {str(k): ddim_timesteps(cfg.timesteps, k).tolist()
                          for k in range(steps["min"], steps["max"] + 1)}}
    models = [export_model("ddim_step", step, inputs, ["x_prev", "x0_hat"], info)]
    models.append(export_model("to_image", ToImage(gen.decoder), {"z": x}, ["image"], {"space": cfg.space}))
    return models


def export_vit(run: Path) -> list[ExportedModel]:
    cfg = experiment_config(run, ViTExperiment).model_config()
    model = load(ViT(cfg), run / "model.safetensors")
    info = {"grid": cfg.grid, "heads": cfg.heads, "depth": cfg.depth, "cls": cfg.pool == "cls"}
    return [export_model("vit", ViTPage(model), {"x": sample_digit(4)}, ["probs", "attention", "rollout"], info)]


def export_attention(run: Path) -> list[ExportedModel]:
    exp = experiment_config(run, AttentionExperiment)
    cfg = exp.model_config()
    model = load(SequenceTransformer(cfg), run / "model.safetensors")
    tokens = torch.arange(cfg.length).remainder(cfg.vocab)[None]  # (1, L)
    info = {"task": exp.task, "length": cfg.length, "vocab": cfg.vocab, "heads": cfg.heads, "depth": cfg.depth}
    return [export_model("sequence", SequencePage(model), {"tokens": tokens}, ["probs", "attention"], info)]


def export_toy_head(run: Path) -> list[ExportedModel]:
    """The first seed's trained toy head of an ``attention --preset course`` run (``toy_head.json``)."""
    import json


    path = run / "toy_head.json"
    if not path.is_file():
        raise UserError(f"{run}: no toy_head.json (written by connlab attention --preset course)")
    saved = json.loads(path.read_text())
    model = ToyAttentionModel(ToyHeadConfig(saved["head_size"], causal=saved["causal"]))
    with torch.no_grad():
        model.token_embed.weight.copy_(torch.tensor(saved["token_embed"]))
        model.pos_embed.weight.copy_(torch.tensor(saved["pos_embed"]))
        for name in ("q", "k", "v"):
            getattr(model.head, name).weight.copy_(torch.tensor(saved["w" + name]).T)
    info = {"tokens": list(TOKENS), "sentences": list(SENTENCES), "length": model.cfg.length,
            "head_size": model.cfg.head_size, "causal": model.cfg.causal}
    return [export_model("toy_head", ToyHeadPage(model), {"tokens": corpus()[0][1:]}, ["probs", "attention"], info)]
