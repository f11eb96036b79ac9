"""Experiments of part I (gates, rnn, depth, skipmlp) at tiny sizes, and the plain/residual nets."""

import json
import math

import pytest
import torch

from connlab.cli import main
from connlab.models.resnet import ResNet, ResNetConfig
from connlab.nn import ResidualBlock
from tests.learning import classifier_learned, mixture_learned, regressor_learned


def _summary(folder):
    return json.loads((folder / "summary.json").read_text())


def untrained_accuracy(model, limit: int = 100) -> float:
    """Test accuracy of a freshly initialised classifier on the embedded test digits (~ chance)."""
    from connlab.data import load_dataset, to_unit

    data = load_dataset("mnist-embedded", None, limit)
    with torch.no_grad():
        return (model.eval()(to_unit(data.test_images)).argmax(1) == data.test_labels).float().mean().item()


# ---- models/resnet.py -------------------------------------------------------------------

@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("depth", [1, 2, 3, 8])
def test_resnet_shapes(depth, residual):
    torch.manual_seed(0)
    model = ResNet(ResNetConfig(depth=depth, width=4, residual=residual))
    assert len(model.blocks) == depth == sum(model.config.stage_blocks)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_stage_split_and_layer_count():
    assert ResNetConfig(depth=8).stage_blocks == (3, 3, 2)
    assert ResNetConfig(depth=2).stage_blocks == (1, 1, 0)
    assert ResNetConfig(depth=20).weighted_layers == 42


@pytest.mark.parametrize("depth", [1, 2, 8, 20])
def test_plain_and_residual_differ_only_by_projection_shortcuts(depth):
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    plain = ResNet(ResNetConfig(depth=depth, width=4, residual=False))
    res = ResNet(ResNetConfig(depth=depth, width=4, residual=True))
    shortcuts = sum(count(b.shortcut) for b in res.blocks if isinstance(b, ResidualBlock))
    assert count(res) - count(plain) == shortcuts
    projections = sum(1 for b in res.blocks if not isinstance(b.shortcut, torch.nn.Identity))
    assert projections == sum(1 for n in res.config.stage_blocks[1:] if n > 0)


def test_resnet_rejects_impossible_sizes():
    with pytest.raises(ValueError):
        ResNetConfig(depth=0)
    with pytest.raises(ValueError):
        ResNetConfig(width=-1)


# ---- the adding problem -------------------------------------------------------------------

def test_adding_problem_targets_and_baseline():
    from connlab.experiments.rnn import adding_problem

    x, y = adding_problem(20000, 12, torch.Generator().manual_seed(0))
    assert x.shape == (20000, 12, 2) and y.shape == (20000,)
    assert torch.equal(x[..., 1].sum(dim=1), torch.full((20000,), 2.0))
    assert x[:, :6, 1].sum(dim=1).eq(1).all() and x[:, 6:, 1].sum(dim=1).eq(1).all()  # one per half
    torch.testing.assert_close(y, (x[..., 0] * x[..., 1]).sum(dim=1))
    assert abs(((y - y.mean()) ** 2).mean().item() - 1 / 6) < 0.01  # the trivial baseline ≈ 0.167


# ---- the commands, tiny -------------------------------------------------------------------

def test_gates_command(tmp_path):
    out = tmp_path / "gates"
    # 10 epochs of 1,000 points: the mixture's gate has split the plane (measured test MSE 0.177 vs 0.312)
    assert main(["gates", "--epochs", "10", "--train-points", "1000", "--device", "cpu", "--out", str(out)]) == 0
    for name in ("bump.png", "product_gate.png", "softmax_gate.png"):
        assert (out / name).stat().st_size > 5000
    s = _summary(out)
    peaks = [r["peak"] for r in s["bump"]["width_vs_weight"]]
    assert peaks == sorted(peaks) and 0 < peaks[0] < 0.5 and peaks[-1] > 0.99  # larger w, taller bump
    for r in s["bump"]["width_vs_spacing"]:  # at a steep weight the width is the spacing b - a
        assert abs(r["fwhm"] - r["spacing"]) < 0.05
    for h in ("logistic", "linear"):
        assert s["product_gate"][h]["max_abs_out_gate_closed"] < 0.01
        assert s["product_gate"][h]["max_abs_error_gate_open"] < 0.01
    assert 0 <= s["product_gate"]["logistic"]["out_min"] and s["product_gate"]["logistic"]["out_max"] <= 1
    g = s["softmax_gate"]
    assert g["weights"] == "fitted" and 0 <= g["gate_weight_min"] <= g["gate_weight_max"] <= 1
    assert g["row_sums_max_error"] < 1e-5
    assert 0 <= g["sector_agreement"] <= 1
    assert mixture_learned(g["test_mse"], g["one_expert_test_mse"]), g
    # the same check fails for untrained mixtures on the same test points
    from connlab.experiments.gates import SAMPLE_SEED, sector_problem
    from connlab.nn import MixtureOfExperts

    gen = torch.Generator().manual_seed(SAMPLE_SEED + 0)
    sector_problem(1000, 3, gen)                    # the training points come first
    x_test, _, y_test = sector_problem(2000, 3, gen)
    for seed in range(3):
        torch.manual_seed(seed)
        with torch.no_grad():
            untrained = ((MixtureOfExperts(2, 1, 3)(x_test) - y_test) ** 2).mean().item()
        assert not mixture_learned(untrained, g["one_expert_test_mse"]), (seed, untrained)
    # the page's rule: the mixture's test MSE lower than one expert's, paired over the 2,000 test points
    ev = g["mixture_vs_one_expert"]
    assert ev["n"] == 2000 and ev["verdict"] == "supported" and ev["high"] < 0, ev
    from connlab.experiments.gates import section
    from connlab.experiments.section import load_run

    sec = section(load_run(out))
    assert sec.verdict == "supported" and "n = 2000" in sec.effect and "deterministic" in sec.rule


