import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from connlab.checkpoint import list_checkpoints, load_weights, model_signature, read_checkpoint
from connlab.errors import UserError
from connlab.train import TrainConfig, TrainingDiverged, fit


class Tiny(nn.Module):
    def __init__(self, width=16):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, width), nn.ReLU(), nn.Dropout(0.1), nn.Linear(width, 1))

    def forward(self, x):
        return self.net(x)


def make_data(n=40):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return (x, x.sum(1, keepdim=True))


def noisy_loss(model, batch, generator):
    x, y = batch
    x = x + 0.1 * torch.randn(x.shape, generator=generator)  # exercises the checkpointed generator
    return nn.functional.mse_loss(model(x), y)


CFG = TrainConfig(epochs=2, batch_size=8, lr=1e-2, seed=3, device="cpu", checkpoint_every=3)


def train(out, resume=False, loss=noisy_loss, cfg=CFG, width=16):
    torch.manual_seed(0)
    model = Tiny(width)
    result = fit(model, loss, make_data(), cfg, out, model_config={"width": width}, resume=resume)
    return model, result


class Interrupt(Exception):
    pass


def test_resume_gives_bitwise_identical_weights(tmp_path):
    whole, result = train(tmp_path / "whole")
    assert result.steps == 10 and len(result.history) == 2

    calls = {"n": 0}

    def interrupted_loss(model, batch, generator):
        calls["n"] += 1
        if calls["n"] == 8:  # mid-epoch 2; the newest checkpoint is at step 6
            raise Interrupt
        return noisy_loss(model, batch, generator)

    with pytest.raises(Interrupt):
        train(tmp_path / "split", loss=interrupted_loss)
    assert list_checkpoints(tmp_path / "split" / "checkpoints")[-1].name == "step-0000006"
    resumed, result2 = train(tmp_path / "split", resume=True)
    assert result2.resumed_from.endswith("step-0000006")
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert [h["train_loss"] for h in result.history] == [h["train_loss"] for h in result2.history]
    lines = (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2


def _interrupted_at_step_7(out):
    calls = {"n": 0}

    def interrupted_loss(model, batch, generator):
        calls["n"] += 1
        if calls["n"] == 8:  # mid-epoch 2; checkpoints kept: step 5 (epoch end) and step 6
            raise Interrupt
        return noisy_loss(model, batch, generator)

    with pytest.raises(Interrupt):
        train(out, loss=interrupted_loss)
    return [p.name for p in list_checkpoints(out / "checkpoints")]


@pytest.mark.parametrize("broken", ["model.safetensors", "state.pt"])
def test_resume_falls_back_to_the_older_checkpoint_when_the_newest_is_unreadable(tmp_path, capsys, broken):
    whole, result = train(tmp_path / "whole")
    out = tmp_path / "split"
    assert _interrupted_at_step_7(out) == ["step-0000005", "step-0000006"]
    newest = out / "checkpoints" / "step-0000006" / broken
    newest.write_bytes(newest.read_bytes()[:100])  # truncated, as by a full disk or a copy cut short
    capsys.readouterr()

    resumed, result2 = train(out, resume=True)
    notice = [line for line in capsys.readouterr().err.splitlines() if "resuming from the checkpoint before" in line]
    assert len(notice) == 1 and "step-0000006" in notice[0] and broken in notice[0]
    assert result2.resumed_from.endswith("step-0000005")
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name  # the run continued from step 5 exactly
    assert [h["train_loss"] for h in result.history] == [h["train_loss"] for h in result2.history]


def test_resume_with_every_checkpoint_unreadable_is_one_user_error(tmp_path):
    out = tmp_path / "split"
    for name in _interrupted_at_step_7(out):
        path = out / "checkpoints" / name / "model.safetensors"
        path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(UserError, match="step-0000005/model.safetensors: not a readable safetensors file"):
        train(out, resume=True)


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    model, _ = train(tmp_path)
    model.eval()
    fresh = Tiny()
    load_weights(fresh, tmp_path / "model.safetensors", model_signature(model, {"width": 16}))
    fresh.eval()
    x = torch.randn(5, 4)
    assert torch.equal(model(x), fresh(x))


def test_resume_without_checkpoint_or_of_another_model_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no checkpoint"):
        train(tmp_path / "empty", resume=True)
    train(tmp_path / "a")
    with pytest.raises(UserError, match="checkpoint of another model"):
        train(tmp_path / "a", resume=True, width=32)
    with pytest.raises(UserError, match="already holds checkpoints"):
        train(tmp_path / "a")


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path):
    calls = {"n": 0}

    def exploding(model, batch, generator):
        calls["n"] += 1
        loss = noisy_loss(model, batch, generator)
        return loss * float("nan") if calls["n"] >= 4 else loss

    cfg = TrainConfig(epochs=2, batch_size=8, lr=1e-2, device="cpu", checkpoint_every=3, sync_every=1)
    with pytest.raises(TrainingDiverged, match="loss is nan by step 4"):
        train(tmp_path, loss=exploding, cfg=cfg)
    kept = list_checkpoints(tmp_path / "checkpoints")
    assert [p.name for p in kept] == ["step-0000003"]
    model = Tiny()
    state = read_checkpoint(kept[-1], model, model_signature(model, {"width": 16}))
    assert state["step"] == 3
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert not (tmp_path / "model.safetensors").exists()


