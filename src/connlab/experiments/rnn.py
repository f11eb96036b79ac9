"""``connlab rnn`` — plain RNN vs GRU (vs PyTorch's LSTM) on the adding problem.

The adding problem (Hochreiter & Schmidhuber 1997): a sequence of L pairs (value, marker);
values are uniform in [0, 1], exactly two markers are 1 — one in the first half, one in the
second — and the target is the sum of the two marked values. The answer depends on an input
at least L/2 steps back, so a network must carry it across the sequence.

Baseline: always predicting the mean target 1 gives MSE = Var(u1 + u2) = 2/12 ≈ 0.167. A
model at that MSE has learned nothing; near 0 it solves the task.

Models: one recurrent layer (``connlab.nn.RNN``, ``connlab.nn.GRU``, or ``torch.nn.LSTM`` as
the reference) read at the last step by a linear head. Each (model, L) pair trains with the
same budget through ``connlab.train.fit`` on a fixed generated training set, with gradient
clipping, and is scored on a fixed test set. The run folder:

    summary.json          test MSE per model and length (mean over --seeds), the baseline, the
                          claim's paired comparisons ("evidence") and the verdict
    mse_vs_length.png     test MSE vs L, one line per model, the baseline dashed
    curves.png            test MSE per epoch at the longest L
    variants/<model>-L<L>[-seed<s>]/   metrics.jsonl, model.safetensors, checkpoints/ (-seed<s> when --seeds > 1)
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch

from connlab import plots
from connlab.evidence import compare
from connlab.experiments.common import TrainingSettings, add_training_command, int_list, nonnegative_float, positive_int
from connlab.experiments.config import flag
from connlab.experiments.section import (INCONCLUSIVE, NOT_MEASURED, Run, Section, Table, effect_of, evidence_line, fmt,
                                         get, num, stored, weakest, with_figures)
from connlab.experiments.sentence import Wording, measured, sentence
from connlab.experiments.variants import train_variant
from connlab.models.regressor import LastStepRegressor
from connlab.runs import write_summary
from connlab.train import pick_device

MODELS = ("rnn", "gru", "lstm")
LABELS = {"rnn": "plain RNN (connlab)", "gru": "GRU (connlab)", "lstm": "LSTM (torch reference)"}
DEFAULT_LENGTHS = (10, 50, 100)
FULL_LENGTHS = (10, 50, 100, 200, 400)
TEST_SEED = 4321     # the test sequences are the same for every model
LEARNED = 0.8        # a model whose MSE stays above this fraction of the baseline's has not learned the task
# The claim's rules at the longest length, written once: the page prints them next to each comparison.
RULES = {
    "gru_vs_rnn": "compare(test MSE[plain RNN], test MSE[GRU], better='lower') at the longest L, paired by seed "
                  "(same training sequences), 95 % t interval; supported when it lies below 0",
    "gru_vs_baseline": "compare(predict-the-mean MSE, test MSE[GRU], better='lower') at the longest L, paired by "
                       "seed (the baseline uses that seed's training mean); supported when it lies below 0",
}


length_list = int_list(2, "sequence lengths (one marker in each half)")


def model_list(text: str) -> tuple[str, ...]:
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    bad = [v for v in values if v not in MODELS]
    if bad or not values:
        raise argparse.ArgumentTypeError(f"models must be from {', '.join(MODELS)}, got {text!r}")
    return values


@dataclass(frozen=True)
class RNNExperiment(TrainingSettings):
    PRESETS = {"full": dict(lengths=FULL_LENGTHS, epochs=10)}   # the long sweep, with twice the epochs
    PRESET_FIELD = "full"

    lengths: tuple[int, ...] = flag(DEFAULT_LENGTHS, "sequence lengths L", type=length_list)
    models: tuple[str, ...] = flag(MODELS, "subset of rnn,gru,lstm", type=model_list)
    full: bool = flag(False, "the long sweep, with twice the epochs (for a GPU)")
    hidden: int = flag(32, "hidden units", type=positive_int)
    train_size: int = flag(12800, "training sequences", type=positive_int)
    test_size: int = flag(1000, "test sequences", type=positive_int)
    grad_clip: float = flag(1.0, "gradient norm clip, 0 = off", type=nonnegative_float)
    seeds: int = flag(1, "repeat each model with K seeds (seed i also draws its own training sequences)",
                      type=positive_int)
    epochs: int = 5
    batch_size: int = 64
    lr: float = 3e-3
    precision: str = "fp32"   # small recurrent steps: autocast and compile do not pay
    compile: str = "off"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_training_command(p, RNNExperiment, "rnn", run_experiment, describe)


def describe(summary: dict, cfg: RNNExperiment) -> str:
    return format_table(summary) + "\n" + summary["verdict"]


def adding_problem(n: int, length: int, generator):
    """n sequences of the adding problem: inputs (n, L, 2) = (value, marker), targets (n,)."""
    values = torch.rand(n, length, generator=generator)
    half = length // 2
    first = torch.randint(0, half, (n,), generator=generator)
    second = torch.randint(half, length, (n,), generator=generator)
    markers = torch.zeros(n, length)
    rows = torch.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    return torch.stack([values, markers], dim=-1), (values * markers).sum(dim=1)  # (n, L, 2), (n,)


def make_regressor(kind: str, hidden: int):
    """A recurrent layer read at the last step by a linear head: (B, L, 2) -> (B,)."""
    return LastStepRegressor(kind, hidden)


def mse_loss(model, batch, generator):
    """The trainer's loss: mean squared error of the predicted sum."""
    x, y = batch
    return ((model(x).float() - y) ** 2).mean()