def test_rnn_command(tmp_path):
    out = tmp_path / "rnn"
    # 94 steps of 64 sequences at lr 1e-2: every model learns the short (L = 2) problem
    assert main(["rnn", "--lengths", "2,4", "--train-size", "2000", "--test-size", "256", "--epochs", "3",
                 "--hidden", "16", "--lr", "1e-2", "--seeds", "2", "--device", "cpu", "--out", str(out)]) == 0
    for name in ("mse_vs_length.png", "curves.png"):
        assert (out / name).is_file()
    s = _summary(out)
    assert s["lengths"] == [2, 4] and set(s["test_mse"]) == {"rnn", "gru", "lstm"}
    for per in s["test_mse"].values():
        assert set(per) == {"2", "4"} and all(math.isfinite(v) and v >= 0 for v in per.values())
    assert all(0.05 < b < 0.4 for b in s["baseline_mse"].values())
    assert abs(s["baseline_mse_theory"] - 1 / 6) < 1e-9
    assert "L = 4" in s["verdict"]
    # two seeds: each model twice per length, paired comparisons at the longest length
    from connlab.evidence import Evidence

    assert [r["seed"] for r in s["results"]["gru"]["4"]["seeds"]] == [0, 1]
    assert (out / "variants" / "gru-L4-seed1" / "model.safetensors").is_file()
    assert s["evidence"]["length"] == 4
    for key in ("gru_vs_rnn", "gru_vs_baseline"):
        assert Evidence.from_dict(s["evidence"][key]).n == 2
    # learned: below half the predict-the-mean MSE at L = 2; an untrained network is not
    from connlab.experiments.rnn import TEST_SEED, adding_problem, make_regressor

    x, y = adding_problem(256, 2, torch.Generator().manual_seed(TEST_SEED + 2))
    for kind, per in s["test_mse"].items():
        assert regressor_learned(per["2"], s["baseline_mse"]["2"]), (kind, per, s["baseline_mse"])
        torch.manual_seed(0)
        with torch.no_grad():
            untrained = ((make_regressor(kind, 16)(x) - y) ** 2).mean().item()
        assert not regressor_learned(untrained, s["baseline_mse"]["2"]), (kind, untrained)


def test_depth_command(tmp_path):
    out = tmp_path / "depth"
    # 252 steps of 64 digits at lr 3e-3: small nets that learn (test error well below chance)
    assert main(["depth", "--depths", "2,3", "--width", "8", "--epochs", "4", "--limit", "4000", "--lr", "3e-3",
                 "--seeds", "2", "--device", "cpu", "--out", str(out)]) == 0
    assert (out / "depth.png").is_file() and (out / "curves.png").is_file()
    s = _summary(out)
    for kind in ("plain", "residual"):
        for d in ("2", "3"):
            r = s["results"][kind][d]
            assert classifier_learned(1 - r["test_error"], chance=0.1, margin=0.5), (kind, d, r["test_error"])
            torch.manual_seed(0)
            untrained = ResNet(ResNetConfig(int(d), 8, residual=kind == "residual"))
            assert not classifier_learned(untrained_accuracy(untrained), chance=0.1, margin=0.5)
            assert len(r["seeds"]) == 2
    assert isinstance(s["residual_beats_plain_at_deepest"], bool) and "precondition" in s["verdict"]
    from connlab.evidence import Evidence

    for key in ("degradation", "residual_gap", "residual_at_least"):   # depth 2 vs the deepest, 2 seeds
        assert Evidence.from_dict(s["evidence"][key]["2"]).n == 2


def test_skipmlp_command(tmp_path):
    out = tmp_path / "skipmlp"
    assert main(["skipmlp", "--epochs", "2", "--limit", "1000", "--lr", "3e-3", "--seeds", "2", "--hidden", "16",
                 "--device", "cpu", "--out", str(out)]) == 0
    assert (out / "curves.png").is_file()
    s = _summary(out)
    assert s["variants"]["skip"]["params"] > s["variants"]["plain"]["params"]
    from connlab.evidence import Evidence

    assert Evidence.from_dict(s["evidence"]["accuracy"]).method == "paired t over 2 seeds"
    assert s["verdict"].startswith(("supported: rule: ", "not supported at this budget: rule: ", "contradicted: rule: "))
    from connlab.experiments.skipmlp import make_mlp

    for kind in ("plain", "skip"):  # well above chance (0.1) after 16 steps; an untrained MLP is not
        assert classifier_learned(s["variants"][kind]["test_accuracy"], chance=0.1, margin=0.2)
        torch.manual_seed(0)
        assert not classifier_learned(untrained_accuracy(make_mlp(kind, 16, 2)), chance=0.1, margin=0.2)


@pytest.mark.parametrize("argv", [
    ["depth", "--depths", "0"],
    ["depth", "--width", "-4"],
    ["rnn", "--lengths", "0"],
    ["rnn", "--lengths", "10,0"],
    ["rnn", "--hidden", "0"],
    ["skipmlp", "--width", "-3"],
    ["skipmlp", "--layers", "0"],
    ["gates", "--k", "0"],
])
def test_bad_input_exits_2(argv, tmp_path, capsys):
    try:
        code = main(argv + ["--out", str(tmp_path / "never")])
    except SystemExit as exc:  # argparse errors exit from inside the parser
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error" in err
    assert not (tmp_path / "never").exists()
