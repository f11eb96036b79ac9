"""``connlab report RUN_DIR... [--out FILE]`` — one self-contained HTML page from run folders.

The page reads run folders only (config.json, summary.json, eval.json, *.png; and, for a
demo folder, demo.json), so it can be rebuilt at any time without training anything.  It
follows the lecture's order; each section gives the lecture's claim in one sentence, the
figures, the key numbers and a verdict computed from those numbers.  Everything is inside
the one file: figures are base64 ``data:`` URIs, the style sheet is inline, and the only
script is a small inline self-check (it writes, into the page, whether every image decoded
and whether anything was logged as an error) that the browser test reads back.

Verdicts read summaries defensively: a number an experiment did not write shows as "not
measured" and the verdict says so; the page never fails because one key is missing.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import math
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

LECTURE_ORDER = ("gates", "rnn", "skipmlp", "autoencoder", "depth", "ladder", "diffusion", "vit", "attention")
NOT_MEASURED = "not measured"
SUPPORTED, PARTLY, NOT_SUPPORTED, UNKNOWN = "supported", "partly supported", "not supported at this budget", NOT_MEASURED
INCONCLUSIVE = "inconclusive: the models did not learn at this budget"
VIT_TARGET = 0.95        # test accuracy a small ViT should reach on MNIST digits
ATTENTION_TARGET = 0.95  # token accuracy on the sequence task
SCREENSHOT = "report_screenshot.png"


# --- reading run folders ------------------------------------------------------------------------

@dataclass
class Run:
    folder: Path
    experiment: str
    config: dict
    summary: dict            # {} when the run has not finished
    extra: dict = field(default_factory=dict)   # other JSON files of the folder, e.g. eval.json


def load_run(folder: Path) -> Run:
    """A run folder, or a UserError naming what is wrong with it."""
    from connlab.runs import read_config

    folder = Path(folder)
    saved = read_config(folder)
    experiment = saved.get("experiment")
    if not isinstance(experiment, str):
        from connlab.errors import UserError

        raise UserError(f"{folder}: not a connlab run folder (config.json names no experiment)")
    extra = {}
    for name in ("eval.json",):
        if (folder / name).is_file():
            extra[name] = _json(folder / name)
    return Run(folder, experiment, saved.get("config") or {}, _json(folder / "summary.json"), extra)


def _json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def get(data, *path, default=None):
    """``data[path[0]][path[1]]...`` or ``default`` when any step is missing."""
    for key in path:
        if isinstance(data, dict) and key in data:
            data = data[key]
        elif isinstance(data, (list, tuple)) and isinstance(key, int) and -len(data) <= key < len(data):
            data = data[key]
        else:
            return default
    return data


def num(data, *path) -> float | None:
    value = get(data, *path)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def fmt(value, spec: str = ".4f", suffix: str = "") -> str:
    if value is None:
        return NOT_MEASURED
    return f"{value:{spec}}{suffix}"


def pm(mean, std, spec: str = ".4f") -> str:
    if mean is None:
        return NOT_MEASURED
    return fmt(mean, spec) + (f" ± {std:{spec}}" if std else "")


# --- sections -----------------------------------------------------------------------------------

@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Section:
    experiment: str
    title: str
    claim: str
    verdict: str                 # SUPPORTED / PARTLY / NOT_SUPPORTED / UNKNOWN
    verdict_text: str
    figures: list[tuple[str, Path]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    folder: Path | None = None


def _gates(run: Run) -> Section:
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
    checks = {"the shut gate passes (almost) nothing": None if closed is None else closed < 0.05,
              "the mixture beats one expert": None if moe is None or one is None else moe < one}
    return _section(run, "Logistic units and gates",
                    "Two logistic units summed make a bump, one unit multiplied by another gates it, and a "
                    "softmax gate divides the input space among experts.",
                    checks, Table(["quantity", "value"], rows),
                    ("bump.png", "product_gate.png", "softmax_gate.png"))


def _rnn(run: Run) -> Section:
    s = run.summary
    lengths = [str(x) for x in get(s, "lengths", default=[]) or []]
    models = get(s, "models", default={}) or {}
    header = ["model"] + [f"L = {L}" for L in lengths]
    rows = [[label] + [fmt(num(s, "test_mse", kind, L)) for L in lengths] for kind, label in models.items()]
    rows.append(["baseline: predict the mean"] + [fmt(num(s, "baseline_mse", L)) for L in lengths])
    longest = lengths[-1] if lengths else None
    if lengths:
        longest = str(max(int(L) for L in lengths))
    gru, plain = num(s, "test_mse", "gru", longest), num(s, "test_mse", "rnn", longest)
    if gru is None or plain is None:
        verdict, text = UNKNOWN, "the GRU or the plain RNN was not measured"
    else:
        ok = gru < 0.5 * plain
        verdict = SUPPORTED if ok else NOT_SUPPORTED
        base = num(s, "baseline_mse", longest)
        if not ok and base is not None and min(gru, plain) >= 0.8 * base:
            verdict = INCONCLUSIVE
        text = (f"at the longest length L = {longest}, the GRU's test MSE is {gru:.4f} vs the plain RNN's "
                f"{plain:.4f} ({plain / max(gru, 1e-12):.1f}× lower; 'clear' means under half)")
    sec = Section("rnn", "Gated recurrent unit vs plain RNN",
                  "A GRU's gates let it carry information across a long sequence, where a plain RNN forgets it.",
                  verdict, text, tables=[Table(header, rows, "test MSE on the adding problem")])
    if get(s, "verdict"):
        sec.notes.append(f"the experiment's own verdict: {get(s, 'verdict')}")
    return _with_figures(sec, run, ("mse_vs_length.png", "curves.png"))


def _skipmlp(run: Run) -> Section:
    s = run.summary
    seeds = get(s, "seeds")
    rows = []
    for kind in ("plain", "skip"):
        rows.append([{"plain": "without carried input", "skip": "input carried forward (concat)"}[kind],
                     fmt(num(s, "variants", kind, "params"), ",.0f"),
                     pm(_pct(num(s, "variants", kind, "test_accuracy")),
                        _pct(num(s, "variants", kind, "test_accuracy_std")), ".2f"),
                     pm(num(s, "variants", kind, "final_train_loss"), num(s, "variants", kind, "final_train_loss_std"))])
    verdict, text = _compare(num(s, "variants", "plain", "test_accuracy"), num(s, "variants", "plain", "test_accuracy_std"),
                             num(s, "variants", "skip", "test_accuracy"), num(s, "variants", "skip", "test_accuracy_std"),
                             seeds, "test accuracy", higher_is_better=True, scale=100, unit=" %",
                             what="carrying the input forward")
    accs = [num(s, "variants", k, "test_accuracy") for k in ("plain", "skip")]
    if all(a is not None for a in accs) and max(accs) < 0.5:
        verdict, text = INCONCLUSIVE, text + "; both models stay below 50 % accuracy"
    return _with_figures(Section("skipmlp", "Carrying the input forward",
                                 "Concatenating the input (and every earlier layer) into later layers helps an MLP "
                                 "classify digits.", verdict, text,
                                 tables=[Table(["model", "params", "test accuracy (%)", "final train loss"], rows,
                                               f"mean ± std over {seeds} seed(s)")]),
                         run, ("curves.png",))


def _autoencoder(run: Run) -> Section:
    s = run.summary
    variants = get(s, "variants", default={}) or {}
    seeds = get(s, "seeds")
    rows = []
    for name, e in variants.items():
        rows.append([f"skip = {name}", fmt(num(e, "params"), ",.0f"), pm(num(e, "test_bce"), num(e, "test_bce_std")),
                     pm(num(e, "test_psnr"), num(e, "test_psnr_std"), ".2f"),
                     pm(num(e, "test_ssim"), num(e, "test_ssim_std"), ".3f"), fmt(num(e, "train_seconds"), ".0f")])
    for name, b in (get(s, "baselines", default={}) or {}).items():
        rows.append([f"baseline: {name.replace('_', ' ')}", "0", fmt(num(b, "bce")), fmt(num(b, "psnr"), ".2f"),
                     fmt(num(b, "ssim"), ".3f"), ""])
    skips = [k for k in variants if k != "none"]
    best = min(skips, key=lambda k: num(variants, k, "test_bce") or math.inf) if skips else None
    if "none" in variants and best is not None:
        verdict, text = _compare(num(variants, "none", "test_bce"), num(variants, "none", "test_bce_std"),
                                 num(variants, best, "test_bce"), num(variants, best, "test_bce_std"),
                                 seeds, "test BCE", higher_is_better=False, what=f"skip connections ({best})")
    else:
        verdict, text = UNKNOWN, "needs the skip = none run and at least one skip variant (--skip all)"
    floor = num(s, "baselines", "mean_image", "bce")
    best_bce = min((v for v in (num(e, "test_bce") for e in variants.values()) if v is not None), default=None)
    if floor is not None and best_bce is not None and best_bce >= floor:
        verdict = INCONCLUSIVE
        text += f"; no model beats the mean-image baseline (BCE {floor:.4f}) yet"
    sec = Section("autoencoder", "Denoising autoencoder without and with skip connections (U-Net)",
                  "Skip connections from encoder to decoder (a U-Net) let a denoising autoencoder reconstruct digits "
                  "better than the plain encoder-decoder.", verdict, text,
                  tables=[Table(["model", "params", "test BCE", "PSNR (dB)", "SSIM", "train s"], rows,
                                f"{get(s, 'test_images', default='?')} noisy test digits (noise {get(s, 'noise')}, "
                                f"{get(s, 'noise_dist')}), {get(s, 'epochs')} epochs, mean ± std over {seeds} seed(s)")])
    iterate = get(s, "iterate")
    if isinstance(iterate, dict):
        passes = {k: v for k, v in iterate.items() if isinstance(v, list) and v}
        if passes:
            n = max(len(v) for v in passes.values())
            it_rows = [[f"skip = {k}"] + [fmt(num(v, i, "bce")) for i in range(n)] for k, v in passes.items()]
            sec.tables.append(Table(["denoiser fed its own output"] + [f"pass {i + 1}" for i in range(n)], it_rows,
                                    "test BCE after each pass (the lecture's A/B/C question)"))
            sec.notes.append(_iterate_answer(passes, num(iterate, "clean_mean_intensity")))
    return _with_figures(sec, run, ("reconstructions.png", "loss_curves.png", "iterate.png"))


def _iterate_answer(passes: dict, clean_intensity: float | None) -> str:
    parts = []
    for name, per_pass in passes.items():
        first, last = num(per_pass, 0, "bce"), num(per_pass, -1, "bce")
        if first is None or last is None or len(per_pass) < 2:
            continue
        trend = "gets worse" if last > first * 1.01 else ("improves" if last < first * 0.99 else "stays put")
        parts.append(f"skip = {name}: BCE {first:.4f} → {last:.4f} over {len(per_pass)} passes ({trend})")
    if not parts:
        return "feeding the output back: not measured"
    return "feeding the denoised output back in: " + "; ".join(parts) + (
        f"; clean digits' mean intensity {clean_intensity:.3f}" if clean_intensity is not None else "")


def _depth(run: Run) -> Section:
    s = run.summary
    depths = [str(d) for d in get(s, "depths", default=[]) or []]
    rows = []
    for d in depths:
        p, r = get(s, "results", "plain", d, default={}), get(s, "results", "residual", d, default={})
        rows.append([d, fmt(num(p, "weighted_layers"), ".0f"), fmt(num(p, "final_train_loss")),
                     fmt(num(r, "final_train_loss")), fmt(_pct(num(p, "test_error")), ".2f"),
                     fmt(_pct(num(r, "test_error")), ".2f")])
    deepest = str(max(int(d) for d in depths)) if depths else None
    plain, res = num(s, "results", "plain", deepest, "final_train_loss"), num(s, "results", "residual", deepest,
                                                                              "final_train_loss")
    if plain is None or res is None:
        verdict, text = UNKNOWN, "the deepest plain or residual net was not measured"
    else:
        verdict = SUPPORTED if res < plain else NOT_SUPPORTED
        if min(res, plain) > 0.9 * math.log(10):  # ln 10: the loss of a uniform guess over 10 classes
            verdict = INCONCLUSIVE
        text = f"at the deepest ({deepest} blocks), residual training loss {res:.4f} vs plain {plain:.4f}"
        losses = {d: num(s, "results", "plain", d, "final_train_loss") for d in depths}
        known = {d: v for d, v in losses.items() if v is not None}
        if len(known) > 1:
            best = min(known, key=known.get)
            text += ("; the plain net degrades with depth (its best is depth " + best + ")" if best != deepest
                     else "; the plain net did not degrade with depth at this budget")
    sec = Section("depth", "Can we keep adding layers? Plain vs residual networks",
                  "Deeper plain networks train to a higher training loss (degradation); residual connections remove "
                  "that, so the deepest residual net trains better than the deepest plain one.", verdict, text,
                  tables=[Table(["depth (blocks)", "layers", "plain train loss", "residual train loss",
                                 "plain test error (%)", "residual test error (%)"], rows,
                                f"{get(s, 'train_images', default='?')} training images, {get(s, 'epochs')} epochs")])
    return _with_figures(sec, run, ("depth.png", "curves.png"))


def _ladder(run: Run) -> Section:
    s = run.summary
    chain = [v for v in get(s, "chain_psnr", default=[]) or [] if isinstance(v, (int, float))]
    rows = []
    for name, e in (get(s, "variants", default={}) or {}).items():
        rows.append([name, fmt(num(e, "start_psnr"), ".2f"), fmt(num(e, "final_psnr"), ".2f"),
                     str(get(e, "psnr_rises_in_steps", default=NOT_MEASURED)), fmt(num(e, "train_seconds"), ".0f"),
                     fmt(num(e, "from_noise", "per_step", -1, "ink_fraction"), ".1%"),
                     fmt(num(e, "from_noise", "real_digits", "ink_fraction"), ".1%")])
    if len(chain) >= 2:
        rises = sum(b > a for a, b in zip(chain, chain[1:]))
        steps = len(chain) - 1
        ok = chain[-1] > chain[0] and rises >= steps / 2
        verdict = SUPPORTED if ok else NOT_SUPPORTED
        text = (f"PSNR against the clean digit goes {chain[0]:.2f} → {chain[-1]:.2f} dB along the chain "
                f"x_{steps} → x̂_0 and rises in {rises} of {steps} steps")
    else:
        verdict, text = UNKNOWN, "the chain's PSNR was not measured"
    sec = Section("ladder", "Incremental denoising with T steps",
                  "A network trained to undo one small step of noise, applied T times, walks a noised digit back "
                  "towards the clean one: PSNR rises along the chain.", verdict, text,
                  tables=[Table(["variant", "PSNR x_T (dB)", "PSNR x̂_0 (dB)", "PSNR rises", "train s",
                                 "ink from noise", "ink, real digits"], rows,
                                f"{get(s, 'eval_images', default='?')} test digits; {get(s, 'schedule')} schedule, "
                                f"{get(s, 'dist')} noise, magnitude {get(s, 'mag')}")])
    if chain:
        sec.tables.append(Table(["step k"] + [str(k) for k in range(len(chain))],
                                [["PSNR (dB)"] + [f"{v:.2f}" for v in chain]], "PSNR along the chain, k steps applied"))
    return _with_figures(sec, run, ("chain.png", "chain_psnr.png", "from_noise.png"))


def _diffusion(run: Run) -> Section:
    s = run.summary
    q = get(s, "quality", default={}) or {}
    dist, floor = num(q, "frechet_distance"), num(s, "frechet_floor")
    conf, confident, classes = num(q, "mean_confidence"), num(q, "confident_fraction"), num(q, "classes_covered")
    rows = [["Fréchet distance to real test digits (classifier features)", fmt(dist, ".2f")],
            ["floor: real train vs real test, same N", fmt(floor, ".2f")],
            ["classifier's mean confidence on samples", fmt(conf, ".3f")],
            ["confidently labelled (> 0.9)", fmt(confident, ".1%")],
            ["classes covered (of 10)", fmt(classes, ".0f")],
            ["samples scored", fmt(num(q, "num_samples"), ".0f")],
            ["U-Net parameters", fmt(num(s, "unet_params"), ",.0f")],
            ["training seconds (autoencoder + U-Net)", fmt(num(s, "train_seconds"), ".0f")],
            ["quality classifier's test accuracy", fmt(num(s, "classifier", "test_accuracy"), ".2%")]]
    if dist is None or conf is None or classes is None:
        verdict, text = UNKNOWN, "sample quality was not measured"
    else:
        if classes >= 10 and conf >= 0.8:
            verdict = SUPPORTED
        elif classes >= 8 and conf >= 0.5:
            verdict = PARTLY
        else:
            verdict = NOT_SUPPORTED
        text = (f"from pure noise, DDIM-{get(q, 'steps', default='?')} samples cover {classes:.0f}/10 classes with mean "
                f"classifier confidence {conf:.2f}; Fréchet distance {dist:.1f} vs the real-data floor "
                + (f"{floor:.1f} ({dist / floor:.0f}× the floor)" if floor else NOT_MEASURED)
                + " (supported: all 10 classes and confidence ≥ 0.8; partly: ≥ 8 classes and ≥ 0.5)")
    sec = Section("diffusion", "DDPM / DDIM: generating digits by repeated denoising",
                  "A network trained to predict the noise turns pure noise into digits step by step — early steps lay "
                  "down structure, late steps detail — and DDIM samples with far fewer steps.", verdict, text,
                  tables=[Table(["quantity", "value"], rows, f"{get(s, 'config', 'space', default='')} diffusion, "
                                                             f"{get(s, 'train_images', default='?')} training digits")])
    ev = run.extra.get("eval.json", {})
    if get(ev, "rows"):
        ev_rows = [[str(get(r, "sampler", default="?")).upper(), str(get(r, "steps", default="?")),
                    fmt(num(r, "frechet_distance"), ".2f"), fmt(num(r, "mean_confidence"), ".3f"),
                    fmt(num(r, "classes_covered"), ".0f"), fmt(num(r, "seconds"), ".1f")] for r in ev["rows"]]
        ev_rows.append(["real train vs test (floor)", "", fmt(num(ev, "frechet_floor"), ".2f"), "", "", ""])
        sec.tables.append(Table(["sampler", "steps", "Fréchet distance", "confidence", "classes", "seconds"], ev_rows,
                                f"quality vs sampling steps, {get(ev, 'num', default='?')} samples each"))
    samples = sorted(p.name for p in run.folder.glob("samples-*.png"))
    return _with_figures(sec, run, ("samples.png", "trajectory.png", *samples))


def _vit(run: Run) -> Section:
    s = run.summary
    acc = num(s, "test_accuracy")
    rows = [["test accuracy", fmt(acc, ".2%")], ["target", f"{VIT_TARGET:.0%}"],
            ["parameters", fmt(num(s, "params"), ",.0f")], ["epochs", str(get(s, "epochs", default=NOT_MEASURED))],
            ["training images", fmt(num(s, "train_images"), ",.0f")],
            ["training seconds", fmt(num(s, "train_seconds"), ".0f")]]
    verdict, text = _target(acc, VIT_TARGET, "test accuracy")
    return _with_figures(Section("vit", "Vision Transformer: attention over patches",
                                 "A transformer that attends over image patches classifies digits, and its attention "
                                 "falls on the strokes.", verdict, text, tables=[Table(["quantity", "value"], rows)]),
                         run, ("attention_maps.png", "attention_rollout.png", "accuracy_curve.png"))


def _attention(run: Run) -> Section:
    s = run.summary
    acc, seq = num(s, "test_accuracy"), num(s, "sequence_accuracy")
    per = get(s, "weight_on_source", "per_layer_head", default=[]) or []
    best = max((v for row in per if isinstance(row, list) for v in row if isinstance(v, (int, float))), default=None)
    rows = [["token accuracy", fmt(acc, ".2%")], ["whole-sequence accuracy", fmt(seq, ".2%")],
            ["target (token accuracy)", f"{ATTENTION_TARGET:.0%}"], ["chance", fmt(num(s, "chance_token_accuracy"), ".0%")],
            ["best head's attention weight on the true source", fmt(best, ".2f")],
            ["task, length", f"{get(s, 'task', default='?')}, {get(s, 'length', default='?')}"],
            ["training seconds", fmt(num(s, "train_seconds"), ".0f")]]
    verdict, text = _target(acc, ATTENTION_TARGET, "token accuracy")
    if best is not None:
        text += f"; the best head puts {best:.2f} of its weight on the position the answer comes from"
    return _with_figures(Section("attention", "Attention: a softmax gate over the values",
                                 "Scaled dot-product attention is a softmax gate over values, with queries, keys and "
                                 "values computed from the input: each output position learns to find its source.",
                                 verdict, text, tables=[Table(["quantity", "value"], rows)]),
                         run, ("attention_patterns.png", "softmax_gate.png", "accuracy_curve.png"))


def _generic(run: Run) -> Section:
    rows = [[k, fmt(float(v), ".4g") if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)]
            for k, v in run.summary.items() if isinstance(v, (int, float, str, bool))][:20]
    return _with_figures(Section(run.experiment, f"connlab {run.experiment}", "(no lecture claim attached)", UNKNOWN,
                                 "no verdict for this experiment", tables=[Table(["key", "value"], rows)]), run, ())


BUILDERS: dict[str, Callable[[Run], Section]] = {
    "gates": _gates, "rnn": _rnn, "skipmlp": _skipmlp, "autoencoder": _autoencoder, "depth": _depth,
    "ladder": _ladder, "diffusion": _diffusion, "vit": _vit, "attention": _attention,
}


def build_section(run: Run) -> Section:
    """The run's section; a summary that cannot be read gives a section that says so, not a crash."""
    if not run.summary:
        sec = Section(run.experiment, f"connlab {run.experiment}", "", UNKNOWN,
                      "the run has no summary.json (it did not finish; continue it with --resume)")
        return _with_figures(sec, run, ())
    try:
        sec = BUILDERS.get(run.experiment, _generic)(run)
    except Exception as err:  # a summary in a shape this page does not know yet
        sec = _with_figures(Section(run.experiment, f"connlab {run.experiment}", "", UNKNOWN,
                                    f"could not read the summary ({type(err).__name__}: {err})"), run, ())
    sec.folder = run.folder
    return sec


