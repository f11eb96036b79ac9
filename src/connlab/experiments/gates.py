"""``connlab gates`` — the lecture's pictures of logistic units, product gates and softmax gates.

Three figures, each built from the blocks in ``connlab.nn.gates``:

    bump.png           one input x into two logistic units with set weights; their sum
                       σ(w(x - a)) + σ(-w(x - b)) - 1 is a bump on [a, b]. The weight w sets
                       how steep its edges are, the biases (-w a, w b) where they are.
    product_gate.png   out = σ(w x1) · h(x2), ``ProductGatedUnit``: x1 gates x2, as heatmaps
                       over (x1, x2) for logistic h and for linear h, plus slices.
    softmax_gate.png   a ``MixtureOfExperts`` with k tanh experts, *fitted* (with
                       ``connlab.train.fit``) to a function that is a different tanh ridge in
                       each of k angular sectors of the plane; the learned gate weights g_k(x)
                       over the plane, and which expert wins where, against the true sectors.

No other training happens; summary.json holds the numbers that make each point.
"""

from __future__ import annotations

import argparse
import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from connlab.evidence import compare
from connlab.experiments.common import TrainingSettings, add_training_command, positive_int
from connlab.experiments.config import flag
from connlab.experiments.section import (NOT_MEASURED, NOT_SUPPORTED, NO_INTERVALS, SUPPORTED, Run, Section, Table,
                                         combine, effect_text, fmt, get, num, stored, with_figures)
from connlab.experiments.sentence import Part, Wording, measured, sentence
from connlab.nn import LogisticGate, MixtureOfExperts, ProductGatedUnit
from connlab.plots import finish_axes, pyplot, save_figure
from connlab.runs import resumable, write_summary
from connlab.train import fit, pick_device, seed_everything

BUMP_EDGES = (-1.0, 1.0)                 # a, b: the bump's edges for the weight sweep
BUMP_WEIGHTS = (0.5, 1.0, 2.0, 5.0, 20.0)
BUMP_SPACINGS = (0.5, 1.0, 2.0, 4.0)     # b - a at a steep weight
STEEP = 10.0
GATE_WEIGHT = 2.0                         # the gate σ(2 x1) in the product-gate figure
GRID = 201                                # points per axis of the heatmaps
SAMPLE_SEED = 99                          # the MoE's training / test points
SHUT = 0.05                               # a shut gate passes at most this much (|out|)


@dataclass(frozen=True)
class GatesExperiment(TrainingSettings):
    k: int = flag(3, "softmax gate: number of expert groups", type=positive_int)
    train_points: int = flag(4000, "points in the mixture-of-experts fit's training set", type=positive_int)
    epochs: int = 40
    lr: float = 1e-2
    precision: str = "fp32"   # a 2-input mixture: autocast and compile do not pay
    compile: str = "off"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_training_command(p, GatesExperiment, "gates", run_experiment, describe)


def describe(summary: dict, cfg: GatesExperiment) -> str:
    b, s = summary["bump"], summary["softmax_gate"]
    return (f"bump: half-height width {b['width_vs_spacing'][-1]['fwhm']:.2f} for edges {b['spacing_edges'][-1]}; "
            f"peak {b['width_vs_weight'][0]['peak']:.2f} at w={BUMP_WEIGHTS[0]} vs "
            f"{b['width_vs_weight'][-1]['peak']:.2f} at w={BUMP_WEIGHTS[-1]}\n"
            f"product gate: |out| <= {summary['product_gate']['linear']['max_abs_out_gate_closed']:.3f} "
            f"with the gate closed (x1 = -4), linear h\n"
            f"softmax gate: k={cfg.k}, sector agreement {s['sector_agreement']:.1%}, test MSE {s['test_mse']:.4f} "
            f"(one expert: {s['one_expert_test_mse']:.4f})")


def logistic_pair(w: float, a: float, b: float):
    """Two logistic units of one input with set weights: σ(w x - w a) and σ(-w x + w b)."""
    units = LogisticGate(1, 2)
    with torch.no_grad():
        units.linear.weight.copy_(torch.tensor([[w], [-w]]))
        units.linear.bias.copy_(torch.tensor([-w * a, w * b]))
    return units


