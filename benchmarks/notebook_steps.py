"""Seconds per training step (batch 128, Adam, fp32, CPU) of the networks the notebooks train: wall and CPU.

    PYTHONPATH=src python benchmarks/notebook_steps.py

Mean of 5 steps after one warm-up; docs/notebooks.md estimates the notebooks' `small` size from these.
"""

from __future__ import annotations

import os
import time

import torch
import torch.nn.functional as F

from connlab.models.autoencoder import AutoencoderConfig, DenoisingAutoencoder
from connlab.models.identity_cnn import IdentityCNN, IdentityCNNConfig


def main() -> None:
    torch.manual_seed(0)
    nets = {"01/02 course U-Net": (DenoisingAutoencoder(AutoencoderConfig("concat", bottleneck=16, init="keras")), "img"),
            "01 course Sequential": (DenoisingAutoencoder(AutoencoderConfig("none", bottleneck=16, init="keras")), "img"),
            "05 3 identity blocks": (IdentityCNN(IdentityCNNConfig(blocks=3, residual=True)), "cls")}
    x, y = torch.rand(128, 1, 28, 28), torch.randint(0, 10, (128,))
    for name, (net, kind) in nets.items():
        opt = torch.optim.Adam(net.parameters(), 1e-3)

        def step():
            out = net(x)
            loss = F.binary_cross_entropy_with_logits(out, x) if kind == "img" else F.cross_entropy(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        step()
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(5):
            step()
        print(f"{name}: {(time.perf_counter() - t0) / 5:.3f} s/step wall, {(time.process_time() - c0) / 5:.3f} s/step "
              f"CPU, threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
