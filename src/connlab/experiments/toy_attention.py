"""``connlab attention --preset course``: the course's toy attention head, its claims and its page section.

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
from connlab.evidence import Reproduction
from connlab.experiments.section import (NOT_MEASURED, PARTLY, SUPPORTED, Run, Section, Table, combine, effect_of,
                                         evidence_line, fmt, get, num, stored, stored_reproduction, with_figures)
from connlab.experiments.sentence import Part, Wording, measured, sentence
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
        sweep[str(h)] = {key: list(evidence.interval([r[key] for r in rows])) if len(seeds) > 1 else [rows[0][key]] * 3
                         for key in ("final_loss", "p_object_at_the")}
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


# --- the page ---------------------------------------------------------------------------------------

def _mean(rows, key):
    values = [r.get(key) for r in rows or [] if isinstance(r, dict) and isinstance(r.get(key), (int, float))]
    return sum(values) / len(values) if values else None


def _generating(rows) -> int:
    """Seeds whose greedy generation from `<Start> man` and `<Start> woman` gives the two corpus sentences."""
    return sum(1 for r in rows if isinstance(r, dict) and sorted(r.get("generated") or []) == sorted(SENTENCES))


def section(run: Run) -> Section:
    s = run.summary
    floor = num(s, "loss_floor")
    head = get(s, "seeds", default=[]) or []
    variants_ = get(s, "variants", default={}) or {}
    claims = get(s, "claims", default={}) or {}
    n = len(head)
    rows = [["final loss (mean over seeds)", fmt(_mean(head, "final_loss"))],
            ["the course's final loss (one run)", fmt(num(s, "course_final_loss"))],
            ["floor for any causal model, ln 2 / 5", fmt(floor)],
            ["P(right object | `the`), mean", fmt(_mean(head, "p_object_at_the"), ".3f")],
            ["parameters", str(get(s, "params", default="?"))], ["seeds", str(n)],
            ["training seconds (all networks)", fmt(num(s, "train_seconds"), ".1f")]]
    repro = get(claims, "reproduction")
    repro_text = Reproduction.from_dict(repro).text() if isinstance(repro, dict) else "not measured"
    rows.insert(2, ["reproduction (95 % prediction interval for one run)", repro_text])

    nets = [["network", "final loss", "loss from the prefix only (generation)", "P(right object | `the`)",
             "same, from the prefix", "seeds with P > ¾", "seeds generating both sentences", "generated (first seed)"]]
    for name, v in variants_.items():
        r = v.get("seeds", []) if isinstance(v, dict) else []
        first = r[0].get("generated", []) if r and isinstance(r[0], dict) else []
        learned = sum(1 for x in r if isinstance(x, dict) and (x.get("p_object_at_the") or 0) > 0.75)
        nets.append([name, fmt(_mean(r, "final_loss")), fmt(_mean(r, "prefix_loss")),
                     fmt(_mean(r, "p_object_at_the"), ".3f"), fmt(_mean(r, "p_object_at_the_from_prefix"), ".3f"),
                     f"{learned} of {len(r)}", f"{_generating(r)} of {len(r)}", " / ".join(first)])
    for name, b in (get(s, "blocks", default={}) or {}).items():
        r = b.get("seeds", []) if isinstance(b, dict) else []
        nets.append([f"TransformerBlock ×{get(b, 'config', 'depth', default='?')} (dim 16, 2 heads, "
                     f"{get(b, 'params', default='?')} params)", fmt(_mean(r, "final_loss")), "= final (causal)",
                     fmt(_mean(r, "p_object_at_the"), ".3f"), "= (causal)",
                     f"{sum(1 for x in r if (x.get('p_object_at_the') or 0) > 0.75)} of {len(r)}", "", ""])
    sweep = [["H", "final loss (mean, 95 % CI)", "P(right object | `the`) (mean, 95 % CI)"]]
    for h, v in (get(s, "sweep", default={}) or {}).items():
        lo = get(v, "final_loss", default=[None] * 3)
        po = get(v, "p_object_at_the", default=[None] * 3)
        sweep.append([h, f"{fmt(lo[0])} [{fmt(lo[1])}, {fmt(lo[2])}]",
                      f"{fmt(po[0], '.3f')} [{fmt(po[1], '.3f')}, {fmt(po[2], '.3f')}]"])

    v_att, line_att = evidence_line(get(claims, "attention"), "P(right object | `the`): head − no attention, "
                                    "paired by seed, 95 % CI above 0", "P(object)", spec=".3f")
    v_floor, line_floor = evidence_line(get(claims, "unmasked_below_floor"), "unmasked: floor − final loss, "
                                        "95 % CI above 0", "floor − loss")
    v_gen, line_gen = evidence_line(get(claims, "unmasked_generation"), "the loss when each position sees its "
                                    "prefix only (as in generation): unmasked − masked, paired, 95 % CI above 0",
                                    "loss")
    verdict = combine(v_att, v_floor, v_gen)
    if verdict == SUPPORTED and isinstance(repro, dict) and repro.get("verdict") != "reproduced":
        verdict = PARTLY
    if not head:
        verdict = NOT_MEASURED
    notes = [line_att, line_floor, line_gen,
             "head → block → stack: the TransformerBlock rows are the slides' next step (several heads, layer norm, "
             "an MLP, residuals; stack them); the same block runs the reverse/sort task of `connlab attention`.",
             "predictions are softmax(z) of the sigmoid's input z: Keras' sparse cross-entropy on a sigmoid "
             "output uses z as logits (the sigmoid caches it), so that is the distribution the course trains"]
    said = plain_sentence(claims, verdict, bool(head))
    text = (f"the head's loss {fmt(_mean(head, 'final_loss'))} vs the floor {fmt(floor)}; {repro_text}; "
            f"attention: {v_att}; the unmasked head below the floor: {v_floor}; it fails to generate: {v_gen}")
    return with_figures(Section(
        "attention", "The toy attention head (the course's exercise): who ordered, and why GPT masks",
        "Attention lets `the` see who ordered: the head predicts chicken after the man and beef after the woman, "
        "which the skip-add path alone cannot; without the causal mask the head reads the answer — its loss falls "
        "below the floor ln 2 / 5 — and fails when it has to generate one token at a time.",
        verdict, text, tables=[Table(["quantity", "value"], rows), Table(nets[0], nets[1:], "networks, mean over seeds"),
                               Table(sweep[0], sweep[1:], "the course's \"try H = 10, 20, 40\"")],
        notes=notes, rule="attention: paired t over seeds, head vs no attention; mask: one-sample t of floor − loss, "
                          "paired t of generation accuracy; the course's loss in our 95 % prediction interval",
        effect=effect_of(get(claims, "attention"), "P(object)", spec=".3f"), sentence=said), run, CAPTIONS)


CAPTIONS = dict(zip(FIGURES, (
    "The toy head's attention weights and predictions: after `the`, the head looks back at who ordered.",
    "Training loss per epoch, each network and seed, with the floor ln 2 / 5 that no causal model can beat.",
    "The head without the causal mask: its loss falls below the floor because it reads the answer, and it "
    "fails when it has to generate one token at a time.")))


def plain_sentence(claims: dict, verdict: str, trained: bool) -> str:
    """The verdict in one plain sentence (``connlab.experiments.sentence``), from the stored comparisons."""
    if not trained:
        return "The toy head was not trained in this run: not measured."
    parts = [measured(stored(claims, "attention"), Wording(
                 "with attention, the head gives the right object after `the` a probability", "higher than the "
                 "skip-add path alone", "lower than the skip-add path alone", "whether attention finds who ordered",
                 spec=".3f")),
             measured(stored(claims, "unmasked_below_floor"), Wording(
                 "without the causal mask its loss ends", "below the floor ln 2 / 5", "above the floor ln 2 / 5",
                 "whether the unmasked head beats the floor", spec=".3f")),
             measured(stored(claims, "unmasked_generation"), Wording(
                 "and, generating one token at a time, the unmasked head's loss is", "higher than the masked "
                 "head's", "lower than the masked head's", "whether the unmasked head fails to generate",
                 spec=".3f"))]
    rep = stored_reproduction(get(claims, "reproduction"))
    if rep is not None and rep.verdict != "reproduced" and verdict == PARTLY and not math.isnan(rep.low):
        parts.append(Part(rep.verdict, f"the course's final loss {rep.published:.4f} lies outside our interval "
                                       f"for one run ({rep.low:.4f} to {rep.high:.4f}, {rep.n} seeds)"))
    return sentence(verdict, parts)


def section_or_none(run: Run):
    """The toy section when the run is the toy task, else None."""
    task = get(run.summary, "task", default=None) or get(run.config, "task", default=None)
    return section(run) if task == "toy" else None


def check_toy_config(cfg) -> None:
    if cfg.batch_size != 2:
        raise UserError(f"the toy corpus is 2 sentences, trained as one batch of 2; got --batch-size {cfg.batch_size}")
    if any(h < 1 for h in cfg.sweep) or cfg.head_size < 1:
        raise UserError("head sizes must be >= 1")
    if not math.isfinite(cfg.lr):
        raise UserError(f"--lr must be finite, got {cfg.lr}")
