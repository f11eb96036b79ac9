"""Part II experiments: the ViT and the attention sequence task, at tiny sizes."""

import json

import pytest
import torch
import torch.nn.functional as F

from connlab.cli import main
from connlab.experiments.attention import (
    SequenceModelConfig, SequenceTransformer, head_values, make_task, source_positions,
)
from connlab.models.vit import ViT, ViTConfig, attention_rollout, patch_relevance
from tests.learning import classifier_learned


# ---- ViT: shapes, pooling, rollout ------------------------------------------------------------

@pytest.mark.parametrize("pool", ["cls", "mean"])
@pytest.mark.parametrize("stem, patch", [(0, 7), (8, 1)])
def test_vit_shapes_for_class_token_and_mean_pooling(pool, stem, patch):
    cfg = ViTConfig(patch_size=patch, dim=32, depth=2, heads=4, pool=pool, stem_channels=stem)
    model = ViT(cfg).eval()
    logits = model(torch.rand(3, 1, 28, 28))
    assert logits.shape == (3, 10)
    assert cfg.grid == (4 if stem == 0 else 7)
    tokens = cfg.grid ** 2 + (1 if pool == "cls" else 0)  # 16 or 49 patches (+ class token)
    maps = model.attention_maps()
    assert len(maps) == 2 and maps[-1].shape == (3, 4, tokens, tokens)
    relevance = patch_relevance(maps[-1].mean(1), pool == "cls")
    assert relevance.shape == (3, cfg.grid ** 2)
    if pool == "mean":  # the mean of stochastic rows is a distribution over the keys
        torch.testing.assert_close(relevance.sum(-1), torch.ones(3))


def test_vit_has_class_token_only_with_cls_pooling():
    assert ViT(ViTConfig(pool="cls", dim=16, heads=2, depth=1)).cls_token is not None
    assert ViT(ViTConfig(pool="mean", dim=16, heads=2, depth=1)).cls_token is None


def test_vit_conv_stem_downsamples_to_a_7x7_grid():
    model = ViT(ViTConfig(stem_channels=16, dim=32, heads=2, depth=1))
    assert model.stem(torch.rand(2, 1, 28, 28)).shape == (2, 16, 7, 7)
    assert model.pos_embed.shape == (1, 49, 32)


@pytest.mark.parametrize("patch", [5, 3, 8])
def test_vit_patch_size_must_divide_28(patch):
    with pytest.raises(ValueError, match=f"patch size {patch} does not divide the image size 28"):
        ViTConfig(patch_size=patch, stem_channels=0)


@pytest.mark.parametrize("patch", [2, 4, 14])
def test_vit_patch_size_must_divide_the_stem_output(patch):
    with pytest.raises(ValueError, match=f"patch size {patch} does not divide the conv stem's output size 7; "
                                         "choose one of 1, 7"):
        ViTConfig(patch_size=patch)


def test_vit_stem_channels_must_be_a_multiple_of_4():
    with pytest.raises(ValueError, match="stem channels must be 0 or a positive multiple of 4, got 6"):
        ViTConfig(stem_channels=6)


def test_vit_dim_must_divide_by_heads():
    with pytest.raises(ValueError, match="embedding size 30 is not divisible by 4 heads"):
        ViTConfig(dim=30, heads=4)


def test_attention_rollout_rows_are_distributions_and_identity_for_one_token():
    a = torch.softmax(torch.randn(2, 3, 5, 5), -1)
    r = attention_rollout([a, a, a])
    assert r.shape == (2, 5, 5)
    torch.testing.assert_close(r.sum(-1), torch.ones(2, 5))
    # With attention that only looks at itself, rollout is the identity.
    eye = torch.eye(5).expand(2, 3, 5, 5)
    torch.testing.assert_close(attention_rollout([eye, eye]), torch.eye(5).expand(2, 5, 5))


# ---- the sequence task ------------------------------------------------------------------------

def test_make_task_targets_and_sources():
    x, y = make_task("reverse", 4, 6, torch.Generator().manual_seed(0))
    assert torch.equal(y, x.flip(1))
    assert torch.equal(x.gather(1, source_positions("reverse", x)), y)
    x, y = make_task("sort", 4, 6, torch.Generator().manual_seed(0))
    assert torch.all(y[:, 1:] >= y[:, :-1])
    assert torch.equal(x.gather(1, source_positions("sort", x)), y)


def test_tiny_transformer_overfits_a_reversal_batch():
    """64 reversal sequences, 300 Adam steps: the loss falls by at least 20x (from ~ln 10)."""
    torch.manual_seed(0)
    x, y = make_task("reverse", 64, 6, torch.Generator().manual_seed(1))
    model = SequenceTransformer(SequenceModelConfig(length=6, dim=32, depth=1, heads=2))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss():
        return F.cross_entropy(model(x).flatten(0, 1), y.flatten())

    first = loss().item()
    for _ in range(300):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
    last = loss().item()
    assert first > 2.0
    assert last < first / 20, (first, last)
    assert (model(x).argmax(-1) == y).float().mean() > 0.99


