"""``connlab diffusion train | sample | eval`` — DDPM and DDIM on MNIST, in pixel or latent space.

    connlab diffusion train [--preset default|demo|pixel] [--space pixel|latent] ...
    connlab diffusion sample --run DIR --sampler ddpm|ddim --steps K --num N [--eta E] [--guidance W] [--save-npz P]
    connlab diffusion eval --run DIR [--num N]

The pieces compose as in DESIGN.md: the U-Net (``models.diffusion_unet``) predicts ε, x_0 or
v; the process (``diffusion.schedule``) noises and defines the loss; DDPM and DDIM
(``diffusion.samplers``) are two step rules over the same trained network; ``train.fit``
is the training loop (EMA included); ``quality`` scores samples in an MNIST classifier's
features.  With ``--space latent`` (Rombach et al. 2022) a small autoencoder
(``models.latent_ae``) is trained first by the same ``fit``, the training digits are
encoded once to standardised 4×7×7 latents, the U-Net learns to denoise those, and the
decoder maps sampled latents back to pixels.

Run folder (train):
    config.json, summary.json         the experiment config; final numbers (quality, time)
    model.safetensors, ema.safetensors, metrics.jsonl, checkpoints/   the U-Net (sampling uses EMA)
    autoencoder/                      latent space only: its fit run and autoencoder.safetensors
    classifier/                       the quality classifier, when trained on the fly
    samples.png, trajectory.png       a sample grid; x_T → x_0 for a few samples
    eval.md, eval.json                written by ``eval``: distance and time vs sampler and steps

CPU default (2 shared CPU cores, load average ~9 from other jobs, one thread; measured):
- one training step at batch 128: pixel U-Net (base 16, levels 1,2,2, 208k params) 2.1 s;
  latent U-Net on 4×7×7 (base 32, levels 1,2, 545k params) 0.64 s — so the default is latent
  diffusion with v-prediction on the cosine schedule (Salimans & Ho 2022), lr 2e-3 with
  warm-up, cosine decay and EMA with warm-up;
- ``--preset demo`` (AE 3 epochs + U-Net 4 epochs = 284 steps): 189 s + 371 s of training
  under that load; DDIM-50 on 500 samples: Fréchet distance 195.8 (floor 4.4), mean confidence
  0.78, 39 % confidently labelled, all 10 classes present — digit-like strokes, not yet clean
  digits.  ``--preset default`` (12 U-Net epochs) is the longer version; it was not measured.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from connlab.experiments.common import TrainingSettings

EVAL_SEED = 1234
EVAL_GRID = ((("ddim", 10), ("ddim", 20), ("ddim", 50), ("ddim", 100)), "ddpm")
TRAJECTORY_SAMPLES = 6
TRAJECTORY_COLUMNS = 10

# Presets fill every flag not given on the command line.  "default": the CPU default (see the
# module docstring); "demo": its short cut for the lab demo; "pixel": the reference,
# a plain pixel-space ε / linear DDPM.
PRESETS = {
    "default": dict(space="latent", schedule="cosine", prediction="v", timesteps=1000, base_channels=32,
                    channel_mults=(1, 2), attention=True, epochs=12, batch_size=128, lr=2e-3, ema_decay=0.999,
                    ae_epochs=4),
    "demo": dict(space="latent", schedule="cosine", prediction="v", timesteps=1000, base_channels=32,
                 channel_mults=(1, 2), attention=True, epochs=4, batch_size=128, lr=2e-3, ema_decay=0.995,
                 ae_epochs=3),
    "pixel": dict(space="pixel", schedule="linear", prediction="eps", timesteps=1000, base_channels=16,
                  channel_mults=(1, 2, 2), attention=True, epochs=8, batch_size=128, lr=1e-3, ema_decay=0.999,
                  ae_epochs=0),
}


@dataclass(frozen=True)
class DiffusionExperiment(TrainingSettings):
    preset: str = "default"
    space: str = "latent"
    schedule: str = "cosine"
    prediction: str = "v"
    timesteps: int = 1000
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2)
    num_res_blocks: int = 1
    attention: bool = True
    dropout: float = 0.0
    ema_decay: float = 0.999
    class_cond: bool = False
    label_dropout: float = 0.1   # p(y → ∅) in training, for classifier-free guidance
    ae_epochs: int = 4
    latent_channels: int = 4
    epochs: int = 12
    lr: float = 2e-3
    threads: int = 0             # 0: torch's default (all cores)
    classifier: str | None = None
    eval_num: int = 500          # samples scored at the end of training
    eval_steps: int = 50         # DDIM steps for that score

    def unet_config(self):
        from connlab.models.diffusion_unet import DiffusionUNetConfig

        ch = 1 if self.space == "pixel" else self.latent_channels
        return DiffusionUNetConfig(in_channels=ch, out_channels=ch, base_channels=self.base_channels,
                                   channel_mults=tuple(self.channel_mults), num_res_blocks=self.num_res_blocks,
                                   attention=self.attention, dropout=self.dropout,
                                   num_heads=4, norm_groups=8, num_classes=10 if self.class_cond else None)

    def noise_schedule(self):
        from connlab.diffusion import NoiseSchedule

        return getattr(NoiseSchedule, self.schedule)(self.timesteps)


# --- command line -------------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    from connlab.experiments.common import add_common, nonnegative_float, positive_int

    sub = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p), required=True)

    t = sub.add_parser("train", help="train a DDPM (pixel or latent space)")
    t.add_argument("--preset", default="default", choices=tuple(PRESETS),
                   help="default: the CPU default; demo: a short cut (~9 min on 2 busy cores); pixel: plain pixel ε-DDPM")
    t.add_argument("--space", choices=("pixel", "latent"), default=None, help="diffuse pixels or AE latents")
    t.add_argument("--schedule", choices=("linear", "cosine"), default=None, help="β schedule")
    t.add_argument("--prediction", choices=("eps", "x0", "v"), default=None, help="what the network predicts")
    t.add_argument("--timesteps", type=positive_int, default=None, help="T, the number of diffusion steps")
    t.add_argument("--base-channels", type=positive_int, default=None, help="U-Net width (multiple of 8)")
    t.add_argument("--channel-mults", type=_int_tuple, default=None, help="U-Net levels, e.g. 1,2,2")
    t.add_argument("--num-res-blocks", type=positive_int, default=1, help="residual blocks per level")
    t.add_argument("--no-attention", dest="attention", action="store_false", default=None,
                   help="no self-attention at the lowest resolution")
    t.add_argument("--dropout", type=nonnegative_float, default=0.0, help="dropout in residual blocks")
    t.add_argument("--ema-decay", type=nonnegative_float, default=None, help="EMA decay (with warm-up)")
    t.add_argument("--class-cond", action="store_true", help="condition on the label (enables --guidance)")
    t.add_argument("--label-dropout", type=nonnegative_float, default=0.1,
                   help="p of replacing the label by ∅ in training (classifier-free guidance)")
    t.add_argument("--ae-epochs", type=positive_int, default=None, help="latent space: autoencoder epochs")
    t.add_argument("--threads", type=int, default=0, help="intra-op CPU threads (default 0: all cores; 1 is faster on a busy machine)")
    t.add_argument("--classifier", type=Path, default=None,
                   help="a `connlab classifier` run for the quality metric (default: train one on the fly)")
    t.add_argument("--eval-num", type=positive_int, default=500, help="samples scored after training")
    t.add_argument("--eval-steps", type=positive_int, default=50, help="DDIM steps for that score")
    add_common(t, epochs=12, lr=2e-3)
    t.set_defaults(epochs=None, lr=None, batch_size=None, run=run_train)

    s = sub.add_parser("sample", help="sample digits from a trained run")
    s.add_argument("--run", dest="run_dir", type=Path, required=True, help="a `connlab diffusion train` run folder")
    s.add_argument("--sampler", choices=("ddpm", "ddim"), default="ddim")
    s.add_argument("--steps", type=positive_int, default=None, help="DDIM steps, 1..T (default 50); DDPM uses T")
    s.add_argument("--num", type=positive_int, default=64, help="number of samples")
    s.add_argument("--eta", type=nonnegative_float, default=0.0, help="DDIM η (0: deterministic, 1: DDPM-like)")
    s.add_argument("--guidance", type=nonnegative_float, default=None,
                   help="classifier-free guidance weight w (class-conditional runs only)")
    s.add_argument("--save-npz", type=Path, default=None, help="write the samples as uint8 'images' (N, 28, 28)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto")
    s.set_defaults(run=run_sample)

    e = sub.add_parser("eval", help="distance and time vs sampler and steps")
    e.add_argument("--run", dest="run_dir", type=Path, required=True, help="a `connlab diffusion train` run folder")
    e.add_argument("--num", type=positive_int, default=500, help="samples per sampler setting")
    e.add_argument("--classifier", type=Path, default=None, help="a `connlab classifier` run (default: the run's)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default="auto")
    e.set_defaults(run=run_eval)


def _int_tuple(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: need positive integers")
    return values


def config_from_args(args: argparse.Namespace) -> DiffusionExperiment:
    preset = PRESETS[args.preset]
    pick = lambda name: getattr(args, name) if getattr(args, name) is not None else preset[name]  # noqa: E731
    return DiffusionExperiment.from_args(
        args, preset=args.preset, space=pick("space"), schedule=pick("schedule"), prediction=pick("prediction"),
        timesteps=pick("timesteps"), base_channels=pick("base_channels"), channel_mults=tuple(pick("channel_mults")),
        num_res_blocks=args.num_res_blocks, attention=pick("attention"), dropout=args.dropout,
        ema_decay=pick("ema_decay"), class_cond=args.class_cond, label_dropout=args.label_dropout,
        ae_epochs=pick("ae_epochs") or 1, epochs=pick("epochs"), batch_size=pick("batch_size"), lr=pick("lr"),
        threads=args.threads, classifier=str(args.classifier) if args.classifier else None,
        eval_num=args.eval_num, eval_steps=args.eval_steps)


def _set_threads(threads: int, device) -> None:
    import torch

    # 0 keeps torch's default (all cores). Measured on 2 idle cores: a 7×7 latent U-Net step at
    # batch 128 took 168 ms with two threads and 254 ms with one; on cores busy with other work
    # one thread can be much faster (--threads 1), since intra-op threads then wait on each other.
    if threads > 0:
        torch.set_num_threads(threads)


# --- train -------------------------------------------------------------------------------------

def run_train(args: argparse.Namespace) -> int:
    from connlab.errors import UserError
    from connlab.runs import prepare_run

    cfg = config_from_args(args)
    if cfg.ema_decay >= 1:
        raise UserError(f"--ema-decay must be < 1, got {cfg.ema_decay}")
    if not cfg.label_dropout < 1:
        raise UserError(f"--label-dropout must be < 1, got {cfg.label_dropout}")
    cfg.unet_config()  # validates the U-Net flags before any work
    out, cfg = prepare_run(args.out, "diffusion", cfg, args.resume)
    summary = train(cfg, out, resume=args.resume)
    q = summary["quality"]
    print(f"{cfg.space} DDPM, {summary['unet_params']:,} U-Net parameters, trained {summary['train_seconds']:.0f} s; "
          f"DDIM-{q['steps']} ({q['num_samples']} samples): distance {q['frechet_distance']:.2f} "
          f"(floor {summary['frechet_floor']:.2f}), confidence {q['mean_confidence']:.3f}, "
          f"classes covered {q['classes_covered']}/10")
    print(f"run folder: {out}", file=sys.stderr)
    return 0


def train(cfg: DiffusionExperiment, out: Path, resume: bool = False) -> dict:
    import torch

    from connlab.data import load_dataset, to_unit, unit_to_signed
    from connlab.diffusion import EMA, diffusion_loss
    from connlab.models.diffusion_unet import DiffusionUNet
    from connlab.runs import write_summary
    from connlab.train import fit, pick_device, seed_everything

    device = pick_device(cfg.device)
    _set_threads(cfg.threads, device)
    data = load_dataset(cfg.dataset, cfg.data_dir, cfg.limit).to(device)
    seed_everything(cfg.seed)
    summary: dict = {"experiment": "diffusion", "dataset": data.name, "data_source": data.source,
                     "device": str(device), "threads": torch.get_num_threads(),
                     "train_images": len(data.train_images), "config": asdict(cfg)}

    ae_seconds = 0.0
    if cfg.space == "latent":
        ae, ae_summary = train_autoencoder(cfg, out / "autoencoder", data, resume)
        summary["autoencoder"] = ae_summary
        ae_seconds = ae_summary["train_seconds"]
        with torch.no_grad():
            x0_train = torch.cat([ae.encode(to_unit(x)) for x in data.train_images.split(1000)])  # (N, C, 7, 7)
    else:
        x0_train = data.train_images  # uint8; mapped to [-1, 1] per batch

    schedule = cfg.noise_schedule().to(device)
    unet_cfg = cfg.unet_config()
    model = DiffusionUNet(unet_cfg).to(device)
    ema = EMA(model, cfg.ema_decay)
    null = unet_cfg.num_classes

    def loss_fn(model, batch, generator):
        x0, y = batch
        x0 = unit_to_signed(to_unit(x0)) if cfg.space == "pixel" else x0
        t = torch.randint(0, schedule.T, (x0.shape[0],), generator=generator, device=x0.device)
        eps = torch.randn(x0.shape, generator=generator, device=x0.device)
        if null is None:
            y = None
        else:  # label dropout: the same network learns ε(x, t, ∅) for classifier-free guidance
            drop = torch.rand(y.shape, generator=generator, device=y.device) < cfg.label_dropout
            y = torch.where(drop, torch.full_like(y, null), y)
        out_ = model(schedule.q_sample(x0, t, eps), t, y)
        return diffusion_loss(out_.float(), x0, eps, t, schedule, cfg.prediction)

    train_cfg = cfg.train_config(optimizer="adamw", lr_schedule="cosine", warmup_steps=100, grad_clip=1.0)
    result = fit(model, loss_fn, (x0_train, data.train_labels), train_cfg, out, model_config=_plain(unet_cfg),
                 ema=ema, resume=resume and (out / "checkpoints").is_dir(), label=f"{cfg.space} DDPM")
    summary.update({"unet_params": sum(p.numel() for p in model.parameters()), "steps": result.steps,
                    "unet_train_seconds": result.train_seconds, "autoencoder_train_seconds": ae_seconds,
                    "train_seconds": round(result.train_seconds + ae_seconds, 3),
                    "seconds_per_step": round(result.train_seconds / max(result.steps, 1), 4),
                    "final_train_loss": result.final_train_loss, "history": result.history})

    # Score the EMA network with DDIM, and draw the figures.
    gen = Generator.from_run(out, device)
    classifier, summary["classifier"] = _classifier(cfg.classifier, out, data, device)
    steps = min(cfg.eval_steps, cfg.timesteps)
    t0 = time.perf_counter()
    images = gen.sample("ddim", steps, cfg.eval_num, seed=EVAL_SEED)
    seconds = time.perf_counter() - t0
    summary["quality"] = _score(images, data, classifier, sampler="ddim", steps=steps, seconds=seconds)
    summary["frechet_floor"] = _floor(data, classifier, cfg.eval_num)
    summary["floor_note"] = f"real train vs real test at the same N = {cfg.eval_num}"
    gen.figures(out, images)
    write_summary(out, summary)
    return summary


def train_autoencoder(cfg: DiffusionExperiment, out: Path, data, resume: bool):
    """Train the latent autoencoder with ``fit`` and standardise its latents; (model, summary)."""
    import json

    import torch

    from connlab.checkpoint import atomic_write_json, load_weights, model_signature, save_weights
    from connlab.data import to_unit
    from connlab.metrics import image_metrics
    from connlab.models.latent_ae import LatentAEConfig, LatentAutoencoder
    from connlab.train import fit

    ae_cfg = LatentAEConfig(latent_channels=cfg.latent_channels)
    ae = LatentAutoencoder(ae_cfg).to(data.train_images.device)
    signature = model_signature(ae, asdict(ae_cfg))
    final = out / "autoencoder.safetensors"
    if final.is_file():  # finished before an interruption of the U-Net's training
        load_weights(ae, final, signature)
        return ae.eval(), json.loads((out / "summary.json").read_text())
    train_cfg = cfg.train_config(epochs=cfg.ae_epochs, lr=2e-3, optimizer="adamw", lr_schedule="cosine",
                                 warmup_steps=50)
    result = fit(ae, lambda m, batch, g: m.loss(to_unit(batch[0]), g), (data.train_images,), train_cfg, out,
                 model_config=asdict(ae_cfg), resume=resume and (out / "checkpoints").is_dir(),
                 label="latent autoencoder")
    ae.eval()
    ae.fit_latent_stats(to_unit(data.train_images))
    with torch.no_grad():
        test = to_unit(data.test_images)
        recon = torch.cat([ae.decode(ae.encode(x)) for x in test.split(1000)])
    summary = {"config": asdict(ae_cfg), "params": sum(p.numel() for p in ae.parameters()),
               "bottleneck": "plain (standardised latents, noisy-latent decoder training), not KL",
               "latent_shape": [cfg.latent_channels, 7, 7], "train_seconds": result.train_seconds,
               "test_reconstruction": image_metrics(recon, test)}
    atomic_write_json(out / "summary.json", summary)
    save_weights(ae, final, {"signature": signature})
    return ae, summary


# --- sampling ---------------------------------------------------------------------------------

class Generator:
    """A trained run's EMA U-Net (and decoder, in latent space), ready to sample digits."""

    def __init__(self, cfg: DiffusionExperiment, model, decoder, device):
        self.cfg, self.model, self.decoder, self.device = cfg, model, decoder, device
        self.schedule = cfg.noise_schedule().to(device)
        self.shape = (1, 28, 28) if cfg.space == "pixel" else (cfg.latent_channels, 7, 7)

    @classmethod
    def from_run(cls, run: Path, device) -> "Generator":
        from connlab.checkpoint import load_weights, model_signature
        from connlab.errors import UserError
        from connlab.models.diffusion_unet import DiffusionUNet
        from connlab.models.latent_ae import LatentAEConfig, LatentAutoencoder
        from connlab.runs import read_config

        saved = read_config(run)
        if saved.get("experiment") != "diffusion":
            raise UserError(f"{run}: a {saved.get('experiment')!r} run, not a diffusion run")
        names = DiffusionExperiment.__dataclass_fields__
        cfg = DiffusionExperiment(**{k: tuple(v) if isinstance(v, list) else v
                                     for k, v in saved["config"].items() if k in names})
        weights = Path(run) / "ema.safetensors"
        if not weights.is_file():
            raise UserError(f"{run}: no ema.safetensors — training did not finish (continue with --resume)")
        unet_cfg = cfg.unet_config()
        model = DiffusionUNet(unet_cfg)
        load_weights(model, weights, model_signature(model, _plain(unet_cfg)))
        decoder = None
        if cfg.space == "latent":
            ae_cfg = LatentAEConfig(latent_channels=cfg.latent_channels)
            decoder = LatentAutoencoder(ae_cfg)
            load_weights(decoder, Path(run) / "autoencoder" / "autoencoder.safetensors",
                         model_signature(decoder, asdict(ae_cfg)))
            decoder = decoder.to(device).eval()
        return cls(cfg, model.to(device).eval(), decoder, device)

    def check(self, sampler: str, steps: int | None, guidance: float | None) -> int:
        """The number of steps to run, or a UserError for settings this run cannot sample."""
        from connlab.errors import UserError

        T = self.cfg.timesteps
        if steps is not None and not 1 <= steps <= T:
            raise UserError(f"--steps must be in [1, {T}] (the run's T), got {steps}")
        if sampler == "ddpm":
            if steps is not None and steps != T:
                raise UserError(f"DDPM runs all T = {T} steps; use --sampler ddim for --steps {steps}")
            steps = T
        if guidance is not None and not self.cfg.class_cond:
            raise UserError("--guidance needs a class-conditional run (train with --class-cond)")
        return min(50, T) if steps is None else steps

    def model_fn(self, n: int, guidance: float | None):
        import torch

        from connlab.diffusion import guided

        if not self.cfg.class_cond:
            return lambda x, t: self.model(x, t)
        y = torch.arange(n, device=self.device) % 10  # a balanced set of labels
        return guided(self.model, y, guidance or 0.0)

    def to_images(self, x):
        """Sampler states (B, *shape) → images in [0, 1], (B, 1, 28, 28)."""
        import torch

        from connlab.data import signed_to_unit

        if self.decoder is None:
            return signed_to_unit(x.float())
        return torch.cat([self.decoder.decode(part) for part in x.split(1000)])

    def sample(self, sampler: str, steps: int | None, num: int, eta: float = 0.0, guidance: float | None = None,
               seed: int = 0, trajectory: bool = False, x_T=None, chunk: int = 500):
        """``num`` digits in [0, 1] (num, 1, 28, 28); with ``trajectory`` the states
        (steps + 1, num, 1, 28, 28) from x_T to x_0 (decoded in latent space)."""
        import torch

        from connlab.diffusion import sample_ddim, sample_ddpm

        steps = self.check(sampler, steps, guidance)
        g = torch.Generator(device=self.device).manual_seed(seed)
        clip = self.cfg.space == "pixel"  # x̂_0 ∈ [−1, 1] holds for pixels, not for standardised latents
        parts = []
        for start in range(0, num, chunk):
            n = min(chunk, num - start)
            fn = self.model_fn(n, guidance)
            shape = (n, *self.shape)
            xT = None if x_T is None else x_T[start:start + n]
            if sampler == "ddpm":
                x = sample_ddpm(fn, self.schedule, shape, g, self.cfg.prediction, clip, self.device,
                                return_trajectory=trajectory, x_T=xT)
            else:
                x = sample_ddim(fn, self.schedule, shape, steps, eta, g, self.cfg.prediction, clip, self.device,
                                return_trajectory=trajectory, x_T=xT)
            parts.append(x)
        x = torch.cat(parts, dim=1 if trajectory else 0)
        with torch.no_grad():
            if trajectory:
                return torch.stack([self.to_images(state) for state in x])
            return self.to_images(x)

    def figures(self, out: Path, images, sampler: str = "ddim", steps: int | None = None, seed: int = 0) -> None:
        """samples.png (a grid of ``images``) and trajectory.png (x_T → x_0 for a few samples)."""
        from connlab import plots

        steps = self.check(sampler, steps, None)
        per_row = 10
        rows = [("", images[i:i + per_row]) for i in range(0, min(len(images), 60), per_row)]
        plots.image_rows(rows, out / "samples.png", f"{self.cfg.space} DDPM, {sampler.upper()}-{steps} (EMA weights)")
        traj = self.sample(sampler, steps, TRAJECTORY_SAMPLES, seed=seed, trajectory=True)  # (S+1, n, 1, 28, 28)
        picks = sorted({round(i * (len(traj) - 1) / (TRAJECTORY_COLUMNS - 1)) for i in range(TRAJECTORY_COLUMNS)})
        names = [f"{len(traj) - 1 - p}" for p in picks]
        rows = [(f"sample {k}", traj[picks, k]) for k in range(TRAJECTORY_SAMPLES)]
        plots.image_rows(rows, out / "trajectory.png",
                         f"x_T → x_0, {sampler.upper()}-{steps}; columns = steps left: {', '.join(names)}"
                         " — structure first, detail later")


