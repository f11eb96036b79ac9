"""``connlab attention --preset course``: the course's toy attention head, its claims and its run.

Its page section: ``connlab.experiments.toy_attention_page``.

The course's exercise (C24_toytask_attentionhead_v1, C24_IntroTransformer_v5): two sentences,
one head of size H = 20 with the causal mask, SGD lr 0.01 on the whole corpus (batch 2) for
10 + 5,000 + 10 epochs, the middle ones with a reduce-on-plateau schedule; its final loss 0.1619.
One run of this command trains, as one stack (``ToyHeadStack``), for each of ``--seeds`` seeds:

    head            the course's head (H = --head-size, causal)
    no_attention    the same network with the head's output removed: the skip-add path alone
    unmasked        the same head without the mask (BERT's attention) on the same next-token task
    h<N>            the head at each size of --sweep (10, 20, 40), the course's "try changing H"

and, for the slides' walk from a head to a transformer, the lab's ``TransformerBlock`` (multi-head,
layer norm, MLP, residuals) on the same task, one block and a stack of two (Adam, --block-steps).

The claims and their rules, fixed before the numbers:
    reproduction   the course's 0.1619 lies in the 95 % prediction interval of one more of our runs
    attention      "attention lets `the` see who ordered": P(right object | `the`), the head against
                   no_attention, paired by seed, 95 % t interval above 0 (no_attention's ceiling is ½)
    mask           "why GPT masks": the unmasked head's loss lies below the floor ln 2 / 5 (one-sample t
                   interval of floor − loss above 0), and when each position sees only its prefix, as it
                   does while generating one token at a time, its loss rises above the masked head's
                   (paired t interval of the difference above 0)
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from connlab import evidence
from connlab.errors import UserError
from connlab.models.toy_attention import (OBJECTS, SENTENCES, THE, TOKENS, ToyHeadConfig, ToyHeadStack,
                                          ToyTransformer, ToyTransformerConfig, corpus, generate, 
                                          loss_floor, p_object_at_the, prefix_probs)
from connlab.plots import pyplot, save_figure
from connlab.runs import write_summary
from connlab.seeds import SeedGroup
from connlab.train.full_batch import Phase, Plateau, train_full_batch

COURSE_LOSS = 0.1619            # the notebook's final loss (its last 10 epochs)
COURSE_WARMUP = COURSE_TAIL = 10  # the verbose fit calls before and after the 5,000 epochs
BLOCK_LR = 1e-2
FIGURES = ("toy_head.png", "toy_loss.png", "toy_unmasked.png")


def variants(head_size: int, sweep) -> dict[str, ToyHeadConfig]:
    """The named networks one run trains (each over every seed)."""
    out = {"head": ToyHeadConfig(head_size), "no_attention": ToyHeadConfig(head_size, attention=False),
           "unmasked": ToyHeadConfig(head_size, causal=False)}
    for h in sweep:
        if h != head_size:
            out[f"h{h}"] = ToyHeadConfig(h)
    return out


def phases(epochs: int) -> list[Phase]:
    return [Phase(COURSE_WARMUP), Phase(epochs, Plateau()), Phase(COURSE_TAIL)]


def generation_accuracy(model, x: torch.Tensor, y: torch.Tensor) -> float:
    """Next-token accuracy over positions 1..T-1 of both sentences when the model sees the prefix only
    (position 0, man or woman, is a coin flip for any honest model and is left out)."""
    pred = prefix_probs(model, x).argmax(-1)
    return (pred[:, 1:] == y[:, 1:]).float().mean().item()


def run_toy(cfg, out: Path) -> dict:
    # Tensors of a few hundred numbers: a second CPU thread only adds synchronisation to every
    # operation (measured on 2 shared cores: ~2 ms per step with one thread, ~30 ms with two).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run_toy(cfg, out)
    finally:
        torch.set_num_threads(threads)


def _run_toy(cfg, out: Path) -> dict:
    x, y = corpus()
    seeds = list(range(cfg.seed, cfg.seed + cfg.seeds))
    nets = variants(cfg.head_size, cfg.sweep)
    names = [n for n in nets for _ in seeds]
    stack = ToyHeadStack([nets[n] for n in names], [s for _ in nets for s in seeds])
    start = time.perf_counter()
    trained = train_full_batch(list(stack.parameters()), lambda: stack.losses(x, y), phases(cfg.epochs), cfg.lr)
    head_seconds = time.perf_counter() - start
    per, models = head_records(stack, names, trained, seeds, x, y)
    # The figures and the explorer show the head of the seed that learned `the` best (its seed is named), and
    # the unmasked head of the same seed.
    shown = max(range(len(seeds)), key=lambda i: per["head"][i]["p_object_at_the"])
    models = {name: ms[shown] for name, ms in models.items()}
    start = time.perf_counter()
    blocks = {f"depth{depth}": train_blocks(cfg, depth, seeds, x, y) for depth in (1, 2)}
    block_seconds = time.perf_counter() - start
    summary = build_summary(cfg, nets, names, per, models, trained, blocks, seeds)
    summary.update({"train_seconds": head_seconds + block_seconds, "head_seconds": head_seconds,
                    "block_seconds": block_seconds, "shown_seed": seeds[shown]})
    (out / "toy_head.json").write_text(json.dumps(head_weights(models["head"]) | {"seed": seeds[shown]}))
    write_summary(out, summary)
    draw_figures(out, models, summary, len(seeds))
    return summary


def head_records(stack, names: list[str], trained: dict, seeds: list[int], x, y) -> tuple[dict, dict]:
    """Every trained head's numbers, {name: [record per seed]}, and the heads, {name: [model per seed]}."""
    per: dict[str, list[dict]] = {n: [] for n in dict.fromkeys(names)}
    models: dict[str, list] = {}
    for k, name in enumerate(names):
        model = stack.module(k).eval()
        with torch.no_grad():
            probs = model.next_token_probs(x)
            seen = prefix_probs(model, x)   # what generation sees: each position given its prefix only
            honest = -seen.gather(-1, y.unsqueeze(-1)).log().mean().item()  # the loss with no future in sight
        seed = seeds[len(per[name])]
        per[name].append({
            "seed": seed, "final_loss": trained["loss"][k, -1].item(), "p_object_at_the": p_object_at_the(probs).item(),
            "prefix_loss": honest, "p_object_at_the_from_prefix": p_object_at_the(seen).item(),
            "generation_accuracy": generation_accuracy(model, x, y),
            "generated": [" ".join(generate(model, first)) for first in ("man", "woman")],
            "lr_reductions": [e for phase, e in trained["reductions"][k] if phase == 1]})
        models.setdefault(name, []).append(model)
    return per, models


