"""The course's residual notebook: its network, its loss, ``depth --preset course`` and its page section."""

from __future__ import annotations

import json
import math

import pytest
import torch

from connlab.errors import UserError
from connlab.evidence import NOT_REPRODUCED, REPRODUCED, SUPPORTED, compare, reproduction
from connlab.experiments import depth, depth_course
from connlab.experiments.section import Run
from connlab.models.identity_cnn import IdentityCNN, IdentityCNNConfig
from connlab.nn import IdentityBlock
from tests.test_config import parse

# The notebook's Keras layers, counted by Keras' rule (kernel + bias); its model.summary() is commented
# out, so the count is computed from the layer list: conv 64 3x3 on 1 channel; per block conv 16 1x1,
# conv 16 3x3, conv 64 1x1; dense 32 on 14 x 14 x 64; dense 10.
STEM = 3 * 3 * 1 * 64 + 64
BLOCK = (64 * 16 + 16) + (3 * 3 * 16 * 16 + 16) + (16 * 64 + 64)
HEAD = (14 * 14 * 64 * 32 + 32) + (32 * 10 + 10)


@pytest.mark.parametrize("residual", [False, True])
def test_the_course_network_has_the_keras_models_shapes_and_parameters(residual):
    model = IdentityCNN(IdentityCNNConfig(blocks=3, residual=residual))
    assert STEM + 3 * BLOCK + HEAD == 415_754
    assert sum(p.numel() for p in model.parameters()) == 415_754
    assert model.stem(torch.zeros(2, 1, 28, 28)).shape == (2, 64, 14, 14)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert sum(p.numel() for p in IdentityCNN(IdentityCNNConfig(blocks=0)).parameters()) == STEM + HEAD


def test_the_residual_is_added_after_the_last_relu():
    torch.manual_seed(0)
    block = IdentityBlock(8, 2, residual=True)
    assert isinstance(block.branch[-1], torch.nn.ReLU)
    x = torch.randn(4, 8, 5, 5)    # negative inputs too: a ReLU after the addition would clip them
    out = block(x)
    assert torch.equal(out, block.branch(x) + x)
    assert (out - x).min() >= 0     # what was added to x went through a ReLU
    assert out.min() < 0            # and nothing came after the addition
    plain = IdentityBlock(8, 2, residual=False)
    plain.load_state_dict(block.state_dict())
    assert torch.equal(plain(x), block.branch(x)) and plain(x).min() >= 0


def test_the_course_loss_is_keras_binary_cross_entropy_of_the_softmax():
    # uniform outputs: ten yes/no questions answered 0.1 -> -(0.1 ln 0.1 + 0.9 ln 0.9), the course's plateau
    labels = torch.tensor([3, 7])
    assert depth_course.course_bce(torch.zeros(2, 10), labels).item() == pytest.approx(
        -(0.1 * math.log(0.1) + 0.9 * math.log(0.9)), rel=1e-6)
    logits = torch.randn(5, 10, generator=torch.Generator().manual_seed(0))
    y = torch.arange(5)
    p, t = logits.softmax(1), torch.nn.functional.one_hot(y, 10).float()
    expected = -(t * p.log() + (1 - t) * (1 - p).log()).mean()
    assert depth_course.course_bce(logits, y).item() == pytest.approx(expected.item(), rel=1e-5)
    # a confident wrong answer is clipped at 1e-7 as Keras clips it, not infinite
    assert math.isfinite(depth_course.course_bce(torch.tensor([[100.0] + [0.0] * 9]), torch.tensor([1])).item())


def test_the_course_preset_fills_only_the_flags_not_given():
    cfg = parse("depth", "--preset", "course")
    assert {k: getattr(cfg, k) for k in depth_course.COURSE_PRESET} == depth_course.COURSE_PRESET
    assert depth_course.protocol_differences(cfg) == []
    cfg = parse("depth", "--preset", "course", "--epochs", "3", "--losses", "bce", "--batch-size", "64")
    assert (cfg.epochs, cfg.losses, cfg.batch_size, cfg.patience, cfg.depths) == (3, ("bce",), 64, 5, (3,))
    assert depth_course.protocol_differences(cfg) == ["epochs 3 (the course: 20)", "batch size 64 (the course: 128)"]
    # --full still is the full preset, and the lab's default stays as it was
    assert parse("depth", "--full").preset == "full" and parse("depth", "--preset", "full").full
    assert parse("depth").losses == ("cce",) and parse("depth").patience == 0


@pytest.mark.parametrize("argv, message", [
    (["--full", "--preset", "course"], "two presets"),
    (["--losses", "bce"], "course protocol"),
    (["--patience", "5"], "course protocol"),
])
def test_flags_of_the_other_protocol_are_refused(argv, message):
    with pytest.raises(UserError, match=message):
        parse("depth", *argv)


