"""The chains of ``connlab diffusion sample --ladder-run``, computed once and stored in the diffusion run folder.

    sidebyside.json   the page's content: per chain its name, K (steps applied) and the states kept
                      (which steps, each a 28×28 grey PNG as a ``data:`` URI, per noise draw); the
                      diffusion and ladder settings, the noise seed and the guidance weight
    sidebyside.png    the first draws of every chain, a figure ``connlab report`` shows

The chains themselves (one noise draw, the ladder, DDPM and the chosen sampler) are
``connlab.diffusion.sidebyside``'s; ``connlab report`` renders the stored JSON as
``sidebyside.html`` (``connlab.report.sidebyside``), without running a sampler.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import torch

from connlab import plots
from connlab.checkpoint import atomic_write_json
from connlab.data import to_uint8
from connlab.diffusion.ladder import schedule_name
from connlab.diffusion.sidebyside import Ladder, chains, shared_noise
from connlab.sampling.generate import evenly_spaced

DATA = "sidebyside.json"
FIGURE = "sidebyside.png"
SHOWN = 6         # noise draws on the page
COLUMNS = 11      # states kept per DDPM / DDIM chain (first and last included)
FIGURE_DRAWS = 3  # noise draws in sidebyside.png


def store_side_by_side(gen, ladder: Ladder, folder: Path, sampler: str = "ddpm", steps: int | None = None,
                       eta: float = 0.0, guidance: float | None = None, seed: int = 0, num: int = SHOWN) -> Path:
    """Run the chains from one noise draw of ``num`` digits; write ``folder/sidebyside.png`` and
    ``folder/sidebyside.json`` (the data the page is rendered from); returns the JSON's path."""
    folder = Path(folder)
    z = shared_noise(num, seed, gen.device)
    states = chains(gen, ladder, z, sampler, steps, eta, guidance, seed)      # name → (K + 1, B, 1, 28, 28)
    shown = {name: (evenly_spaced(len(traj), COLUMNS), traj) for name, traj in states.items()}
    rows = [(f"{name.split(',')[0]} #{k}", traj[picks, k])
            for k in range(min(FIGURE_DRAWS, num)) for name, (picks, traj) in shown.items()]
    plots.image_rows(rows, folder / FIGURE,
                     "the same noise: Exercise-2 ladder vs DDPM (columns: start → end of each chain)")
    dc, w = gen.cfg, gen.guidance(guidance)
    data = {
        "num": num, "seed": seed, "guidance": w if dc.class_cond else None,
        "diffusion": {"run": str(folder), "space": dc.space, "prediction": dc.prediction, "schedule": dc.schedule,
                      "timesteps": dc.timesteps, "class_cond": bool(dc.class_cond), "shape": list(gen.shape)},
        "ladder": {"run": str(ladder.run), "variant": ladder.name, "steps": ladder.steps,
                   **{k: ladder.config.get(k) for k in ("schedule", "dist", "mag", "epochs")},
                   "schedule": schedule_name(str(ladder.config.get("schedule", "?")))},
        "chains": [{"name": name, "steps": len(traj) - 1, "columns": picks,
                    "images": [[png_uri(traj[p, k]) for p in picks] for k in range(num)]}  # [draw][column]
                   for name, (picks, traj) in shown.items()],
    }
    atomic_write_json(folder / DATA, data)
    return folder / DATA


def png_uri(image: torch.Tensor) -> str:
    """A (1, 28, 28) image in [0, 1] as a ``data:`` URI of a grey PNG."""
    from PIL import Image  # lazy: Pillow comes with matplotlib, and only this command needs it here

    buf = io.BytesIO()
    Image.fromarray(to_uint8(image[0]).cpu().numpy(), mode="L").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
