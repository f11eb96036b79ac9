"""The noise ladder of Exercise 2: schedule statistics, pairing, materialize, the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

from connlab.cli import main
from connlab.data.noise import draw_noise
from connlab.diffusion.ladder import (
    LadderSchedule, full_ladder, ladder_pair, ladder_step, materialize, materialize_bytes,
)
from connlab.models.step_conditioned import StepConditionConfig, StepConditionedUNet
from tests.learning import step_improves


@pytest.fixture(autouse=True)
def _two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _x0(b=64, seed=0):
    return torch.rand(b, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


# --- schedules: closed forms ------------------------------------------------------------------

def test_walk_schedule_is_equal_increments_of_mag_over_T():
    s = LadderSchedule("walk", T=10, mag=1.0)
    a, b = s.coefficients()
    assert a[1:] == [1.0] * 10 and b[1:] == pytest.approx([0.1] * 10)
    assert sum(b) == pytest.approx(1.0)  # the increments' scales add up to mag ...
    assert s.sigma() == pytest.approx([math.sqrt(t) / 10 for t in range(11)])  # ... their variances add


def test_ve_reaches_mag_and_vp_matches_ddpm_cosine():
    from connlab.diffusion.schedule import NoiseSchedule

    assert LadderSchedule("ve", T=7, mag=0.8).sigma() == pytest.approx([0.8 * math.sqrt(t / 7) for t in range(8)])
    vp = LadderSchedule("vp", T=10, mag=1.0)
    alpha_bar = NoiseSchedule.cosine(10).alpha_bar.double().tolist()
    assert vp.gain()[1:] == pytest.approx([math.sqrt(ab) for ab in alpha_bar], rel=1e-5)
    assert vp.sigma()[1:] == pytest.approx([math.sqrt(1 - ab) for ab in alpha_bar], rel=1e-5)
    assert vp.sigma()[-1] == pytest.approx(1.0, abs=1e-3)  # x_T is (almost) pure noise


def test_uniform_noise_std_is_one_over_root_three():
    s = LadderSchedule("walk", T=4, mag=2.0, dist="uniform")
    assert s.noise_std() == pytest.approx([2.0 * math.sqrt(t) / 4 / math.sqrt(3) for t in range(5)])


@pytest.mark.parametrize("kw", [dict(T=0), dict(T=-3), dict(mag=-1.0), dict(dist="cauchy"), dict(name="cosine")])
def test_bad_schedule_values_raise(kw):
    with pytest.raises(ValueError):
        LadderSchedule(**kw)


# --- statistics, measured -------------------------------------------------------------------

@pytest.mark.parametrize("name,dist", [("walk", "norm"), ("walk", "uniform"), ("ve", "norm"), ("vp", "norm")])
def test_unclipped_ladder_has_the_variance_the_schedule_says(name, dist):
    s = LadderSchedule(name, T=5, mag=1.0, dist=dist, clip=False)
    x0 = _x0(400)
    rungs = full_ladder(x0, s, torch.Generator().manual_seed(1))  # (T+1, B, 1, 28, 28)
    assert rungs.shape == (6, 400, 1, 28, 28)
    for t, (gain, std) in enumerate(zip(s.gain(), s.noise_std())):
        noise = rungs[t] - gain * x0
        assert noise.mean().item() == pytest.approx(0.0, abs=0.01)
        assert noise.std().item() == pytest.approx(std, rel=0.01, abs=1e-6)  # 313,600 pixels per rung


def test_clipped_rungs_stay_images_and_match_the_clipped_walk():
    """With clipping, the rung noise is smaller than σ_t, exactly as a simulated clipped walk says."""
    s = LadderSchedule("walk", T=10, mag=1.0)
    x0 = torch.full((2000, 1, 4, 4), 0.5)
    rungs = full_ladder(x0, s, torch.Generator().manual_seed(2))
    assert rungs.min() >= 0 and rungs.max() <= 1
    # far from the edges the walk rarely clips: std ≈ σ_t = √t / 10 (0.32 at t = 10, 1.5 σ from the edge)
    assert (rungs[4] - x0).std().item() == pytest.approx(0.2, rel=0.02)
    assert (rungs[10] - x0).std().item() < math.sqrt(10) / 10


# --- pairing ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name,clip", [("walk", True), ("walk", False), ("vp", False), ("ve", True)])
def test_each_rung_is_the_one_below_plus_the_steps_noise(name, clip):
    s = LadderSchedule(name, T=6, mag=1.0, clip=clip)
    x0 = _x0(8)
    rungs = full_ladder(x0, s, torch.Generator().manual_seed(3))
    replay = torch.Generator().manual_seed(3)  # the same draws, in the same order
    a, b = s.coefficients()
    for t in range(1, 7):
        z = draw_noise(x0, s.dist, replay)
        torch.testing.assert_close(rungs[t], ladder_step(rungs[t - 1], t, s, z), rtol=0, atol=0)
        if not clip:
            torch.testing.assert_close(rungs[t] - a[t] * rungs[t - 1], b[t] * z, rtol=0, atol=1e-6)


def test_ladder_pair_walks_the_same_rungs_as_full_ladder():
    s = LadderSchedule("walk", T=10)
    x0 = _x0(32)
    t = torch.randint(1, 11, (32,), generator=torch.Generator().manual_seed(4))
    t[0] = 10  # walk the whole ladder so both draw the same noise
    x_t, x_prev = ladder_pair(x0, t, s, torch.Generator().manual_seed(5))
    rungs = full_ladder(x0, s, torch.Generator().manual_seed(5))
    rows = torch.arange(32)
    torch.testing.assert_close(x_t, rungs[t, rows], rtol=0, atol=0)
    torch.testing.assert_close(x_prev, rungs[t - 1, rows], rtol=0, atol=0)


def test_ladder_pair_t1_pairs_with_the_clean_image():
    s = LadderSchedule("ve", T=3)
    x0 = _x0(4)
    x_t, x_prev = ladder_pair(x0, torch.ones(4, dtype=torch.long), s, torch.Generator().manual_seed(0))
    torch.testing.assert_close(x_prev, x0)
    assert not torch.equal(x_t, x0)


def test_materialize_matches_on_the_fly_in_shape_and_distribution():
    s = LadderSchedule("walk", T=4, clip=False)
    x0 = _x0(300)
    stored = materialize(x0, s, torch.Generator().manual_seed(6), chunk=64)
    assert stored.shape == (5, 300, 1, 28, 28) and stored.dtype == torch.float32
    assert stored.numel() * stored.element_size() == materialize_bytes(300, 4)
    t = torch.full((300,), 3)
    x_t, x_prev = ladder_pair(x0, t, s, torch.Generator().manual_seed(7))
    for fly, kept in ((x_t, stored[3]), (x_prev, stored[2])):
        assert (fly - x0).std().item() == pytest.approx((kept - x0).std().item(), rel=0.02)
    assert (x_t - x_prev).std().item() == pytest.approx((stored[3] - stored[2]).std().item(), rel=0.02)
    torch.testing.assert_close(stored[0], x0)


def test_materialize_cost_of_full_mnist():
    assert materialize_bytes(60_000, 10) == 11 * 60_000 * 784 * 4  # 2.07 GB for full MNIST at T = 10


# --- the network --------------------------------------------------------------------------

@pytest.mark.parametrize("condition", ["none", "learned", "sinusoidal"])
def test_step_conditioned_unet_starts_as_the_plain_unet(condition):
    torch.manual_seed(0)
    plain = StepConditionedUNet(StepConditionConfig("none", 5))
    torch.manual_seed(0)
    model = StepConditionedUNet(StepConditionConfig(condition, 5))
    x = _x0(3)
    t = torch.tensor([1, 3, 5])
    assert model(x, t).shape == (3, 1, 28, 28)
    torch.testing.assert_close(model(x, t), plain(x, t))  # zero-init embedding


def test_step_embedding_changes_the_output_once_trained():
    model = StepConditionedUNet(StepConditionConfig("learned", 5))
    torch.nn.init.normal_(model.embed.weight)
    x = _x0(1).expand(2, -1, -1, -1)
    out = model(x, torch.tensor([1, 5]))
    assert not torch.allclose(out[0], out[1])


# --- the CLI ------------------------------------------------------------------------------

def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as stop:  # argparse errors, whichever way the CLI surfaces them
        return stop.code


def untrained_chain_psnr(T: int, eval_images: int) -> list[float]:
    """The ladder experiment's chain PSNRs for an untrained denoiser on the same test rung x_T."""
    from connlab.data import load_dataset, stratified_first, to_unit
    from connlab.diffusion.ladder import LadderSchedule, full_ladder, run_chain
    from connlab.experiments.ladder_chain import EVAL_SEED, chain_scores
    from connlab.models.step_conditioned import StepConditionConfig, StepConditionedUNet

    data = load_dataset("mnist-embedded", None, 100)
    clean = to_unit(data.test_images[torch.from_numpy(stratified_first(data.test_labels.numpy(), eval_images))])
    # the default ladder (the course's interpolate) and seed 0's test draw, as the trained run measures
    rungs = full_ladder(clean, LadderSchedule("interpolate", T, 1.0, "norm"), torch.Generator().manual_seed(EVAL_SEED))
    torch.manual_seed(0)
    with torch.no_grad():
        return chain_scores(run_chain(StepConditionedUNet(StepConditionConfig("none", T)).eval(), rungs[T], T),
                            clean)["chain_psnr"]