def run_experiment(cfg: RNNExperiment, out: Path, resume: bool = False) -> dict:
    device = pick_device(cfg.device)
    results: dict[str, dict[str, dict]] = {m: {} for m in cfg.models}
    seed_baselines: dict[str, list[float]] = {}
    for length in cfg.lengths:
        per_seed, seed_baselines[str(length)] = train_length(cfg, out, resume, device, length)
        for kind, records in per_seed.items():
            results[kind][str(length)] = mean_over_seeds(records)
    baselines = {L: per_seed[0] for L, per_seed in seed_baselines.items()}   # the first seed's, for table and figures
    summary = build_summary(cfg, device, results, baselines, seed_baselines)
    write_summary(out, summary)
    draw_figures(cfg, out, results, baselines)
    return summary


def train_length(cfg: RNNExperiment, out: Path, resume: bool, device, length: int) -> tuple[dict, list[float]]:
    """Every model and seed at one sequence length: ({model: [record per seed]}, [baseline MSE per seed])."""
    x_test, y_test = adding_problem(cfg.test_size, length, torch.Generator().manual_seed(TEST_SEED + length))
    x_test, y_test = x_test.to(device), y_test.to(device)

    def evaluate(model):
        pred = torch.cat([model(chunk).float() for chunk in x_test.split(1000)])
        return {"test_mse": ((pred - y_test) ** 2).mean().item()}

    per_seed: dict[str, list[dict]] = {k: [] for k in cfg.models}
    baselines = []
    for seed in range(cfg.seed, cfg.seed + cfg.seeds):
        x_train, y_train = adding_problem(cfg.train_size, length, torch.Generator().manual_seed(seed + length))
        x_train, y_train = x_train.to(device), y_train.to(device)
        baselines.append(((y_test - y_train.mean()) ** 2).mean().item())
        for kind in cfg.models:
            # one seed keeps the folder names of runs made before --seeds existed (resume)
            name = f"{kind}-L{length}" + (f"-seed{seed}" if cfg.seeds > 1 else "")
            model, result = train_variant(cfg, out, name, lambda: make_regressor(kind, cfg.hidden),
                                          mse_loss, (x_train, y_train), device,
                                          model_config={"kind": kind, "hidden": cfg.hidden, "length": length},
                                          # per-epoch test MSE for the first seed's curve only
                                          seed=seed, evaluate=evaluate if seed == cfg.seed else None,
                                          resume=resume, label=f"{kind} L={length} seed {seed}")
            with torch.no_grad():
                test_mse = evaluate(model)["test_mse"]
            per_seed[kind].append({
                "seed": seed, "test_mse": test_mse, "final_train_loss": result.final_train_loss,
                "train_seconds": result.train_seconds, "steps": result.steps,
                "params": sum(p.numel() for p in model.parameters()),
                "history": [{"epoch": h["epoch"], "train_loss": h["train_loss"], "test_mse": h.get("test_mse")}
                            for h in result.history]})
    return per_seed, baselines


