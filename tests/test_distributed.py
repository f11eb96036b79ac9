"""connlab under torchrun: two CPU processes (gloo) against one process.

The torchrun tests start ``python -m torch.distributed.run --standalone --nproc_per_node 2``
(a free port is picked by torchrun) and take 20-60 s each on 2 busy cores; the rest are
in-process checks of the batch-shard helpers.

Global batch 133 on 400 images gives batches of 133, 133, 133 and 1 row: the ranks hold
66 / 67 rows, and in the last batch rank 0 has none (it borrows a row with weight 0), so
the loss weighting is exercised, not only the even split.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from connlab.runtime import distributed as dp

AE = ["autoencoder", "--device", "cpu", "--dataset", "mnist-embedded", "--epochs", "1", "--limit", "400",
      "--batch-size", "133", "--skip", "none", "--checkpoint-every", "2"]
WEIGHTS = Path("variants") / "none-seed0" / "model.safetensors"
TIMEOUT = 300  # seconds per launch: a hang fails the test instead of the CI job


def _env(cache: Path, **extra) -> dict:
    env = {**os.environ, "CONNLAB_DATA": str(cache), "CONNLAB_MIRRORS": ""}
    env.pop(dp.KILL_HOOK, None)
    env.update(extra)
    return env


def _connlab(argv, env, ranks: int | None = 2) -> subprocess.CompletedProcess:
    """``connlab ARGV`` under torchrun with ``ranks`` processes, or plainly with ``ranks=None``."""
    launch = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks)]
              if ranks else [sys.executable])
    return subprocess.run([*launch, "-m", "connlab", *argv], env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)


def _max_difference(a: Path, b: Path) -> float:
    wa, wb = load_file(str(a)), load_file(str(b))
    assert wa.keys() == wb.keys()
    return max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same autoencoder run in one process and under torchrun with two ranks."""
    root = tmp_path_factory.mktemp("ddp")
    env = _env(root / "cache", OMP_NUM_THREADS="1")
    single = _connlab([*AE, "--out", str(root / "single")], env, ranks=None)
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = _connlab([*AE, "--out", str(root / "ddp")], env)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    return root, ddp


def test_two_ranks_train_the_single_process_model(runs):
    root, _ = runs
    # same global batches, same noise: equal up to float summation order (Adam amplifies it a little)
    assert _max_difference(root / "single" / WEIGHTS, root / "ddp" / WEIGHTS) < 1e-4
    single = json.loads((root / "single" / "summary.json").read_text())["variants"]["none"]
    ddp = json.loads((root / "ddp" / "summary.json").read_text())["variants"]["none"]
    assert ddp["test_bce"] == pytest.approx(single["test_bce"], abs=1e-4)


