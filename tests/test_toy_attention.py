"""The course's toy attention head: its network, loss, floor, training schedule, command and page section."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from connlab.cli import main
from connlab.models.toy_attention import (SENTENCES, TOKENS, ToyAttentionModel, ToyHeadConfig, ToyHeadStack, corpus,
                                          encode, generate, keras_sparse_ce, loss_floor, p_object_at_the, prefix_probs)
from connlab.nn.attention import AttentionHead
from connlab.train.full_batch import Phase, Plateau, train_full_batch


def test_parameter_count_is_the_course_s_413_at_h20():
    # Keras' summary: XEmbed 49, PosEmbed 35, Qmat 140, Kmat 140, Vmat 49
    assert sum(p.numel() for p in ToyAttentionModel(ToyHeadConfig(20)).parameters()) == 413
    for h in (10, 40):
        assert sum(p.numel() for p in ToyAttentionModel(ToyHeadConfig(h)).parameters()) == 49 + 35 + 2 * 7 * h + 49


def test_corpus_targets_are_the_next_token_and_start_last():
    x, y = corpus()
    assert [TOKENS[t] for t in x[0]] == SENTENCES[0].split()
    assert [TOKENS[t] for t in y[1]] == ["woman", "ordered", "the", "beef", "<Start>"]
    with pytest.raises(ValueError, match="'dog' is not one of the tokens"):
        encode("<Start> dog")


def test_floor_is_ln2_over_5():
    assert loss_floor() == pytest.approx(math.log(2) / 5, abs=1e-12)
    # One sentence: nothing is uncertain; the same sentence twice is no different.
    assert loss_floor(SENTENCES[:1]) == 0.0


def test_head_matches_torch_sdpa_causal_and_unmasked():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 7)
    for causal in (True, False):
        head = AttentionHead(7, 20, 7, causal=causal)
        out, weights = head(x)
        want = F.scaled_dot_product_attention(head.q(x), head.k(x), head.v(x), is_causal=causal)
        torch.testing.assert_close(out, want)
        torch.testing.assert_close(weights.sum(-1), torch.ones(3, 5))
        if causal:
            assert torch.all(weights.triu(1) == 0)


def test_causal_head_never_sees_the_future_and_the_unmasked_one_does():
    x, _ = corpus()
    changed = x.clone()
    changed[:, 4] = TOKENS.index("man")        # change the last token only
    for causal, sees in ((True, False), (False, True)):
        torch.manual_seed(1)
        m = ToyAttentionModel(ToyHeadConfig(causal=causal))
        with torch.no_grad():
            diff = (m(x)[:, :4] - m(changed)[:, :4]).abs().max().item()
        assert (diff > 1e-6) == sees, (causal, diff)


def test_course_loss_is_softmax_ce_on_the_sigmoid_input():
    # At z = 0 every token is equally likely: ln 7 per token (the notebook's first epoch: 1.9466).
    z = torch.zeros(2, 5, 7)
    _, y = corpus()
    assert keras_sparse_ce(z, y).mean().item() == pytest.approx(math.log(7))
    z = torch.randn(2, 5, 7)
    torch.testing.assert_close(keras_sparse_ce(z, y).mean(), F.cross_entropy(z.flatten(0, 1), y.flatten()))


def test_stack_copies_are_the_single_models():
    cfgs = [ToyHeadConfig(20), ToyHeadConfig(10), ToyHeadConfig(40, causal=False), ToyHeadConfig(20, attention=False)]
    stack = ToyHeadStack(cfgs, [3, 3, 4, 5])
    x, y = corpus()
    z, w = stack(x)
    for k, cfg in enumerate(cfgs):
        torch.manual_seed([3, 3, 4, 5][k])
        alone = ToyAttentionModel(cfg)
        torch.testing.assert_close(z[k], alone(x))
        torch.testing.assert_close(w[k], alone.last_attention)
    # Training the stack trains each copy as it would train alone.
    train_full_batch(list(stack.parameters()), lambda: stack.losses(x, y), [Phase(5)], 0.1)
    torch.manual_seed(4)
    alone = ToyAttentionModel(cfgs[2])
    opt = torch.optim.SGD(alone.parameters(), lr=0.1)
    for _ in range(5):
        opt.zero_grad()
        keras_sparse_ce(alone(x), y).mean().backward()
        opt.step()
    torch.testing.assert_close(stack.module(2)(x), alone(x), atol=1e-5, rtol=1e-5)


def test_plateau_follows_keras():
    # A loss that never improves after its first epoch (which beats the initial best, inf): the LR falls after
    # every `patience` = 10 epochs without improvement, 0.01 -> 0.002 -> 0.0004 -> 0.0001, then stays.
    w = torch.zeros(2, 1, requires_grad=True)
    out = train_full_batch([w], lambda: (w * 0).sum(1) + 1.0, [Phase(50, Plateau())], 0.01)
    assert out["reductions"][0] == [(0, 11), (0, 21), (0, 31)]
    assert out["lr"].tolist() == pytest.approx([1e-4, 1e-4])
    # A steadily improving loss never triggers it.
    v = torch.ones(1, 1, requires_grad=True)
    out = train_full_batch([v], lambda: (v ** 2).sum(1), [Phase(30, Plateau())], 0.01)
    assert out["reductions"] == [[]]


@pytest.fixture(autouse=True)
def one_thread():
    """Tensors of a few hundred numbers: a second thread only adds synchronisation (as run_toy does)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _trained(seed: int, steps: int) -> ToyAttentionModel:
    x, y = corpus()
    stack = ToyHeadStack([ToyHeadConfig()], [seed])
    train_full_batch(list(stack.parameters()), lambda: stack.losses(x, y), [Phase(steps)], 0.03, optimizer="adam")
    return stack.module(0)


