"""Faults and bad input, by class: every bad flag, damaged files, outputs that cannot be written,
links planted at outputs, two processes on one folder, and kill/resume of every training command.

The CLI is driven in-process (``connlab.cli.main``): a bad input must give one line, exit 2, and leave
no run folder behind (so the corrected rerun is not refused).
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from connlab.cli import build_parser, main
from connlab.errors import UserError
from connlab.experiments import REGISTRY
from connlab.experiments.common import int_at_least, nonnegative_float, positive_float, seed_int

TRAINING = [name for name, e in REGISTRY.items() if e.config is not None]
COMMANDS = [["diffusion", a] for a in ("train", "sample", "eval")] + [[n] for n in REGISTRY if n != "diffusion"]


def one_line_error(capsys, *needles) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "error" in err and "Traceback" not in err
    for n in needles:
        assert n in err, err
    return err


# --- every numeric flag of every command: 0, negative, NaN, inf, 2^70, huge -----------------------------------

def _numeric_flags(command: list[str]):
    """(option, kind) of every flag of ``command`` parsed by one of the lab's numeric parsers."""
    parser = build_parser(command)
    for name in command:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    for action in parser._actions:
        kind = getattr(action.type, "__qualname__", "")
        if action.option_strings and (kind.startswith("int_at_least") or kind.startswith("int_list")
                                      or action.type in (nonnegative_float, positive_float, int)):
            yield action.option_strings[0], action.type


def _bad_values(kind) -> list[str]:
    values = ["-1", "nan", "inf"]
    if kind in (nonnegative_float, positive_float):
        return values + (["0"] if kind is positive_float else [])
    values += [str(2**70)]
    if kind is not seed_int and getattr(kind, "__qualname__", "").startswith(("int_at_least", "int_list")):
        try:
            kind("0")
        except argparse.ArgumentTypeError:
            values.append("0")
    return values


BAD_FLAGS = [(c, opt, v) for c in COMMANDS for opt, kind in _numeric_flags(c) for v in _bad_values(kind)]


def test_the_bad_flag_suite_covers_every_training_command():
    covered = {c[0] for c, _, _ in BAD_FLAGS}
    assert set(TRAINING) <= covered and len(BAD_FLAGS) > 200


@pytest.mark.parametrize("command, option, value", BAD_FLAGS, ids=lambda x: " ".join(x) if isinstance(x, list) else x)
def test_a_bad_number_is_one_line_exit_2_and_no_folder(command, option, value, tmp_path, capsys):
    out = tmp_path / "run"
    extra = ["--run", str(out)] if command[-1] in ("sample", "eval") else ["--out", str(out)]
    if command[0] in ("report", "explore"):
        extra = [str(tmp_path)]
    assert main([*command, *extra, f"{option}={value}"]) == 2
    one_line_error(capsys, option)
    assert not out.exists()


def test_the_lab_parsers_bound_integers_and_seeds():
    with pytest.raises(argparse.ArgumentTypeError, match="<= 2147483647"):
        int_at_least(1)(str(2**70))
    with pytest.raises(argparse.ArgumentTypeError, match="<= 4294967295"):
        seed_int(str(2**32))
    assert seed_int(str(2**32 - 1)) == 2**32 - 1


# --- inputs checked before the first file: no folder left that a corrected rerun would trip on ---------------

BAD_INPUTS = [("--dataset", "foo", "unknown dataset"), ("--device", "foo", "not a device name"),
              ("--device", "cuda:99", "cuda:99"), ("--data-dir", "/nonexistent/connlab", "no such folder")]
if not torch.cuda.is_available():
    BAD_INPUTS.append(("--device", "cuda", "CUDA is not available"))


@pytest.mark.parametrize("command", TRAINING)
@pytest.mark.parametrize("option, value, says", BAD_INPUTS)
def test_bad_inputs_are_refused_before_the_run_folder_exists(command, option, value, says, tmp_path, capsys):
    from dataclasses import fields

    argv = ["diffusion", "train"] if command == "diffusion" else [command]
    out = tmp_path / "run"
    if option[2:].replace("-", "_") not in {f.name for f in fields(REGISTRY[command].config_class)}:
        pytest.skip(f"{command} has no {option}")
    assert main([*argv, option, value, "--out", str(out)]) == 2
    one_line_error(capsys, says)
    assert not out.exists()


