"""``connlab diffusion sample`` and ``connlab diffusion eval``: the two actions on a trained run.

``sample`` draws digits from a run's EMA U-Net with DDPM or DDIM (and, with ``--ladder-run``, stores the
Exercise-2 ladder's chain beside DDPM's from the same noise); ``eval`` scores quality and time against the
sampler and its steps.  Both take the run's experiment config dataclass from the caller
(``connlab.experiments.diffusion``), which registers them as its sub-commands.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from connlab import plots
from connlab.checkpoint import atomic_write, atomic_write_json, atomic_write_text, check_output
from connlab.data import load_dataset, to_uint8, to_unit
from connlab.experiments.classifier import find_or_train_classifier as find_classifier
from connlab.experiments.common import nonnegative_float, positive_int, seed_int, speed_flag
from connlab.experiments.config import Config, flag
from connlab.experiments.ladder_chain import load_ladder
from connlab.runtime.memory import check_fits
from connlab.runtime.settings import RunSettings
from connlab.runtime.speed import Speed
from connlab.sampling.evaluate import FEWER_STEPS_DDIM, evaluate, fewer_steps_claim, floor, format_eval
from connlab.sampling.generate import Generator
from connlab.sampling.sidebyside import FIGURE, store_side_by_side
from connlab.train import pick_device

SPEED = "speed (defaults are the fast path; each flag turns one part off)"


@dataclass(frozen=True)
class SamplingCommand(Config):
    """What ``diffusion sample`` and ``eval`` share: the run, the guidance, the seed, the device, the speed
    switches (``Speed``'s, as the trainer's; malloc_cache is a training switch). Not saved in a run."""

    run_dir: Path = flag(help="a `connlab diffusion train` run folder", type=Path, option="--run", metavar="RUN")
    guidance: float | None = flag(None, "classifier-free guidance weight w (default: the run's own; "
                                        "class-conditional runs only)", type=nonnegative_float)
    seed: int = flag(0, "random seed of the noise", type=seed_int)
    device: str = flag(RunSettings.device, "auto (cuda, mps, cpu), cpu, cuda, cuda:N, mps", show_default=False)
    precision: str = speed_flag("precision", SPEED)
    channels_last: str = speed_flag("channels_last", SPEED)
    compile: str = speed_flag("compile", SPEED)
    cuda_graph: str = speed_flag("cuda_graph", SPEED)


@dataclass(frozen=True)
class SampleCommand(SamplingCommand):
    """``connlab diffusion sample``'s flags."""

    sampler: str = flag("ddim", "the step rule", choices=("ddpm", "ddim"))
    steps: int | None = flag(None, "DDIM steps, 1..T (default 50); DDPM uses T", type=positive_int)
    num: int = flag(64, "number of samples", type=positive_int)
    eta: float = flag(0.0, "DDIM η (0: deterministic, 1: DDPM-like)", type=nonnegative_float)
    save_npz: Path | None = flag(None, "write the samples as uint8 'images' (N, 28, 28)", type=Path)
    ladder_run: Path | None = flag(None, "a `connlab ladder` run: also store its chain and DDPM's from the same "
                                         "noise (sidebyside.json; `connlab report` renders the page)", type=Path)
    ladder_variant: str | None = flag(None, "which of the ladder run's variants, e.g. T10-none (default: the one "
                                            "its figures show)", type=str)


@dataclass(frozen=True)
class EvalCommand(SamplingCommand):
    """``connlab diffusion eval``'s flags."""

    num: int = flag(500, "samples per sampler setting", type=positive_int)
    classifier: Path | None = flag(None, "a `connlab classifier` run (default: the run's)", type=Path)


def set_threads(threads: int, device) -> None:
    # 0 keeps torch's default (all cores): faster on idle cores; on cores busy with other work one
    # thread can be much faster (--threads 1), since intra-op threads then wait on each other
    # (docs/diffusion-cpu-quality.md).
    if threads > 0:
        torch.set_num_threads(threads)


