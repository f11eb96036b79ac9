"""The Exercise-2 ladder beside DDPM, started from the same pure noise: ``sidebyside.html``.

| code name        | symbol                         | meaning                                                   |
|------------------|--------------------------------|-----------------------------------------------------------|
| ``z``            | z ~ N(0, I), (B, 1, 28, 28)    | the one noise draw every chain on the page starts from    |
| ``ladder_start`` | x̂_T = Φ(z) ∈ (0, 1)            | the ladder's start; Φ is the standard normal CDF          |
| ``ddpm_start``   | x_T = z, or x_T = S(z)         | DDPM's start: pixel space z itself; latent space S(z)     |
| ladder step      | x̂_{t−1} = sigmoid(net(x̂_t, t)) | ``connlab ladder``'s chain, deterministic                 |
| DDPM step        | Ho et al. 2020, Alg. 2         | ancestral: fresh noise at every step (drawn from ``seed``) |

Where the ladder model comes from
---------------------------------
From a finished ``connlab ladder`` run: ``connlab diffusion sample --run DIR --ladder-run
LADDER_DIR`` writes this page into the diffusion run folder DIR. The ladder is the user's own
Exercise-2 model (the one whose ``from_noise.png`` they have already seen), nothing is trained
here, and ``connlab demo`` passes its ladder part's folder. ``--ladder-variant`` picks one of a
sweep's models; by default the one the ladder run's own figures show.

How one noise draw becomes both starts
--------------------------------------
The two work in different spaces. DDPM starts from x_T ~ N(0, I) in the space it denoises:
pixels scaled to [−1, 1], or 4×7×7 standardised autoencoder latents. The ladder works on
pixels in [0, 1] and, like ``connlab ladder``'s ``from_noise.png``, starts "from pure noise"
at uniform U(0, 1) pixels — it was never trained on anything noisier than its top rung. One
draw z ~ N(0, I) of shape 1×28×28 serves all of them:

- ladder: x̂_T = Φ(z). Φ maps N(0, 1) exactly onto U(0, 1) and is monotone, so it is the same
  draw, pixel for pixel — bright where z is large — in the ladder's range;
- pixel DDPM: x_T = z unchanged (shown as (z + 1)/2, clipped, like every pixel state);
- latent DDPM: x_T = S(z), with S(z)[c, i, j] = ½ · (the four z values of row c of the 4×4
  pixel block that latent cell (i, j) covers), ``pixel_unshuffle`` then a sum over groups of 4.
  A sum of four independent N(0, 1) halved is N(0, 1) again, so x_T is an exact N(0, I)
  latent, built from every value of z once, each latent cell from its own 4×4 patch. Its
  first picture is the decoder's image of that noise.

DDPM then draws fresh noise at each step (so its x_0 is one of many from that start); DDIM
with η = 0, when the page shows it, is deterministic given x_T, like the ladder.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

SHOWN = 6        # noise draws on the page
COLUMNS = 11     # states shown per DDPM / DDIM chain (first and last included)
FIGURE_DRAWS = 3  # noise draws in sidebyside.png


@dataclass
class Ladder:
    """One trained ladder variant of a ``connlab ladder`` run."""

    model: torch.nn.Module
    name: str        # e.g. "T10-none"
    steps: int       # T, rungs of its ladder
    run: Path
    config: dict     # the ladder run's config (schedule, dist, mag, epochs, ...)


def load_ladder(run: Path, variant: str | None, device) -> Ladder:
    """A finished ladder run's model (``variant``, or the one its figures show); a UserError otherwise."""
    import json
    from dataclasses import asdict

    from connlab.checkpoint import load_weights, model_signature
    from connlab.errors import UserError
    from connlab.models.step_conditioned import StepConditionConfig, StepConditionedUNet
    from connlab.runs import read_config

    run = Path(run)
    saved = read_config(run)
    if saved.get("experiment") != "ladder":
        raise UserError(f"--ladder-run {run}: a {saved.get('experiment')!r} run, not a ladder run (connlab ladder)")
    try:
        summary = json.loads((run / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        raise UserError(f"--ladder-run {run}: no readable summary.json — its training did not finish") from None
    variants = summary.get("variants") or {}
    name = variant or summary.get("shown_variant")
    if name not in variants:
        raise UserError(f"--ladder-variant {name!r}: {run} holds {', '.join(variants) or 'no variants'}")
    entry = variants[name]
    model_cfg = StepConditionConfig(entry["condition"], entry["steps"])
    model = StepConditionedUNet(model_cfg)
    weights = run / "variants" / name / "model.safetensors"
    if not weights.is_file():
        raise UserError(f"--ladder-run {run}: no {weights.relative_to(run)} — the ladder training did not finish")
    load_weights(model, weights, model_signature(model, asdict(model_cfg)))
    return Ladder(model.to(device).eval(), name, entry["steps"], run, saved.get("config", {}))


def shared_noise(num: int, seed: int, device) -> torch.Tensor:
    """z ~ N(0, I), (num, 1, 28, 28), from ``seed``: the draw every chain on the page starts from."""
    g = torch.Generator(device=device).manual_seed(seed)
    return torch.randn((num, 1, 28, 28), generator=g, device=device)


def ladder_start(z: torch.Tensor) -> torch.Tensor:
    """x̂_T = Φ(z): N(0, 1) pixels mapped monotonically onto U(0, 1). Same shape as z."""
    return torch.special.ndtr(z)


def ddpm_start(z: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """x_T for a DDPM whose states have ``shape``: z (B, 1, 28, 28) itself for pixels; for a
    (C, 7, 7) latent, each latent value is the sum of 16/C pixel noises of its 4×4 patch,
    divided by √(16/C) so it is N(0, 1) again. Returns (B, *shape)."""
    if tuple(shape) == tuple(z.shape[1:]):
        return z
    C, H, W = shape
    r = z.shape[-1] // W
    group = r * r // C
    assert z.shape[-2:] == (H * r, W * r) and group * C == r * r, f"no noise map from {tuple(z.shape[1:])} to {shape}"
    patches = F.pixel_unshuffle(z, r)                                       # (B, r·r, H, W)
    return patches.view(len(z), C, group, H, W).sum(2) / math.sqrt(group)  # (B, C, H, W)


def chains(gen, ladder: Ladder, z: torch.Tensor, sampler: str = "ddpm", steps: int | None = None,
           eta: float = 0.0, guidance: float | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every state of each chain from the noise z (B, 1, 28, 28): name → (K + 1, B, 1, 28, 28) images in [0, 1].

    The ladder's chain, DDPM's (all T steps) and, unless ``sampler`` is DDPM, the chosen
    sampler's; DDPM's per-step noise comes from ``seed``.
    """
    from connlab.experiments.ladder import run_chain

    with torch.no_grad():
        rungs = run_chain(ladder.model, ladder_start(z), ladder.steps)
    out = {f"ladder {ladder.name}": torch.stack(rungs)}
    x_T = ddpm_start(z, gen.shape)
    T = gen.cfg.timesteps
    out[f"DDPM-{T}"] = gen.sample("ddpm", T, len(z), guidance=guidance, seed=seed, trajectory=True, x_T=x_T)
    if sampler != "ddpm":
        k = gen.check(sampler, steps, guidance)
        name = f"{sampler.upper()}-{k}" + (f", η = {eta:g}" if eta else "")
        out[name] = gen.sample(sampler, k, len(z), eta, guidance, seed=seed, trajectory=True, x_T=x_T)
    return out


def write_side_by_side(gen, ladder: Ladder, folder: Path, sampler: str = "ddpm", steps: int | None = None,
                       eta: float = 0.0, guidance: float | None = None, seed: int = 0, num: int = SHOWN) -> Path:
    """``folder/sidebyside.html`` (self-contained) and ``folder/sidebyside.png``; returns the page's path."""
    from connlab import plots
    from connlab.checkpoint import atomic_write_text

    z = shared_noise(num, seed, gen.device)
    states = chains(gen, ladder, z, sampler, steps, eta, guidance, seed)
    shown = {name: _columns(traj) for name, traj in states.items()}  # name → (steps applied, images)
    rows = [(f"{name.split(',')[0]} #{k}", traj[picks, k])
            for k in range(min(FIGURE_DRAWS, num)) for name, (picks, traj) in shown.items()]
    plots.image_rows(rows, Path(folder) / "sidebyside.png",
                     "the same noise: Exercise-2 ladder vs DDPM (columns: start → end of each chain)")
    page = Path(folder) / "sidebyside.html"
    atomic_write_text(page, _render(gen, ladder, shown, num, seed, Path(folder), gen.guidance(guidance)))
    return page


def _columns(traj: torch.Tensor) -> tuple[list[int], torch.Tensor]:
    """Which states of a (K + 1, B, 1, 28, 28) chain to show: all up to ``COLUMNS``, else ``COLUMNS`` evenly spaced."""
    from connlab.diffusion.generate import evenly_spaced

    return evenly_spaced(len(traj), COLUMNS), traj


def _png(image: torch.Tensor) -> str:
    """A (1, 28, 28) image in [0, 1] as a data: URI of a grey PNG."""
    from PIL import Image

    from connlab.data import to_uint8

    buf = io.BytesIO()
    Image.fromarray(to_uint8(image[0]).cpu().numpy(), mode="L").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


PAGE_STYLE = """
.chain{display:flex;align-items:flex-end;gap:4px;margin:.3em 0;overflow-x:auto}
.chain .label{flex:0 0 11em;text-align:right;padding-right:.6em;font-size:.9em;align-self:center}
.chain figure{margin:0;text-align:center} .chain img{width:56px;height:56px;image-rendering:pixelated;border:0}
.chain figcaption{font-size:.7em;color:#666}
"""


def _render(gen, ladder: Ladder, shown: dict, num: int, seed: int, folder: Path, w: float | None) -> str:
    from connlab.report import SELF_CHECK, STYLE

    e = html.escape
    lc, dc = ladder.config, gen.cfg
    out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           "<title>connlab: the ladder and DDPM from the same noise</title>",
           f"<style>{STYLE}{PAGE_STYLE}</style>", f"<script>{SELF_CHECK}</script>", "</head><body>",
           "<h1>Exercise 2's ladder and DDPM, from the same pure noise</h1>",
           "<p>Each block starts every chain from one draw z ~ N(0, I) of 28×28 pixels. Left to right: the start, "
           "then the states after k of K steps (captions k/K), ending at the chain's output. The ladder applies "
           "its network deterministically and never re-injects noise; DDPM predicts the noise and draws fresh "
           "noise at every step.</p>",
           "<h2>How the same noise becomes each start</h2><ul>",
           "<li>ladder: x̂<sub>T</sub> = Φ(z), the standard normal CDF of each pixel — exactly uniform U(0, 1) "
           "pixels, the ladder's own \"from pure noise\" start (its <i>from_noise.png</i>), and the same draw "
           "pixel for pixel in its [0, 1] range.</li>"]
    if gen.cfg.space == "pixel":
        out.append("<li>DDPM (pixel space, [−1, 1]): x<sub>T</sub> = z itself, shown as (z + 1)/2 clipped.</li>")
    else:
        C = gen.shape[0]
        part = "row c" if C == 4 else f"group c of {16 // C}"
        out.append(f"<li>DDPM (latent space, {C}×7×7): x<sub>T</sub>[c, i, j] = the sum of the {16 // C} values "
                   f"of z in {part} of the 4×4 pixel patch under latent cell (i, j), divided by "
                   f"{math.sqrt(16 // C):g} — an exact N(0, I) latent built from every value of z once; its first "
                   "picture is the decoder's image of that noise.</li>")
    out.append("</ul>")
    settings = [["diffusion run", str(folder)],
                ["diffusion", f"{dc.space} space, {dc.prediction}-prediction, {dc.schedule} schedule, "
                              f"T = {dc.timesteps}, EMA weights"],
                ["ladder run", str(ladder.run)],
                ["ladder", f"variant {ladder.name}: T = {ladder.steps}, schedule {lc.get('schedule', '?')}, "
                           f"{lc.get('dist', '?')} noise, mag {lc.get('mag', '?')}, {lc.get('epochs', '?')} epochs"],
                ["classifier-free guidance",
                 f"w = {w or 0:g}, labels 0-9 in turn" if dc.class_cond else "none (unconditional model)"],
                ["noise seed", str(seed)]]
    out.append("<table>" + "".join(f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in settings)
               + "</table>")
    for k in range(num):
        out.append(f"<h2>noise draw {k}</h2>")
        for name, (picks, traj) in shown.items():
            K = len(traj) - 1
            cells = "".join(f'<figure><img alt="{e(name)} #{k} k={p}" src="{_png(traj[p, k])}">'
                            f"<figcaption>{p}/{K}</figcaption></figure>" for p in picks)
            out.append(f'<div class="chain"><span class="label">{e(name)}</span>{cells}</div>')
    out.append('<pre id="self-check" class="small"></pre>')
    out.append("<p class=\"small\">written by connlab diffusion sample --ladder-run</p></body></html>")
    return "\n".join(out)
