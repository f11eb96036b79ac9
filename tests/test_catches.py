"""Expected failures are one-line user errors naming the file; anything else keeps its traceback."""

import zipfile

import pytest
import torch

from connlab.checkpoint import UnreadableCheckpoint, model_signature, read_checkpoint, save_weights


def _checkpoint(folder, state: bytes | None = None):
    model = torch.nn.Linear(2, 2)
    folder.mkdir()
    save_weights(model, folder / "model.safetensors", {"signature": model_signature(model)})
    torch.save({"step": 3}, folder / "state.pt")
    if state is not None:
        (folder / "state.pt").write_bytes(state)
    return model


def test_a_readable_checkpoint_gives_its_state(tmp_path):
    model = _checkpoint(tmp_path / "ok")
    assert read_checkpoint(tmp_path / "ok", model, model_signature(model))["step"] == 3


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[:40], "truncated or not written by torch.save"),
    (lambda b: b"", "truncated or not written by torch.save"),
])
def test_a_cut_training_state_is_an_unreadable_checkpoint(tmp_path, damage, message):
    good = tmp_path / "good"
    _checkpoint(good)
    model = _checkpoint(tmp_path / "bad", damage((good / "state.pt").read_bytes()))
    with pytest.raises(UnreadableCheckpoint, match=message) as err:
        read_checkpoint(tmp_path / "bad", model, model_signature(model))
    assert str(tmp_path / "bad" / "state.pt") in str(err.value)


def test_a_damaged_archive_keeps_its_cause(tmp_path):
    with zipfile.ZipFile(tmp_path / "state.zip", "w") as z:  # a zip, but not torch.save's layout
        z.writestr("archive/data.pkl", b"not a pickle")
    model = _checkpoint(tmp_path / "bad", (tmp_path / "state.zip").read_bytes())
    with pytest.raises(UnreadableCheckpoint, match="unreadable training state") as err:
        read_checkpoint(tmp_path / "bad", model, model_signature(model))
    assert err.value.__cause__ is not None  # the cause is chained, not dropped


def test_an_unexpected_error_while_loading_is_not_a_user_error(tmp_path, monkeypatch):
    model = _checkpoint(tmp_path / "ok")

    def broken(*args, **kwargs):
        raise TypeError("a bug in the loader")

    monkeypatch.setattr(torch, "load", broken)
    with pytest.raises(TypeError, match="a bug in the loader"):
        read_checkpoint(tmp_path / "ok", model, model_signature(model))


def test_demo_environment_keeps_a_bug_in_pick_device(monkeypatch):
    from connlab import demo
    from connlab.errors import UserError

    def missing(name):
        raise UserError(f"--device {name}: CUDA is not available on this machine")

    monkeypatch.setattr(demo, "pick_device", missing)
    assert demo.environment("cuda")["device"] == "cuda"  # a device this machine lacks: the name is recorded

    def bug(name):
        raise AttributeError("a bug")

    monkeypatch.setattr(demo, "pick_device", bug)
    with pytest.raises(AttributeError):
        demo.environment("auto")