def run_sample(args: argparse.Namespace) -> int:
    import numpy as np

    from connlab.data import to_uint8
    from connlab.train import pick_device

    device = pick_device(args.device)
    gen = Generator.from_run(args.run_dir, device)
    _set_threads(gen.cfg.threads, device)
    steps = gen.check(args.sampler, args.steps, args.guidance)
    if args.save_npz is not None and not Path(args.save_npz).parent.exists():
        from connlab.errors import UserError

        raise UserError(f"--save-npz {args.save_npz}: folder {Path(args.save_npz).parent} does not exist")
    t0 = time.perf_counter()
    images = gen.sample(args.sampler, steps, args.num, args.eta, args.guidance, seed=args.seed)
    seconds = time.perf_counter() - t0
    if args.save_npz is not None:
        np.savez_compressed(args.save_npz, images=to_uint8(images[:, 0]).cpu().numpy())  # (N, 28, 28) uint8
    tag = f"{args.sampler}{steps}" + (f"-eta{args.eta:g}" if args.eta else "") + \
          (f"-w{args.guidance:g}" if args.guidance is not None else "")
    from connlab import plots

    rows = [("", images[i:i + 10]) for i in range(0, min(len(images), 60), 10)]
    plots.image_rows(rows, Path(args.run_dir) / f"samples-{tag}.png", f"{args.sampler.upper()}-{steps}")
    print(f"{args.num} samples, {args.sampler.upper()}-{steps}, {seconds:.1f} s "
          f"({args.num / seconds:.1f} images/s); grid: {Path(args.run_dir) / f'samples-{tag}.png'}"
          + (f"; npz: {args.save_npz}" if args.save_npz else ""))
    return 0