def test_cli_tiny_run_writes_figures_and_chain_psnr(tmp_path):
    out = tmp_path / "run"
    # 60 steps of 32 digits: the first denoising step gains > 2 dB (measured 7.5 -> 11.5 dB)
    code = _exit_code(["ladder", "--epochs", "1", "--limit", "1920", "--batch-size", "32", "--steps", "3",
                       "--dataset", "mnist-embedded", "--eval-images", "100", "--out", str(out)])
    assert code == 0
    for name in ("chain.png", "from_noise.png", "chain_psnr.png", "summary.json", "config.json"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["chain_psnr"]) == 4 and len(summary["chain_bce"]) == 4
    assert all(math.isfinite(v) for v in summary["chain_psnr"])
    assert step_improves(*summary["chain_psnr"][:2]), summary["chain_psnr"]
    assert not step_improves(*untrained_chain_psnr(3, 100)[:2])  # the check fails for an untrained network
    assert summary["materialize_cost"]["bytes"] == 4 * 1920 * 784 * 4
    # the claim's rule over the 100 test digits: the gain's interval lies above 0; one epoch, no early chain
    gain = summary["evidence"]["trained"]["gain"]
    assert gain["n"] == 100 and gain["verdict"] == "supported", gain
    assert "early" not in summary["evidence"]
    from connlab.experiments.ladder import section
    from connlab.experiments.section import load_run

    sec = section(load_run(out))
    assert sec.verdict in ("supported", "partly supported") and "n = 100" in sec.effect and sec.rule
    assert summary["train_seconds"] > 0