def bump(x, w: float, a: float, b: float):
    """x (N,) -> (unit 1 (N,), unit 2 (N,), their sum - 1 (N,)): a bump on [a, b]."""
    with torch.no_grad():
        h = logistic_pair(w, a, b)(x.unsqueeze(-1))  # (N, 2)
    return h[:, 0], h[:, 1], h.sum(dim=1) - 1.0


def half_height_width(x, y) -> float:
    """Width of the region where y >= max(y) / 2 (full width at half maximum)."""
    above = x[y >= y.max() / 2]
    return (above.max() - above.min()).item()


def bump_figure(out: Path) -> dict:
    plt = pyplot()
    x = torch.linspace(-6, 6, 1201)
    a, b = BUMP_EDGES
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))

    u1, u2, y = bump(x, 2.0, a, b)
    ax = axes[0]
    ax.plot(x, u1, label=f"unit 1: σ(2x + 2)  (w=2, bias 2)")
    ax.plot(x, u2, label=f"unit 2: σ(-2x + 2)  (w=-2, bias 2)")
    ax.plot(x, y, "k", lw=2.5, label="sum - 1: a bump")
    ax.set_title("one input, two logistic units,\nsummed (output bias -1)")

    by_weight = []
    for w in BUMP_WEIGHTS:
        _, _, y = bump(x, w, a, b)
        axes[1].plot(x, y, label=f"w = {w:g}")
        by_weight.append({"w": w, "peak": y.max().item(), "fwhm": half_height_width(x, y)})
    axes[1].set_title(f"edges fixed at a={a:g}, b={b:g}:\nlarger |w| = steeper edges, taller bump")

    by_spacing = []
    for s in BUMP_SPACINGS:
        _, _, y = bump(x, STEEP, -s / 2, s / 2)
        axes[2].plot(x, y, label=f"b - a = {s:g}")
        by_spacing.append({"edges": [-s / 2, s / 2], "spacing": s, "peak": y.max().item(),
                           "fwhm": half_height_width(x, y)})
    axes[2].set_title(f"w = {STEEP:g}: the biases set the edges,\nso the width = b - a")
    for ax in axes:
        finish_axes(ax, "input x", "output", legend=None)
        ax.legend(fontsize=8, loc="upper left")
        ax.set_ylim(-0.05, 1.25)
    fig.suptitle("a bump from two logistic units: y = σ(w(x - a)) + σ(-w(x - b)) - 1", fontsize=11)
    fig.tight_layout()
    save_figure(fig, out / "bump.png", dpi=90)
    return {
        "formula": "y = sigmoid(w (x - a)) + sigmoid(-w (x - b)) - 1; peak = tanh(w (b - a) / 4)",
        "width_vs_weight": by_weight, "weight_edges": list(BUMP_EDGES),
        "width_vs_spacing": by_spacing, "spacing_weight": STEEP,
        "spacing_edges": [r["edges"] for r in by_spacing],
        "point": "the edges sit where the biases put them (x = a, x = b); the weight sets their steepness. "
                 "A small weight gives a low, wide, blurred bump; a large weight a box of width b - a.",
    }


def product_gate(h: str, x1, x2):
    """out (len(x2), len(x1)) = σ(GATE_WEIGHT · x1) · h(x2) on the grid, via ``ProductGatedUnit``."""
    unit = ProductGatedUnit(1, 1, h=h)
    with torch.no_grad():
        unit.gate.linear.weight.fill_(GATE_WEIGHT)
        unit.gate.linear.bias.zero_()
        g1, g2 = torch.meshgrid(x1, x2, indexing="xy")  # (len(x2), len(x1)) each
        return unit(g1.reshape(-1, 1), g2.reshape(-1, 1)).reshape(g1.shape)


