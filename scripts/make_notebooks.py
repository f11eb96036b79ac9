"""Write the lecture's notebooks (``notebooks/*.ipynb``) from the cells below, without outputs.

    python scripts/make_notebooks.py [--out DIR]

The notebooks use the library only: they build the models, show the summary tables, run the
experiments through ``connlab.cli.main`` at the size named by ``CONNLAB_NB_SIZE`` (``tiny`` for
the tests, ``small`` by default, ``full`` for a GPU) and display the run folders' figures.
Regenerating gives byte-identical files (the tests check that the stored ones match).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

SETUP = '''import os, time
from pathlib import Path

from IPython.display import Image, Markdown, display

from connlab.cli import main as connlab

# One knob for the size of every run below: tiny (seconds, for the tests), small (minutes on a CPU), full (a GPU).
SIZE = os.environ.get("CONNLAB_NB_SIZE", "small")
OUT = Path(os.environ.get("CONNLAB_NB_OUT", "runs/notebooks")) / f"{NAME}-{SIZE}-{time.strftime('%Y%m%d-%H%M%S')}"
OUT.mkdir(parents=True, exist_ok=True)
DATA = ["--dataset", "mnist" if SIZE == "full" else "mnist-embedded"]
print(f"size {SIZE}; run folders under {OUT}")


def show(folder, *names):
    """Display figures of a run folder (those that exist)."""
    for name in names:
        path = Path(folder) / name
        if path.is_file():
            display(Markdown(f"**{name}**"), Image(filename=str(path)))'''


def notebook(name: str, cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    body = [new_markdown_cell(text) if kind == "md" else new_code_cell(text) for kind, text in cells]
    body.insert(1, new_code_cell(f'NAME = "{name}"\n' + SETUP))
    for i, cell in enumerate(body):  # stable ids, so regenerating gives the same file
        cell["id"] = f"{name}-{i:02d}"
    nb.cells = body
    return nb


AUTOENCODER = [
    ("md", """# Exercise 1 — a denoising autoencoder, without and with skip connections

The lecture's CNN encoder for MNIST becomes an encoder-decoder that maps a noisy digit to the clean one.
Then the decoder also receives the encoder's feature maps — concatenated (U-Net) or added — and we measure
whether those skip connections help. Everything here uses `connlab`: the models in `connlab.models.autoencoder`,
the experiment `connlab autoencoder` (the same as on the command line)."""),
    ("md", """## The models and their summary tables

Keras' `model.summary()` has a PyTorch twin in `torchinfo.summary`: every layer, its output shape and its
parameters. The plain network can be written with the *Sequential* API (a straight chain,
`sequential_autoencoder`); the skip variants need the *Functional* style — a module whose `forward` wires a
graph (`DenoisingAutoencoder`)."""),
    ("code", """from torchinfo import summary

from connlab.models.autoencoder import AutoencoderConfig, DenoisingAutoencoder, count_parameters, sequential_autoencoder

print(summary(sequential_autoencoder(), input_size=(1, 1, 28, 28), col_names=("output_size", "num_params"), verbose=0))
for skip in ("none", "concat", "add"):
    model = DenoisingAutoencoder(AutoencoderConfig(skip))
    print(f"skip={skip}: {count_parameters(model):,} parameters")
print(summary(DenoisingAutoencoder(AutoencoderConfig("concat")), input_size=(1, 1, 28, 28), depth=3,
              col_names=("output_size", "num_params"), verbose=0))"""),
    ("md", """## Train all three variants

`--skip all` trains `none`, `concat` and `add` with the same budget and scores them on one fixed noisy copy of
the test set, next to two trivial baselines (the noisy input itself; the mean training image). With several
`--seeds` the table gives mean ± std, and the comparison says whether a difference exceeds the seed spread."""),
    ("code", """SIZES = {
    "tiny": ["--epochs", "1", "--limit", "128", "--seeds", "1"],
    "small": ["--epochs", "3", "--limit", "3000", "--seeds", "2", "--iterate", "3"],
    "full": ["--epochs", "10", "--seeds", "3", "--iterate", "5"],
}
run = OUT / "autoencoder"
assert connlab(["autoencoder", "--skip", "all", *SIZES[SIZE], *DATA, "--out", str(run)]) == 0
print((run / "comparison.md").read_text())
show(run, "reconstructions.png", "loss_curves.png", "iterate.png")"""),
    ("md", """## Questions

1. Which variant reconstructs best, and is the difference larger than the spread over seeds?
2. The skip variants see the noisy input's features directly — what stops them from copying the noise?
3. Feed the denoised output back in (`--iterate K`, the `iterate.png` figure): does it (A) keep improving,
   (B) get worse, or (C) settle? Answer from the numbers, then explain."""),
]

LADDER = [
    ("md", """# Exercise 2 — incremental denoising with T steps