# --- helpers for verdicts -----------------------------------------------------------------------

def _pct(x):
    return None if x is None else 100 * x


def _compare(base, base_std, new, new_std, seeds, metric: str, *, higher_is_better: bool, what: str = "",
             scale: float = 1.0, unit: str = "") -> tuple[str, str]:
    """Verdict of ``new`` vs ``base`` (means ± std over seeds): beyond the one-sigma bands or not."""
    if base is None or new is None:
        return UNKNOWN, f"{metric} was not measured for both variants"
    spec = ".2f" if scale != 1 else ".4f"
    text = (f"{what + ' ' if what else ''}changed {metric} from {pm(base * scale, (base_std or 0) * scale, spec)}{unit} "
            f"to {pm(new * scale, (new_std or 0) * scale, spec)}{unit} over {seeds} seed(s)")
    better = new > base if higher_is_better else new < base
    if not isinstance(seeds, int) or seeds < 2 or base_std is None or new_std is None:
        return (PARTLY if better else NOT_SUPPORTED), text + "; one seed, so no spread to compare with"
    beyond = abs(new - base) > base_std + new_std
    if better and beyond:
        return SUPPORTED, text + " — better, beyond the seed spread"
    if better:
        return PARTLY, text + " — better, but within the seed spread"
    return NOT_SUPPORTED, text + " — not better"