def product_gate_figure(out: Path) -> dict:
    plt = pyplot()
    x1 = torch.linspace(-4, 4, GRID)
    x2 = torch.linspace(-4, 4, GRID)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    numbers = {}
    for ax, h in zip(axes[:2], ("logistic", "linear")):
        z = product_gate(h, x1, x2)
        hx2 = torch.sigmoid(x2) if h == "logistic" else x2
        lim = z.abs().max().item()
        im = ax.imshow(z.numpy(), origin="lower", extent=(-4, 4, -4, 4), aspect="auto",
                       cmap="viridis" if h == "logistic" else "RdBu_r", vmin=0 if h == "logistic" else -lim, vmax=lim)
        fig.colorbar(im, ax=ax, label="output")
        name = "σ(x2)" if h == "logistic" else "x2"
        ax.set_title(f"h = {h}: out = σ({GATE_WEIGHT:g}·x1) · {name}")
        ax.set_xlabel("x1 (the gate's input)")
        ax.set_ylabel("x2 (the gated signal)")
        closed, opened = z[:, 0], z[:, -1]  # x1 = -4 and x1 = +4, over all x2
        numbers[h] = {"out_min": z.min().item(), "out_max": z.max().item(),
                      "max_abs_out_gate_closed": closed.abs().max().item(),
                      "max_abs_error_gate_open": (opened - hx2).abs().max().item(),
                      "gate_closed_at_x1": -4.0, "gate_open_at_x1": 4.0}
    ax = axes[2]
    for v in (-4.0, -1.0, 0.0, 1.0, 4.0):
        i = int(torch.argmin((x1 - v).abs()))
        ax.plot(x2, product_gate("linear", x1, x2)[:, i],
                label=f"x1 = {v:g}: gate σ({GATE_WEIGHT:g}x1) = {torch.sigmoid(torch.tensor(GATE_WEIGHT * v)):.2f}")
    ax.set_title("slices, h = linear:\nx1 sets the slope (gate 0 = shut, 1 = pass)")
    finish_axes(ax, "x2", "output")
    fig.suptitle("X1 gates X2: two units multiplied", fontsize=11)
    fig.tight_layout()
    save_figure(fig, out / "product_gate.png", dpi=90)
    numbers["gate_weight"] = GATE_WEIGHT
    numbers["point"] = ("with x1 very negative the gate is ~0 and shuts x2 off whatever x2 is; with x1 very "
                        "positive the output is h(x2) unchanged. With linear h the product is a multiplicative "
                        "interaction no sum of the two inputs can make.")
    return numbers


def sector_problem(n: int, k: int, generator):
    """Points in [-2, 2]^2, their true sector (which of k directions they point to) and target.

    Sector j holds the points whose angle is nearest to direction 2πj/k; the target there is
    tanh(v_j · x + c_j), a different ridge per sector. Returns x (n, 2), sector (n,), y (n, 1).
    """
    x = torch.rand(n, 2, generator=generator) * 4 - 2
    dirs = sector_directions(k)                              # (k, 2)
    sector = (x @ dirs.T).argmax(dim=1)                      # (n,)
    angle = torch.arange(k) * (2 * math.pi / k) + 1.0
    v = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1) * 1.5   # (k, 2) ridge directions
    c = torch.linspace(-0.5, 0.5, k)
    y = torch.tanh((x * v[sector]).sum(dim=1) + c[sector])
    return x, sector, y.unsqueeze(-1)


def sector_directions(k: int):
    angle = torch.arange(k) * (2 * math.pi / k)
    return torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)  # (k, 2)


def fit_mixture(cfg: GatesExperiment, k: int, data, folder: Path, resume: bool, device):
    seed_everything(cfg.seed)
    model = MixtureOfExperts(2, 1, k).to(device)

    def loss_fn(model, batch, generator):
        x, y = batch
        return ((model(x) - y) ** 2).mean()

    train_cfg = cfg.train_config()
    fit(model, loss_fn, data, train_cfg, folder, model_config={"in": 2, "out": 1, "k": k},
        resume=resumable(folder, resume), label=f"mixture of {k} experts")
    return model