def test_a_tiny_course_run_keeps_the_summary_contract(tmp_path):
    cfg = parse("depth", "--preset", "course", "--depths", "1", "--width", "4", "--epochs", "2", "--limit", "64",
                "--batch-size", "32", "--seeds", "2", "--losses", "bce", "--patience", "1", "--device", "cpu")
    summary = depth.run_experiment(cfg, tmp_path)
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["protocol"] == "course" and saved["validation"] in ("mnist-test", "embedded-rest")
    assert saved["validation_images"] == 1000 and sum(saved["validation_class_counts"]) == 1000
    assert set(saved["variants"]) == {"plain-bce-b1", "residual-bce-b1"}
    for v in saved["variants"].values():
        assert [r["seed"] for r in v["seeds"]] == [0, 1]
        for r in v["seeds"]:
            assert 0 <= r["val_accuracy"] <= 1 and r["val_loss"] == r["val_bce"] > 0
            assert 1 <= r["epochs_trained"] <= 2 and 0.1 <= r["majority_share"] <= 1
    assert saved["evidence"]["bce-b1"]["n"] == 2
    assert "reproduction" not in saved       # not the course's protocol: no verdict against its figures
    assert (tmp_path / "course_depth.png").is_file()
    assert "plain-bce-b1" in depth.describe(summary, cfg)


def _course_summary(plain, residual, **extra):
    variants = {}
    for kind, accs in (("plain", plain), ("residual", residual)):
        seeds = [{"seed": i, "val_accuracy": a, "val_loss": 0.3, "val_bce": 0.3, "val_cce": 2.0,
                  "majority_share": 1.0 if a < 0.13 else 0.15, "epochs_trained": 20, "train_accuracy": a,
                  "train_seconds": 1.0,
                  "history": [{"epoch": 1, "train_loss": 0.3, "val_loss": 0.3, "val_accuracy": a}]}
                 for i, a in enumerate(accs)]
        variants[f"{kind}-bce-b3"] = {"kind": kind, "loss": "bce", "blocks": 3, "params": 415_754, "seeds": seeds,
                                      **depth_course.means(seeds)}
    return {"experiment": "depth", "protocol": "course", "blocks": [3], "losses": ["bce"], "seeds": len(plain),
            "validation": "mnist-test", "validation_text": "MNIST's test set", "validation_images": 1000,
            "validation_class_counts": [85, 126, 116, 107, 110, 87, 87, 99, 89, 94],
            "evidence": {"bce-b3": compare(plain, residual, better="higher").as_dict()},
            "reproduction": {"plain": reproduction(0.100, plain).as_dict(),
                             "residual": reproduction(0.634, residual).as_dict()},
            "variants": variants, **extra}


def _run(tmp_path, summary):
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    return Run(tmp_path, "depth", {}, json.loads((tmp_path / "summary.json").read_text()))


def test_the_course_section_shows_the_course_beside_ours(tmp_path):
    summary = _course_summary([0.10, 0.11, 0.099, 0.12, 0.10], [0.62, 0.66, 0.60, 0.64, 0.65])
    sec = depth.section(_run(tmp_path, summary))
    assert sec.verdict == SUPPORTED and "course" in sec.title
    course_rows = sec.tables[0].rows
    assert [r[0] for r in course_rows] == ["plain (bce, 3 blocks)", "residual (bce, 3 blocks)"]
    assert [r[5] for r in course_rows] == [REPRODUCED, REPRODUCED] and course_rows[0][1] == "0.100"
    one_class = sec.tables[1].rows[0]
    assert one_class[0] == "plain-bce-b3" and one_class[5] == "1.000" and one_class[6] == "5 of 5"
    assert any("binary cross-entropy on one-hot labels" in n for n in sec.notes)
    assert any("0.085 to 0.126" in n for n in sec.notes)


def test_a_course_figure_outside_our_seeds_is_not_reproduced(tmp_path):
    summary = _course_summary([0.60, 0.62, 0.61, 0.63, 0.62], [0.64, 0.66, 0.65, 0.67, 0.65])
    sec = depth.section(_run(tmp_path, summary))
    plain_row = sec.tables[0].rows[0]
    assert plain_row[5] == NOT_REPRODUCED and "below the interval" in plain_row[6]


def test_a_run_off_the_course_protocol_gets_no_course_verdict(tmp_path):
    summary = _course_summary([0.1, 0.1], [0.6, 0.7], protocol_differences=["epochs 2 (the course: 20)"])
    del summary["reproduction"]
    sec = depth.section(_run(tmp_path, summary))
    assert any("differs from it in: epochs 2" in n for n in sec.notes)
