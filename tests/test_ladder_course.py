"""The course's diffusion process (one end point, rungs on the line), its pairs, the preset and its page rows."""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch

from connlab.diffusion.ladder import (
    LadderSchedule, feed_back, full_ladder, interpolation_ladder, interpolation_pairs, ladder_pair, pair_count,
    pairs_from_rungs,
)
from connlab.errors import UserError


def _x0(b=8, seed=0, hw=28):
    return torch.rand(b, 1, hw, hw, generator=torch.Generator().manual_seed(seed))


# --- the rungs and the pairs -------------------------------------------------------------------------

def test_rungs_lie_on_the_line_from_x0_to_xT():
    x0, x_T = _x0(4, 0), _x0(4, 1)
    rungs = interpolation_ladder(x0, x_T, 10)
    assert rungs.shape == (11, 4, 1, 28, 28)
    assert torch.equal(rungs[0], x0) and torch.equal(rungs[10], x_T)        # x_0 at 0, x_T at T, exactly
    for i in range(11):                                                      # x_i = x_0 + (i/T)(x_T − x_0)
        torch.testing.assert_close(rungs[i], x0 + i / 10 * (x_T - x0), rtol=0, atol=1e-6)
    steps = rungs[1:] - rungs[:-1]                                           # equal steps: linear in i
    torch.testing.assert_close(steps, (x_T - x0).expand_as(steps) / 10, rtol=0, atol=1e-6)


def test_one_end_point_per_digit_and_every_rung_on_its_line():
    x0 = _x0(16, 2)
    rungs = full_ladder(x0, LadderSchedule("interpolate", 5, 1.0, "norm"), torch.Generator().manual_seed(3))
    x_T = rungs[-1]
    # mag 1: round(z) is an integer, so every end-point pixel is kept, forced to 0 or forced to 1
    kept, dark, bright = x_T == x0, x_T == 0, x_T == 1
    assert bool((kept | dark | bright).all())
    for i in range(6):  # one end point: all rungs are blends of the same two images
        torch.testing.assert_close(rungs[i], x0 + i / 5 * (x_T - x0), rtol=0, atol=1e-6)


@pytest.mark.parametrize("dist,forced", [("norm", 0.5 * math.erfc(0.5 / math.sqrt(2))), ("uniform", 0.25)])
def test_end_point_distribution(dist, forced):
    """P(round(mag z) >= 1): norm P(z >= 0.5) = 0.3085, uniform P(U(−1, 1) >= 0.5) = 0.25; the same for <= −1."""
    x0 = torch.full((64, 1, 28, 28), 0.5)
    x_T = full_ladder(x0, LadderSchedule("interpolate", 10, 1.0, dist), torch.Generator().manual_seed(4))[-1]
    assert (x_T == 1).float().mean().item() == pytest.approx(forced, abs=0.006)      # 50,176 pixels
    assert (x_T == 0).float().mean().item() == pytest.approx(forced, abs=0.006)
    assert (x_T == 0.5).float().mean().item() == pytest.approx(1 - 2 * forced, abs=0.008)


def test_the_pairs_hold_x0_to_x0_and_one_step_down_in_the_notebooks_order():
    x0, x_T, T = _x0(3, 5), _x0(3, 6), 4
    inputs, targets = pairs_from_rungs(interpolation_ladder(x0, x_T, T))
    assert inputs.shape == targets.shape == (pair_count(3, T), 1, 28, 28) == (15, 1, 28, 28)
    rungs = interpolation_ladder(x0, x_T, T)
    for b in range(3):
        assert torch.equal(inputs[b * (T + 1)], x0[b]) and torch.equal(targets[b * (T + 1)], x0[b])  # x_0 → x_0
        for i in range(1, T + 1):
            assert torch.equal(inputs[b * (T + 1) + i], rungs[i, b])        # x_i → x_{i−1}
            assert torch.equal(targets[b * (T + 1) + i], rungs[i - 1, b])


def test_pair_count_is_n_times_t_plus_1():
    inputs, targets = interpolation_pairs(_x0(7, 7, hw=4), 10, 1.0, "norm", torch.Generator().manual_seed(0))
    assert len(inputs) == len(targets) == pair_count(7, 10) == 77   # the course's newN = N·(steps2use+1)


