"""Speed benchmarks, side by side in one run: connlab's default path vs what users would run instead.

    python benchmarks/run.py [--quick] [--device cpu|cuda] [--data-dir DIR] [--repeat K] [--json PATH]

Rows (each measured in its own subprocess, so peak memory is per row):
  ae-<skip>-plain    the lecture's autoencoder, a plain eager PyTorch loop (data in memory,
                     noise per batch, Adam, BCE-with-logits) — what a user would write
  ae-<skip>-connlab  the same network and batch through connlab's trainer with its defaults
  ae-<skip>-keras    the lecture's TF-Keras code, when TensorFlow is installed
  ddpm-connlab / ddpm-diffusers   DDPM training steps: connlab's U-Net vs diffusers'
                     UNet2DModel of about the same parameter count (-b512: batch 512; -4m: issue 9's
                     4.0M-parameter reference UNet2DModel and the connlab U-Net closest to it)
  ddim50             DDIM-50 sampling with connlab's U-Net
Images/s are measured on the second of two passes over the same images (the first one
warms up allocators and compilers). ``--quick`` uses 2,560 images per pass; without it the
autoencoder rows train the full 20 epochs on 60,000 images when the full MNIST is found.
Ratios are connlab / reference from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FULL = 60_000  # MNIST's training set: with --quick, the 20-epoch time is projected from images/s
sys.path.insert(0, str(ROOT / "src"))


def peak_memory(device) -> dict:
    import torch

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    return {"peak_rss_mb": round(rss_mb, 1), "peak_gpu_mb": round(gpu, 1) if gpu is not None else None}


def images(args, device):
    from connlab.data import load_dataset

    data = load_dataset("mnist", args.data_dir, None if not args.quick else args.n)
    return data.to(device)


def sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def row_ae_plain(args, device, skip):
    """A plain eager loop, as in a tutorial: fp32, default memory format, noise per batch."""
    import torch
    import torch.nn.functional as F

    from connlab.models.autoencoder import AutoencoderConfig, DenoisingAutoencoder

    data = images(args, device)
    x_all = data.train_images.float() / 255
    torch.manual_seed(0)
    model = DenoisingAutoencoder(AutoencoderConfig(skip)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n, bs = len(x_all), 128
    rates = []
    for epoch in range(args.epochs):
        perm = torch.randperm(n, device=device)
        sync(device)
        t0 = time.perf_counter()
        for i in range(0, n, bs):
            clean = x_all[perm[i:i + bs]]
            noisy = (clean + 0.5 * torch.randn_like(clean)).clamp(0, 1)
            loss = F.binary_cross_entropy_with_logits(model(noisy), clean)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sync(device)
        rates.append(n / (time.perf_counter() - t0))
    return {"images_per_second": rates[-1], "train_seconds_20_epochs": 20 * FULL / rates[-1] if args.quick
            else sum(n / r for r in rates), "test_bce": test_bce(model, data, device)}


def row_ae_connlab(args, device, skip):
    """connlab's trainer with its defaults for this device (on CUDA: bf16, channels-last, compile, CUDA graph)."""
    import tempfile

    import torch
    import torch.nn.functional as F

    from connlab.data import corrupt, to_unit
    from connlab.models.autoencoder import AutoencoderConfig, DenoisingAutoencoder
    from connlab.train import TrainConfig, fit

    data = images(args, device)
    torch.manual_seed(0)
    model = DenoisingAutoencoder(AutoencoderConfig(skip)).to(device)

    def loss_fn(m, batch, generator):
        clean = to_unit(batch[0])
        return F.binary_cross_entropy_with_logits(m(corrupt(clean, 0.5, "norm", generator)).float(), clean)

    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch, device=str(device), checkpoint_every=10**9,
                          cuda_graph=args.cuda_graph, compile=args.compile)
        result = fit(model, loss_fn, (data.train_images,), cfg, Path(tmp))
    n = len(data.train_images)
    rate = result.history[-1]["images_per_second"]
    first = result.history[0]["seconds"]
    return {"images_per_second": rate, "train_seconds_20_epochs": 20 * FULL / rate if args.quick
            else result.train_seconds, "first_epoch_seconds": first, "test_bce": test_bce(model, data, device)}


