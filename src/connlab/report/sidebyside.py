"""``sidebyside.html`` and ``sidebyside.png``: the Exercise-2 ladder beside DDPM from the same noise.

The chains come from ``connlab.diffusion.sidebyside`` (where the noise maps are derived); this
module only draws them: one self-contained page (inline PNGs, the report's style and self-check)
and a figure ``connlab report`` shows.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path

import torch

from connlab.diffusion.ladder import schedule_name
from connlab.diffusion.sidebyside import Ladder, chains, shared_noise
from connlab.report.style import SELF_CHECK, STYLE

SHOWN = 6        # noise draws on the page
COLUMNS = 11     # states shown per DDPM / DDIM chain (first and last included)
FIGURE_DRAWS = 3  # noise draws in sidebyside.png


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
                ["ladder", f"variant {ladder.name}: T = {ladder.steps}, schedule {schedule_name(str(lc.get('schedule', '?')))}, "
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