def test_on_the_fly_pairs_sit_on_a_fresh_line_and_t0_is_the_identity_pair():
    s = LadderSchedule("interpolate", 10, 1.0, "norm")
    x0 = _x0(6, 8)
    x_t, x_prev = ladder_pair(x0, torch.zeros(6, dtype=torch.long), s, torch.Generator().manual_seed(1))
    assert torch.equal(x_t, x0) and torch.equal(x_prev, x0)
    x_t, x_prev = ladder_pair(x0, torch.full((6,), 10), s, torch.Generator().manual_seed(2))
    assert bool(((x_t == x0) | (x_t == 0) | (x_t == 1)).all())         # at t = T: the end point itself
    torch.testing.assert_close(x_prev, x0 + 0.9 * (x_t - x0), rtol=0, atol=1e-6)


def test_old_name_notebook_is_the_walk():
    from connlab.experiments.ladder import LadderExperiment

    assert LadderSchedule("notebook").name == "walk"
    assert LadderExperiment(schedule="notebook").schedule == "walk"
    assert LadderExperiment().schedule == "interpolate"                 # the course's process is the default


def test_feed_back_runs_the_rung_once_then_feeds_its_output_back():
    seen = []

    class Halve(torch.nn.Module):
        def forward(self, x, t):
            seen.append(int(t[0]))
            return torch.logit(x.clamp(1e-4, 1 - 1e-4) / 2)

    x = torch.full((2, 1, 28, 28), 0.8)
    out = feed_back(Halve(), x, 7, 16)
    assert len(out) == 17 and torch.equal(out[0], x)
    torch.testing.assert_close(out[2], out[1] / 2, rtol=1e-3, atol=1e-4)   # each pass reads the previous output
    assert seen == [7, 6, 5, 4, 3, 2, 1] + [0] * 9                         # t for a network told the step


# --- the preset, the memory guard, the summary, the page -----------------------------------------------

def _cfg(**given):
    from connlab.experiments.ladder import LadderExperiment

    return LadderExperiment.from_args(argparse.Namespace(**given))


def test_the_preset_fills_only_the_flags_not_given():
    from connlab.experiments.ladder_course import COURSE, course_differences

    cfg = _cfg(preset="course")
    assert {k: getattr(cfg, k) for k in COURSE} == COURSE and course_differences(cfg) == []
    mine = _cfg(preset="course", epochs=3, steps=5, schedule="walk")
    assert (mine.epochs, mine.steps, mine.schedule) == (3, 5, "walk")
    assert mine.bottleneck == 16 and mine.course_data and mine.patience == 5      # the rest from the preset
    assert set(course_differences(mine)) == {"--epochs 3", "--steps 5", "--schedule walk"}
    lab = _cfg()
    assert (lab.bottleneck, lab.course_data, lab.all_pairs, lab.epochs) == (0, False, False, 2)


def test_the_stored_ladder_has_a_size_and_a_one_line_refusal():
    from connlab.experiments.ladder_course import check_stored_size

    assert check_stored_size(1000, 10, "cpu", free=10 ** 12) == 11 * 1000 * 784 * 4   # 34.5 MB, the course's
    with pytest.raises(UserError) as err:
        check_stored_size(60_000, 10, "cpu", free=3 * 10 ** 9)
    text = str(err.value)
    assert "\n" not in text and "660,000 stored images" in text and "2.07 GB" in text and "--limit" in text


