"""``connlab attention`` — a sequence task where attention is the whole point.

Reverse (default) or sort a sequence of digits 0-9 with a small encoder-only transformer:
token + learned position embeddings, a few pre-norm ``TransformerBlock``s, one linear read-out
per position. Output position i must copy the digit at position L-1-i (reverse) or at the
position of the i-th smallest digit (sort): no fixed local rule can do it, a query must *find*
its key. The learned attention shows exactly that — an anti-diagonal for reversal, a
permutation matrix for sorting.

The lecture's bridge slide, drawn: attention is a softmax gate over the values V, with Q, K and
V computed from the input. ``softmax_gate.png`` takes one head and one query and shows the
gate's weights over the positions and the weighted sum Σ_j α_j v_j next to the values v_j.

Run folder:
    summary.json             test_accuracy (per token), sequence_accuracy, the chosen head
    attention_patterns.png   every layer and head, for a few test sequences
    softmax_gate.png         one head, one query: weights and the weighted sum of values
    accuracy_curve.png, metrics.jsonl, model.safetensors, checkpoints/
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from connlab import plots
from connlab.experiments.common import (TrainingSettings, add_training_command, from_flags, int_list, nonnegative_float,
                                        nonnegative_int, positive_int)
from connlab.experiments.config import flag
from connlab.experiments.section import (Run, Section, Table, fmt, get, num, target, with_figures)
from connlab.experiments.sentence import Part, sentence
from connlab.experiments.toy_attention import check_toy_config, run_toy
from connlab.experiments.toy_attention_page import section_or_none
from connlab.models.sequence import VOCAB, SequenceModelConfig, SequenceTransformer
from connlab.plots import pyplot, save_figure
from connlab.runs import resumable, write_summary
from connlab.train import fit, pick_device, seed_everything

TASKS = ("reverse", "sort")            # the sequence tasks
ALL_TASKS = TASKS + ("toy",)           # toy: the course's toy head (connlab.experiments.toy_attention)
TEST_SEED = 999  # the test sequences are the same for every run
SHOWN = 3        # sequences in the pattern figure
ATTENTION_TARGET = 0.95  # token accuracy on the sequence task


def make_task(task: str, n: int, length: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` random digit sequences (n, length) and their targets (n, length)."""
    if task not in TASKS:
        raise ValueError(f"task {task!r} is not one of {', '.join(TASKS)}")
    x = torch.randint(0, VOCAB, (n, length), generator=generator)
    y = x.flip(1) if task == "reverse" else x.sort(dim=1, stable=True).values
    return x, y


def source_positions(task: str, x: torch.Tensor) -> torch.Tensor:
    """For each output position, the input position its digit comes from (n, length)."""
    if task == "reverse":
        return torch.arange(x.shape[1] - 1, -1, -1, device=x.device).expand_as(x)
    return x.sort(dim=1, stable=True).indices


@dataclass(frozen=True)
class AttentionExperiment(TrainingSettings):
    # --preset course: the course's toy head, exactly (C24_toytask_attentionhead_v1); --task toy selects it too.
    # 10 seeds: the head learns `the` in about half of its runs (as the course warns: "not always"), and 5 paired
    # seeds leave the head-vs-no-attention interval across 0 (benchmarks/RESULTS.md, "toy attention head").
    PRESETS = {"course": dict(task="toy", lr=0.01, batch_size=2, epochs=5000, seeds=10)}
    PRESET_FIELD = "preset"

    preset: str = flag("", "course: the course's toy attention head (SGD lr 0.01, batch 2, 10 + 5,000 + 10 "
                           "epochs)", choices=("", "course"), show_default=False)
    task: str = flag("reverse", "reverse or sort the digits; toy: the course's two sentences and one head",
                     choices=ALL_TASKS)
    head_size: int = flag(20, "toy task: the head size H", type=positive_int)
    sweep: tuple[int, ...] = flag((10, 20, 40), "toy task: head sizes to compare", type=int_list(1, "head sizes"))
    seeds: int = flag(1, "toy task: seeds per network", type=positive_int)
    block_steps: int = flag(200, "toy task: Adam steps for the TransformerBlock networks", type=positive_int)
    length: int = flag(8, "sequence length", type=positive_int)
    dim: int = flag(64, "embedding size", type=positive_int)
    depth: int = flag(2, "transformer blocks", type=positive_int)
    heads: int = flag(2, "attention heads", type=positive_int)
    mlp_ratio: int = flag(2, "", type=positive_int)
    train_size: int = flag(10000, "training sequences", type=positive_int)
    test_size: int = flag(1000, "test sequences", type=positive_int)
    weight_decay: float = flag(0.01, "AdamW weight decay", type=nonnegative_float)
    warmup_steps: int = flag(100, "linear warm-up before cosine decay", type=nonnegative_int)
    epochs: int = 15
    lr: float = 2e-3

    def model_config(self) -> SequenceModelConfig:
        return SequenceModelConfig(self.length, VOCAB, self.dim, self.depth, self.heads, self.mlp_ratio)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_training_command(p, AttentionExperiment, "attention", run_experiment, describe, config=config_from_args)