# --- eval -------------------------------------------------------------------------------------

def run_eval(args: argparse.Namespace) -> int:
    from connlab.checkpoint import atomic_write_json, atomic_write_text
    from connlab.data import load_dataset
    from connlab.train import pick_device

    device = pick_device(args.device)
    gen = Generator.from_run(args.run_dir, device)
    _set_threads(gen.cfg.threads, device)
    cfg = gen.cfg
    data = load_dataset(cfg.dataset, cfg.data_dir, cfg.limit).to(device)
    classifier, info = _classifier(str(args.classifier) if args.classifier else cfg.classifier, args.run_dir, data, device)
    T = cfg.timesteps
    settings = [(s, k) for s, k in EVAL_GRID[0] if k <= T] + [("ddpm", T)]
    rows = []
    for sampler, steps in settings:
        t0 = time.perf_counter()
        images = gen.sample(sampler, steps, args.num, seed=args.seed)
        seconds = time.perf_counter() - t0
        rows.append(_score(images, data, classifier, sampler=sampler, steps=steps, seconds=seconds))
        print(f"{sampler.upper()}-{steps}: distance {rows[-1]['frechet_distance']:.2f} in {seconds:.1f} s",
              file=sys.stderr)
    result = {"run": str(args.run_dir), "space": cfg.space, "num": args.num, "classifier": info,
              "frechet_floor": _floor(data, classifier, args.num), "rows": rows}
    table = format_eval(result)
    atomic_write_json(Path(args.run_dir) / "eval.json", result)
    atomic_write_text(Path(args.run_dir) / "eval.md", table + "\n")
    print(table)
    return 0