def head_learned(model) -> bool:
    """The learning check: loss within 0.02 of the floor and the right object at `the` with P > 0.9."""
    x, y = corpus()
    with torch.no_grad():
        loss = keras_sparse_ce(model(x), y).mean().item()
        p = p_object_at_the(model.next_token_probs(x)).item()
    return loss < loss_floor() + 0.02 and p > 0.9


def test_trained_head_reaches_the_floor_and_an_untrained_one_does_not():
    assert not head_learned(_trained(1, 0))
    model = _trained(1, 600)
    assert head_learned(model)
    assert generate(model, "woman") == "<Start> woman ordered the beef".split()
    # causal: what generation sees is what training saw
    x, _ = corpus()
    torch.testing.assert_close(prefix_probs(model, x), model.next_token_probs(x).detach())


def test_preset_course_and_task_toy_fill_only_what_is_not_given():
    import argparse

    from connlab.experiments.attention import AttentionExperiment, config_from_args

    def cfg(*argv):
        p = argparse.ArgumentParser()
        AttentionExperiment.add_flags(p)
        return config_from_args(p.parse_args(list(argv)))

    c = cfg("--preset", "course")
    assert (c.task, c.lr, c.batch_size, c.epochs, c.seeds, c.head_size) == ("toy", 0.01, 2, 5000, 10, 20)
    c = cfg("--task", "toy", "--seeds", "2", "--lr", "0.05")
    assert (c.task, c.lr, c.epochs, c.seeds) == ("toy", 0.05, 5000, 2)
    assert cfg().task == "reverse" and cfg().lr == 2e-3


def test_toy_refuses_another_batch_size(capsys):
    assert main(["attention", "--task", "toy", "--batch-size", "4"]) == 2
    assert "batch of 2" in capsys.readouterr().err


def test_command_summary_contract_and_section(tmp_path):
    from connlab.experiments.attention import section
    from connlab.experiments.section import load_run
    from connlab.report.page import render

    out = tmp_path / "toy"
    assert main(["attention", "--preset", "course", "--epochs", "30", "--seeds", "2", "--sweep", "10,20",
                 "--block-steps", "3", "--out", str(out)]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["loss_floor"] == pytest.approx(math.log(2) / 5)
    assert [r["seed"] for r in s["seeds"]] == [0, 1]
    for r in s["seeds"]:
        assert 0 < r["final_loss"] < 3 and 0 <= r["p_object_at_the"] <= 1
    assert set(s["variants"]) == {"head", "no_attention", "unmasked", "h10"}
    assert set(s["claims"]) == {"reproduction", "attention", "unmasked_below_floor", "unmasked_generation"}
    weights = json.loads((out / "toy_head.json").read_text())
    assert len(weights["wq"]) == 7 and len(weights["wq"][0]) == 20
    sec = section(load_run(out))
    assert [name for name, _ in sec.figures][:3] == ["toy_head.png", "toy_loss.png", "toy_unmasked.png"]
    assert "0.1619" in sec.tables[0].rows[1][1] and "ln 2 / 5" in sec.tables[0].rows[3][0]
    html = render([sec], None, {})
    assert "why GPT masks" in html and "no_attention" in html and "TransformerBlock" in html
