"""One source of defaults: flags generated from config dataclasses, presets, --resume with other flags."""

from __future__ import annotations

import argparse
from dataclasses import fields

import pytest

from connlab.cli import main
from connlab.experiments import REGISTRY
from connlab.experiments.common import DataSettings, TrainingSettings


def parse(command: str, *argv: str):
    """The config ``connlab COMMAND ARGV`` would run with (argparse and presets only; nothing runs)."""
    entry = REGISTRY[command]
    parser = argparse.ArgumentParser()
    entry.add_arguments(parser)
    if command == "diffusion":
        from connlab.experiments.diffusion import config_from_args

        return config_from_args(parser.parse_args(["train", *argv]))
    return entry.config_class.from_args(parser.parse_args(list(argv)))


TRAINING = [name for name, e in REGISTRY.items() if e.config and issubclass(e.config_class, TrainingSettings)]


def test_every_training_command_has_every_shared_flag():
    assert set(TRAINING) >= {"gates", "rnn", "attention", "autoencoder", "diffusion", "vit", "classifier"}
    for name in TRAINING:
        defaults = parse(name)
        for f in fields(TrainingSettings):
            option = "--" + f.name.replace("_", "-")
            value = {"epochs": "2", "batch_size": "3", "lr": "0.5", "seed": "7", "device": "cpu",
                     "checkpoint_every": "9"}.get(f.name, "off" if f.name != "precision" else "fp32")
            cfg = parse(name, option, value)
            assert str(getattr(cfg, f.name)) == value and getattr(defaults, f.name) is not None, (name, option)


def test_train_config_copies_every_shared_field_by_name():
    from connlab.experiments.attention import AttentionExperiment
    from connlab.train import TrainConfig

    cfg = AttentionExperiment(epochs=2, lr=0.01, weight_decay=0.2, warmup_steps=3, cuda_graph="off",
                              malloc_cache="off", channels_last="on")
    train = cfg.train_config(optimizer="adamw")
    shared = {f.name for f in fields(TrainConfig)} & {f.name for f in fields(cfg)}
    assert {"weight_decay", "warmup_steps", "malloc_cache", "channels_last"} <= shared
    assert all(getattr(train, n) == getattr(cfg, n) for n in shared) and train.optimizer == "adamw"


def test_a_subclass_default_keeps_the_flag_help(capsys):
    assert main(["rnn", "--help"]) == 0
    out = capsys.readouterr().out
    assert "passes over the training set (default 5; --full: 10)" in " ".join(out.split())


@pytest.mark.parametrize("command, argv, expected", [
    # a flag given on the command line wins over the preset, even when it equals its default
    ("vit", ["--full", "--dim", "64"], dict(dim=64, depth=6, epochs=30, heads=4)),
    ("vit", ["--full"], dict(dim=128, depth=6)),
    ("vit", [], dict(dim=64, depth=3, epochs=6)),
    ("rnn", ["--full"], dict(lengths=(10, 50, 100, 200, 400), epochs=10)),
    ("rnn", ["--full", "--epochs", "5", "--lengths", "10,50,100"], dict(lengths=(10, 50, 100), epochs=5)),
    ("depth", ["--full"], dict(depths=(2, 8, 20, 32, 56), limit=None)),
    ("depth", ["--full", "--limit", "2000"], dict(limit=2000)),
    ("depth", [], dict(depths=(2, 8, 20), limit=2000)),
    ("classifier", ["--full"], dict(epochs=6, full=True)),
    ("classifier", ["--full", "--epochs", "5"], dict(epochs=5, full=True)),
    ("diffusion", ["--preset", "pixel", "--epochs", "40"], dict(space="pixel", base_channels=16, epochs=40)),
    ("diffusion", ["--preset", "demo", "--ema-decay", "0.999"], dict(ema_decay=0.999, epochs=4, guidance=2.0)),
    ("diffusion", ["--no-attention"], dict(attention=False, class_cond=True)),
    ("skipmlp", ["--width", "7"], dict(hidden=7)),
])
def test_presets_apply_only_to_flags_not_given(command, argv, expected):
    cfg = parse(command, *argv)
    assert {k: getattr(cfg, k) for k in expected} == expected


def test_resume_refuses_flags_that_differ_from_the_saved_config(tmp_path, capsys):
    from connlab.experiments.gates import GatesExperiment
    from connlab.runs import prepare_run

    out = tmp_path / "run"
    prepare_run(out, "gates", GatesExperiment(epochs=2, train_points=100, device="cpu"), resume=False)
    assert main(["gates", "--resume", "--out", str(out), "--epochs", "3", "--k", "4"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "--epochs 3 (saved: 2)" in err and "--k 4 (saved: 3)" in err
    # the same values as saved are accepted: the run continues with its saved config
    _, cfg = prepare_run(out, "gates", GatesExperiment(), resume=True, given={"epochs": 2, "device": "cpu"})
    assert (cfg.epochs, cfg.train_points) == (2, 100)


def test_an_old_config_json_still_loads(tmp_path):
    """A run folder saved before a field existed resumes with that field's default."""
    import json

    from connlab.experiments.rnn import RNNExperiment
    from connlab.runs import prepare_run

    out = tmp_path / "old"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"experiment": "rnn", "config": {
        "lengths": [4, 8], "models": ["rnn", "gru"], "hidden": 8, "epochs": 1, "retired_field": 1}}))
    _, cfg = prepare_run(out, "rnn", RNNExperiment(), resume=True, given={})
    assert cfg.lengths == (4, 8) and cfg.models == ("rnn", "gru") and cfg.precision == "fp32"


def test_data_flags_only_where_images_are_read():
    for name in TRAINING:
        has_data = issubclass(REGISTRY[name].config_class, DataSettings)
        assert has_data == (name not in ("gates", "rnn", "attention")), name


def test_the_demo_resumes_an_interrupted_part_with_its_own_flags(tmp_path, monkeypatch):
    """The demo passes a part's flags again with --resume: equal to the saved config, so not refused."""
    import json
    from dataclasses import replace

    from connlab.experiments import DemoStep

    tiny = DemoStep(("--epochs", "2", "--train-points", "256", "--checkpoint-every", "1"), ())
    monkeypatch.setitem(REGISTRY, "gates", replace(REGISTRY["gates"], demo=(tiny,)))
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--only", "gates", "--device", "cpu", "--no-report"]) == 0
    (out / "gates" / "summary.json").unlink()  # as if killed after its checkpoints, before the end
    assert main(["demo", "--out", str(out), "--only", "gates", "--resume", "--no-report"]) == 0
    record = json.loads((out / "demo.json").read_text())
    assert record["parts"][0]["status"] == "done" and "--resume" in record["parts"][0]["command"]
    assert (out / "gates" / "summary.json").is_file()