@pytest.mark.parametrize("flags, says", [
    (["--validation-images", "20", "--dataset", "mnist-embedded"], "--validation-images needs the course's data"),
    (["--noise", "0", "--noise-dist", "salt-pepper"], "--noise must be > 0 for salt-pepper"),
])
def test_autoencoder_flags_that_clash_are_refused_before_the_folder(flags, says, tmp_path, capsys):
    # found by hand: these were checked after config.json was written, so the corrected rerun was refused
    out = tmp_path / "run"
    assert main(["autoencoder", *flags, "--out", str(out)]) == 2
    one_line_error(capsys, says)
    assert not out.exists()


def test_an_unknown_dataset_lists_the_courses_digits_where_the_command_takes_them(tmp_path, capsys):
    assert main(["autoencoder", "--dataset", "foo", "--out", str(tmp_path / "a")]) == 2
    assert one_line_error(capsys, "unknown dataset").endswith("mnist, mnist-embedded, fashion, course")
    assert main(["ladder", "--dataset", "foo", "--out", str(tmp_path / "b")]) == 2  # takes --course-data instead
    assert one_line_error(capsys, "unknown dataset").endswith("mnist, mnist-embedded, fashion")
    assert not any(tmp_path.iterdir())


def test_a_garbage_data_dir_is_refused_before_the_folder(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    from connlab.data.datasets import FILES

    for f in FILES:
        (data / f).write_bytes(b"\0\0\x08\x01garbage")
    out = tmp_path / "run"
    assert main(["autoencoder", "--data-dir", str(data), "--out", str(out)]) == 2
    one_line_error(capsys, "checksum mismatch")
    assert not out.exists()


def test_a_missing_classifier_is_refused_before_anything_trains(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["diffusion", "train", "--classifier", str(tmp_path / "nope"), "--out", str(out)]) == 2
    one_line_error(capsys, "--classifier", "no such run folder")
    assert not out.exists()


def test_demo_checks_its_inputs_and_its_folder(tmp_path, capsys):
    for argv, says in [(["--device", "cuda:99"], "cuda:99"), (["--dataset", "foo", "--only", "gates"], "foo"),
                       (["--only", ""], "names no part")]:
        assert main(["demo", "--out", str(tmp_path / "demo"), *argv]) == 2
        one_line_error(capsys, says)
    assert not (tmp_path / "demo").exists()
    run = tmp_path / "ae"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"experiment": "autoencoder", "config": {}}))
    assert main(["demo", "--resume", "--out", str(run)]) == 2
    one_line_error(capsys, "not a demo folder")
    assert sorted(p.name for p in run.iterdir()) == ["config.json"]


def test_connlab_data_that_is_a_file_falls_back_to_the_embedded_subset(tmp_path, monkeypatch, capsys):
    from connlab.data import load_dataset

    (tmp_path / "file").write_text("")
    monkeypatch.setenv("CONNLAB_DATA", str(tmp_path / "file"))
    monkeypatch.setenv("CONNLAB_MIRRORS", "http://127.0.0.1:9/")
    assert load_dataset("mnist", limit=10).source == "embedded"
    assert "embedded" in capsys.readouterr().err


# --- damaged files: one line naming the file and what is wrong ------------------------------------------------

CONFIGS = {
    "truncated": '{"experiment": "autoencoder", "conf',
    "a list": "[1, 2]",
    "config a list": '{"experiment": "autoencoder", "config": [1, 2]}',
    "epochs a word": '{"experiment": "autoencoder", "config": {"epochs": "three"}}',
    "epochs negative": '{"experiment": "autoencoder", "config": {"epochs": -4}}',
    "lr NaN": '{"experiment": "autoencoder", "config": {"lr": NaN}}',
    "noise NaN": '{"experiment": "autoencoder", "config": {"noise": NaN}}',
    "seed huge": '{"experiment": "autoencoder", "config": {"seed": 1180591620717411303424}}',
    "skip unknown": '{"experiment": "autoencoder", "config": {"skip": "sideways"}}',
    "not UTF-8": b'{"experiment": "\xff"}',
}


