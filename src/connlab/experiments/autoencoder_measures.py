"""What ``connlab autoencoder`` measures a trained denoiser against: the trivial baselines (the noisy input,
the mean image), each skip variant against ``none`` paired by seed, the comparison table, the denoiser fed its
own output (``--iterate``) and the course's published figures (``--preset course``)."""

from __future__ import annotations

import torch

from connlab.evidence import compare, reproduction
from connlab.measures import baseline_bce, clamped_bce
from connlab.metrics import image_metrics, psnr_per_image

SHOWN = 10        # test digits in the figures

# The course's validation BCE after 20 epochs, one run each (the notebooks' last val_loss): read from
# CIML23_MNIST_Autoencoder_v1_exercise / _solution.ipynb and C24_MNIST_Autoencoder_v3(_wfeedback).ipynb.
COURSE_FIGURES = {
    "none": (("CIML 2023 exercise notebook", 0.1652), ("CIML 2024 notebook", 0.1594),
             ("CIML 2024 feedback notebook", 0.1620)),
    "concat": (("CIML 2023 solution notebook (both concatenation skips)", 0.1447),),
}


def course_reproduction(variants: dict, deviations: dict, validation: str | None) -> dict:
    """The course's published figures against our seeds' validation BCE: per variant, one
    ``connlab.evidence.reproduction`` per published run; and how this run differs from the course's protocol."""
    rows = {skip: [{"source": source, **reproduction(figure, [r["test_bce"] for r in variants[skip]["seeds"]])
                    .as_dict()} for source, figure in COURSE_FIGURES.get(skip, ())]
            for skip in variants if skip in COURSE_FIGURES}
    return {"reproduction": rows, "validation": validation,
            "deviations": {k: {"ours": v[0], "course": v[1]} for k, v in deviations.items()}}


def trivial_baselines(noisy, mean_image, clean) -> dict:
    """What a denoiser must beat: the noisy input and the mean training image (BCE, MSE, PSNR, SSIM).

    A BCE is kept only where PyTorch's log clamp does not dominate it (``measures.baseline_bce``):
    the clipped noisy input has exact 0/1 pixels where the clean digit disagrees, each costing
    100 × the disagreement, so its BCE is the clamp, not a measurement — None, with the note why.
    """
    out = {}
    for name, pred in (("noisy_input", noisy), ("mean_image", mean_image)):
        scores = image_metrics(pred, clean)
        scores["bce"] = baseline_bce(pred, clean)
        if scores["bce"] is None:
            scores["bce_note"] = clamped_bce(pred, clean)["note"]
        out[name] = scores
    return out


def skip_evidence(variants: dict) -> dict:
    """Each skip variant against ``none``, paired by seed: {skip: {"psnr": Evidence dict, "bce": ...}}."""
    if "none" not in variants:
        return {}
    base = variants["none"]["seeds"]
    out = {}
    for skip, entry in variants.items():
        if skip == "none":
            continue
        per = entry["seeds"]
        out[skip] = {"psnr": compare([r["test_psnr"] for r in base], [r["test_psnr"] for r in per],
                                     better="higher").as_dict(),
                     "bce": compare([r["test_bce"] for r in base], [r["test_bce"] for r in per],
                                    better="lower").as_dict()}
    return out


def comparison_rows(variants: dict) -> list[dict]:
    """Each skip variant against ``none``: the mean BCE and PSNR differences (the verdict is
    ``skip_evidence``'s interval, not this table)."""
    if "none" not in variants:
        return []
    base = variants["none"]
    return [{"variant": skip, "vs": "none", "bce_difference": entry["test_bce"] - base["test_bce"],
             "psnr_difference": entry["test_psnr"] - base["test_psnr"]}
            for skip, entry in variants.items() if skip != "none"]


def iterate_denoiser(models, noisy, clean, k, out, plots, image_metrics, reconstruct) -> dict:
    """Feed each denoiser its own output K times: the lecture's (A) / (B) / (C) question."""
    result, rows, evidence = {}, [("noisy", noisy[:SHOWN])], {}
    with torch.no_grad():
        for skip, model in models.items():
            x, per_pass, first = noisy, [], None
            for i in range(1, k + 1):
                x = reconstruct(model, x)
                per_digit = psnr_per_image(x.clamp(0, 1), clean).tolist()
                first = per_digit if first is None else first
                if i == k and k > 1:
                    evidence[skip] = compare(first, per_digit, better="higher", what="test digits").as_dict()
                scores = image_metrics(x, clean)
                scores["mean_intensity"] = x.mean().item()
                per_pass.append({"pass": i, **scores})
                if i in (1, k) or k <= 4:
                    rows.append((f"{skip} x{i}", x[:SHOWN]))
            result[skip] = per_pass
    rows.append(("clean", clean[:SHOWN]))
    result["clean_mean_intensity"] = clean.mean().item()
    result["evidence"] = evidence
    plots.image_rows(rows, out / "iterate.png", f"denoiser fed its own output, {k} passes")
    return result