Instead of one big jump from noise to digit, build a *ladder*: x_0 is the clean digit and each rung adds a little
noise (`steps2use` = T rungs, noise `norm`, magnitude 1 in total). A network learns to step *down* one rung,
x_t → x_{t−1}; applied T times it walks from the top rung back to a digit — and, the real question, from pure
noise to what?"""),
    ("code", """import torch

from connlab import plots
from connlab.data import load_dataset, to_unit
from connlab.diffusion.ladder import LadderSchedule, full_ladder

T = 10
digits = to_unit(load_dataset("mnist-embedded").test_images[::100][:8])   # (8, 1, 28, 28) in [0, 1]
ladder = full_ladder(digits, LadderSchedule("notebook", T, 1.0, "norm"), torch.Generator().manual_seed(0))
print("ladder:", tuple(ladder.shape), "= (T+1, digits, 1, 28, 28)")
plots.image_rows([(f"x_{t}", ladder[t]) for t in range(0, T + 1, 2)], OUT / "ladder_rungs.png",
                 "the noise ladder, x_0 (clean) to x_T")
display(Image(filename=str(OUT / "ladder_rungs.png")))"""),
    ("md", """## Train the one-step denoiser and run the chain

`connlab ladder` trains the Exercise-1 U-Net on pairs (x_t, x_{t−1}) and then runs the chain from the noised
test digits and from uniform random pixels, measuring PSNR against the clean digit after every step."""),
    ("code", """SIZES = {
    "tiny": ["--steps", "3", "--epochs", "1", "--limit", "128", "--eval-images", "20"],
    "small": ["--steps", "10", "--epochs", "2", "--limit", "3000"],
    "full": ["--steps", "10", "--epochs", "10", "--sweep", "1,5,10,20"],
}
run = OUT / "ladder"
assert connlab(["ladder", *SIZES[SIZE], *DATA, "--out", str(run)]) == 0
show(run, "chain.png", "chain_psnr.png", "from_noise.png")"""),
    ("md", """## Questions

1. Does PSNR rise at every step of the chain? Where does it stop rising, and why might the last step hurt?
2. Started from pure noise, what does the chain produce? Compare the ink fraction with real digits
   (`summary.json` → `from_noise`).
3. What would change if the network were told t (`--condition learned`), or if the top rung were pure noise
   (`--schedule vp`)? Try it."""),
]

DIFFUSION = [
    ("md", """# DDPM and DDIM — generating digits by repeated denoising

Ho et al. (2020): noise a digit in T small Gaussian steps with a schedule β_t until nothing is left
(ᾱ_T ≈ 0), train a U-Net to predict the noise ε (or v) from x_t and t, then sample by running the reverse steps
from pure noise. DDIM (Song et al. 2021) is a second step rule over the *same* trained network that needs far
fewer steps. The lab trains in a small autoencoder's latent space by default, which is what makes a CPU
run feasible."""),
    ("code", """import torch

from connlab import plots
from connlab.data import load_dataset, to_unit, unit_to_signed
from connlab.diffusion import NoiseSchedule

schedule = NoiseSchedule.cosine(1000)
x0 = unit_to_signed(to_unit(load_dataset("mnist-embedded").test_images[::125][:8]))   # (8, 1, 28, 28) in [-1, 1]
g = torch.Generator().manual_seed(0)
rows = []
for t in (0, 100, 250, 500, 750, 999):
    eps = torch.randn(x0.shape, generator=g)
    xt = schedule.q_sample(x0, torch.full((len(x0),), t), eps)     # the forward process q(x_t | x_0), in closed form
    rows.append((f"t={t}, ᾱ={schedule.alpha_bar[t]:.3f}", ((xt + 1) / 2).clamp(0, 1)))
plots.image_rows(rows, OUT / "forward_process.png", "q(x_t | x_0): the forward (noising) process")
display(Image(filename=str(OUT / "forward_process.png")))"""),
    ("md", """## Train, sample, evaluate