DAMAGED = [(c, t) for c in (["autoencoder", "--resume", "--out"], ["report"], ["explore"]) for t in CONFIGS
           if c != ["explore"] or t in ("truncated", "a list", "config a list", "not UTF-8")]


@pytest.mark.parametrize("command, text", [(c, CONFIGS[t]) for c, t in DAMAGED],
                         ids=[f"{c[0]}-{t}" for c, t in DAMAGED])
def test_a_damaged_config_json_is_one_line_naming_it(command, text, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    assert main([*command, str(run)]) == 2
    err = one_line_error(capsys, "config.json")
    assert "--epochs" not in err and "None" not in err


@pytest.mark.parametrize("text", ['{"experiment": "gat', "[1, 2]", "null", "7"])
def test_a_damaged_summary_json_is_one_line_naming_it(text, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"experiment": "gates", "config": {}}))
    (run / "summary.json").write_text(text)
    assert main(["report", str(run)]) == 2
    one_line_error(capsys, "summary.json")
    assert not (tmp_path / "report.html").exists()


DEMOS = {"truncated": '{"parts": [', "a list": "[]", "parts not a list": '{"parts": 3}',
         "folder outside": '{"parts": [{"name": "gates", "folder": "../elsewhere"}]}',
         "folder absolute": '{"parts": [{"name": "gates", "folder": "/etc"}]}'}


@pytest.mark.parametrize("text", DEMOS.values(), ids=DEMOS.keys())
def test_a_damaged_demo_json_is_one_line_naming_it(text, tmp_path, capsys):
    demo = tmp_path / "demo"
    elsewhere = tmp_path / "elsewhere"
    for d in (demo, elsewhere):
        d.mkdir()
    (elsewhere / "config.json").write_text(json.dumps({"experiment": "gates", "config": {}}))
    (demo / "demo.json").write_text(text)
    assert main(["report", str(demo)]) == 2
    one_line_error(capsys, "demo.json")
    if "folder" not in text:  # the demo itself writes only its own plan's folders; it reads no part's folder
        assert main(["demo", "--resume", "--out", str(demo), "--only", "gates"]) == 2
        one_line_error(capsys, "demo.json")


def test_a_damaged_metrics_jsonl_is_not_read_and_is_rewritten_on_resume(tmp_path):
    from tests.test_train import _interrupted_at_step_7, train

    out = tmp_path / "run"
    whole, _ = train(tmp_path / "whole")
    _interrupted_at_step_7(out)
    (out / "metrics.jsonl").write_text('{"epoch": 1, "tra')
    resumed, _ = train(out, resume=True)
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2]
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()))


# --- outputs that cannot be written -----------------------------------------------------------------------------

def _gates_run(tmp_path, experiment: str = "gates") -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"experiment": experiment, "config": {}}))
    return run


@pytest.mark.parametrize("command", ["report", "explore"])
@pytest.mark.parametrize("where", ["/proc/connlab-test.html", "a folder"])
def test_a_page_that_cannot_be_written_is_refused_before_the_work(command, where, tmp_path, capsys):
    run = _gates_run(tmp_path, "gates" if command == "report" else "vit")  # a run the command takes
    out = where
    if where == "a folder":
        out = tmp_path / "page.html"
        out.mkdir()
    assert main([command, str(run), "--out", str(out)]) == 2
    one_line_error(capsys, str(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["run"] + (["page.html"] if where == "a folder"
                                                                         else []))


def test_a_full_disk_is_named_and_leaves_nothing_behind(tmp_path):
    from connlab.checkpoint import atomic_write

    def full(f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(UserError, match="disk full"):
        atomic_write(tmp_path / "summary.json", full)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_during_a_checkpoint_is_one_line_and_resume_still_works(tmp_path, monkeypatch):
    import connlab.checkpoint as ck
    from tests.test_train import train

    whole, _ = train(tmp_path / "whole")
    real, calls = ck.atomic_write_bytes, {"n": 0}

    def fills_up(path, data):
        calls["n"] += 1
        if calls["n"] == 9:  # the 5th checkpoint's weights (2 files each)
            raise ck.write_error(Path(path), OSError(errno.ENOSPC, "No space left on device"))
        return real(path, data)

    monkeypatch.setattr(ck, "atomic_write_bytes", fills_up)
    with pytest.raises(UserError, match="disk full"):
        train(tmp_path / "split")
    monkeypatch.setattr(ck, "atomic_write_bytes", real)
    assert not any(p.name.startswith(".tmp") for p in (tmp_path / "split" / "checkpoints").iterdir())
    resumed, _ = train(tmp_path / "split", resume=True)
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()))