def test_training_reduces_loss(tmp_path):
    cfg = TrainConfig(epochs=8, batch_size=8, lr=1e-2, device="cpu")
    _, result = train(tmp_path, cfg=cfg)
    assert result.history[-1]["train_loss"] < 0.3 * result.history[0]["train_loss"]


KILL_SCRIPT = textwrap.dedent("""
    import sys, time, torch
    import connlab.checkpoint as ck
    from tests.test_train import Tiny, make_data, noisy_loss
    from connlab.train import TrainConfig, fit

    original = ck._write_checkpoint_files
    writes = {"n": 0}

    def slow_write(tmp, model, state, signature):
        writes["n"] += 1
        ck.save_weights(model, tmp / "model.safetensors", {"signature": signature})
        if writes["n"] == 3:          # the third checkpoint: weights written, state not yet
            print("MID-WRITE", flush=True)
            time.sleep(60)
        original(tmp, model, state, signature)

    ck._write_checkpoint_files = slow_write
    torch.manual_seed(0)
    fit(Tiny(), noisy_loss, make_data(), TrainConfig(epochs=2, batch_size=8, lr=1e-2, seed=3, device="cpu",
        checkpoint_every=1), sys.argv[1], model_config={"width": 16})
""")


def test_sigkill_during_checkpoint_write_leaves_previous_checkpoint_loadable(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(out)], stdout=subprocess.PIPE, text=True,
                            cwd=str(__import__("pathlib").Path(__file__).parents[1]))
    try:
        assert proc.stdout.readline().strip() == "MID-WRITE"
    finally:
        proc.kill()
        proc.wait()
    folder = out / "checkpoints"
    kept = list_checkpoints(folder)
    assert [p.name for p in kept] == ["step-0000001", "step-0000002"]
    assert any(p.name.startswith(".tmp-step-0000003") for p in folder.iterdir())  # the interrupted write
    model = Tiny()
    assert read_checkpoint(kept[-1], model, model_signature(model, {"width": 16}))["step"] == 2
    _, result = train(out, resume=True)  # and the run continues from it
    assert result.resumed_from.endswith("step-0000002") and result.steps == 10


def test_bad_train_config_values():
    with pytest.raises(UserError, match="--epochs must be >= 1"):
        TrainConfig(epochs=0)
    with pytest.raises(UserError, match="--precision"):
        TrainConfig(precision="fp8")


def test_keep_freed_memory_stops_page_faults_for_reallocated_tensors():
    """In a fresh process: 40 MB tensors freed and made again fault every page in anew
    (glibc mmaps them) until ``keep_freed_memory``; after it, once the heap has grown to
    fit them, they reuse it without a fault."""
    import subprocess
    import sys

    code = """
import resource, torch
from connlab.runtime.cpu_memory import keep_freed_memory

def faults(cycles=6):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(cycles):
        torch.empty(10_000_000).fill_(1.0)  # 40 MB, touched, freed at once
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults(1)
plain = faults()
applied = keep_freed_memory()
for _ in range(3):  # the heap grows until freed blocks fit the next aligned request
    faults()
print(applied, plain, faults())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    applied, plain, kept = out[0] == "True", int(out[1]), int(out[2])
    if not applied:
        pytest.skip("not glibc: mallopt is unavailable")
    if plain < 6 * 5000:  # ~10,000 4 KiB pages per 40 MB cycle; huge pages or another allocator fault less
        pytest.skip(f"freed 40 MB blocks do not fault per 4 KiB page here ({plain} faults in 6 cycles)")
    assert kept < plain / 10, (plain, kept)


def test_the_test_only_kill_hook_is_read_once_per_run_not_per_step(tmp_path, monkeypatch):
    from connlab.runtime import distributed as dp
    from connlab.train.callbacks import step_hooks

    reads = []
    real = dp.kill_hook_from_env
    monkeypatch.setattr(dp, "kill_hook_from_env", lambda: reads.append(1) or real())
    _, result = train(tmp_path / "a")
    assert result.steps == 10 and len(reads) == 1
    monkeypatch.delenv(dp.KILL_HOOK, raising=False)
    assert step_hooks() == []  # nothing is called per step unless the variable is set
    monkeypatch.setenv(dp.KILL_HOOK, "1:3")
    assert len(step_hooks()) == 1
    _, result = train(tmp_path / "b")  # rank 0 here: the hook for rank 1 never fires
    assert result.steps == 10


def test_atomic_writes_get_the_mode_a_plain_write_would(tmp_path):
    # mkstemp makes its file 0600; a report, summary or weights file must be readable as the umask allows
    import os

    from connlab.checkpoint import atomic_write_text, save_weights

    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic_write_text(tmp_path / "page.html", "<p>x</p>")
    save_weights(nn.Linear(2, 2), tmp_path / "model.safetensors")
    want = plain.stat().st_mode & 0o777
    for name in ("page.html", "model.safetensors"):
        assert (tmp_path / name).stat().st_mode & 0o777 == want, name
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