def mean_over_seeds(records: list[dict]) -> dict:
    """One model at one length: the mean over seeds, the first seed's curve, every seed's numbers."""
    first = records[0]
    return {**{k: sum(r[k] for r in records) / len(records) for k in ("test_mse", "final_train_loss", "train_seconds")},
            "steps": first["steps"], "params": first["params"], "history": first["history"],
            "seeds": [{k: v for k, v in r.items() if k != "history"} for r in records]}


def build_summary(cfg: RNNExperiment, device, results: dict, baselines: dict, seed_baselines: dict) -> dict:
    """summary.json: the setting, test MSE per model and length, the baselines, the evidence and verdict."""
    summary = {
        "experiment": "rnn", "task": "adding problem", "device": str(device), "lengths": list(cfg.lengths),
        "models": {k: LABELS[k] for k in cfg.models}, "hidden": cfg.hidden, "epochs": cfg.epochs,
        "train_size": cfg.train_size, "test_size": cfg.test_size, "grad_clip": cfg.grad_clip,
        "baseline_mse_theory": 2 / 12, "baseline_mse": baselines,
        "test_mse": {k: {length: r["test_mse"] for length, r in per.items()} for k, per in results.items()},
        "seeds": cfg.seeds, "baseline_mse_per_seed": seed_baselines,
        "results": results, "evidence": gru_evidence(results, seed_baselines, cfg.lengths),
    }
    summary["verdict"] = ": ".join(judge(summary))
    return summary


def draw_figures(cfg: RNNExperiment, out: Path, results: dict, baselines: dict) -> None:
    """mse_vs_length.png (test MSE against L) and curves.png (test MSE per epoch at the longest L)."""
    xs = list(cfg.lengths)
    series = {LABELS[k]: (xs, [results[k][str(L)]["test_mse"] for L in xs]) for k in cfg.models}
    series["baseline (predict the mean)"] = (xs, [baselines[str(L)] for L in xs])
    plots.curves(series, out / "mse_vs_length.png", "sequence length L", "test MSE (log scale)",
                 f"adding problem, hidden {cfg.hidden}, {cfg.epochs} epochs of {cfg.train_size} sequences",
                 logy=True, styles={"baseline (predict the mean)": "--"})
    longest = str(max(cfg.lengths))
    curves = {}
    for k in cfg.models:
        hist = results[k][longest]["history"]
        curves[LABELS[k]] = ([h["epoch"] for h in hist], [h["test_mse"] for h in hist])
    curves["baseline"] = ([1, cfg.epochs], [baselines[longest]] * 2)
    plots.curves(curves, out / "curves.png", "epoch", "test MSE (log scale)",
                 f"test MSE per epoch at L = {longest}", logy=True, styles={"baseline": "--"})


def gru_evidence(results: dict, seed_baselines: dict, lengths) -> dict:
    """The claim's comparisons at the longest length (``RULES``), as Evidence dicts; {} without both models."""
    longest = str(max(lengths))
    if "gru" not in results or "rnn" not in results:
        return {}
    gru = [r["test_mse"] for r in results["gru"][longest]["seeds"]]
    plain = [r["test_mse"] for r in results["rnn"][longest]["seeds"]]
    return {"length": int(longest),
            "gru_vs_rnn": compare(plain, gru, better="lower").as_dict(),
            "gru_vs_baseline": compare(seed_baselines[longest], gru, better="lower").as_dict()}