def config_from_args(args: argparse.Namespace) -> AttentionExperiment:
    if getattr(args, "task", None) == "toy" and not hasattr(args, "preset"):
        args.preset = "course"  # the toy task is the course's exercise: its recipe fills the flags not given
    cfg = AttentionExperiment.from_args(args)
    if cfg.task == "toy":
        check_toy_config(cfg)
        return cfg
    from_flags(cfg.model_config)  # validates dim / heads before anything is written
    return cfg


def describe(s: dict, cfg: AttentionExperiment) -> str:
    if cfg.task == "toy":
        losses = [r["final_loss"] for r in s["seeds"]]
        return (f"toy head (H = {cfg.head_size}), {len(losses)} seed(s): final loss {sum(losses) / len(losses):.4f} "
                f"(course 0.1619, floor {s['loss_floor']:.4f}); P(right object | the) "
                f"{sum(r['p_object_at_the'] for r in s['seeds']) / len(losses):.3f} ({s['train_seconds']:.1f} s)")
    return (f"{cfg.task} (length {cfg.length}): token accuracy {s['test_accuracy']:.4f}, "
            f"sequence accuracy {s['sequence_accuracy']:.4f} ({s['train_seconds']:.0f} s training)")


def run_experiment(cfg: AttentionExperiment, out: Path, resume: bool = False) -> dict:
    if cfg.task == "toy":
        return run_toy(cfg, out)
    device = pick_device(cfg.device)
    train = make_task(cfg.task, cfg.train_size, cfg.length, torch.Generator().manual_seed(cfg.seed))
    test_x, test_y = (t.to(device) for t in make_task(cfg.task, cfg.test_size, cfg.length,
                                                      torch.Generator().manual_seed(TEST_SEED)))
    accuracies = accuracies_on(test_x, test_y)
    model, result = train_transformer(cfg, out, resume, tuple(t.to(device) for t in train), accuracies)
    model.eval()
    with torch.no_grad():
        scores = accuracies(model)
        x = test_x[:SHOWN]
        model(x)
        maps = [m.float().cpu() for m in model.attention_maps()]  # depth x (SHOWN, heads, L, L)
    source = source_positions(cfg.task, x).cpu()
    match = weight_on_source(maps, source, cfg.heads)
    summary = build_summary(cfg, device, model, result, scores, match)
    write_summary(out, summary)
    draw_figures(cfg, out, model, result, x, maps, source, summary["weight_on_source"])
    return summary


def token_loss(model, batch, generator):
    """The trainer's loss: cross-entropy over every (B * L) token."""
    x, y = batch
    return F.cross_entropy(model(x).float().flatten(0, 1), y.flatten())


def accuracies_on(test_x, test_y):
    """The trainer's ``evaluate``: token and whole-sequence accuracy on the test sequences."""

    def accuracies(model):
        correct = torch.cat([model(x).argmax(-1) == y for x, y in zip(test_x.split(1000), test_y.split(1000))])
        return {"test_accuracy": correct.float().mean().item(),
                "sequence_accuracy": correct.all(dim=1).float().mean().item()}

    return accuracies


def train_transformer(cfg: AttentionExperiment, out: Path, resume: bool, train: tuple, evaluate):
    """Seed, build and train the sequence transformer in ``out``; returns (model, fit's result)."""
    seed_everything(cfg.seed)
    model_cfg = cfg.model_config()
    model = SequenceTransformer(model_cfg).to(train[0].device)
    train_cfg = cfg.train_config(optimizer="adamw", lr_schedule="cosine")  # weight_decay, warmup_steps: shared names
    result = fit(model, token_loss, train, train_cfg, out, model_config=asdict(model_cfg), evaluate=evaluate,
                 resume=resumable(out, resume), label=cfg.task)
    return model, result


def weight_on_source(maps: list[torch.Tensor], source: torch.Tensor, heads: int) -> torch.Tensor:
    """(depth, heads): the mean attention weight each head puts on the true source position."""
    return torch.tensor([[m[:, h].gather(-1, source.unsqueeze(-1)).mean().item() for h in range(heads)]
                         for m in maps])