def train_blocks(cfg, depth: int, seeds: list[int], x, y) -> dict:
    """The slides' walk from a head to a transformer: ``depth`` of the lab's blocks on the same task, every seed."""
    block_cfg = ToyTransformerConfig(depth=depth)
    group = SeedGroup(lambda: ToyTransformer(block_cfg), seeds)
    xs, ys = x.expand(len(seeds), -1, -1), y.expand(len(seeds), -1, -1)
    losses = lambda: torch.nn.functional.cross_entropy(  # noqa: E731
        group(xs).flatten(0, -2), ys.flatten(), reduction="none").view(len(seeds), -1).mean(1)
    result = train_full_batch(group.parameters(), losses, [Phase(cfg.block_steps)], BLOCK_LR, optimizer="adam")
    rows = []
    for k, seed in enumerate(seeds):
        m = group.module(k).eval()
        with torch.no_grad():
            rows.append({"seed": seed, "final_loss": result["loss"][k, -1].item(),
                         "p_object_at_the": p_object_at_the(m.next_token_probs(x)).item(),
                         "generation_accuracy": generation_accuracy(m, x, y)})
    return {"config": {"dim": block_cfg.dim, "heads": block_cfg.heads, "depth": depth, "mlp_ratio": block_cfg.mlp_ratio},
            "params": sum(p.numel() for p in m.parameters()), "seeds": rows}


def toy_claims(per: dict, floor: float) -> dict:
    """The claims' comparisons (the module docstring's rules), as Evidence dicts."""

    def col(name, key):
        return [r[key] for r in per[name]]

    return {
        "reproduction": evidence.reproduction(COURSE_LOSS, col("head", "final_loss")).as_dict(),
        "attention": evidence.compare(col("no_attention", "p_object_at_the"), col("head", "p_object_at_the"),
                                      better="higher").as_dict(),
        "unmasked_below_floor": evidence.at_least([floor - v for v in col("unmasked", "final_loss")], 0.0,
                                                  what="seeds").as_dict(),
        "unmasked_generation": evidence.compare(col("head", "prefix_loss"), col("unmasked", "prefix_loss"),
                                                better="higher").as_dict(),
    }


def sweep_intervals(cfg, per: dict, seeds: list[int]) -> dict:
    """Per head size of --sweep: the 95 % interval of its final loss and P(right object | `the`) over seeds."""
    sweep = {}
    for h in cfg.sweep:
        rows = per["head" if h == cfg.head_size else f"h{h}"]
        sweep[str(h)] = {key: (list(evidence.interval([r[key] for r in rows])) if len(seeds) > 1
                               else [rows[0][key]] * 3) for key in ("final_loss", "p_object_at_the")}
    return sweep