def judge(summary: dict) -> tuple[str, str]:
    """The claim's rules (``RULES``) on the stored comparisons: the GRU beats the plain RNN *and* the
    predict-the-mean baseline at the longest length (the weaker verdict of the two). Inconclusive
    while neither model gets below ``LEARNED`` × the baseline MSE (nothing learned)."""
    lengths = [str(x) for x in get(summary, "lengths", default=[]) or []]
    longest = str(max(int(L) for L in lengths)) if lengths else None
    gru, plain = num(summary, "test_mse", "gru", longest), num(summary, "test_mse", "rnn", longest)
    base = num(summary, "baseline_mse", longest)
    if gru is None or plain is None:
        return NOT_MEASURED, "the comparison needs both the rnn and the gru model"
    numbers = (f"at L = {longest}: GRU test MSE {gru:.4f}, plain RNN {plain:.4f}"
               + (f", predict-the-mean baseline {base:.4f}" if base is not None else "")
               + f" (mean over {get(summary, 'seeds', default=1)} seed(s))")
    verdicts, lines = [], []
    for key, metric in (("gru_vs_rnn", "GRU − plain RNN test MSE"), ("gru_vs_baseline", "GRU − baseline test MSE")):
        v, line = evidence_line(get(summary, "evidence", key), RULES[key], metric)
        verdicts.append(v)
        lines.append(line)
    verdict, text = weakest(verdicts), numbers + " | " + " | ".join(lines)
    if base is not None and min(gru, plain) >= LEARNED * base:
        return INCONCLUSIVE, text + "; neither model gets clearly below the baseline"
    if base is not None and plain >= LEARNED * base:
        text += ("; the plain RNN does not get clearly below the baseline "
                 "(it has not learned to carry the marked values)")
    return verdict, text


def format_table(summary: dict) -> str:
    lengths = summary["lengths"]
    lines = ["| model | " + " | ".join(f"L={L}" for L in lengths) + " |",
             "|---|" + "---:|" * len(lengths)]
    for kind, label in summary["models"].items():
        lines.append(f"| {label} | " + " | ".join(f"{summary['test_mse'][kind][str(L)]:.4f}" for L in lengths) + " |")
    lines.append("| baseline: predict the mean | " +
                 " | ".join(f"{summary['baseline_mse'][str(L)]:.4f}" for L in lengths) + " |")
    return "\n".join(lines)


# --- the report's section: the lecture's claim, its rule, the numbers -------------------------------

def section(run: Run) -> Section:
    s = run.summary
    lengths = [str(x) for x in get(s, "lengths", default=[]) or []]
    models = get(s, "models", default={}) or {}
    header = ["model"] + [f"L = {L}" for L in lengths]
    rows = [[label] + [fmt(num(s, "test_mse", kind, L)) for L in lengths] for kind, label in models.items()]
    rows.append(["baseline: predict the mean"] + [fmt(num(s, "baseline_mse", L)) for L in lengths])
    verdict, text = judge(s)
    sec = Section("rnn", "Gated recurrent unit vs plain RNN",
                  "A GRU's gates let it carry information across a long sequence, where a plain RNN forgets it.",
                  verdict, text, tables=[Table(header, rows, f"test MSE on the adding problem, mean over "
                                                         f"{get(s, 'seeds', default=1)} seed(s)")],
                  rule="at the longest L the GRU's test MSE is lower than the plain RNN's and than the "
                       "predict-the-mean baseline, each paired by seed with a 95 % t interval "
                       "(the weaker verdict decides)",
                  effect=effect_of(get(s, "evidence", "gru_vs_rnn"), "GRU − plain RNN test MSE"),
                  sentence=plain_sentence(s, verdict))
    return with_figures(sec, run, {
        "mse_vs_length.png": "Test MSE against the sequence length L, GRU and plain RNN, with the predict-the-mean "
                             "baseline: the plain RNN climbs to the baseline as L grows, the GRU should stay below.",
        "curves.png": "Training loss per epoch for each model and length."})


def plain_sentence(summary: dict, verdict: str) -> str:
    """The verdict of ``judge`` in one plain sentence (``connlab.experiments.sentence``)."""
    lengths = [int(x) for x in get(summary, "lengths", default=[]) or []]
    if not lengths or num(summary, "test_mse", "gru", str(max(lengths))) is None:
        return "The claim needs both the GRU and the plain RNN trained on the same lengths: not measured."
    L = max(lengths)
    if verdict == INCONCLUSIVE:
        return (f"At L = {L} neither model gets clearly below predicting the mean, so the gates cannot be judged: "
                "inconclusive at this budget.")
    return sentence(verdict, [
        measured(stored(summary, "evidence", "gru_vs_rnn"),
                 Wording(f"at length L = {L}, the GRU's test MSE is", "higher than the plain RNN's",
                         "lower than the plain RNN's", "whether the GRU beats the plain RNN", spec=".4f")),
        measured(stored(summary, "evidence", "gru_vs_baseline"),
                 Wording("the GRU's test MSE is", "higher than predicting the mean",
                         "lower than predicting the mean", "whether the GRU beats predicting the mean", spec=".4f"),
                 headline=False)])
