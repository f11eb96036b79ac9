"""K seeds of a small network: trained one by one vs together as one vmapped ``SeedGroup``.

    python benchmarks/seeds.py [--seeds 5] [--steps 20] [--threads 1] [--json PATH]

For each network of the demo's seed-heavy parts (skipmlp's MLPs, rnn's plain RNN and GRU at
L = 50, the lecture's autoencoder) it times ``--steps`` Adam steps of ``--seeds`` copies:
one copy after the other (the ordinary loop) vs all copies in one vmapped step. It prints CPU
seconds per step (process time: fair on a machine shared with other jobs) and the ratio
alone / together (> 1: training together pays). Step-time only: data, evaluation and start-up
are the same either way.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def networks():
    import torch.nn.functional as F

    from connlab.experiments.rnn import make_regressor
    from connlab.experiments.skipmlp import make_mlp
    from connlab.models.autoencoder import AutoencoderConfig, DenoisingAutoencoder

    ce = lambda out, y: F.cross_entropy(out, y, reduction="none")            # noqa: E731
    mse = lambda out, y: (out - y) ** 2                                        # noqa: E731
    bce = lambda out, y: F.binary_cross_entropy_with_logits(out, y, reduction="none")  # noqa: E731
    digits = (128, 1, 28, 28)
    return {
        "skipmlp-plain (hidden 32, batch 128)": (lambda: make_mlp("plain", 32, 2), digits, "class", ce),
        "skipmlp-skip (hidden 32, batch 128)": (lambda: make_mlp("skip", 32, 2), digits, "class", ce),
        "rnn (hidden 32, L 50, batch 64)": (lambda: make_regressor("rnn", 32), (64, 50, 2), "value", mse),
        "gru (hidden 32, L 50, batch 64)": (lambda: make_regressor("gru", 32), (64, 50, 2), "value", mse),
        "autoencoder-concat (batch 32)": (lambda: DenoisingAutoencoder(AutoencoderConfig("concat")),
                                          (32, 1, 28, 28), "image", bce),
    }


def data(shape, target, k, g):
    import torch

    x = torch.rand((k, *shape), generator=g)
    if target == "class":
        return x, torch.randint(0, 10, (k, shape[0]), generator=g)
    if target == "value":
        return x, torch.randn((k, shape[0]), generator=g)
    return x, x.clone()


def alone(make, shape, target, loss, k, steps) -> float:
    import torch

    models = [make() for _ in range(k)]
    opts = [torch.optim.Adam(m.parameters(), 1e-3) for m in models]
    g = torch.Generator().manual_seed(0)
    batches = [data(shape, target, k, g) for _ in range(steps + 1)]
    start = None
    for i, (x, y) in enumerate(batches):
        if i == 1:
            start = time.process_time()  # the first step warms up allocators
        for j, (m, o) in enumerate(zip(models, opts)):
            o.zero_grad()
            loss(m(x[j]), y[j]).mean().backward()
            o.step()
    return (time.process_time() - start) / steps


def together(make, shape, target, loss, k, steps) -> float:
    import torch

    from connlab.seeds import SeedGroup, per_copy_mean

    group = SeedGroup(make, list(range(k)))
    opt = torch.optim.Adam(group.parameters(), 1e-3)
    g = torch.Generator().manual_seed(0)
    batches = [data(shape, target, k, g) for _ in range(steps + 1)]
    start = None
    for i, (x, y) in enumerate(batches):
        if i == 1:
            start = time.process_time()
        opt.zero_grad()
        out = group(x)
        per_copy_mean(loss(out.flatten(0, 1), y.flatten(0, 1)).view(k, -1)).sum().backward()
        opt.step()
    return (time.process_time() - start) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", default="", help="run the rows whose name contains this")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rows = []
    print(f"{args.seeds} seeds, {args.steps} steps, {args.threads} thread(s); CPU seconds per step of all seeds")
    print("| network | one by one (s) | together (s) | ratio |")
    print("|---|---:|---:|---:|")
    for name, (make, shape, target, loss) in networks().items():
        if args.only not in name:
            continue
        a = alone(make, shape, target, loss, args.seeds, args.steps)
        t = together(make, shape, target, loss, args.seeds, args.steps)
        rows.append({"network": name, "alone_s": a, "together_s": t, "ratio": a / t})
        print(f"| {name} | {a:.4f} | {t:.4f} | {a / t:.2f} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"seeds": args.seeds, "steps": args.steps, "threads": args.threads,
                                         "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