def _target(value, target: float, metric: str) -> tuple[str, str]:
    if value is None:
        return UNKNOWN, f"{metric} was not measured"
    if value >= target:
        return SUPPORTED, f"{metric} {value:.2%} reaches the target {target:.0%}"
    return NOT_SUPPORTED, f"{metric} {value:.2%} is below the target {target:.0%}"


def _section(run: Run, title: str, claim: str, checks: dict, table: Table, figures) -> Section:
    known = {k: v for k, v in checks.items() if v is not None}
    if not known:
        verdict = UNKNOWN
    elif all(known.values()) and len(known) == len(checks):
        verdict = SUPPORTED
    elif any(known.values()):
        verdict = PARTLY
    else:
        verdict = NOT_SUPPORTED
    text = "; ".join(f"{k}: {'yes' if v else 'no' if v is not None else NOT_MEASURED}" for k, v in checks.items())
    return _with_figures(Section(run.experiment, title, claim, verdict, text, tables=[table]), run, figures)


def _with_figures(sec: Section, run: Run, names) -> Section:
    """The named figures first (in that order), then any other PNG of the folder."""
    seen = []
    for name in names:
        if (run.folder / name).is_file() and name not in seen:
            seen.append(name)
    for path in sorted(run.folder.glob("*.png")):
        if path.name not in seen and path.name != SCREENSHOT:
            seen.append(path.name)
    sec.figures = [(name, run.folder / name) for name in seen]
    sec.folder = run.folder
    return sec


