"""Measuring and drawing the trained ladders' chains (``connlab ladder``): the test digits they run on, PSNR
and BCE along a chain, what it makes of pure noise, the course's feed-back figure, the validation BCE the
course's notebook reports, the run folder's top-level figures, and a finished run's ladder for the side-by-side page."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from connlab import plots
from connlab.checkpoint import atomic_write_bytes, load_weights, model_signature
from connlab.data import stratified_first, to_unit
from connlab.diffusion.sidebyside import Ladder
from connlab.diffusion.ladder import feed_back, run_chain
from connlab.errors import UserError
from connlab.measures import chain_psnr, chain_psnr_evidence
from connlab.metrics import bce as mean_bce, psnr_per_image
from connlab.models.autoencoder import count_parameters
from connlab.models.step_conditioned import StepConditionConfig, StepConditionedUNet
from connlab.runs import read_run
from connlab.runtime.distributed import is_main

EVAL_SEED = 1234    # + the seed: the noised test digits of one seed, the same for every variant of it
SHOWN = 10          # columns in the figures
FEED_RUNG, FEED_PASSES = 7, 16   # the course: "the 7th after every 11th image", one pass and 15 more
COURSE_DIGITS = range(6, 11)     # the course's test digits shown (X_test[6:11])


def eval_digits(cfg, data, device):
    """(clean test digits in [0, 1], U(0, 1) starts of their shape): what every chain is measured on."""
    if cfg.course_data:  # the course's X_test[0:100]: the first validation digits, in order
        keep = torch.arange(min(cfg.eval_images, len(data.test_images)), device=device)
    else:  # test sets are sorted by class: take the first digits of every class, in proportion
        keep = torch.from_numpy(stratified_first(data.test_labels.cpu().numpy(), cfg.eval_images)).to(device)
    clean_test = to_unit(data.test_images[keep])
    starts = torch.rand(clean_test.shape, device=device,  # "completely random" images: U(0, 1) pixels
                        generator=torch.Generator(device=device).manual_seed(EVAL_SEED + 1))
    return clean_test, starts


def validation_bce(model, val_in, val_target, T) -> float:
    """The course's val_loss: BCE of net(x_i) against x_{i−1} over every validation pair."""
    t = torch.arange(len(val_in), device=val_in.device) % (T + 1)
    logits = torch.cat([model(x, s).float() for x, s in zip(val_in.split(1100), t.split(1100))])
    return F.binary_cross_entropy_with_logits(logits, val_target).item()


def evidence_dict(per_digit, epochs: int) -> dict:
    """``chain_psnr_evidence`` of (T + 1, digits) PSNRs, as JSON for summary.json."""
    ev = chain_psnr_evidence(per_digit)
    return {"epochs": epochs, "mean_psnr": ev["mean_psnr"], "best_step": ev["best_step"],
            **{k: ev[k].as_dict() for k in ("gain", "best_gain", "drift")}}


def psnr(x, clean) -> float:
    return psnr_per_image(x.clamp(0, 1), clean).mean().item()


def chain_scores(chain, clean) -> dict:
    ps = [psnr(x, clean) for x in chain]
    bce = [mean_bce(x.clamp(0, 1), clean).item() for x in chain]
    rises = sum(b > a for a, b in zip(ps, ps[1:]))
    return {"chain_psnr": ps, "chain_bce": bce, "start_psnr": ps[0], "final_psnr": ps[-1], "final_bce": bce[-1],
            "psnr_rises_in_steps": f"{rises}/{len(ps) - 1}"}


def noise_stats(chain, clean) -> dict:
    """What the chain makes of U(0,1) pixels: brightness, contrast and ink per step vs real digits."""
    def stats(x):
        return {"mean": x.mean().item(), "pixel_std": x.std().item(), "ink_fraction": (x > 0.5).float().mean().item()}

    return {"start": "uniform U(0,1) pixels", "per_step": [stats(x) for x in chain], "real_digits": stats(clean),
            "final_spread_across_starts": chain[-1].std(0).mean().item()}


def chain_figure(chain, clean, path: Path, title: str) -> None:
    T = len(chain) - 1
    cols = torch.linspace(0, len(chain[0]) - 1, SHOWN).long()  # spread over the (class-sorted) eval set
    rows = [(f"x_{T} input", chain[0][cols])]
    rows += [(f"out t={T - k}", x[cols]) for k, x in enumerate(chain[1:], start=1)]
    if clean is not None:
        rows.append(("clean", clean[cols]))
    plots.image_rows(rows, path, title)


def feed_figure(fed, rung: int, path: Path, course_digits: bool, title: str) -> None:
    """The course's closing figure: test digits (columns) at rung ``rung``, then each pass's output."""
    n = len(fed[0])
    if course_digits and n >= COURSE_DIGITS.stop:
        cols = torch.tensor(list(COURSE_DIGITS))  # the course's X_test[6:11]
    else:
        cols = torch.linspace(0, n - 1, len(COURSE_DIGITS)).long()
    rows = [(f"x_{rung} input", fed[0][cols])]
    rows += [(f"pass {k}" + (" (fed back)" if k > 1 else ""), x[cols]) for k, x in enumerate(fed[1:], start=1)]
    plots.image_rows(rows, path, f"rung {rung}, then its output fed back {len(fed) - 2} more times — {title}")