def test_a_run_too_big_to_store_is_refused_with_exit_2(tmp_path, capsys, monkeypatch):
    from connlab.cli import main
    from connlab.experiments import ladder_course

    monkeypatch.setattr(ladder_course, "free_bytes", lambda device: 10 ** 6)   # 1 MB free
    assert main(["ladder", "--all-pairs", "--limit", "100", "--dataset", "mnist-embedded",
                 "--out", str(tmp_path / "big")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "stored images" in err


def test_course_run_summary_contract_and_page(tmp_path):
    """A tiny run of the course's preset: the validation BCE per seed, the figures, the page's rows."""
    from connlab.cli import main
    from connlab.experiments.ladder import section
    from connlab.experiments.section import load_run

    out = tmp_path / "course"
    assert main(["ladder", "--preset", "course", "--limit", "8", "--eval-images", "12", "--epochs", "2",
                 "--seeds", "2", "--steps", "3", "--batch-size", "32", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    per_seed = summary["val_bce_per_seed"]
    assert len(per_seed) == 2 and all(math.isfinite(v) and 0 < v < 2 for v in per_seed)
    entry = summary["variants"]["T3-none"]
    assert [r["seed"] for r in entry["seeds"]] == [0, 1] and [r["val_bce"] for r in entry["seeds"]] == per_seed
    assert summary["train_pairs_per_epoch"] == 8 * 4 and summary["validation"]["pairs"] == 12 * 4
    assert summary["validation"]["set"] in ("mnist-test", "embedded-rest")
    assert entry["params"] == 260_177                                       # the course's U-Net
    assert len(entry["feed_back"]["psnr"]) == 17 and entry["feed_back"]["rung"] == 3
    assert "reproduction" not in summary                                     # --steps 3 is not the protocol
    assert "--steps 3" in summary["course"]["differs"]
    for name in ("feed_back.png", "chain.png", "from_noise.png"):
        assert (out / name).is_file()
    assert (out / "variants" / "T3-none-seed1" / "model.safetensors").is_file()
    sec = section(load_run(out))
    assert sec.figures[0][0] == "feed_back.png"
    assert "not the course's protocol" in sec.tables[0].rows[0][5]


def _folder(tmp_path, summary, name="run"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"experiment": "ladder", "config": {}}))
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def test_the_page_sets_the_course_figure_beside_our_seeds(tmp_path):
    from connlab.evidence import reproduction
    from connlab.experiments.ladder import section
    from connlab.experiments.section import load_run

    inside = [0.1831, 0.1845, 0.1838, 0.1850, 0.1829]
    summary = {"experiment": "ladder", "chain_psnr": [8.0, 12.0], "variants": {}, "schedule": "interpolate",
               "val_bce_per_seed": inside, "validation": {"set": "mnist-test", "digits": 100},
               "reproduction": reproduction(0.1839, inside).as_dict()}
    sec = section(load_run(_folder(tmp_path, summary)))
    row = sec.tables[0].rows[0]
    assert row[1] == "0.1839" and row[5] == "reproduced" and row[4] == "5"
    far = [0.1700, 0.1702, 0.1698, 0.1701, 0.1699]
    summary["reproduction"] = reproduction(0.1839, far).as_dict()
    row = section(load_run(_folder(tmp_path, summary, "far"))).tables[0].rows[0]
    assert row[5] == "not reproduced" and "above the interval" in row[6]


def test_an_old_run_folder_still_renders(tmp_path):
    """Written before the course's process: schedule "notebook", no validation BCE, no seeds."""
    from connlab.experiments.ladder import section
    from connlab.experiments.section import load_run

    summary = {"experiment": "ladder", "chain_psnr": [9.0, 12.0, 13.0], "schedule": "notebook", "eval_images": 200,
               "variants": {"T2-none": {"steps": 2, "condition": "none", "start_psnr": 9.0, "final_psnr": 13.0}}}
    sec = section(load_run(_folder(tmp_path, summary)))
    assert "walk schedule" in sec.tables[0].caption
    assert all("course (one run)" not in t.header for t in sec.tables)


def test_an_old_run_folder_resumes_as_the_walk(tmp_path):
    """``--resume`` reads the saved config: its "notebook" is today's "walk", the ladder it trained on."""
    from connlab.diffusion.ladder import LadderSchedule
    from connlab.experiments.ladder import LadderExperiment
    from connlab.runs import prepare_run

    folder = tmp_path / "old"
    folder.mkdir()
    saved = {"steps": 3, "dist": "norm", "mag": 1.0, "schedule": "notebook", "condition": "none", "epochs": 2}
    (folder / "config.json").write_text(json.dumps({"experiment": "ladder", "config": saved}))
    _, cfg = prepare_run(folder, "ladder", LadderExperiment(), True, {})
    assert cfg.schedule == "walk" and cfg.seeds == 1 and not cfg.all_pairs and cfg.variant_name(3, "none", 0) == "T3-none"
    assert LadderSchedule(cfg.schedule, 3).coefficients()[1] == pytest.approx([0.0] + [1 / 3] * 3)