def test_rank_zero_alone_writes_and_prints(runs):
    root, proc = runs
    lines = (root / "ddp" / "variants" / "none-seed0" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["step"] == 4  # one epoch, one line, not interleaved
    assert proc.stdout.count("| skip=none |") == 1  # the table once: rank 1 prints nothing
    assert proc.stderr.count("none seed 0 epoch 1/1") == 1
    names = [p.name for p in (root / "ddp").rglob("*")]
    assert not [n for n in names if n.startswith(".")], names  # no temporary files left behind
    spread = json.loads((root / "ddp" / "config.json").read_text())["distributed"]
    assert spread["world_size"] == 2 and spread["global_batch_size"] == 133
    assert spread["per_rank_batch_size"] == [66, 67] and spread["lr_scaling"].startswith("none")
    assert json.loads((root / "single" / "config.json").read_text())["distributed"]["world_size"] == 1


def test_killed_rank_stops_the_job_and_resume_finishes_it(runs, tmp_path):
    root, _ = runs
    out = tmp_path / "run"
    killed = _connlab([*AE, "--out", str(out)], _env(root / "cache", **{dp.KILL_HOOK: "1:3"}))
    assert killed.returncode != 0
    assert "rank 1 kills itself after step 3" in killed.stderr
    assert "SIGKILL" in killed.stderr or "lost contact with another rank" in killed.stderr
    ckpts = out / "variants" / "none-seed0" / "checkpoints"
    assert [p.name for p in ckpts.iterdir() if not p.name.startswith(".")] == ["step-0000002"]
    assert not (out / WEIGHTS).exists()

    resumed = _connlab([*AE, "--resume", "--out", str(out)], _env(root / "cache"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # checkpointed noise generator and optimizer: exactly the uninterrupted two-rank run
    assert _max_difference(out / WEIGHTS, root / "ddp" / WEIGHTS) == 0.0
    assert len((out / "variants" / "none-seed0" / "metrics.jsonl").read_text().splitlines()) == 1


DRIVER = '''
import json
import sys
from connlab import cli
from connlab.runtime import distributed

distributed.init_from_env()
cleanup, distributed.cleanup = distributed.cleanup, lambda: None  # one process group for every command
out, commands = sys.argv[1], json.loads(sys.argv[2])
failed = [argv[0] for argv in commands if cli.main([*argv, "--out", f"{out}/{argv[0]}"]) != 0]
if cli.main(["data", "--dataset", "mnist-embedded"]) != 2:
    failed.append("data under torchrun is refused")
cleanup()
print("FAILED", failed, file=sys.stderr)
sys.exit(1 if failed else 0)
'''

TINY_COMMANDS = [
    ["classifier", "--dataset", "mnist-embedded", "--limit", "200", "--epochs", "1", "--device", "cpu"],
    ["diffusion", "train", "--dataset", "mnist-embedded", "--limit", "200", "--epochs", "1", "--batch-size", "64",
     "--base-channels", "8", "--channel-mults", "1", "--timesteps", "20", "--eval-num", "20", "--eval-steps", "5",
     "--space", "latent", "--ae-epochs", "1", "--class-cond", "--device", "cpu", "--classifier", "CLASSIFIER"],
    ["ladder", "--dataset", "mnist-embedded", "--steps", "3", "--epochs", "1", "--limit", "200", "--batch-size", "63",
     "--eval-images", "20", "--device", "cpu"],
    ["gates", "--epochs", "1", "--train-points", "256", "--device", "cpu"],
    ["rnn", "--lengths", "4", "--models", "gru", "--train-size", "128", "--test-size", "64", "--epochs", "1",
     "--hidden", "4", "--device", "cpu"],
    ["depth", "--depths", "1", "--width", "2", "--epochs", "1", "--limit", "100", "--device", "cpu"],
    ["skipmlp", "--epochs", "1", "--limit", "200", "--seeds", "1", "--hidden", "8", "--device", "cpu"],
    ["vit", "--dataset", "mnist-embedded", "--limit", "128", "--epochs", "1", "--batch-size", "64", "--dim", "16",
     "--depth", "1", "--heads", "2", "--patch-size", "7", "--stem-channels", "4", "--device", "cpu"],
    ["attention", "--length", "4", "--train-size", "256", "--test-size", "50", "--epochs", "1", "--dim", "16",
     "--depth", "1", "--heads", "2", "--device", "cpu"],
]


def test_every_training_command_runs_on_two_ranks(tmp_path):
    """Each training command at its tiniest, all in one torchrun launch (one start-up for all)."""
    out = tmp_path / "runs"
    commands = [[str(out / "classifier") if a == "CLASSIFIER" else a for a in argv] for argv in TINY_COMMANDS]
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(driver), str(out), json.dumps(commands)],
                          env=_env(tmp_path / "cache"), capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for argv in TINY_COMMANDS:
        folder = out / argv[0]
        assert (folder / "summary.json").is_file(), argv[0]
        for metrics in folder.rglob("metrics.jsonl"):
            lines = metrics.read_text().splitlines()
            assert len(lines) == len(set(lines)) == len({json.loads(x)["epoch"] for x in lines}), metrics


# --- in-process: the helpers that keep every rank's noise in step ---------------------------

def test_batch_noise_outside_a_shard_is_plain_torch():
    for draw, plain in ((lambda g: dp.batch_randn((5, 3), generator=g), lambda g: torch.randn((5, 3), generator=g)),
                        (lambda g: dp.batch_rand((5, 3), generator=g), lambda g: torch.rand((5, 3), generator=g)),
                        (lambda g: dp.batch_randint(0, 9, (5,), generator=g),
                         lambda g: torch.randint(0, 9, (5,), generator=g))):
        assert torch.equal(draw(torch.Generator().manual_seed(1)), plain(torch.Generator().manual_seed(1)))


def test_batch_noise_inside_a_shard_is_the_global_draw_cut():
    g = torch.Generator().manual_seed(2)
    full = torch.randn((7, 3), generator=g)
    after = torch.randn(1, generator=g)
    g = torch.Generator().manual_seed(2)
    with dp.batch_shard(dp.BatchShard(rows=7, start=3, stop=7)):
        part = dp.batch_randn((4, 3), generator=g)
        assert dp.batch_rows(4) == 7 and torch.equal(dp.own_rows(full), full[3:])
        with pytest.raises(AssertionError):
            dp.batch_randn((5, 3), generator=g)
    assert torch.equal(part, full[3:7])
    assert torch.equal(torch.randn(1, generator=g), after)  # the generator advanced as for the whole batch


def test_shards_cover_the_batch_and_weights_give_the_global_mean():
    for rows in (1, 2, 7, 133):
        for w in (2, 3, 8):
            slices = [dp.shard_rows(rows, r, w) for r in range(w)]
            assert slices[0][0] == 0 and slices[-1][1] == rows
            assert all(a[1] == b[0] for a, b in zip(slices, slices[1:]))
            # W·b_r/b, averaged over the ranks, weights each row by 1/b
            assert sum(w * (stop - start) / rows for start, stop in slices) / w == pytest.approx(1.0)
    assert dp.local_shard(5) == (dp.BatchShard(5, 0, 5), 1.0)  # one process: the whole batch


def test_one_process_is_not_distributed(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert dp.init_from_env() is False and dp.world_size() == 1 and dp.is_main()
    assert dp.describe(128)["per_rank_batch_size"] == 128
    monkeypatch.setenv(dp.KILL_HOOK, "1:3")
    dp.kill_hook(3)  # rank 0 here: nothing happens