def test_resume_of_a_read_only_folder_is_one_line(tmp_path, capsys):
    import os

    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    run = _gates_run(tmp_path)
    run.chmod(0o555)
    try:
        assert main(["gates", "--resume", "--out", str(run)]) == 2
        one_line_error(capsys, str(run))
    finally:
        run.chmod(0o755)


# --- a link planted at an output is replaced, never written through ---------------------------------------------

def test_every_writer_replaces_a_planted_link(tmp_path):
    from connlab import plots
    from connlab.checkpoint import atomic_write_json, list_checkpoints, save_weights, write_checkpoint

    victim = tmp_path / "victim"
    victim.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()
    names = ["a.json", "w.safetensors", "fig.png"]
    for n in names:
        (out / n).symlink_to(victim)
    atomic_write_json(out / "a.json", {"x": 1})
    save_weights(torch.nn.Linear(2, 2), out / "w.safetensors")
    plt = plots.pyplot()
    plots.save_figure(plt.figure(), out / "fig.png", dpi=10)
    assert victim.read_text() == "keep me"
    assert all(not (out / n).is_symlink() and (out / n).stat().st_size > 0 for n in names)
    # a planted link among the checkpoints: replaced when written, skipped (never read) when listed
    ckpts = out / "checkpoints"
    ckpts.mkdir()
    (ckpts / "step-0000001").symlink_to(tmp_path, target_is_directory=True)
    (ckpts / "step-0000009").symlink_to(tmp_path, target_is_directory=True)
    assert list_checkpoints(ckpts) == []
    model = torch.nn.Linear(2, 2)
    write_checkpoint(ckpts, 1, model, {"step": 1}, {})
    assert (ckpts / "step-0000001").is_dir() and not (ckpts / "step-0000001").is_symlink()
    import os

    umask = os.umask(0)
    os.umask(umask)
    assert (ckpts / "step-0000001").stat().st_mode & 0o777 == 0o777 & ~umask  # as mkdir makes it, not 0700
    assert victim.read_text() == "keep me" and (tmp_path / "out").is_dir()


@pytest.mark.slow
def test_a_real_run_writes_no_output_through_a_planted_link(tmp_path):
    """Run once to learn every output path, then plant links at all of them in a new folder and run again."""
    argv = ["gates", "--epochs", "1", "--train-points", "64", "--device", "cpu"]
    assert main([*argv, "--out", str(tmp_path / "first")]) == 0
    outputs = [p.relative_to(tmp_path / "first") for p in (tmp_path / "first").rglob("*") if p.is_file()]
    assert len(outputs) >= 5
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    second = tmp_path / "second"
    second.mkdir()
    for rel in outputs:
        if rel.name != "config.json" and len(rel.parts) == 1:  # an existing variant folder "holds a run"
            (second / rel).symlink_to(victim)
    assert main([*argv, "--out", str(second)]) == 0
    assert victim.read_text() == "keep me"
    assert not [p for p in second.rglob("*") if p.is_symlink()]


# --- two processes on one folder -----------------------------------------------------------------------------

HOLDER = textwrap.dedent("""
    import sys, time
    from connlab.runs import claim
    claim(sys.argv[1])
    print("held", flush=True)
    time.sleep(60)
""")