def softmax_gate_figure(cfg: GatesExperiment, out: Path, resume: bool) -> dict:
    device = pick_device(cfg.device)
    g = torch.Generator().manual_seed(SAMPLE_SEED + cfg.seed)
    x, _, y = sector_problem(cfg.train_points, cfg.k, g)
    x_test, sector_test, y_test = sector_problem(2000, cfg.k, g)
    moe = fit_mixture(cfg, cfg.k, (x.to(device), y.to(device)), out / "moe", resume, device).cpu()
    single = fit_mixture(cfg, 1, (x.to(device), y.to(device)), out / "one_expert", resume, device).cpu()

    with torch.no_grad():
        moe_err = ((moe(x_test) - y_test) ** 2).flatten(1).mean(1)     # per test point
        one_err = ((single(x_test) - y_test) ** 2).flatten(1).mean(1)
        test_mse, one_mse = moe_err.mean().item(), one_err.mean().item()
        # "the mixture beats one expert", paired by test point (both nets see the same 2,000 points)
        mixture_ev = compare(one_err.tolist(), moe_err.tolist(), better="lower", what="test points")
        winner = moe.gate(x_test).argmax(dim=1)
        # Experts are interchangeable: score the best matching of experts to sectors.
        agreement = max((torch.tensor(perm)[winner] == sector_test).float().mean().item()
                        for perm in itertools.permutations(range(cfg.k))) if cfg.k <= 6 else float("nan")
        axis = torch.linspace(-2, 2, GRID)
        gx, gy = torch.meshgrid(axis, axis, indexing="xy")
        grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)  # (GRID², 2)
        weights = moe.gate(grid).reshape(GRID, GRID, cfg.k)
        true_sector = (grid @ sector_directions(cfg.k).T).argmax(dim=1).reshape(GRID, GRID)

    draw_gate_maps(cfg, out / "softmax_gate.png", axis, weights, true_sector, agreement)
    max_weight = weights.max(dim=-1).values
    return {
        "k": cfg.k, "weights": "fitted", "epochs": cfg.epochs, "train_points": cfg.train_points,
        "test_mse": test_mse, "one_expert_test_mse": one_mse, "sector_agreement": agreement,
        "mixture_vs_one_expert": mixture_ev.as_dict(),
        "gate_weight_min": weights.min().item(), "gate_weight_max": weights.max().item(),
        "mean_winning_weight": max_weight.mean().item(),
        "row_sums_max_error": (weights.sum(dim=-1) - 1).abs().max().item(),
        "point": "the softmax gate splits the input space into regions, one expert each; the weights of a "
                 "point sum to 1, so raising one group's weight lowers the others'.",
    }