def measure_variant(cfg, out: Path, variants: dict, model, result, evaluated: list, name: str,
                    seed: int, T: int, condition: str, test_ladder, val, clean_test, starts) -> None:
    """One trained variant's chain from the test ladder and from noise, fed back, its validation BCE: a seed's
    record, and (for its first seed) the variant's entry and figures."""
    with torch.no_grad():
        chain = run_chain(model, test_ladder[T], T)
        noise_chain = run_chain(model, starts, T)
        fed = feed_back(model, test_ladder[min(FEED_RUNG, T)], min(FEED_RUNG, T), FEED_PASSES)
        val_bce = validation_bce(model, *val, T)
    record = {"seed": seed, "val_bce": val_bce, "epochs_run": len(result.history),
              "stopped_epoch": getattr(result, "stopped_epoch", None),
              "train_seconds": result.train_seconds, "final_train_loss": result.final_train_loss,
              "final_psnr": psnr(chain[-1], clean_test), "folder": f"variants/{name}"}
    key = f"T{T}-{condition}"
    if key in variants:  # a later seed of this variant: its numbers join the first seed's entry
        variants[key]["seeds"].append(record)
        return
    claim = {"trained": evidence_dict(chain_psnr(torch.stack(chain), clean_test), len(result.history))}
    # the first evaluation was epoch 1 only when this process trained from the start
    # (a resumed run evaluates its remaining epochs only; its early chain is not measured)
    if cfg.epochs > 1 and evaluated and len(result.history) - len(evaluated) == 0:
        claim["early"] = evidence_dict(evaluated[0], 1)
    variants[key] = {
        "steps": T, "condition": condition, "params": count_parameters(model), "folder": f"variants/{name}",
        "train_seconds": result.train_seconds, "train_images_per_second": result.train_images_per_second,
        "final_train_loss": result.final_train_loss,
        **chain_scores(chain, clean_test),
        "ladder_psnr": [psnr(x, clean_test) for x in test_ladder.flip(0)],
        "from_noise": noise_stats(noise_chain, clean_test),
        "feed_back": {"rung": min(FEED_RUNG, T), "psnr": [psnr(x, clean_test) for x in fed],
                      "bce": [mean_bce(x.clamp(0, 1), clean_test).item() for x in fed]},
        "evidence": claim, "seeds": [record],
    }
    folder = out / "variants" / name
    title = f"T={T}, {cfg.schedule}, {cfg.dist} mag {cfg.mag}, condition {condition}, {len(result.history)} epochs"
    chain_figure(chain, clean_test, folder / "chain.png", title)
    chain_figure(noise_chain, None, folder / "from_noise.png", f"from U(0,1) noise — {title}")
    feed_figure(fed, min(FEED_RUNG, T), folder / "feed_back.png", cfg.course_data, title)


def shown_figures(cfg, out: Path, variants: dict) -> str:
    """The shown T's first variant's figures at the top of the run folder, and PSNR along every shown chain;
    returns that variant's name."""
    shown = {k: v for k, v in variants.items() if v["steps"] == cfg.shown_steps}
    first = next(iter(shown))
    for fig in ("chain.png", "from_noise.png", "feed_back.png") if is_main() else ():  # rank 0 wrote the figures
        atomic_write_bytes(out / fig, (out / variants[first]["folder"] / fig).read_bytes())
    T = cfg.shown_steps
    k = list(range(T + 1))  # denoising steps applied: k = 0 is x_T, k = T is x̂_0
    series = {f"{name}: chain x̂_(T-k)": (k, e["chain_psnr"]) for name, e in shown.items()}
    series["true ladder x_(T-k)"] = (k, shown[first]["ladder_psnr"])
    for name, e in shown.items():
        if "early" in e["evidence"]:
            series[f"{name} after epoch 1 (under-trained)"] = (k, e["evidence"]["early"]["mean_psnr"])
    plots.curves(series, out / "chain_psnr.png", f"denoising steps applied k (x_{T} -> x_0)", "PSNR vs clean (dB)",
                 f"{cfg.schedule} ladder, {cfg.dist} mag {cfg.mag}, {cfg.epochs} epochs",
                 styles={"true ladder x_(T-k)": "--x"})
    return first


def load_ladder(run: Path, variant: str | None, device) -> Ladder:
    """A finished ladder run's model (``variant``, or the one its figures show); a UserError otherwise."""
    run = Path(run)
    saved = read_run(run, "ladder", flag="--ladder-run").saved
    try:
        summary = json.loads((run / "summary.json").read_text())
    except (OSError, json.JSONDecodeError):
        raise UserError(f"--ladder-run {run}: no readable summary.json — its training did not finish") from None
    variants = summary.get("variants") or {}
    name = variant or summary.get("shown_variant")
    if name not in variants:
        raise UserError(f"--ladder-variant {name!r}: {run} holds {', '.join(variants) or 'no variants'}")
    entry = variants[name]
    cfg = saved.get("config", {})
    model_cfg = StepConditionConfig(entry["condition"], entry["steps"], bottleneck=cfg.get("bottleneck", 0),
                                    init=cfg.get("init", "torch"))
    model = StepConditionedUNet(model_cfg)
    weights = run / entry.get("folder", f"variants/{name}") / "model.safetensors"
    if not weights.is_file():
        raise UserError(f"--ladder-run {run}: no {weights.relative_to(run)} — the ladder training did not finish")
    load_weights(model, weights, model_signature(model, model_cfg.signature()))
    return Ladder(model.to(device).eval(), name, entry["steps"], run, saved.get("config", {}))