def build_summary(cfg: AttentionExperiment, device, model, result, scores: dict, match: torch.Tensor) -> dict:
    """summary.json: accuracies, size, and which head implements the task (the most weight on the source)."""
    layer, head = divmod(int(match.argmax()), cfg.heads)
    return {
        "experiment": "attention", "task": cfg.task, "length": cfg.length, "device": str(device),
        "train_sequences": cfg.train_size, "test_sequences": cfg.test_size, **scores,
        "chance_token_accuracy": 1 / VOCAB, "params": sum(p.numel() for p in model.parameters()),
        "epochs": cfg.epochs, "train_seconds": result.train_seconds, "final_train_loss": result.final_train_loss,
        "weight_on_source": {"per_layer_head": match.tolist(), "best_layer": layer, "best_head": head},
        "model": asdict(cfg.model_config()), "history": result.history,
    }


def draw_figures(cfg: AttentionExperiment, out: Path, model, result, x, maps, source, on_source: dict) -> None:
    """attention_patterns.png, softmax_gate.png (the best head as a softmax gate), accuracy_curve.png."""
    attention_patterns(x.cpu(), maps, source, out / "attention_patterns.png", cfg.task)
    softmax_gate(model, x[:1], on_source["best_layer"], on_source["best_head"], query=0,
                 path=out / "softmax_gate.png", task=cfg.task)
    epochs = [h["epoch"] for h in result.history]
    plots.curves({"token accuracy": (epochs, [h["test_accuracy"] for h in result.history]),
                  "sequence accuracy": (epochs, [h["sequence_accuracy"] for h in result.history])},
                 out / "accuracy_curve.png", "epoch", "test accuracy", f"{cfg.task}, length {cfg.length}")


def head_values(model: SequenceTransformer, tokens: torch.Tensor, layer: int, head: int):
    """Weights (L, L), values (L, d) and outputs (L, d) of one head for one sequence (1, L).

    Recomputes V from the block's own projection of its normalised input, so the figure shows
    the very numbers the network multiplies: output_i = Σ_j weights_ij v_j.
    """
    captured = {}
    block = model.blocks[layer]
    hook = block.register_forward_pre_hook(lambda mod, args: captured.setdefault("x", args[0]))
    try:
        with torch.no_grad():
            model(tokens)
    finally:
        hook.remove()
    attn = block.attn
    _, w_v = attn.in_proj_weight.split([2 * attn.embed_dim, attn.embed_dim])
    b_v = attn.in_proj_bias[2 * attn.embed_dim:] if attn.in_proj_bias is not None else None
    with torch.no_grad():
        v = F.linear(block.norm1(captured["x"]), w_v, b_v)[0]  # (L, E)
    v = v[:, head * attn.head_dim:(head + 1) * attn.head_dim]  # (L, d)
    weights = block.last_attention[0, head]  # (L, L)
    return weights.float().cpu(), v.float().cpu(), (weights @ v).float().cpu()


def attention_patterns(x: torch.Tensor, maps: list[torch.Tensor], source: torch.Tensor, path: Path,
                       task: str) -> Path:
    """Heatmaps: one row per example, one column per (layer, head); dots mark the true source."""
    plt = pyplot()
    n, heads, length = x.shape[0], maps[0].shape[1], x.shape[1]
    cols = len(maps) * heads
    fig, axes = plt.subplots(n, cols, figsize=(2.3 * cols + 0.5, 2.3 * n + 0.6), squeeze=False)
    for r in range(n):
        digits = [str(t) for t in x[r].tolist()]
        for c in range(cols):
            layer, head = divmod(c, heads)
            ax = axes[r][c]
            ax.imshow(maps[layer][r, head].numpy(), cmap="viridis", vmin=0, vmax=1)
            ax.scatter(source[r].numpy(), range(length), s=6, c="red", marker="o")
            ax.set_xticks(range(length), digits, fontsize=6)
            ax.set_yticks(range(length), [str(i) for i in range(length)], fontsize=6)
            if r == 0:
                ax.set_title(f"layer {layer + 1}, head {head + 1}", fontsize=8)
            if c == 0:
                ax.set_ylabel("query (output position)", fontsize=7)
            if r == n - 1:
                ax.set_xlabel("key (input digit)", fontsize=7)
    fig.suptitle(f"attention weights, {task}: red dots = where the answer is "
                 f"({'anti-diagonal' if task == 'reverse' else 'a permutation'})", fontsize=9)
    fig.tight_layout()

    save_figure(fig, path, dpi=80)
    return Path(path)