def test_bce(model, data, device) -> float:
    import torch
    import torch.nn.functional as F

    from connlab.data import corrupt, to_unit

    clean = to_unit(data.test_images[:2000])
    noisy = corrupt(clean, 0.5, "norm", torch.Generator(device=device).manual_seed(1234))
    model.eval()
    with torch.no_grad():
        out = torch.cat([torch.sigmoid(model(c).float()) for c in noisy.split(500)])
    return F.binary_cross_entropy(out, clean).item()


def row_ae_keras(args, device, skip):
    """The lecture's TF-Keras autoencoder (only when TensorFlow is installed)."""
    import numpy as np
    import tensorflow as tf  # noqa: F401 - absent on most machines; the row is then skipped
    from tensorflow import keras
    from tensorflow.keras import layers

    data = images(args, device)
    x = data.train_images.cpu().numpy().astype("float32").transpose(0, 2, 3, 1) / 255
    noisy = np.clip(x + 0.5 * np.random.default_rng(0).normal(size=x.shape), 0, 1).astype("float32")
    inp = keras.Input((28, 28, 1))
    c1 = layers.Conv2D(64, 3, activation="relu", padding="same")(inp)
    c2 = layers.Conv2D(128, 3, activation="relu", padding="same")(layers.MaxPooling2D()(c1))
    h = layers.UpSampling2D()(layers.Conv2D(128, 3, activation="relu", padding="same")(layers.MaxPooling2D()(c2)))
    if skip == "concat":
        h = layers.concatenate([h, c2])
    h = layers.UpSampling2D()(layers.Conv2D(64, 3, activation="relu", padding="same")(h))
    if skip == "concat":
        h = layers.concatenate([h, c1])
    model = keras.Model(inp, layers.Conv2D(1, 3, activation="sigmoid", padding="same")(h))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    rates = []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        model.fit(noisy, x, batch_size=128, epochs=1, verbose=0)
        rates.append(len(x) / (time.perf_counter() - t0))
    return {"images_per_second": rates[-1], "train_seconds_20_epochs": 20 * FULL / rates[-1] if args.quick
            else sum(len(x) / r for r in rates)}


def bench_unet_config():
    """connlab's default pixel U-Net, without dropout: like diffusers' UNet2DModel (dropout 0 by
    default) and like every preset of ``connlab diffusion train``."""
    from connlab.models.diffusion_unet import DiffusionUNetConfig

    return DiffusionUNetConfig(dropout=0.0)


