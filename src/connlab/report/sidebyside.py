"""``sidebyside.html``: the Exercise-2 ladder beside DDPM from the same noise, rendered from the run folder.

``connlab diffusion sample --ladder-run`` runs the chains and stores them in the diffusion run
folder (``sidebyside.json``, ``connlab.sampling.sidebyside``); this module only reads that file
and writes one self-contained page beside it (inline PNGs, the report's style and self-check).
``connlab report`` calls it for every run folder that holds the file; a folder written before the
chains were stored keeps the page it has (and its ``sidebyside.png`` is shown in the report).
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

from connlab.checkpoint import atomic_write_text
from connlab.errors import UserError
from connlab.report.style import SELF_CHECK, STYLE

DATA = "sidebyside.json"   # connlab.sampling.sidebyside.DATA (that layer sits below this one)
PAGE = "sidebyside.html"


def write_side_by_side(folder: Path) -> Path | None:
    """``folder/sidebyside.html`` from ``folder/sidebyside.json``; None when the folder holds no chains."""
    path = Path(folder) / DATA
    if not path.is_file():
        return None
    page = Path(folder) / PAGE
    text = render(read_chains(path))
    try:
        atomic_write_text(page, text)
    except OSError as err:
        raise UserError(f"{page}: cannot write the side-by-side page there ({err.strerror or err})") from None
    return page


def read_chains(path: Path) -> dict:
    """The stored chains, or a UserError naming the file when it cannot be read or is not one."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as err:
        raise UserError(f"{path}: cannot be read ({err.strerror or err})") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: corrupt JSON ({err.msg} at line {err.lineno})") from None
    keys = ("num", "seed", "diffusion", "ladder", "chains")
    if not isinstance(data, dict) or any(k not in data for k in keys) or not isinstance(data["chains"], list):
        raise UserError(f"{path}: not the chains of `connlab diffusion sample --ladder-run` (needs {', '.join(keys)})")
    return data


PAGE_STYLE = """
.chain{display:flex;align-items:flex-end;gap:4px;margin:.3em 0;overflow-x:auto}
.chain .label{flex:0 0 11em;text-align:right;padding-right:.6em;font-size:.9em;align-self:center}
.chain figure{margin:0;text-align:center} .chain img{width:56px;height:56px;image-rendering:pixelated;border:0}
.chain figcaption{font-size:.7em;color:#666}
"""


def _or_unknown(value) -> str:
    return "?" if value is None else str(value)


def render(data: dict) -> str:
    """The page for the stored chains ``data`` (``read_chains``)."""
    out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           "<title>connlab: the ladder and DDPM from the same noise</title>",
           f"<style>{STYLE}{PAGE_STYLE}</style>", f"<script>{SELF_CHECK}</script>", "</head><body>",
           "<h1>Exercise 2's ladder and DDPM, from the same pure noise</h1>",
           "<p>Each block starts every chain from one draw z ~ N(0, I) of 28×28 pixels. Left to right: the start, "
           "then the states after k of K steps (captions k/K), ending at the chain's output. The ladder applies "
           "its network deterministically and never re-injects noise; DDPM predicts the noise and draws fresh "
           "noise at every step.</p>"]
    out += _starts(data["diffusion"])
    out.append(_settings(data))
    out += _chains(data)
    out.append('<pre id="self-check" class="small"></pre>')
    out.append("<p class=\"small\">chains computed by connlab diffusion sample --ladder-run; page rendered by "
               "connlab report</p></body></html>")
    return "\n".join(out)


def _starts(dc: dict) -> list[str]:
    """How one draw z becomes each chain's start: the ladder's, then the diffusion model's."""
    out = ["<h2>How the same noise becomes each start</h2><ul>",
           "<li>ladder: x̂<sub>T</sub> = Φ(z), the standard normal CDF of each pixel — exactly uniform U(0, 1) "
           "pixels, the ladder's own \"from pure noise\" start (its <i>from_noise.png</i>), and the same draw "
           "pixel for pixel in its [0, 1] range.</li>"]
    if dc["space"] == "pixel":
        out.append("<li>DDPM (pixel space, [−1, 1]): x<sub>T</sub> = z itself, shown as (z + 1)/2 clipped.</li>")
    else:
        C = dc["shape"][0]
        part = "row c" if C == 4 else f"group c of {16 // C}"
        out.append(f"<li>DDPM (latent space, {C}×7×7): x<sub>T</sub>[c, i, j] = the sum of the {16 // C} values "
                   f"of z in {part} of the 4×4 pixel patch under latent cell (i, j), divided by "
                   f"{math.sqrt(16 // C):g} — an exact N(0, I) latent built from every value of z once; its first "
                   "picture is the decoder's image of that noise.</li>")
    out.append("</ul>")
    return out


def _settings(data: dict) -> str:
    """The two runs and the sampling settings, as a table."""
    e = html.escape
    dc, lc, w = data["diffusion"], data["ladder"], data.get("guidance")
    settings = [["diffusion run", str(dc["run"])],
                ["diffusion", f"{dc['space']} space, {dc['prediction']}-prediction, {dc['schedule']} schedule, "
                              f"T = {dc['timesteps']}, EMA weights"],
                ["ladder run", str(lc["run"])],
                ["ladder", f"variant {lc['variant']}: T = {lc['steps']}, schedule {_or_unknown(lc.get('schedule'))}, "
                           f"{_or_unknown(lc.get('dist'))} noise, mag {_or_unknown(lc.get('mag'))}, "
                           f"{_or_unknown(lc.get('epochs'))} epochs"],
                ["classifier-free guidance",
                 f"w = {w or 0:g}, labels 0-9 in turn" if dc["class_cond"] else "none (unconditional model)"],
                ["noise seed", str(data["seed"])]]
    return "<table>" + "".join(f"<tr><td>{e(k)}</td><td>{e(v)}</td></tr>" for k, v in settings) + "</table>"


def _chains(data: dict) -> list[str]:
    """One block per noise draw: each chain's pictures left to right, captioned k/K."""
    e = html.escape
    out = []
    for k in range(data["num"]):
        out.append(f"<h2>noise draw {k}</h2>")
        for chain in data["chains"]:
            name, K = chain["name"], chain["steps"]
            cells = "".join(f'<figure><img alt="{e(name)} #{k} k={p}" src="{e(uri)}">'
                            f"<figcaption>{p}/{K}</figcaption></figure>"
                            for p, uri in zip(chain["columns"], chain["images"][k]))
            out.append(f'<div class="chain"><span class="label">{e(name)}</span>{cells}</div>')
    return out