def test_cli_sweep_conditions_and_materialize(tmp_path):
    out = tmp_path / "sweep"
    code = _exit_code(["ladder", "--epochs", "1", "--limit", "60", "--steps", "2", "--sweep", "1,2",
                       "--condition", "all", "--materialize", "--dataset", "mnist-embedded",
                       "--eval-images", "20", "--out", str(out)])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [(row["steps"], row["condition"]) for row in summary["sweep"]] == [
        (t, c) for t in (1, 2) for c in ("none", "learned", "sinusoidal")]
    assert len(summary["chain_psnr"]) == 3 and summary["materialized"]
    assert "| 2 | none |" in (out / "sweep.md").read_text()


@pytest.mark.parametrize("argv", [["--steps", "0"], ["--steps", "-2"], ["--mag", "-1"], ["--dist", "cauchy"],
                                  ["--sweep", "1,0"], ["--schedule", "cosine"]])
def test_bad_input_is_one_line_and_exit_2(argv, tmp_path, capsys):
    assert _exit_code(["ladder", *argv, "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error" in err
    assert not (tmp_path / "bad").exists()


def test_the_gain_rule_fails_on_an_untrained_chain():
    """The same rule the trained chain passes: an untrained denoiser's chain does not raise PSNR."""
    from connlab.experiments.ladder_chain import evidence_dict

    schedule = LadderSchedule("walk", 3, 1.0, "norm")
    clean = _x0(100).round()
    rungs = full_ladder(clean, schedule, torch.Generator().manual_seed(1))
    from connlab.diffusion.ladder import run_chain
    from connlab.measures import chain_psnr

    with torch.no_grad():
        chain = run_chain(StepConditionedUNet(StepConditionConfig("none", 3)).eval(), rungs[3], 3)
    assert evidence_dict(chain_psnr(torch.stack(chain), clean), 0)["gain"]["verdict"] != "supported"


def _ladder_folder(tmp_path, evidence):
    folder = tmp_path / "ladder-fake"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"experiment": "ladder", "config": {}}))
    summary = {"experiment": "ladder", "chain_psnr": [9.0, 12.0, 13.0], "variants": {}, "eval_images": 200}
    if evidence is not None:
        summary["evidence"] = evidence
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def _chain_evidence(means, epochs, spread=0.5, digits=200):
    """The stored evidence of a chain whose per-digit PSNRs scatter around ``means``."""
    from connlab.experiments.ladder_chain import evidence_dict

    noise = torch.randn(digits, generator=torch.Generator().manual_seed(0)) * spread
    return evidence_dict(torch.tensor(means)[:, None] + noise[None] + 0.1 * torch.randn(len(means), digits), epochs)