def softmax_gate(model, tokens, layer: int, head: int, query: int, path: Path, task: str) -> Path:
    """The lecture's softmax gate, for one head and one query.

    Left: the gate α_j = softmax_j(q·k_j/√d) over the positions (bars, labelled with their digit).
    Right: each value vector v_j (thin, shaded by α_j) and the gated sum o = Σ_j α_j v_j (thick);
    with a confident gate o lies on top of the one value it selected.
    """
    weights, v, o = head_values(model, tokens, layer, head)
    alpha, out = weights[query], o[query]  # (L,), (d,)
    digits = tokens[0].tolist()
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax1.bar(range(len(alpha)), alpha.numpy(), color="tab:blue")
    ax1.set_xticks(range(len(alpha)), [f"{j}\n'{d}'" for j, d in enumerate(digits)], fontsize=7)
    ax1.set_xlabel("key position j and its digit")
    ax1.set_ylabel("gate weight α_j")
    ax1.set_ylim(0, 1)
    ax1.set_title(f"softmax gate of query {query} (layer {layer + 1}, head {head + 1}); Σα = {alpha.sum():.3f}",
                  fontsize=9)
    dims = range(v.shape[1])
    top = int(alpha.argmax())
    for j in range(v.shape[0]):
        ax2.plot(dims, v[j].numpy(), color="gray", alpha=0.2 + 0.8 * float(alpha[j]), lw=1)
    ax2.plot(dims, v[top].numpy(), "--", color="tab:orange", lw=1.5, label=f"v_{top} (α = {alpha[top]:.2f})")
    ax2.plot(dims, out.numpy(), color="tab:blue", lw=2.5, alpha=0.7, label="o = Σ_j α_j v_j")
    ax2.set_xlabel("value dimension")
    ax2.set_ylabel("value")
    ax2.set_title("values v_j (gray, darker = larger α_j) and the gated sum", fontsize=9)
    ax2.legend(fontsize=8)
    fig.suptitle(f"{task} '{''.join(map(str, digits))}': attention is a softmax gate over the values", fontsize=10)
    fig.tight_layout()

    save_figure(fig, path, dpi=90)
    return Path(path)


# --- the report's section: the lecture's claim, its rule, the numbers -------------------------------

def section(run: Run) -> Section:
    toy = section_or_none(run)
    if toy is not None:
        return toy
    s = run.summary
    acc, seq = num(s, "test_accuracy"), num(s, "sequence_accuracy")
    per = get(s, "weight_on_source", "per_layer_head", default=[]) or []
    best = max((v for row in per if isinstance(row, list) for v in row if isinstance(v, (int, float))), default=None)
    rows = [["token accuracy", fmt(acc, ".2%")], ["whole-sequence accuracy", fmt(seq, ".2%")],
            ["target (token accuracy)", f"{ATTENTION_TARGET:.0%}"], ["chance", fmt(num(s, "chance_token_accuracy"), ".0%")],
            ["best head's attention weight on the true source", fmt(best, ".2f")],
            ["task, length", f"{get(s, 'task', default='?')}, {get(s, 'length', default='?')}"],
            ["training seconds", fmt(num(s, "train_seconds"), ".0f")]]
    verdict, text = target(acc, ATTENTION_TARGET, "token accuracy")
    if best is not None:
        text += f"; the best head puts {best:.2f} of its weight on the position the answer comes from"
    n = get(s, "test_sequences", default="?")
    rule = (f"deterministic threshold, no interval: token accuracy on the {n} held-out test sequences "
            f"≥ {ATTENTION_TARGET:.0%} (the attention weight on the true source is shown, not judged)")
    return with_figures(Section("attention", "Attention: a softmax gate over the values",
                                 "Scaled dot-product attention is a softmax gate over values, with queries, keys and "
                                 "values computed from the input: each output position learns to find its source.",
                                 verdict, text, tables=[Table(["quantity", "value"], rows)], rule=rule,
                                 effect=f"token accuracy {fmt(acc, '.2%')} vs target {ATTENTION_TARGET:.0%}, "
                                        f"n = {n} sequences", sentence=plain_sentence(s, verdict, acc, best)),
                         run, {
        "attention_patterns.png": "Attention weights of each layer and head on test sequences: a bright cell is "
                                  "the input position an output position draws its answer from.",
        "softmax_gate.png": "One query's attention as a softmax gate: the weights over the keys (left) and the "
                            "values they gate into the output (right).",
        "accuracy_curve.png": "Token accuracy on the test sequences per epoch, against the target."})


def plain_sentence(s: dict, verdict: str, acc, best) -> str:
    """The verdict in one plain sentence (a threshold, no interval: ``connlab.experiments.sentence``)."""
    if acc is None:
        return "The attention model's token accuracy was not measured in this run: not measured."
    task = get(s, "task", default="sequence")
    where = (f"; its best head puts {best:.2f} of its weight on the position the answer comes from"
             if best is not None else "")
    return sentence(verdict, [Part(verdict, f"on the {task} task the attention model gets {100 * acc:.1f} % of the "
                                            f"held-out tokens right (target {100 * ATTENTION_TARGET:.0f} %, "
                                            f"{get(s, 'test_sequences', default='?')} sequences){where}")])
