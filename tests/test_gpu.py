"""The GPU path: CUDA-graph training steps and the graphed DDIM loop against the eager code.

Skipped without CUDA (CI has none); run on a GPU machine with ``pytest -q tests/test_gpu.py``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from connlab.data import corrupt, to_unit
from connlab.diffusion import NoiseSchedule, sample_ddim
from connlab.runtime.fastpath import GraphedCall
from connlab.models.autoencoder import AutoencoderConfig, DenoisingAutoencoder
from connlab.models.diffusion_unet import DiffusionUNet, DiffusionUNetConfig
from connlab.train import TrainConfig, fit

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _loss(m, batch, generator):
    clean = to_unit(batch[0])
    return F.binary_cross_entropy_with_logits(m(corrupt(clean, 0.5, "norm", generator)).float(), clean)


def _data(n=1000):
    g = torch.Generator().manual_seed(0)
    return (torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8).cuda(),)


def _train(tmp_path, name, epochs, resume=False, **kw):
    torch.manual_seed(0)
    model = DenoisingAutoencoder(AutoencoderConfig("concat")).cuda()
    # 1000 rows, batch 96: 10 full batches and a last one of 40 rows per epoch
    cfg = TrainConfig(epochs=epochs, batch_size=96, device="cuda", precision="fp32", compile="off",
                      checkpoint_every=10**9, **kw)
    result = fit(model, _loss, _data(), cfg, tmp_path / name, resume=resume)
    return model, result


def _max_diff(a, b):
    return max((p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters()))


def test_graphed_steps_match_the_eager_steps(tmp_path):
    torch.backends.cudnn.deterministic = True
    eager, r_eager = _train(tmp_path, "eager", 2, cuda_graph="off")
    graphed, r_graph = _train(tmp_path, "graph", 2, cuda_graph="on")
    assert r_graph.steps == r_eager.steps == 22
    # the same batches, the same noise draws, the same Adam: only float reordering differs
    assert _max_diff(eager, graphed) < 1e-4
    assert abs(r_graph.final_train_loss - r_eager.final_train_loss) < 1e-4


def test_graphed_training_resumes(tmp_path):
    torch.backends.cudnn.deterministic = True
    whole, _ = _train(tmp_path, "whole", 3, cuda_graph="on")
    _train(tmp_path, "parts", 1, cuda_graph="on")
    (tmp_path / "parts" / "model.safetensors").unlink()
    import json

    # continue the same run for two more epochs: rewrite nothing, only raise the epoch budget
    resumed, result = _train(tmp_path, "parts", 3, resume=True, cuda_graph="on")
    assert result.resumed_from is not None and result.steps == 33
    assert _max_diff(whole, resumed) < 1e-4
    assert json.loads((tmp_path / "parts" / "metrics.jsonl").read_text().splitlines()[-1])["epoch"] == 3


def test_default_cuda_path_learns(tmp_path):
    torch.manual_seed(0)
    model = DenoisingAutoencoder(AutoencoderConfig("concat")).cuda()
    cfg = TrainConfig(epochs=3, batch_size=100, device="cuda", checkpoint_every=10**9)  # the defaults: bf16, graph
    result = fit(model, _loss, _data(2000), cfg, tmp_path / "default")
    losses = [h["train_loss"] for h in result.history]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]


def test_graphed_ddim_loop_matches_eager():
    torch.manual_seed(0)
    model = DiffusionUNet(DiffusionUNetConfig(base_channels=16, channel_mults=(1, 2))).cuda().eval()
    schedule = NoiseSchedule.cosine(100).to("cuda")

    unused = torch.Generator(device="cuda")  # created outside: making a generator is not capturable

    def loop(x_T):
        with torch.no_grad():
            return sample_ddim(lambda x, t: model(x, t), schedule, tuple(x_T.shape), steps=10, eta=0.0,
                               generator=unused, x_T=x_T)

    run = GraphedCall(loop)
    g = torch.Generator(device="cuda").manual_seed(1)
    inputs = [torch.randn(64, 1, 28, 28, device="cuda", generator=g) for _ in range(3)]
    outs = [run(x) for x in inputs]  # eager warm-up, capture + replay, replay
    assert run.graph is not None
    for x, out in zip(inputs, outs):
        ref = loop(x)
        assert torch.allclose(out, ref, atol=1e-4), (out - ref).abs().max()


def test_generator_replays_the_ddim_loop_as_a_graph():
    """The product path (`connlab diffusion sample`): from the second chunk on, the guided DDIM loop is
    one CUDA graph replay, and it gives the eager loop's digits."""
    import copy

    from connlab.runtime.speed import Speed
    from connlab.sampling.generate import Generator
    from connlab.experiments.diffusion import DiffusionExperiment

    torch.manual_seed(0)
    cfg = DiffusionExperiment(space="pixel", timesteps=100, base_channels=16, channel_mults=(1, 2),
                              class_cond=True, guidance=1.0)
    model = DiffusionUNet(cfg.unet_config()).cuda().eval()
    eager = Generator(cfg, copy.deepcopy(model), None, "cuda", Speed(precision="fp32", cuda_graph="off"))
    graphed = Generator(cfg, model, None, "cuda", Speed(precision="fp32"))
    a = graphed.sample("ddim", 10, 3 * 64, seed=1, chunk=64)  # eager warm-up, capture + replay, replay
    assert graphed.graphed[(10, 64, 1.0)].graph is not None
    b = eager.sample("ddim", 10, 3 * 64, seed=1, chunk=64)
    assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()
    fast = Generator(cfg, copy.deepcopy(model), None, "cuda")  # the default: bf16 autocast too
    c = fast.sample("ddim", 10, 3 * 64, seed=1, chunk=64)
    assert torch.isfinite(c).all() and (c - b).abs().mean() < 0.05


def test_diffusion_training_graphed_matches_eager(tmp_path):
    """`connlab diffusion train` on CUDA (latent, class-conditional: label dropout, AdamW with warm-up and
    cosine decay, grad clipping, EMA) with its steps replayed as CUDA graphs ends with the eager run's
    weights; then the run samples through the graphed DDIM loop."""
    from safetensors.torch import load_file

    from connlab.cli import main

    torch.backends.cudnn.deterministic = True
    tiny = ["--dataset", "mnist-embedded", "--limit", "640", "--epochs", "2", "--batch-size", "64", "--ae-epochs", "1",
            "--base-channels", "8", "--channel-mults", "1,2", "--timesteps", "20", "--eval-num", "20",
            "--eval-steps", "5", "--precision", "fp32", "--compile", "off", "--device", "cuda"]
    for graph in ("on", "off"):
        assert main(["diffusion", "train", *tiny, "--cuda-graph", graph, "--out", str(tmp_path / graph)]) == 0
    for name in ("model.safetensors", "ema.safetensors", "autoencoder/autoencoder.safetensors"):
        a, b = load_file(tmp_path / "on" / name), load_file(tmp_path / "off" / name)
        assert a.keys() == b.keys()
        diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
        assert diff < 1e-3, (name, diff)
    assert main(["diffusion", "sample", "--run", str(tmp_path / "on"), "--num", "1500", "--steps", "5",
                 "--device", "cuda"]) == 0  # three chunks of 500: eager, capture, replay