# --- the page -----------------------------------------------------------------------------------

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{margin-bottom:.2em} h2{border-top:1px solid #ddd;padding-top:1em;margin-top:2em}
.claim{font-style:italic;color:#444}
.verdict{padding:.5em .8em;border-radius:6px;margin:.8em 0}
.supported{background:#e6f4ea;border-left:5px solid #1e8e3e}
.partly{background:#fef7e0;border-left:5px solid #f9ab00}
.not{background:#fce8e6;border-left:5px solid #d93025}
.unknown{background:#f1f3f4;border-left:5px solid #9aa0a6}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em} caption{text-align:left;color:#555;padding:.2em 0}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right} td:first-child,th:first-child{text-align:left}
figure{margin:1em 0} figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#666;font-size:.85em}
.small{color:#666;font-size:.85em} table.summary td{text-align:left;vertical-align:top}
"""

# The page's only script: after load it records, inside the page, how many images decoded and
# what was logged as an error, so a headless browser's DOM dump can be checked.  No network.
SELF_CHECK = """
(function(){var errors=[];var orig=console.error;
console.error=function(){errors.push(Array.prototype.join.call(arguments,' '));return orig.apply(console,arguments);};
window.addEventListener('error',function(e){errors.push('error: '+(e.message||(e.target&&(e.target.src||e.target.href))||'?'));},true);
window.addEventListener('load',function(){var imgs=Array.prototype.slice.call(document.images);
var bad=imgs.filter(function(i){return !(i.complete&&i.naturalWidth>0);}).map(function(i){return i.alt||'?';});
var res=performance.getEntriesByType('resource').map(function(r){return r.name;})
.filter(function(u){return u.indexOf('data:')!==0;});
var el=document.getElementById('self-check');
el.textContent=JSON.stringify({images:imgs.length,not_loaded:bad,errors:errors,requests:res});
document.body.setAttribute('data-images-ok',String(bad.length===0&&imgs.length>0));});})();
"""

VERDICT_CLASS = {SUPPORTED: "supported", PARTLY: "partly", NOT_SUPPORTED: "not", UNKNOWN: "unknown",
                 INCONCLUSIVE: "unknown"}


def render(sections: list[Section], demo: dict | None, environment: dict) -> str:
    e = html.escape
    out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           "<title>connlab report</title>", f"<style>{STYLE}</style>", f"<script>{SELF_CHECK}</script>",
           "</head><body>", "<h1>connlab: special connections, encoder-decoders, transformers</h1>",
           '<p class="small">Every number and figure below comes from the run folders listed in each section; '
           "each verdict is computed from those numbers at the budget the runs had.</p>"]
    out.append('<h2>Summary</h2><table class="summary"><tr><th>part</th><th>claim</th><th>verdict</th></tr>')
    for sec in sections:
        out.append(f'<tr><td><a href="#{e(sec.experiment)}">{e(sec.title)}</a></td><td>'
                   f'{e(sec.claim)}</td><td class="{VERDICT_CLASS[sec.verdict]}">{e(sec.verdict)}</td></tr>')
    out.append("</table>")
    for sec in sections:
        out.append(f'<h2 id="{e(sec.experiment)}">{e(sec.title)}</h2>')
        if sec.claim:
            out.append(f'<p class="claim">The lecture: {e(sec.claim)}</p>')
        out.append(f'<div class="verdict {VERDICT_CLASS[sec.verdict]}"><b>{e(sec.verdict)}</b>: '
                   f"{e(sec.verdict_text)}</div>")
        for note in sec.notes:
            out.append(f"<p>{e(note)}</p>")
        for table in sec.tables:
            out.append(_table_html(table))
        for name, path in sec.figures:
            out.append(f'<figure><img alt="{e(sec.experiment)}: {e(name)}" src="{_data_uri(path)}">'
                       f"<figcaption>{e(name)}</figcaption></figure>")
        if sec.folder is not None:
            out.append(f'<p class="small">run folder: {e(str(sec.folder))}</p>')
    out.append("<h2 id=\"environment\">Environment and time</h2>")
    out.append(_table_html(Table(["", ""], [[k, str(v)] for k, v in environment.items()])))
    if demo and demo.get("parts"):
        rows = [[r.get("name", "?"), r.get("status", "?"), fmt(num(r, "seconds"), ".0f"),
                 fmt(num(r, "cpu_seconds"), ".0f")] for r in demo["parts"]]
        total = [sum(num(r, key) or 0 for r in demo["parts"]) for key in ("seconds", "cpu_seconds")]
        rows.append(["total" + ("" if demo.get("finished") else " (so far; the demo has not finished)"), "",
                     fmt(total[0], ".0f"), fmt(total[1], ".0f")])
        out.append(_table_html(Table(["part", "status", "wall s", "CPU s"], rows,
                                     "time each part of the demo took (CPU s: this process's CPU time)")))
    out.append(f'<pre id="self-check" class="small"></pre>')
    out.append(f'<p class="small">built {e(time.strftime("%Y-%m-%d %H:%M:%S"))} by connlab report</p>')
    out.append("</body></html>")
    return "\n".join(out)


def _table_html(table: Table) -> str:
    e = html.escape
    parts = ["<table>"]
    if table.caption:
        parts.append(f"<caption>{e(table.caption)}</caption>")
    if any(table.header):
        parts.append("<tr>" + "".join(f"<th>{e(h)}</th>" for h in table.header) + "</tr>")
    for row in table.rows:
        parts.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>")
    parts.append("</table>")
    return "".join(parts)


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def environment(runs: list[Run], demo: dict | None) -> dict:
    """Where the numbers came from: the runs' devices and data, and the software that made them."""
    import torch

    from connlab import __version__

    env = dict((demo or {}).get("environment") or {})
    devices = sorted({str(r.summary.get("device")) for r in runs if r.summary.get("device")})
    sources = sorted({f"{r.summary.get('dataset')} ({r.summary.get('data_source')})" for r in runs
                      if r.summary.get("data_source")})
    info = {"device(s) of the runs": ", ".join(devices) or NOT_MEASURED,
            "data": ", ".join(sources) or NOT_MEASURED}
    if env:
        info.update({f"demo: {k}": v for k, v in env.items()})
        info["demo options"] = json.dumps((demo or {}).get("options", {}))
        if demo.get("load_average_at_end"):
            info["demo: load average at end"] = demo["load_average_at_end"]
    info.update({"report built with connlab": __version__, "python": platform.python_version(),
                 "torch": torch.__version__, "platform": platform.platform()})
    return info


def build_report(folders: list[Path], out: Path, demo: dict | None = None) -> Path:
    """Write the page for these run folders (in the lecture's order) to ``out``; returns ``out``."""
    from connlab.checkpoint import atomic_write_text

    runs = [load_run(f) for f in folders]
    order = {name: i for i, name in enumerate(LECTURE_ORDER)}
    runs.sort(key=lambda r: order.get(r.experiment, len(order)))
    sections = [build_section(r) for r in runs]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, render(sections, demo, environment(runs, demo)))
    return out


# --- command line -------------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                   help="run folders (each with config.json), or a `connlab demo` folder (with demo.json)")
    p.add_argument("--out", type=Path, default=None,
                   help="the page (default: report.html in the demo folder, or beside the first run folder)")
    p.set_defaults(run=run)


def expand(run_dirs: list[Path]) -> tuple[list[Path], dict | None, Path | None]:
    """Run folders from the arguments: a demo folder stands for its parts. (folders, demo record, demo dir)."""
    from connlab.errors import UserError

    folders, demo, demo_dir = [], None, None
    for d in run_dirs:
        d = Path(d)
        if not d.is_dir():
            raise UserError(f"{d}: no such run folder")
        if (d / "demo.json").is_file() and not (d / "config.json").is_file():
            demo, demo_dir = _json(d / "demo.json"), d
            parts = list(dict.fromkeys(r.get("folder") for r in demo.get("parts", []) if r.get("folder")))
            found = [d / f for f in parts if (d / f / "config.json").is_file()]
            if not found:
                raise UserError(f"{d}: the demo folder holds no finished run folder yet")
            folders += found
        elif not (d / "config.json").is_file():
            raise UserError(f"{d}: not a connlab run folder (no config.json)")
        else:
            folders.append(d)
    return list(dict.fromkeys(folders)), demo, demo_dir


def run(args: argparse.Namespace) -> int:
    folders, demo, demo_dir = expand(args.run_dirs)
    for f in folders:  # validate every folder before writing anything
        load_run(f)
    out = args.out or ((demo_dir or folders[0].parent) / "report.html")
    page = build_report(folders, out, demo=demo)
    print(f"report: {page}")
    return 0


if __name__ == "__main__":  # python -m connlab.report RUN_DIR...
    from connlab.cli import Parser

    parser = Parser(prog="connlab report")
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