def test_head_values_reproduce_the_block_output():
    """The gate figure's numbers are the network's: Σ_j α_j v_j through out_proj is the attention output."""
    torch.manual_seed(0)
    model = SequenceTransformer(SequenceModelConfig(length=5, dim=16, depth=2, heads=2)).eval()
    tokens = torch.randint(0, 10, (1, 5))
    block = model.blocks[1]
    captured = {}
    block.register_forward_pre_hook(lambda mod, args: captured.setdefault("x", args[0]))
    with torch.no_grad():
        model(tokens)
        expected, _ = block.attn(block.norm1(captured["x"]))  # (1, L, E)
    outputs = [head_values(model, tokens, 1, h)[2] for h in range(2)]  # 2 x (L, d)
    weights, values, _ = head_values(model, tokens, 1, 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(5))
    assert values.shape == (5, 8)
    with torch.no_grad():
        rebuilt = block.attn.out_proj(torch.cat(outputs, dim=-1))
    torch.testing.assert_close(rebuilt, expected[0], atol=1e-5, rtol=1e-5)


# ---- the commands -----------------------------------------------------------------------------

def _summary(folder):
    return json.loads((folder / "summary.json").read_text())


def test_vit_command_tiny(tmp_path):
    out = tmp_path / "vit"
    # 141 steps of 64 digits: a one-block ViT well above chance (measured 0.67 test accuracy)
    code = main(["vit", "--dataset", "mnist-embedded", "--limit", "3000", "--epochs", "3", "--batch-size", "64",
                 "--dim", "32", "--depth", "1", "--heads", "2", "--patch-size", "1", "--stem-channels", "16",
                 "--warmup-steps", "10", "--lr", "3e-3", "--device", "cpu", "--threads", "1", "--out", str(out)])
    assert code == 0
    for name in ("attention_maps.png", "attention_rollout.png", "accuracy_curve.png", "summary.json",
                 "metrics.jsonl", "model.safetensors", "config.json"):
        assert (out / name).is_file(), name
    s = _summary(out)
    assert classifier_learned(s["test_accuracy"], chance=0.1, margin=0.3), s["test_accuracy"]
    assert s["test_images"] == 1000 and s["train_images"] == 3000
    assert s["params"] > 0 and s["model"]["patch_size"] == 1 and s["recipe"]["threads"] == 1
    assert len(s["history"]) == 3 and "test_accuracy" in s["history"][0]
    # the same check on an untrained ViT of the same shape fails
    from connlab.data import load_dataset, to_unit

    torch.manual_seed(0)
    untrained = ViT(ViTConfig(dim=32, depth=1, heads=2, patch_size=1, stem_channels=16)).eval()
    data = load_dataset("mnist-embedded", None, 100)
    with torch.no_grad():
        accuracy = (untrained(to_unit(data.test_images)).argmax(1) == data.test_labels).float().mean().item()
    assert not classifier_learned(accuracy, chance=0.1, margin=0.3), accuracy


def test_vit_command_mean_pooling_plain(tmp_path):
    out = tmp_path / "vit-mean"
    code = main(["vit", "--dataset", "mnist-embedded", "--limit", "128", "--epochs", "1", "--dim", "16",
                 "--depth", "1", "--heads", "2", "--patch-size", "14", "--stem-channels", "0", "--pool", "mean",
                 "--device", "cpu", "--out", str(out)])
    assert code == 0
    assert (out / "attention_maps.png").is_file() and _summary(out)["model"]["pool"] == "mean"


def test_attention_command_tiny_learns_reversal(tmp_path):
    out = tmp_path / "att"
    code = main(["attention", "--length", "5", "--train-size", "2000", "--test-size", "200", "--epochs", "4",
                 "--dim", "32", "--depth", "1", "--heads", "2", "--warmup-steps", "10", "--lr", "3e-3",
                 "--device", "cpu", "--out", str(out)])
    assert code == 0
    for name in ("attention_patterns.png", "softmax_gate.png", "accuracy_curve.png", "summary.json"):
        assert (out / name).is_file(), name
    s = _summary(out)
    assert 0.0 <= s["sequence_accuracy"] <= s["test_accuracy"] <= 1.0
    chance = s["chance_token_accuracy"]
    assert classifier_learned(s["test_accuracy"], chance, margin=chance)  # twice chance after 64 steps
    from connlab.experiments.attention import TEST_SEED

    torch.manual_seed(0)
    untrained = SequenceTransformer(SequenceModelConfig(length=5, dim=32, depth=1, heads=2)).eval()
    x, y = make_task("reverse", 200, 5, torch.Generator().manual_seed(TEST_SEED))
    with torch.no_grad():
        untrained_accuracy = (untrained(x).argmax(-1) == y).float().mean().item()
    assert not classifier_learned(untrained_accuracy, chance, margin=chance)
    assert s["weight_on_source"]["best_layer"] == 0