def run_sample(cmd: SampleCommand, config_type) -> int:
    """``connlab diffusion sample``: ``cmd.num`` samples of a run (``config_type``: its config dataclass), their
    grid, and with ``--ladder-run`` the side-by-side chains."""
    device = pick_device(cmd.device)
    gen = Generator.from_run(cmd.run_dir, device, Speed.of(cmd), config_type)
    set_threads(gen.cfg.threads, device)
    steps = gen.check(cmd.sampler, cmd.steps, cmd.guidance)
    check_sample_size(cmd.num, device)
    if cmd.save_npz is not None:  # written exactly there (numpy adds no .npz to an open file), checked first
        check_output(cmd.save_npz, "--save-npz")
    ladder = None
    if cmd.ladder_run is not None:  # checked before any sampling

        ladder = load_ladder(cmd.ladder_run, cmd.ladder_variant, device)
    t0 = time.perf_counter()
    images = gen.sample(cmd.sampler, steps, cmd.num, cmd.eta, cmd.guidance, seed=cmd.seed)
    seconds = time.perf_counter() - t0
    if cmd.save_npz is not None:  # (N, 28, 28) uint8
        atomic_write(cmd.save_npz, lambda f: np.savez_compressed(f, images=to_uint8(images[:, 0]).cpu().numpy()))
    w = gen.guidance(cmd.guidance)
    tag = f"{cmd.sampler}{steps}" + (f"-eta{cmd.eta:g}" if cmd.eta else "") + (f"-w{w:g}" if w is not None else "")
    rows = [("", images[i:i + 10]) for i in range(0, min(len(images), 60), 10)]
    plots.image_rows(rows, Path(cmd.run_dir) / f"samples-{tag}.png",
                     f"{cmd.sampler.upper()}-{steps}" + (f", guidance w = {w:g}" if w is not None else ""))
    print(f"{cmd.num} samples, {cmd.sampler.upper()}-{steps}" + (f", guidance w = {w:g}" if w is not None else "")
          + f", {seconds:.1f} s "
          f"({cmd.num / seconds:.1f} images/s); grid: {Path(cmd.run_dir) / f'samples-{tag}.png'}"
          + (f"; npz: {cmd.save_npz}" if cmd.save_npz else ""))
    if ladder is not None:
        t0 = time.perf_counter()
        data = store_side_by_side(gen, ladder, Path(cmd.run_dir), sampler=cmd.sampler, steps=steps, eta=cmd.eta,
                                  guidance=cmd.guidance, seed=cmd.seed)
        print(f"side-by-side chains (ladder {ladder.name} and DDPM from the same noise, "
              f"{time.perf_counter() - t0:.1f} s): {data}, figure {data.parent / FIGURE}; "
              f"the page: connlab report {cmd.run_dir} (writes {data.parent / 'sidebyside.html'})")
    return 0


def check_sample_size(num: int, device) -> None:
    """``--num`` samples must fit in memory: they are kept (float32 images, the chunks and their join)."""
    check_fits(num * 28 * 28 * 4 * 3, device, f"--num {num} samples", "ask for fewer")


def run_eval(cmd: EvalCommand, config_type) -> int:
    """``connlab diffusion eval``: quality and time vs sampler and steps (eval.json, eval.md), and the claim
    that DDIM needs far fewer steps."""
    device = pick_device(cmd.device)
    gen = Generator.from_run(cmd.run_dir, device, Speed.of(cmd), config_type)
    set_threads(gen.cfg.threads, device)
    cfg = gen.cfg
    check_sample_size(cmd.num, device)
    data = load_dataset(cfg.dataset, cfg.data_dir, cfg.limit).to(device)
    classifier, info = find_classifier(cmd.classifier or cfg.classifier, cmd.run_dir, data, device)
    gen.check("ddim", None, cmd.guidance)
    kept: dict = {}
    rows = evaluate(gen, data, classifier, cmd.num, cmd.seed, cmd.guidance,
                    progress=lambda line: print(line, file=sys.stderr), keep=kept)
    result = {"run": str(cmd.run_dir), "space": cfg.space, "num": cmd.num, "guidance": gen.guidance(cmd.guidance),
              "classifier": info,
              "frechet_floor": floor(data, classifier, cmd.num), "rows": rows}
    ddim, ddpm = kept.get(("ddim", FEWER_STEPS_DDIM)), kept.get(("ddpm", cfg.timesteps))
    if ddim is not None and ddpm is not None and cmd.num >= 2:  # T < 50 has no DDIM-50 row
        result["fewer_steps"] = fewer_steps_claim(to_unit(data.test_images), ddpm, ddim, classifier, cmd.seed)
    table = format_eval(result)
    atomic_write_json(Path(cmd.run_dir) / "eval.json", result)
    atomic_write_text(Path(cmd.run_dir) / "eval.md", table + "\n")
    print(table)
    return 0