def build_summary(cfg, nets: dict, names: list[str], per: dict, models: dict, trained: dict, blocks: dict,
                  seeds: list[int]) -> dict:
    """summary.json without its timings: the setting, every network's seeds, the sweep, the blocks, the claims
    and the first seed's loss curve of each network, thinned to <= 500 points for the page."""
    floor = loss_floor()
    every = max(1, trained["loss"].shape[1] // 500)
    curves = {n: trained["loss"][names.index(n), ::every].tolist() for n in nets}
    return {
        "experiment": "attention", "task": "toy", "sentences": list(SENTENCES), "tokens": list(TOKENS),
        "head_size": cfg.head_size, "epochs": [COURSE_WARMUP, cfg.epochs, COURSE_TAIL], "lr": cfg.lr,
        "loss_floor": floor, "course_final_loss": COURSE_LOSS,
        "params": sum(p.numel() for p in models["head"].parameters()),
        "seeds": per["head"], "variants": {n: {"head_size": c.head_size, "causal": c.causal,
                                               "attention": c.attention, "seeds": per[n]} for n, c in nets.items()},
        "sweep": sweep_intervals(cfg, per, seeds), "blocks": blocks, "claims": toy_claims(per, floor),
        "curves": {"every": every, **curves},
    }


def draw_figures(out: Path, models: dict, summary: dict, n_seeds: int) -> None:
    """toy_head.png and toy_unmasked.png (the shown seed's heads) and toy_loss.png."""
    seed = summary["shown_seed"]
    best = f"seed {seed} (of {n_seeds}, the one whose P(right object | `the`) is highest)"
    head_figure(models["head"], out / "toy_head.png", f"the course's head (causal), {best}")
    head_figure(models["unmasked"], out / "toy_unmasked.png", f"the unmasked head, seed {seed}", prefix=True)
    curves = {k: v for k, v in summary["curves"].items() if k != "every"}
    loss_figure(curves, summary["curves"]["every"], summary["loss_floor"], out / "toy_loss.png")


def head_weights(model) -> dict:
    """The trained head as plain lists (the explorer runs its forward pass in the page)."""
    return {"tokens": list(TOKENS), "sentences": list(SENTENCES), "head_size": model.cfg.head_size,
            "causal": model.cfg.causal, "token_embed": model.token_embed.weight.tolist(),
            "pos_embed": model.pos_embed.weight.tolist(), "wq": model.head.q.weight.T.tolist(),
            "wk": model.head.k.weight.T.tolist(), "wv": model.head.v.weight.T.tolist()}


# --- figures ------------------------------------------------------------------------------------------

def _annotated(ax, data, rows, cols, title):
    ax.imshow(data, cmap="viridis", vmin=0, vmax=1)
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            ax.text(j, i, f"{data[i, j]:.2f}", ha="center", va="center", fontsize=6,
                    color="black" if data[i, j] > 0.5 else "white")
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.set_title(title, fontsize=8)


def head_figure(model, path: Path, title: str, prefix: bool = False) -> Path:
    """Per sentence: the T×T attention weights and the T×V next-token predictions, annotated.

    ``prefix``: the predictions are the ones generation sees (each position given its prefix only)."""
    x, _ = corpus()
    with torch.no_grad():
        probs = (prefix_probs(model, x) if prefix else model.next_token_probs(x)).numpy()
        model(x)
        weights = model.last_attention.numpy()
    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5))
    for i, sentence in enumerate(SENTENCES):
        words = [f"{t} {w}" for t, w in enumerate(sentence.split())]
        _annotated(axes[i][0], weights[i], words, sentence.split(), f"attention weights (row: query) — {sentence}")
        axes[i][0].set_xlabel("key", fontsize=7)
        what = "from the prefix only (generation)" if prefix else "given the sentence"
        _annotated(axes[i][1], probs[i], words, TOKENS, f"next-token probabilities, {what}")
    fig.suptitle(f"{title}: at `the` (row {THE}) the right object is {OBJECTS[0]} / {OBJECTS[1]}", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=80)
    return Path(path)


def loss_figure(curves: dict, every: int, floor: float, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, values in curves.items():
        ax.plot([i * every + 1 for i in range(len(values))], values, label=name, lw=1.2)
    ax.axhline(floor, color="black", ls="--", lw=1, label=f"floor ln 2 / 5 = {floor:.4f}")
    ax.axhline(COURSE_LOSS, color="gray", ls=":", lw=1, label=f"course's final loss {COURSE_LOSS}")
    ax.set_yscale("log")
    ax.set_xlabel("epoch (one full-batch step)")
    ax.set_ylabel("loss per token (Keras' sparse CE)")
    ax.set_title("training loss, first seed of each network: below the floor = it saw the future", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=80)
    return Path(path)


def check_toy_config(cfg) -> None:
    if cfg.batch_size != 2:
        raise UserError(f"the toy corpus is 2 sentences, trained as one batch of 2; got --batch-size {cfg.batch_size}")
    if any(h < 1 for h in cfg.sweep) or cfg.head_size < 1:
        raise UserError("head sizes must be >= 1")
    if not math.isfinite(cfg.lr):
        raise UserError(f"--lr must be finite, got {cfg.lr}")