def test_attention_command_sort_runs(tmp_path):
    out = tmp_path / "sort"
    code = main(["attention", "--task", "sort", "--length", "4", "--train-size", "256", "--test-size", "50",
                 "--epochs", "1", "--dim", "16", "--depth", "1", "--heads", "1", "--device", "cpu",
                 "--out", str(out)])
    assert code == 0 and _summary(out)["task"] == "sort"


@pytest.mark.parametrize("argv, words", [
    (["vit", "--patch-size", "5"], "patch size 5 does not divide"),
    (["vit", "--dim", "30", "--heads", "4"], "embedding size 30 is not divisible by 4 heads"),
    (["attention", "--dim", "30", "--heads", "4"], "embedding size 30 is not divisible by 4 heads"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, words):
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err
    assert not (tmp_path / "run").exists()  # refused before a run folder is made


def test_vit_command_stores_the_ink_ratio_evidence(tmp_path):
    """The strokes claim is measured on every test digit and stored for the page, which reads it back."""
    from connlab.evidence import Evidence
    from connlab.experiments.section import load_run
    from connlab.experiments.vit import INK_RATIO_THRESHOLD, section

    out = tmp_path / "vit-ink"
    code = main(["vit", "--dataset", "mnist-embedded", "--limit", "256", "--epochs", "1", "--dim", "16",
                 "--depth", "1", "--heads", "2", "--stem-channels", "8", "--device", "cpu", "--threads", "1",
                 "--out", str(out)])
    assert code == 0
    ink = _summary(out)["attention_ink_ratio"]
    ev = Evidence.from_dict(ink["evidence"])
    assert ev.n >= 100 and ink["digits"] == 1000 and ink["threshold"] == INK_RATIO_THRESHOLD
    assert abs(ev.effect + INK_RATIO_THRESHOLD - ink["mean"]) < 1e-6
    sec = section(load_run(out))
    assert "test digits" in sec.rule and f"{INK_RATIO_THRESHOLD:g}" in sec.rule and "n = 1000 test digits" in sec.effect


def _vit_folder(tmp_path, summary):
    folder = tmp_path / "vit-fake"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"experiment": "vit", "config": {}}))
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


@pytest.mark.parametrize("ratios, accuracy, verdict", [
    ([1.6, 1.62, 1.65, 1.58, 1.61] * 30, 0.97, "supported"),
    ([1.0, 1.01, 0.99, 1.0, 1.02] * 30, 0.97, "contradicted"),      # an untrained net's ratios: ≈ 1 < 1.1
    ([1.6, 1.62, 1.65, 1.58, 1.61] * 30, 0.50, "not supported at this budget"),  # a net that does not classify
    (None, 0.97, "not measured"),                                     # an old folder: no interval stored
])
def test_vit_verdict_comes_from_the_ink_ratio_rule(tmp_path, ratios, accuracy, verdict):
    from connlab.experiments.section import load_run
    from connlab.experiments.vit import INK_RATIO_THRESHOLD, section
    from connlab.measures import attention_on_strokes

    summary = {"experiment": "vit", "test_accuracy": accuracy}
    if ratios is not None:
        ev = attention_on_strokes(torch.tensor(ratios), threshold=INK_RATIO_THRESHOLD)
        summary["attention_ink_ratio"] = {"mean": sum(ratios) / len(ratios), "evidence": ev.as_dict()}
    sec = section(load_run(_vit_folder(tmp_path, summary)))
    assert sec.verdict == verdict
    assert ("rerun" in sec.effect) == (ratios is None)


def test_attention_section_states_its_rule(tmp_path):
    from connlab.experiments.attention import ATTENTION_TARGET, section
    from connlab.experiments.section import load_run

    folder = tmp_path / "att-fake"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"experiment": "attention", "config": {}}))
    for acc, verdict in ((ATTENTION_TARGET + 0.01, "supported"), (ATTENTION_TARGET - 0.01,
                                                                  "not supported at this budget")):
        (folder / "summary.json").write_text(json.dumps({"test_accuracy": acc, "test_sequences": 1000}))
        sec = section(load_run(folder))
        assert sec.verdict == verdict and "1000 held-out test sequences" in sec.rule and "n = 1000" in sec.effect