def test_a_second_process_on_a_held_folder_gets_one_line_with_the_pid(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        argv = ["gates", "--epochs", "1", "--train-points", "64", "--device", "cpu", "--out", str(run)]
        assert main(argv) == 2
        one_line_error(capsys, str(run), f"pid {holder.pid}")
        assert sorted(p.name for p in run.iterdir()) == [".connlab-lock"]  # no config.json of a second run
        (run / "config.json").write_text(json.dumps({"experiment": "gates", "config": {"epochs": 1}}))
        assert main([*argv, "--resume"]) == 2
        one_line_error(capsys, f"pid {holder.pid}")
    finally:
        holder.kill()
        holder.wait()
    from connlab.runs import LOCK, claim, release

    claim(run)  # the holder's lock went with it
    assert (run / LOCK).read_text() == f"{os.getpid()}\n"
    release()
    assert not (run / LOCK).exists()   # a released folder holds only the run's files


def test_a_lock_file_removed_under_a_waiting_claim_is_not_shared(tmp_path, monkeypatch):
    """The holder removes its lock file on release; a process that opened the old file just before must
    not lock that orphan while a third process locks the new one."""
    import fcntl

    from connlab import runs

    run = tmp_path / "run"
    run.mkdir()
    real_flock, calls = fcntl.flock, []

    def flock_after_the_holder_left(fd, op):
        calls.append(fd)
        if len(calls) == 1:   # between our open and our lock: the old file is unlinked, a new one appears
            os.unlink(run / runs.LOCK)
            (run / runs.LOCK).write_text("")
        return real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock_after_the_holder_left)
    runs.claim(run)
    try:
        assert len(calls) == 2   # the orphan was dropped and the current file locked
        assert runs._same_file(runs._held[os.path.realpath(run)][0], run / runs.LOCK)
    finally:
        runs.release()


def test_the_lock_file_is_not_opened_through_a_link(tmp_path, capsys):
    from connlab.runs import LOCK

    run = tmp_path / "run"
    run.mkdir()
    (tmp_path / "victim").write_text("keep me")
    (run / LOCK).symlink_to(tmp_path / "victim")
    assert main(["gates", "--epochs", "1", "--device", "cpu", "--out", str(run)]) == 2
    one_line_error(capsys, str(run))
    assert (tmp_path / "victim").read_text() == "keep me"


# --- the Ctrl-C line names the folder ------------------------------------------------------------------------

