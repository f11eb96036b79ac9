"""Early stopping (Keras' rule) in the one loop: it stops, says where, and resumes bitwise."""

import json

import pytest
import torch
from torch import nn

from connlab.checkpoint import list_checkpoints
from connlab.errors import UserError
from connlab.train import EarlyStopping, TrainConfig, fit

RULE = EarlyStopping("val", patience=2)


def keras_stops(values, rule):
    """The epochs (1-based) after which the rule stops, fed ``values`` one epoch at a time."""
    state = rule.fresh_state()
    for epoch, v in enumerate(values, start=1):
        if rule.update(state, {"epoch": epoch, rule.monitor: v}):
            return epoch, state
    return None, state


def test_the_rule_is_keras_early_stopping_with_last_weights_kept():
    # Keras: wait += 1 each epoch, reset to 0 on an improvement, stop when wait >= patience
    assert keras_stops([3, 2, 2.5, 2.4, 1], EarlyStopping("val", patience=2))[0] == 4
    assert keras_stops([3, 2, 2.5, 1.9, 2.0, 1.8], EarlyStopping("val", patience=2))[0] is None
    epoch, state = keras_stops([1, 1, 1, 1, 1, 1], EarlyStopping("val", patience=5))
    assert epoch == 6 and state["best"] == 1 and state["best_epoch"] == 1   # equal is no improvement
    assert keras_stops([1, 0.95, 0.9], EarlyStopping("val", patience=1, min_delta=0.1))[0] == 2
    assert keras_stops([1, 2, 3], EarlyStopping("acc", patience=2, mode="max"))[0] is None
    with pytest.raises(KeyError, match="monitors 'val'"):
        RULE.update(RULE.fresh_state(), {"epoch": 1, "train_loss": 1.0})
    for bad in (dict(patience=0), dict(mode="lowest"), dict(min_delta=-1.0)):
        with pytest.raises(UserError):
            EarlyStopping("val", **bad)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))

    def forward(self, x):
        return self.net(x)


def data():
    x = torch.randn(24, 4, generator=torch.Generator().manual_seed(0))
    return (x, x.sum(1, keepdim=True))


def loss(model, batch, generator):
    x, y = batch
    return nn.functional.mse_loss(model(x + 0.1 * torch.randn(x.shape, generator=generator)), y)


CFG = TrainConfig(epochs=8, batch_size=8, lr=1e-2, seed=1, device="cpu", checkpoint_every=2)
SCRIPT = [5.0, 4.0, 4.5, 4.2, 4.1, 3.0, 2.0, 1.0]   # the watched metric per epoch: stops after epoch 4


class Interrupt(Exception):
    pass


def train(out, resume=False, rule=RULE, interrupt_at=None):
    torch.manual_seed(0)
    model = Tiny()
    calls = {"n": 0}

    def evaluate(m):
        calls["n"] += 1
        if calls["n"] == interrupt_at:
            raise Interrupt
        epoch = len(json.loads("[" + ",".join((out / "metrics.jsonl").read_text().splitlines()) + "]")) \
            if (out / "metrics.jsonl").exists() else 0
        return {"val": SCRIPT[epoch]}

    return model, fit(model, loss, data(), CFG, out, model_config={}, evaluate=evaluate, resume=resume,
                      early_stopping=rule)


def test_fit_stops_early_says_where_and_keeps_the_last_weights(tmp_path):
    model, result = train(tmp_path / "run")
    assert result.stopped_epoch == 4 and result.epochs == 4 and result.steps == 12
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2, 3, 4]
    assert lines[-1]["stopped_early"] is True and not any("stopped_early" in line for line in lines[:-1])
    # the weights written are the last epoch's, not the best's (restore_best_weights=False)
    assert list_checkpoints(tmp_path / "run" / "checkpoints")[-1].name == "step-0000012"
    without = fit(Tiny(), loss, data(), CFG, tmp_path / "plain", model_config={})
    assert without.stopped_epoch is None and without.epochs == 8


def test_early_stopping_resumes_bitwise_and_a_stopped_run_is_not_retrained(tmp_path):
    whole, result = train(tmp_path / "whole")
    with pytest.raises(Interrupt):
        train(tmp_path / "split", interrupt_at=4)    # in epoch 4's evaluation: the stop is not yet seen
    assert list_checkpoints(tmp_path / "split" / "checkpoints")[-1].name == "step-0000010"  # mid-epoch 4
    resumed, result2 = train(tmp_path / "split", resume=True)
    assert result2.stopped_epoch == 4 and result2.resumed_from.endswith("step-0000010")
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert [h["train_loss"] for h in result.history] == [h["train_loss"] for h in result2.history]
    again, result3 = train(tmp_path / "split", resume=True)   # finished: loaded, no further epoch
    assert result3.steps == 12 and result3.stopped_epoch == 4
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), again.state_dict().values()))
    with pytest.raises(UserError, match="same rule"):
        train(tmp_path / "split", resume=True, rule=None)
    with pytest.raises(UserError, match="started with early stopping"):
        train(tmp_path / "split", resume=True, rule=EarlyStopping("val", patience=3))