def draw_gate_maps(cfg: GatesExperiment, path: Path, axis, weights, true_sector, agreement: float) -> None:
    """The first experts' gate weights over the plane (GRID x GRID x k), and the winning expert against the true
    sectors (dashed)."""
    plt = pyplot()
    shown = min(cfg.k, 4)
    fig, axes = plt.subplots(1, shown + 1, figsize=(3.9 * (shown + 1), 3.8), squeeze=False)
    extent = (-2, 2, -2, 2)
    for j in range(shown):
        ax = axes[0][j]
        im = ax.imshow(weights[..., j].numpy(), origin="lower", extent=extent, vmin=0, vmax=1, cmap="magma")
        ax.set_title(f"gate weight g_{j + 1}(x)")
        fig.colorbar(im, ax=ax, fraction=0.046)
    ax = axes[0][shown]
    ax.imshow(weights.argmax(dim=-1).numpy(), origin="lower", extent=extent, cmap="tab10", vmin=0, vmax=9,
              interpolation="nearest")
    ax.contour(axis.numpy(), axis.numpy(), true_sector.numpy(), levels=[j + 0.5 for j in range(cfg.k - 1)],
               colors="white", linewidths=1.5, linestyles="--")
    ax.set_title(f"winning expert (colour)\ntrue sectors (dashed): {agreement:.0%} agree")
    for a in axes[0]:
        a.set_xlabel("x1")
        a.set_ylabel("x2")
    fig.suptitle(f"softmax gate of a mixture of {cfg.k} tanh experts, fitted ({cfg.epochs} epochs) to a "
                 f"different ridge in each of {cfg.k} sectors", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def run_experiment(cfg: GatesExperiment, out: Path, resume: bool = False) -> dict:
    summary = {"experiment": "gates", "bump": bump_figure(out), "product_gate": product_gate_figure(out),
               "softmax_gate": softmax_gate_figure(cfg, out, resume)}
    write_summary(out, summary)
    return summary


# --- the report's section: the lecture's claim, its rule, the numbers -------------------------------

def section(run: Run) -> Section:
    s = run.summary
    closed = num(s, "product_gate", "linear", "max_abs_out_gate_closed")
    open_err = num(s, "product_gate", "linear", "max_abs_error_gate_open")
    moe, one = num(s, "softmax_gate", "test_mse"), num(s, "softmax_gate", "one_expert_test_mse")
    agree, k = num(s, "softmax_gate", "sector_agreement"), get(s, "softmax_gate", "k")
    by_w = get(s, "bump", "width_vs_weight", default=[]) or []
    rows = [[f"bump peak, w = {get(r, 'w')}", fmt(num(r, "peak"), ".3f")] for r in by_w[:1] + by_w[-1:]]
    rows += [["product gate, gate shut (x1 = −4): max |out|", fmt(closed, ".4f")],
             ["product gate, gate open (x1 = +4): max |out − h(x2)|", fmt(open_err, ".4f")],
             [f"softmax gate: test MSE, {k} experts", fmt(moe, ".4f")],
             ["softmax gate: test MSE, one expert", fmt(one, ".4f")],
             ["softmax gate: winning expert agrees with the true sector", fmt(agree, ".1%")]]

    shut = NOT_MEASURED if closed is None else SUPPORTED if closed < SHUT else NOT_SUPPORTED
    shut_text = (f"the shut gate passes {NOT_MEASURED}" if closed is None else
                 f"the shut gate passes at most {closed:.4f} ({'<' if closed < SHUT else '≥'} {SHUT:g})")
    ev = stored(s, "softmax_gate", "mixture_vs_one_expert")
    mixture = NOT_MEASURED if ev is None else ev.verdict
    mixture_text = ("the mixture vs one expert: " + (NO_INTERVALS if ev is None else
                    f"{ev.text('test MSE', '.4f')} ({ev.verdict})"))
    rule = (f"deterministic: max |out| of the product gate with the gate shut (x1 = −4) over {GRID} values of x2 "
            f"< {SHUT:g}; the softmax gate's mixture has a lower test MSE than one expert, paired t over the "
            "test points (95 % interval below 0)")
    sec = Section("gates", "Logistic units and gates",
                  "Two logistic units summed make a bump, one unit multiplied by another gates it, and a "
                  "softmax gate divides the input space among experts.", combine(shut, mixture),
                  f"{shut_text}; {mixture_text}", tables=[Table(["quantity", "value"], rows)], rule=rule,
                  effect=effect_text(ev, "mixture − one expert test MSE", ".4f"))

    shut_part = (Part(NOT_MEASURED, "whether the shut product gate passes nothing") if closed is None else
                 Part(shut, f"with the gate shut the product gate passes at most {closed:.4f} of its input "
                            f"({'below' if closed < SHUT else 'not below'} the rule's {SHUT:g})"))
    sec.sentence = sentence(sec.verdict, [shut_part, measured(ev, Wording(
        f"a softmax gate over {k} experts makes the test MSE", "higher than one expert's", "lower than one expert's",
        "whether the softmax-gated mixture beats one expert", spec=".4f", what="test points"))])
    return with_figures(sec, run, {
        "bump.png": "Two logistic units summed, one rising and one falling: a bump, narrower as the weight w grows.",
        "product_gate.png": "One unit multiplied by another: with the gate unit off (x1 = −4) the output is 0 "
                            "whatever x2 is; with it on (x1 = +4) the output follows x2.",
        "softmax_gate.png": "A softmax gate over experts: each region of the input goes to the expert with the "
                            "largest gate weight; the weights of a point sum to 1."})