def test_ctrl_c_names_the_folder_to_resume(tmp_path, capsys, monkeypatch):
    from connlab.train import callbacks

    def interrupt(step):
        raise KeyboardInterrupt

    monkeypatch.setattr(callbacks, "step_hooks", lambda: [interrupt])
    out = tmp_path / "run"
    assert main(["gates", "--epochs", "1", "--train-points", "64", "--device", "cpu", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert f"--resume --out {out}" in err and "RUN_DIR" not in err


def test_a_finished_run_is_given_back_the_default_memory_layout(tmp_path):
    """Latent diffusion encodes with the autoencoder fit just trained, or (resumed) one loaded from disk:
    both must be in the same layout, else the latents differ by ~1e-5 and resume is not bitwise."""
    from connlab.models.latent_ae import LatentAEConfig, LatentAutoencoder
    from connlab.train import TrainConfig, fit

    ae = LatentAutoencoder(LatentAEConfig())
    x = torch.rand(8, 1, 28, 28)
    cfg = TrainConfig(epochs=1, batch_size=8, device="cpu", channels_last="on")
    fit(ae, lambda m, b, g: m.loss(b[0], g), (x,), cfg, tmp_path)
    assert all(p.is_contiguous() for p in ae.parameters())
    fresh = LatentAutoencoder(LatentAEConfig())
    fresh.load_state_dict(ae.state_dict())
    ae.eval(), fresh.eval()
    with torch.no_grad():
        assert torch.equal(ae.encode(x), fresh.encode(x))


# --- kill / resume of every training command, bitwise ---------------------------------------------------------

TINY = {
    "gates": ["--epochs", "2", "--train-points", "64"],
    "rnn": ["--lengths", "5", "--train-size", "64", "--epochs", "2", "--models", "gru"],
    "attention": ["--epochs", "2", "--train-size", "64"],
    "skipmlp": ["--epochs", "2", "--limit", "64", "--seeds", "1"],
    "depth": ["--depths", "2", "--epochs", "2", "--limit", "64", "--seeds", "1"],
    "classifier": ["--epochs", "2", "--limit", "64"],
    "autoencoder": ["--epochs", "2", "--limit", "64", "--skip", "none"],
    "ladder": ["--steps", "2", "--epochs", "2", "--limit", "64", "--eval-images", "20"],
    "vit": ["--epochs", "2", "--limit", "64", "--dim", "16", "--depth", "1", "--heads", "2"],
    "diffusion": ["--preset", "demo", "--epochs", "2", "--ae-epochs", "1", "--limit", "64", "--eval-num", "10",
                  "--eval-steps", "2", "--timesteps", "10", "--base-channels", "8", "--channel-mults", "1",
                  "--no-attention"],
}


def test_every_training_command_has_a_tiny_kill_resume_config():
    assert set(TINY) == set(TRAINING)


def _weights(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.safetensors"))
            if "checkpoints" not in p.parts}


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(TINY))
def test_a_killed_and_resumed_run_equals_the_uninterrupted_one_bit_for_bit(command, tmp_path, monkeypatch):
    from connlab.train import callbacks

    argv = (["diffusion", "train"] if command == "diffusion" else [command]) + TINY[command] + [
        "--device", "cpu", "--batch-size", "16", "--checkpoint-every", "1"]
    if "--limit" in TINY[command] or command == "diffusion":
        argv += ["--dataset", "mnist-embedded"]
    if command == "diffusion":  # one small classifier for the quality score, trained once
        assert main(["classifier", *TINY["classifier"], "--device", "cpu", "--out", str(tmp_path / "clf")]) == 0
        argv += ["--classifier", str(tmp_path / "clf")]
    steps = {"n": 0}
    monkeypatch.setattr(callbacks, "step_hooks", lambda: [lambda step: steps.__setitem__("n", steps["n"] + 1)])
    assert main([*argv, "--out", str(tmp_path / "whole")]) == 0
    total = steps["n"]
    kill_at = total - 3 if command == "diffusion" else total // 2 + 1  # diffusion: in the U-Net, after the AE

    def kill(step):
        steps["n"] += 1
        if steps["n"] == kill_at:
            raise KeyboardInterrupt

    steps["n"] = 0
    monkeypatch.setattr(callbacks, "step_hooks", lambda: [kill])
    assert main([*argv, "--out", str(tmp_path / "split")]) == 130
    assert not (tmp_path / "split" / "summary.json").exists()
    assert main([*argv, "--out", str(tmp_path / "split"), "--resume"]) == 0
    whole, split = _weights(tmp_path / "whole"), _weights(tmp_path / "split")
    assert whole and whole.keys() == split.keys()
    assert [k for k in whole if whole[k] != split[k]] == []


# --- work sized from a user's number is refused when it cannot fit ------------------------------------------

def test_a_materialized_ladder_that_cannot_fit_is_refused_before_the_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["ladder", "--steps", "100000", "--materialize", "--device", "cpu", "--out", str(out)]) == 2
    one_line_error(capsys, "--materialize", "GiB")
    assert not out.exists()


def test_more_samples_than_memory_holds_are_refused(monkeypatch):
    from connlab.experiments.diffusion_sample import check_sample_size
    from connlab.runtime import memory

    with pytest.raises(UserError, match=r"--num 1000000000000 samples needs about"):
        check_sample_size(10**12, "cpu")
    monkeypatch.setattr(memory, "available_bytes", lambda device: 10**9)
    check_sample_size(1000, "cpu")  # 9 MB of a free GB


@pytest.mark.parametrize("command", TRAINING)
def test_every_default_config_passes_its_own_saved_value_checks(command, tmp_path):
    """The checks refuse damaged values only: a config.json the lab writes reads back equal."""
    from connlab.runs import config_from_json, config_to_json

    cls = REGISTRY[command].config_class
    cfg = cls()
    assert config_from_json(cls, json.loads(json.dumps(config_to_json(cfg))), tmp_path / "config.json") == cfg