def unet_pair(device, size: str = "small"):
    """connlab's U-Net and a diffusers UNet2DModel of about the same parameter count.

    ``small``: connlab's default pixel U-Net (827k) against a UNet2DModel of its 3-level layout,
    the width chosen to match. ``4m``: issue 9's reference UNet2DModel (widths 32/64/128, two
    ResNet blocks per level, attention at the two lower levels: 4.02M parameters) against the
    connlab U-Net closest to it in a small search of widths, depths and blocks per level.
    """
    from diffusers import UNet2DModel

    from connlab.models.diffusion_unet import DiffusionUNet

    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    if size == "4m":
        ref = UNet2DModel(sample_size=28, in_channels=1, out_channels=1, block_out_channels=(32, 64, 128),
                          down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
                          up_block_types=("AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"))
        ours = connlab_unet(count(ref))
        return ours.to(device), ref.to(device), count(ours), count(ref)
    ours = DiffusionUNet(bench_unet_config()).to(device)
    n_ours = count(ours)
    best = None
    for width in range(8, 129, 8):  # same 3-level layout as ours, width chosen to match the count
        ref = UNet2DModel(sample_size=28, in_channels=1, out_channels=1, layers_per_block=1,
                          block_out_channels=(width, 2 * width, 2 * width), norm_num_groups=8,
                          down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                          up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"))
        n_ref = count(ref)
        if best is None or abs(n_ref - n_ours) < abs(best[1] - n_ours):
            best = (ref, n_ref)
    return ours, best[0].to(device), n_ours, best[1]


def connlab_unet(target: int):
    """The connlab pixel U-Net (dropout 0) whose parameter count is closest to ``target``."""
    from dataclasses import replace

    from connlab.models.diffusion_unet import DiffusionUNet

    best = None
    for base in (32, 40, 48, 64):
        for mults in ((1, 2, 2), (1, 2, 4)):
            for blocks in (1, 2, 3):
                cfg = replace(bench_unet_config(), base_channels=base, channel_mults=mults, num_res_blocks=blocks)
                n = sum(p.numel() for p in DiffusionUNet(cfg).parameters())
                if best is None or abs(n - target) < abs(best[1] - target):
                    best = (cfg, n)
    return DiffusionUNet(best[0])


def row_ddpm(args, device, which, batch=128, size="small"):
    """DDPM training images/s (ε-prediction, linear schedule, random x_0 in [-1, 1]).

    diffusers: a plain loop with bf16 autocast on CUDA (the issue's reference setting).
    connlab: its U-Net through connlab's trainer with the device's defaults.
    """
    import tempfile

    import torch
    import torch.nn.functional as F

    from connlab.diffusion import NoiseSchedule
    from connlab.models.diffusion_unet import DiffusionUNet
    from connlab.train import TrainConfig, fit

    if which == "connlab" and size == "small":  # diffusers is needed only for its own row
        ours = DiffusionUNet(bench_unet_config()).to(device)
        n_ours = sum(p.numel() for p in ours.parameters())
    else:
        ours, ref, n_ours, n_ref = unet_pair(device, size)
        if which == "connlab":  # keep only the row's own network (peak memory is per row)
            del ref
        else:
            del ours
    schedule = NoiseSchedule.linear(1000).to(device)
    cuda = device.type == "cuda"
    steps = (60 if cuda else 5) if args.quick else (120 if cuda else 50)
    torch.manual_seed(0)
    x0_all = torch.rand(steps * batch, 1, 28, 28, device=device) * 2 - 1
    if which == "connlab":

        def loss_fn(m, b, g):
            x0 = b[0]
            t = torch.randint(0, schedule.T, (x0.shape[0],), generator=g, device=x0.device)
            eps = torch.randn(x0.shape, generator=g, device=x0.device)
            return F.mse_loss(m(schedule.q_sample(x0, t, eps), t).float(), eps)

        with tempfile.TemporaryDirectory() as tmp:
            cfg = TrainConfig(epochs=2, batch_size=batch, lr=2e-4, device=str(device), checkpoint_every=10**9,
                              cuda_graph=args.cuda_graph, compile=args.compile)
            result = fit(ours, loss_fn, (x0_all,), cfg, Path(tmp))
        return {"images_per_second": result.history[-1]["images_per_second"], "params": n_ours, "batch": batch,
                "first_epoch_seconds": result.history[0]["seconds"]}
    model = ref
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    rates = []
    for rep in range(2):
        sync(device)
        t0 = time.perf_counter()
        for x0 in x0_all.split(batch):
            t = torch.randint(0, 1000, (batch,), device=device)
            eps = torch.randn_like(x0)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                loss = F.mse_loss(model(schedule.q_sample(x0, t, eps), t).sample.float(), eps)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sync(device)
        rates.append(steps * batch / (time.perf_counter() - t0))
    return {"images_per_second": rates[-1], "params": n_ref, "batch": batch}


def row_ddim50(args, device):
    """DDIM-50 sampling of 10,000 digits, as ``connlab diffusion sample`` runs it: the product's
    ``Generator`` with connlab's U-Net (827,233 params, untrained weights: speed only) and its default
    ``Speed`` (channels-last; on CUDA also bf16 and the 50-step loop replayed as one CUDA graph
    per chunk; ``--compile on`` compiles the U-Net). On CUDA the first two chunks (eager warm-up,
    compile, capture) are timed apart as setup.
    """
    import torch

    from connlab.runtime.speed import Speed
    from connlab.sampling.generate import Generator
    from connlab.experiments.diffusion import DiffusionExperiment
    from connlab.models.diffusion_unet import DiffusionUNet, DiffusionUNetConfig

    cuda = device.type == "cuda"
    # the process (space, schedule, prediction) comes from cfg; the network is the other rows' default U-Net
    cfg = DiffusionExperiment(space="pixel", schedule="linear", prediction="eps", timesteps=1000, class_cond=False)
    model = DiffusionUNet(DiffusionUNetConfig()).to(device).eval()
    gen = Generator(cfg, model, None, device, Speed(compile=args.compile, cuda_graph=args.cuda_graph))
    n = (2000 if cuda else 200) if args.quick else 10_000
    chunk = min(n, args.ddim_chunk if cuda else 200)
    t0 = time.perf_counter()
    if cuda:
        gen.sample("ddim", 50, 2 * chunk, seed=1, chunk=chunk)  # warm-up (and compile), then capture
    sync(device)
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    images = gen.sample("ddim", 50, n, seed=2, chunk=chunk)
    sync(device)
    seconds = time.perf_counter() - t0
    assert torch.isfinite(images).all()
    return {"images": n, "seconds": seconds, "seconds_per_10000": seconds * 10_000 / n, "chunk": chunk,
            "setup_seconds": setup}


ROWS = {
    "ae-none-plain": lambda a, d: row_ae_plain(a, d, "none"),
    "ae-none-connlab": lambda a, d: row_ae_connlab(a, d, "none"),
    "ae-none-keras": lambda a, d: row_ae_keras(a, d, "none"),
    "ae-concat-plain": lambda a, d: row_ae_plain(a, d, "concat"),
    "ae-concat-connlab": lambda a, d: row_ae_connlab(a, d, "concat"),
    "ae-concat-keras": lambda a, d: row_ae_keras(a, d, "concat"),
    "ddpm-diffusers": lambda a, d: row_ddpm(a, d, "diffusers"),
    "ddpm-connlab": lambda a, d: row_ddpm(a, d, "connlab"),
    "ddpm-diffusers-b512": lambda a, d: row_ddpm(a, d, "diffusers", 512),
    "ddpm-connlab-b512": lambda a, d: row_ddpm(a, d, "connlab", 512),
    "ddpm-diffusers-4m": lambda a, d: row_ddpm(a, d, "diffusers", size="4m"),
    "ddpm-connlab-4m": lambda a, d: row_ddpm(a, d, "connlab", size="4m"),
    "ddim50": row_ddim50,
}
RATIOS = [("ae-none-connlab", "ae-none-plain"), ("ae-none-connlab", "ae-none-keras"),
          ("ae-concat-connlab", "ae-concat-plain"), ("ae-concat-connlab", "ae-concat-keras"),
          ("ddpm-connlab", "ddpm-diffusers"), ("ddpm-connlab-b512", "ddpm-diffusers-b512"),
          ("ddpm-connlab-4m", "ddpm-diffusers-4m")]
CPU_DEFAULT_ROWS = [r for r in ROWS if not r.endswith(("-b512", "-4m"))]


def run_row(name: str, args) -> dict:
    python = args.keras_python if name.endswith("-keras") and args.keras_python else sys.executable
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    cmd = [python, __file__, "--row", name, "--device", args.device, "--n", str(args.n),
           "--epochs", str(args.epochs), "--batch", str(args.batch), "--cuda-graph", args.cuda_graph,
           "--compile", args.compile, "--ddim-chunk", str(args.ddim_chunk)] + (["--quick"] if args.quick else []) + \
          (["--data-dir", str(args.data_dir)] if args.data_dir else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        if args.verbose:
            print(proc.stderr[-4000:], file=sys.stderr)
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"skipped": last[:160]}
    return json.loads(lines[-1])


def median_round(runs: list[dict]) -> dict:
    """The run with the median images/s (its own memory and BCE), with every round's images/s beside it."""
    done = [r for r in runs if "images_per_second" in r]
    if not done:
        return runs[0]
    mid = sorted(done, key=lambda r: r["images_per_second"])[(len(done) - 1) // 2]
    return {**mid, "rounds_images_per_second": [round(r["images_per_second"], 1) for r in done]}


def main() -> None:
    p = argparse.ArgumentParser(description="connlab speed benchmarks (side by side, one run)")
    p.add_argument("--quick", action="store_true", help="2,560 images per pass, few steps")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--data-dir", type=Path, default=None, help="full MNIST IDX files (default: connlab's lookup)")
    p.add_argument("--rows", default=None, help="comma-separated subset of rows (default: all; on CPU without -b512)")
    p.add_argument("--batch", type=int, default=128, help="autoencoder batch size (default 128, the lecture's)")
    p.add_argument("--cuda-graph", default="auto", choices=("auto", "on", "off"), help="connlab rows: CUDA graphs")
    p.add_argument("--compile", default="auto", choices=("auto", "on", "off"), help="connlab rows: torch.compile")
    p.add_argument("--ddim-chunk", type=int, default=10_000, help="DDIM images per graph replay on CUDA")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--keras-python", default=None,
                   help="a Python with TensorFlow (and torch) for the Keras rows, e.g. a separate venv")
    p.add_argument("--repeat", type=int, default=1,
                   help="rounds: run every row once per round, rounds one after another; each row reports its "
                        "median round and each ratio the median of its per-round ratios (shared machines drift)")
    p.add_argument("--verbose", action="store_true", help="print a failed row's stderr")
    p.add_argument("--row", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=2560, help=argparse.SUPPRESS)
    p.add_argument("--epochs", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.epochs is None:
        args.epochs = 2 if args.quick else 20
    if args.rows is None:
        args.rows = ",".join(ROWS if args.device == "cuda" else CPU_DEFAULT_ROWS)

    if args.row:
        import torch

        device = torch.device(args.device)
        result = ROWS[args.row](args, device)
        result.update(peak_memory(device))
        print(json.dumps(result))
        return

    import torch

    device_name = torch.cuda.get_device_name(0) if args.device == "cuda" else \
        f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"
    names = args.rows.split(",")
    rounds = []
    for k in range(max(1, args.repeat)):
        rounds.append({})
        for name in names:
            rounds[-1][name] = run_row(name, args)
            print(f"{name:20s} {json.dumps(rounds[-1][name])}", file=sys.stderr)
    results = {name: median_round([r[name] for r in rounds]) for name in names}
    ratios = {}
    for a, b in RATIOS:
        per_round = [r[a]["images_per_second"] / r[b]["images_per_second"] for r in rounds
                     if "images_per_second" in r.get(a, {}) and "images_per_second" in r.get(b, {})]
        if per_round:
            ratios[f"{a} / {b}"] = round(statistics.median(per_round), 2)
    print(f"\ndevice: {device_name}; torch {torch.__version__}; quick={args.quick}; rounds={len(rounds)}\n")
    print(f"| row | images/s | 20-epoch s{' (projected)' if args.quick else ''} | test BCE | peak RSS MB | peak GPU MB | note |\n|---|---:|---:|---:|---:|---:|---|")
    for name, r in results.items():
        if "skipped" in r:
            print(f"| {name} | | | | | | skipped: {r['skipped']} |")
            continue
        ips = r.get("images_per_second") or r.get("images", 0) / r.get("seconds", 1)
        notes = []
        if "seconds_per_10000" in r:
            notes.append(f"{r['seconds_per_10000']:.2f} s per 10,000 digits (chunks of {r['chunk']}; "
                         f"compile + capture {r['setup_seconds']:.1f} s apart)")
        if "params" in r:
            notes.append(f"{r['params']:,} params, batch {r['batch']}")
        if len(r.get("rounds_images_per_second", [])) > 1:
            notes.append("rounds: " + ", ".join(f"{v:,.0f}" for v in r["rounds_images_per_second"]))
        if "first_epoch_seconds" in r:
            notes.append(f"first epoch {r['first_epoch_seconds']:.1f} s"
                         + (" (incl. compile/capture)" if args.device == "cuda" else ""))
        note = "; ".join(notes)
        tb = f"{r['test_bce']:.4f}" if "test_bce" in r else ""
        tsec = f"{r['train_seconds_20_epochs']:.0f}" if "train_seconds_20_epochs" in r else ""
        print(f"| {name} | {ips:,.0f} | {tsec} | {tb} | {r['peak_rss_mb']:.0f} | {r['peak_gpu_mb'] or ''} | {note} |")
    print()
    for k, v in ratios.items():
        print(f"ratio {k}: {v}x")
    if args.json:
        args.json.write_text(json.dumps({"device": device_name, "torch": torch.__version__, "quick": args.quick,
                                         "results": results, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