def format_eval(result: dict) -> str:
    lines = [f"{result['space']} DDPM, {result['num']} samples per row; classifier "
             f"{result['classifier']['source']} (test accuracy {result['classifier']['test_accuracy']:.2%})", "",
             "| sampler | steps | Fréchet distance | confidence | confident (>0.9) | classes | seconds | images/s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['sampler'].upper()} | {r['steps']} | {r['frechet_distance']:.2f} | "
                     f"{r['mean_confidence']:.3f} | {r['confident_fraction']:.1%} | {r['classes_covered']}/10 | "
                     f"{r['seconds']:.1f} | {r['images_per_second']:.1f} |")
    lines.append(f"| real train vs test (floor) | | {result['frechet_floor']:.2f} | | | | | |")
    return "\n".join(lines)


# --- helpers ----------------------------------------------------------------------------------

def _plain(config) -> dict:
    """A config dataclass as JSON would give it back (tuples → lists), for weight signatures."""
    import json

    return json.loads(json.dumps(asdict(config)))


def _classifier(path: str | None, out: Path, data, device):
    from connlab.quality import find_classifier

    return find_classifier(Path(path) if path else None, Path(out), data, device)


def _score(images, data, classifier, *, sampler: str, steps: int, seconds: float) -> dict:
    from connlab.data import to_unit
    from connlab.quality import sample_quality

    q = sample_quality(images, to_unit(data.test_images), classifier)
    return {"sampler": sampler, "steps": steps, **q, "seconds": round(seconds, 3),
            "images_per_second": round(len(images) / max(seconds, 1e-9), 2)}


def _floor(data, classifier, n: int) -> float:
    from connlab.data import to_unit
    from connlab.quality import frechet_floor

    return frechet_floor(to_unit(data.train_images), to_unit(data.test_images), classifier,
                         min(n, len(data.train_images)))