`connlab diffusion train` also trains the MNIST classifier behind the quality metric (a Fréchet distance in its
features, with the real-data floor beside it) and scores DDIM samples; `sample` draws a new grid; `eval`
measures quality and time against the number of sampling steps."""),
    ("code", """SIZES = {
    "tiny": (["--preset", "demo", "--epochs", "1", "--ae-epochs", "1", "--limit", "256", "--timesteps", "50",
              "--eval-num", "20", "--eval-steps", "5"], ["--steps", "5", "--num", "10"]),
    "small": (["--preset", "demo"], ["--steps", "50", "--num", "60"]),
    "full": (["--preset", "default"], ["--steps", "50", "--num", "100"]),
}
train_flags, sample_flags = SIZES[SIZE]
run = OUT / "diffusion"
assert connlab(["diffusion", "train", *train_flags, *DATA, "--out", str(run)]) == 0
assert connlab(["diffusion", "sample", "--run", str(run), "--sampler", "ddim", *sample_flags]) == 0
show(run, "samples.png", "trajectory.png")"""),
    ("code", """import json

s = json.loads((run / "summary.json").read_text())
q = s["quality"]
print(f"Fréchet distance {q['frechet_distance']:.1f} (real-data floor {s['frechet_floor']:.1f}), "
      f"mean confidence {q['mean_confidence']:.2f}, classes covered {q['classes_covered']}/10")
if SIZE != "tiny":   # eval runs DDPM with all T steps: minutes on a CPU
    assert connlab(["diffusion", "eval", "--run", str(run), "--num", "200"]) == 0
    print((run / "eval.md").read_text())"""),
    ("md", """## Questions

1. In `trajectory.png`, when does the digit's identity appear, and when its detail? (The lecture: early steps
   give structure, late steps detail.)
2. How far above the real-data floor is the distance, and what do the confidence and the class histogram add?
3. Compare the incremental-denoising ladder of Exercise 2 with DDPM: which differences let DDPM start from pure
   noise?"""),
]

ATTENTION = [
    ("md", """# Attention — a softmax gate over the values

Scaled dot-product attention: each query scores every key, a softmax turns the scores into gate weights, and the
output is the weighted sum of the values — the lecture's softmax gate, with Q, K and V computed from the input.
`connlab.nn.attention.scaled_dot_product_attention` is that formula in three lines; here it is checked against
PyTorch's own."""),
    ("code", """import torch
import torch.nn.functional as F

from connlab.nn.attention import scaled_dot_product_attention

g = torch.Generator().manual_seed(0)
q, k, v = (torch.randn(1, 5, 8, generator=g) for _ in range(3))   # (batch, positions, d)
out, weights = scaled_dot_product_attention(q, k, v)
print("gate weights per query (rows sum to 1):\\n", weights[0].numpy().round(2))
print("same as torch's:", torch.allclose(out, F.scaled_dot_product_attention(q, k, v), atol=1e-6))"""),
    ("md", """## A sequence task where attention is the whole point

Reverse a sequence of digits: output position i must *find* input position L−1−i. The learned attention shows
it as an anti-diagonal, and `softmax_gate.png` draws one head's gate for one query."""),
    ("code", """SIZES = {
    "tiny": (["--epochs", "1", "--train-size", "256", "--test-size", "64"],
             ["--epochs", "1", "--limit", "128", "--dim", "16", "--depth", "1", "--heads", "2", "--warmup-steps", "1"]),
    "small": (["--epochs", "8", "--train-size", "6000"], ["--epochs", "3", "--limit", "4000", "--warmup-steps", "20"]),
    "full": (["--epochs", "30", "--train-size", "20000"], ["--full"]),
}
attention_flags, vit_flags = SIZES[SIZE]
run = OUT / "attention"
assert connlab(["attention", *attention_flags, "--out", str(run)]) == 0
show(run, "attention_patterns.png", "softmax_gate.png", "accuracy_curve.png")"""),
    ("md", """## A Vision Transformer on digits

Cut the digit into patches, embed each patch as a token, and let a transformer attend over them. The maps show
where the class token looks in the last layer, and attention rollout through all layers."""),
    ("code", """run = OUT / "vit"
assert connlab(["vit", *vit_flags, *DATA, "--out", str(run)]) == 0
show(run, "attention_maps.png", "attention_rollout.png", "accuracy_curve.png")"""),
    ("md", """## Questions

1. Which layer and head implement the reversal? What do the other heads do?
2. Change `--task sort`: what pattern should appear, and does it?
3. Where does the ViT's class token look on a "7" versus a "0"? Does rollout tell a different story than the last
   layer alone?"""),
]

NOTEBOOKS = {"01_autoencoder": AUTOENCODER, "02_incremental_denoising": LADDER, "03_diffusion": DIFFUSION,
             "04_attention": ATTENTION}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "notebooks")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, cells in NOTEBOOKS.items():
        nb = notebook(name, cells)
        nbformat.validate(nb)
        path = args.out / f"{name}.ipynb"
        path.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")
        print(path)


if __name__ == "__main__":
    main()