@pytest.mark.parametrize("trained, early, verdict", [
    ([9.0, 12.0, 14.0], None, "supported"),
    ([9.0, 13.0, 11.0], None, "partly supported"),            # rises, then walks away
    ([9.0, 8.0, 7.0], None, "contradicted"),                    # walks away from the first step
    ([9.0, 12.0, 14.0], [9.0, 11.0, 6.0], "supported"),         # the early chain's failure is shown, not judged
    (None, None, "not measured"),                               # an old folder: no intervals stored
])
def test_ladder_verdict_comes_from_the_chain_rule(tmp_path, trained, early, verdict):
    from connlab.experiments.ladder import section
    from connlab.experiments.section import load_run

    evidence = None
    if trained is not None:
        evidence = {"trained": _chain_evidence(trained, 2)}
        if early is not None:
            evidence["early"] = _chain_evidence(early, 1)
    sec = section(load_run(_ladder_folder(tmp_path, evidence)))
    assert sec.verdict == verdict
    assert ("rerun" in sec.verdict_text) == (trained is None)
    assert any("walks away from the digit" in note for note in sec.notes) == (early is not None)


def test_two_epochs_keep_the_chain_after_epoch_1(tmp_path):
    """The under-trained chain is the model's own at the end of epoch 1, on the same digits, shown beside it."""
    out = tmp_path / "two"
    assert _exit_code(["ladder", "--epochs", "2", "--limit", "200", "--batch-size", "32", "--steps", "2",
                       "--dataset", "mnist-embedded", "--eval-images", "100", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    early, trained = summary["evidence"]["early"], summary["evidence"]["trained"]
    assert early["epochs"] == 1 and trained["epochs"] == 2 and early["gain"]["n"] == 100
    assert early["mean_psnr"][0] == trained["mean_psnr"][0]            # the same noised digits x_T
    assert early["mean_psnr"][1:] != trained["mean_psnr"][1:]          # a different (earlier) network
    metrics = [json.loads(line) for line in (out / "variants" / "T2-none" / "metrics.jsonl").read_text().splitlines()]
    assert abs(metrics[0]["chain_final_psnr"] - early["mean_psnr"][-1]) < 1e-4
    from connlab.experiments.ladder import section
    from connlab.experiments.section import load_run

    assert any("after epoch 1" in note for note in section(load_run(out)).notes)
